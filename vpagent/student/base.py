"""The embedded student's language model: a packaged GGUF read by transformers, saved once.

``transformers`` de-quantises a GGUF (with the ``gguf`` package) into an ordinary fp32 model.
That takes ~30 s, so the result is saved once as a normal HF folder under
``<cache>/students/base/<pack>`` (written to a temporary folder, then renamed) and loaded from
there afterwards. A hub id or local folder of any causal LM works too.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from vpagent.llm import packs
from vpagent.offline_env import cache_root

DEFAULT_LANGUAGE_MODEL = "smollm2-135m"
READY_MARKER = ".complete"


class StudentError(ValueError):
    """The student cannot be built, trained or loaded; the message says why."""


def base_cache_dir() -> Path:
    return cache_root() / "students" / "base"


def _convert_pack(name: str, target: Path) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        gguf = packs.path(name, progress=False)
    except packs.PackError as error:
        raise StudentError(str(error)) from error
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-"))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        _forget_gguf_quantizer(model)
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / READY_MARKER).write_text(gguf.name, encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _forget_gguf_quantizer(model: Any) -> None:
    """The GGUF loader de-quantises every tensor but leaves its quantizer attached, which
    ``save_pretrained`` refuses; drop it so the fp32 weights save as an ordinary model."""
    model.hf_quantizer = None
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config


def language_model_folder(spec: str) -> str:
    """A model pack name -> its converted HF folder (converted on first use); else ``spec``."""
    if spec not in packs.PACKS:
        return spec
    target = base_cache_dir() / spec
    if (target / READY_MARKER).is_file():
        return str(target)
    return str(_convert_pack(spec, target))


def load_language_model(spec: str, **kwargs: Any) -> tuple[Any, Any]:
    """(causal LM, tokenizer) from a model pack name, a hub id or a local folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = language_model_folder(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    except (OSError, ValueError) as error:
        raise StudentError(f"cannot load the language model {spec!r}: {error}") from error
    return model, tokenizer
