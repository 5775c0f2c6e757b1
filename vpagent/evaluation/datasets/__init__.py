"""Evaluation items from datasets as they are distributed (see docs/datasets.md).

``read_dataset(path)`` detects the layout: vpagent JSONL, Visual Sketchpad folders,
Hugging Face parquet, GQA, VQAv2 / OK-VQA, A-OKVQA.
"""

from vpagent.evaluation.datasets.items import DatasetError, EvalItem, LoadedDataset
from vpagent.evaluation.datasets.load import load_dataset, read_dataset

__all__ = ["DatasetError", "EvalItem", "LoadedDataset", "load_dataset", "read_dataset"]
