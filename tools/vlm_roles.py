"""The vqa, captioner and matcher roles served by any vision-language model (VLM).

A VLM backend only has to answer "this prompt about this image" for a batch of pairs
(:class:`VLMEngine`). This module turns that into the roles:

- ``vqa``: the question, plus a "short answer" instruction (option ``vqa_prompt``);
- ``captioner``: a one-sentence description (option ``caption_prompt``);
- ``matcher``: ``verify_property`` becomes a yes/no question to the VLM (option
  ``verify_prompt``); the similarity scores behind ``best_text_match`` come from a base matcher
  (options ``base_backend`` (default ``classifier-minilm``), ``base_model``, ``base_options``),
  because a chat VLM gives no calibrated image-text score.

Engines are shared: the roles of one configuration (same backend, model and loading options)
talk to one loaded model or one embedded server (:func:`shared_engine`).
"""

from __future__ import annotations

import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from typing import Any, ClassVar

from vpagent.tools.errors import CannotAnswer
from vpagent.tools.roles import VQA, Captioner, Image, Matcher
from vpagent.tools.types import ToolInfo

VQA_PROMPT = "{question} Answer with a single word or a short phrase."
CAPTION_PROMPT = "Describe the image in one short sentence."
VERIFY_PROMPT = "Is the {name} in the image {property}? Answer yes or no."
DEFAULT_BASE_MATCHER = "classifier-minilm"
# Options the roles read; every other option goes to the engine.
ROLE_OPTIONS = frozenset(
    {"vqa_prompt", "caption_prompt", "verify_prompt", "base_backend", "base_model", "base_options"}
)
_YES = frozenset({"yes", "yeah", "yep", "true", "correct"})
_NO = frozenset({"no", "nope", "false", "incorrect"})

_ENGINES: dict[Hashable, VLMEngine] = {}
_ENGINES_LOCK = threading.Lock()


class VLMEngine(ABC):
    """Answers prompts about images; one instance per loaded model or server."""

    backend: ClassVar[str] = ""

    @abstractmethod
    def generate(self, images: list[Image], prompts: list[str]) -> list[str]:
        """One answer per (image, prompt) pair, in order."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """``model``, ``weights``, ``device`` and ``note`` for :class:`ToolInfo`."""


def shared_engine(key: Hashable, build: Callable[[], VLMEngine]) -> VLMEngine:
    """The engine registered under ``key``, built by ``build()`` on first use."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = _ENGINES[key] = build()
        return engine


def forget_engines() -> None:
    """Drop the shared engines (tests; a later call builds new ones)."""
    with _ENGINES_LOCK:
        _ENGINES.clear()


def yes_or_no(reply: str, backend: str, question: str) -> bool:
    """The verdict in a yes/no reply ("Yes.", "no, it is red"); CannotAnswer otherwise."""
    words = re.findall(r"[a-z]+", reply.lower())
    if words and words[0] in _YES:
        return True
    if words and words[0] in _NO:
        return False
    raise CannotAnswer(
        f"{backend}: asked the yes/no question {question!r}, the VLM answered {reply!r}"
    )


def clean_answer(reply: str) -> str:
    """One line, without surrounding whitespace, quotes or a final full stop."""
    text = " ".join(str(reply).split()).strip().strip("\"'`").strip()
    return text[:-1].rstrip() if text.endswith(".") and text.count(".") == 1 else text


class VLMRole:
    """Mixin for a role served by a VLM engine. Subclasses define :meth:`_make_engine`.

    Put it first in the bases (``class X(VLMRole, VQA)``). ``options`` holds the engine's own
    settings plus the prompt options of this module.
    """

    backend: ClassVar[str] = ""

    def __init__(self, model: str | None = None, device: str = "auto", **options: Any) -> None:
        self.model = model
        self.device = device
        self.options = dict(options)
        self._engine: VLMEngine | None = None
        self._engine_lock = threading.Lock()

    @abstractmethod
    def _make_engine(self) -> VLMEngine:
        """The (shared) engine for this backend's model and options."""

    @property
    def engine(self) -> VLMEngine:
        with self._engine_lock:
            if self._engine is None:
                self._engine = self._make_engine()
            return self._engine

    def _prompt(self, option: str, default: str) -> str:
        return str(self.options.get(option, default))

    def info(self) -> ToolInfo:
        details = self.engine.describe()
        return ToolInfo(
            role=getattr(self, "role", ""),
            backend=self.backend,
            model=str(details.get("model") or self.model or ""),
            weights=details.get("weights"),
            device=str(details.get("device", "")),
            stand_in=False,
            note=str(details.get("note", "")),
        )


class VLMVQA(VLMRole, VQA):
    """``simple_query`` answered by the VLM looking at the crop."""

    def answer_batch(self, images: list[Image], questions: list[str]) -> list[str]:
        if len(images) != len(questions):
            raise ValueError("answer_batch: one question per image")
        template = self._prompt("vqa_prompt", VQA_PROMPT)
        prompts = [template.format(question=q.strip()) for q in questions]
        answers = [clean_answer(a) for a in self.engine.generate(list(images), prompts)]
        for question, answer in zip(questions, answers, strict=True):
            if not answer:
                raise CannotAnswer(f"{self.backend}: the VLM gave an empty answer to {question!r}")
        return answers


class VLMCaptioner(VLMRole, Captioner):
    """``caption`` from the VLM."""

    def caption_batch(self, images: list[Image]) -> list[str]:
        prompt = self._prompt("caption_prompt", CAPTION_PROMPT)
        captions = [
            clean_answer(c) for c in self.engine.generate(list(images), [prompt] * len(images))
        ]
        if any(not c for c in captions):
            raise CannotAnswer(f"{self.backend}: the VLM gave an empty caption")
        return captions


class VLMMatcher(VLMRole, Matcher):
    """``verify_property`` as a yes/no question to the VLM; scores from a base matcher."""

    def __init__(self, model: str | None = None, device: str = "auto", **options: Any) -> None:
        super().__init__(model, device, **options)
        self._base: Matcher | None = None

    @property
    def base(self) -> Matcher:
        """The matcher that scores image-text pairs (built on first use)."""
        from vpagent.tools.registry import build_specialist

        with self._engine_lock:
            if self._base is None:
                base = build_specialist(
                    "matcher",
                    str(self.options.get("base_backend", DEFAULT_BASE_MATCHER)),
                    model=self.options.get("base_model"),
                    device=self.device,
                    options=dict(self.options.get("base_options") or {}),
                )
                if not isinstance(base, Matcher):  # pragma: no cover - registry maps roles
                    raise TypeError(f"{base!r} is not a matcher")
                self._base = base
            return self._base

    def score_batch(self, images: list[Image], texts: list[list[str]]) -> list[list[float]]:
        return self.base.score_batch(images, texts)

    def verify_batch(self, images: list[Image], names: list[str], props: list[str]) -> list[bool]:
        """Whether each ``names[i]`` in ``images[i]`` has ``props[i]``, asked as yes/no."""
        template = self._prompt("verify_prompt", VERIFY_PROMPT)
        questions = [
            template.format(name=n.strip(), property=p.strip())
            for n, p in zip(names, props, strict=True)
        ]
        replies = self.engine.generate(list(images), questions)
        return [yes_or_no(r, self.backend, q) for r, q in zip(replies, questions, strict=True)]

    def verify(self, image: Image, name: str, prop: str) -> bool:
        return self.verify_batch([image], [name], [prop])[0]

    def info(self) -> ToolInfo:
        info = super().info()
        base = self.base.info()
        kind = "a stand-in" if base.stand_in else "real"
        note = (
            f"verify_property asks the VLM yes/no; best_text_match scores come from "
            f"'{base.backend}' ({kind})"
        )
        update = {"note": f"{note}. {info.note}".strip(". "), "stand_in": base.stand_in}
        return info.model_copy(update=update)
