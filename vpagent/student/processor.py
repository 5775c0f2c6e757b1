"""Text and image inputs of the embedded student: chat prompt with 81 (+ R) ``<image>`` slots.

The user turn is the image placeholders (81 image tokens, then ``num_regions`` region tokens
for a grid+regions student; none for the ``scene`` eyes), a newline, then the photo's scene
text for the scene eyes (``scene_text.py``), then the record's prompt, rendered with
the language model's own chat template. Training examples are the prompt's tokens followed by
the assistant turn's tokens (the template's rendering of the target, end-of-turn included); the
labels mask the prompt, so the loss falls on the answer/rationale tokens only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from vpagent.student.base import StudentError
from vpagent.student.encoder import FeatureEncoder
from vpagent.student.model import IMAGE_TOKEN
from vpagent.student.regions import REGION_INPUTS, RegionDetector, region_inputs
from vpagent.student.scene_text import SceneText, with_scene

IGNORE_INDEX = -100


class StudentProcessor:
    """Tokenizer + frozen feature encoder (+ region detector, + scene text): (image, prompt) ->
    model inputs. ``encoder`` None: no image tokens (the scene text alone)."""

    def __init__(
        self,
        tokenizer: Any,
        encoder: FeatureEncoder | None = None,
        regions: RegionDetector | None = None,
        scene: SceneText | None = None,
    ) -> None:
        if tokenizer.chat_template is None:
            raise StudentError("the student's tokenizer has no chat template")
        if IMAGE_TOKEN not in tokenizer.get_vocab():
            tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        if encoder is None and scene is None:
            raise StudentError("the student needs image features, scene text or both")
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.regions = regions
        self.scene = scene

    @property
    def image_token_id(self) -> int:
        return int(self.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN))

    @property
    def num_image_tokens(self) -> int:
        """Placeholders per image: the grid's, then one per region slot."""
        if self.encoder is None:
            return 0
        extra = self.regions.num_regions if self.regions is not None else 0
        return self.encoder.num_tokens + extra

    def scene_of(self, image: np.ndarray | Path) -> str | None:
        """The photo's scene text for the scene eyes; None for the others."""
        return self.scene.describe(image) if self.scene is not None else None

    def image_inputs(self, image: np.ndarray | Path) -> dict[str, np.ndarray]:
        """``image_features`` and, for a grid+regions student, the region inputs (nothing for
        the scene text alone)."""
        if self.encoder is None:
            return {}
        grid = self.encoder.encode(image)
        if self.regions is None:
            return {"image_features": grid}
        found = self.regions.detect(image)
        return {"image_features": grid, **region_inputs(grid, found, self.regions.num_regions)}

    def _user_turn(self, prompt: str, scene: str | None) -> dict[str, str]:
        text = with_scene(prompt, scene)
        if not self.num_image_tokens:
            return {"role": "user", "content": text}
        images = IMAGE_TOKEN * self.num_image_tokens
        return {"role": "user", "content": f"{images}\n{text}"}

    def prompt_text(self, prompt: str, scene: str | None = None) -> str:
        return self.tokenizer.apply_chat_template(
            [self._user_turn(prompt, scene)], tokenize=False, add_generation_prompt=True
        )

    def target_text(self, prompt: str, target: str, scene: str | None = None) -> str:
        """The assistant turn as the chat template renders it after the prompt."""
        messages = [self._user_turn(prompt, scene), {"role": "assistant", "content": target}]
        full = self.tokenizer.apply_chat_template(messages, tokenize=False)
        start = self.prompt_text(prompt, scene)
        if not full.startswith(start):
            raise StudentError("the chat template does not render the prompt as a prefix")
        return full[len(start) :]

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def training_example(
        self, image: np.ndarray | Path, prompt: str, target: str
    ) -> dict[str, Any]:
        """input_ids, labels (prompt masked) and image inputs of one record."""
        scene = self.scene_of(image)
        prompt_ids = self._ids(self.prompt_text(prompt, scene))
        target_ids = self._ids(self.target_text(prompt, target, scene))
        return {
            "input_ids": prompt_ids + target_ids,
            "labels": [IGNORE_INDEX] * len(prompt_ids) + target_ids,
            **self.image_inputs(image),
        }

    def prompt_inputs(
        self, images: list[np.ndarray] | list[Path], prompts: list[str]
    ) -> dict[str, Any]:
        """Left-padded prompts and image inputs, ready for ``generate``."""
        ids = [
            self._ids(self.prompt_text(p, self.scene_of(image)))
            for image, p in zip(images, prompts, strict=True)
        ]
        batch = pad(ids, self.tokenizer.pad_token_id, side="left")
        return {**batch, **_stack([self.image_inputs(image) for image in images])}

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Right-padded training batch."""
        batch = pad([e["input_ids"] for e in examples], self.tokenizer.pad_token_id)
        labels = pad([e["labels"] for e in examples], IGNORE_INDEX)["input_ids"]
        batch["labels"] = labels
        return {**batch, **_stack(examples)}

    def save_pretrained(self, folder: Path) -> None:
        self.tokenizer.save_pretrained(folder)

    def decode(self, ids: torch.Tensor) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)


def _stack(examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """The image inputs of several examples as batched tensors."""
    names = [n for n in ("image_features", *REGION_INPUTS) if n in examples[0]]
    return {name: torch.from_numpy(np.stack([e[name] for e in examples])) for name in names}


def pad(sequences: list[list[int]], value: int, side: str = "right") -> dict[str, torch.Tensor]:
    """input_ids padded with ``value`` and the matching attention_mask."""
    longest = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), longest), value, dtype=torch.long)
    mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        span = slice(longest - len(sequence), longest) if side == "left" else slice(len(sequence))
        ids[row, span] = torch.tensor(sequence, dtype=torch.long)
        mask[row, span] = 1
    return {"input_ids": ids, "attention_mask": mask}
