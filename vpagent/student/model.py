"""The embedded student: LLaVA's recipe at the smallest scale, as a transformers model.

Image features from frozen networks (81 tokens of ``vision_feature_dim``: EfficientNet-Lite3's
1280 for the default ``grid`` eyes, more for ``stages`` and ``grid+ssd``, see ``eyes.py``) go
through a trainable two-layer MLP projector into the language model's embedding space and replace
the 81 ``<image>`` placeholder tokens of the prompt. With ``eyes = "grid+regions"``,
``num_regions`` region tokens follow (``regions.py``): the projected RoI feature plus a learned
COCO class embedding and a learned projection of the box geometry, or a learned "no region"
embedding for an empty slot. The language model is any causal LM
(SmolLM2-135M-Instruct from the offline pack by default). ``StudentConfig`` and
``StudentForConditionalGeneration`` are registered with ``AutoConfig`` and
``AutoModelForImageTextToText``, so ``save_pretrained`` / ``from_pretrained`` / ``generate`` and
PEFT work as for any other model.
"""

from __future__ import annotations

from typing import Any

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    GenerationMixin,
    PreTrainedConfig,
    PreTrainedModel,
)
from transformers.configuration_utils import SubConfigSpec
from transformers.modeling_outputs import CausalLMOutputWithPast

from vpagent.student.eyes import EYES, GRID_EYES, REGION_EYES
from vpagent.student.feature_maps import EFFICIENTNET, FEATURE_DIM, NUM_IMAGE_TOKENS
from vpagent.student.regions import (
    GEOMETRY_DIM,
    NO_REGION,
    NUM_REGION_CLASSES,
    NUM_REGIONS,
    REGION_INPUTS,
    SCORE_THRESHOLD,
)

MODEL_TYPE = "vpagent_student"
IMAGE_TOKEN = "<image>"


@strict
class StudentConfig(PreTrainedConfig):
    """A causal LM's config plus the image side: feature size, token count, projector, eyes."""

    model_type = MODEL_TYPE
    sub_configs_defaults = {  # noqa: RUF012  (transformers reads it from the class)
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="llama"),
    }

    text_config: dict | PreTrainedConfig | None = None
    image_token_id: int = 0
    num_image_tokens: int = NUM_IMAGE_TOKENS
    vision_feature_dim: int = FEATURE_DIM
    projector_hidden_size: int | None = None
    image_encoder: str = EFFICIENTNET
    eyes: str = GRID_EYES
    num_regions: int = NUM_REGIONS
    region_score_threshold: float = SCORE_THRESHOLD
    num_region_classes: int = NUM_REGION_CLASSES
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        if self.eyes not in EYES:
            raise ValueError(f"eyes must be one of {', '.join(EYES)}, not {self.eyes!r}")
        if self.text_config.tie_word_embeddings:  # the language model decides, as in Llava
            self.tie_word_embeddings = True


class StudentProjector(nn.Module):
    """Image features -> language-model embeddings (LLaVA-1.5's two-layer MLP)."""

    def __init__(self, config: StudentConfig) -> None:
        super().__init__()
        hidden = config.text_config.hidden_size
        inner = config.projector_hidden_size or hidden
        self.norm = nn.LayerNorm(config.vision_feature_dim)
        self.linear_1 = nn.Linear(config.vision_feature_dim, inner)
        self.act = nn.GELU()
        self.linear_2 = nn.Linear(inner, hidden)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act(self.linear_1(self.norm(features))))


class StudentRegionEmbedding(nn.Module):
    """Region tokens: projected RoI feature + class embedding + geometry, or "no region"."""

    def __init__(self, config: StudentConfig) -> None:
        super().__init__()
        hidden = config.text_config.hidden_size
        self.classes = nn.Embedding(config.num_region_classes, hidden)
        self.geometry = nn.Linear(GEOMETRY_DIM, hidden)
        self.empty = nn.Parameter(torch.zeros(hidden))

    def forward(
        self, projected: torch.Tensor, labels: torch.Tensor, geometry: torch.Tensor
    ) -> torch.Tensor:
        tokens = projected + self.classes(labels.clamp(min=0)) + self.geometry(geometry)
        present = (labels != NO_REGION).unsqueeze(-1)
        return torch.where(present, tokens, self.empty.to(tokens.dtype))


class StudentPreTrainedModel(PreTrainedModel):
    config_class = StudentConfig
    base_model_prefix = "student"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_attention_backend = True
    _no_split_modules = ["StudentProjector"]  # noqa: RUF012  (transformers' class attribute)


class StudentForConditionalGeneration(StudentPreTrainedModel, GenerationMixin):
    """Projector + causal LM; ``image_features`` (B, 81, D) fill the ``<image>`` slots.

    A grid+regions student also takes ``region_features`` (B, R, D), ``region_labels``
    (B, R; NO_REGION for an empty slot) and ``region_geometry`` (B, R, 8): 81 + R slots.
    """

    def __init__(self, config: StudentConfig) -> None:
        super().__init__(config)
        self.projector = StudentProjector(config)
        self.region_embedding = (
            StudentRegionEmbedding(config) if config.eyes == REGION_EYES else None
        )
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.post_init()

    @classmethod
    def from_language_model(
        cls, language_model: PreTrainedModel, image_token_id: int, **config: Any
    ) -> StudentForConditionalGeneration:
        """A new student around a loaded causal LM (its weights kept, a fresh projector)."""
        student_config = StudentConfig(
            text_config=language_model.config.to_dict(), image_token_id=image_token_id, **config
        )
        student = cls(student_config)
        student.language_model.load_state_dict(language_model.state_dict())
        student.language_model.tie_weights()
        return student.to(language_model.dtype)

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def get_image_features(
        self,
        image_features: torch.Tensor,
        region_features: torch.Tensor | None = None,
        region_labels: torch.Tensor | None = None,
        region_geometry: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Projected image tokens, (B, 81, hidden), then the region tokens (B, R, hidden) if any."""
        dtype = self.projector.linear_1.weight.dtype
        grid = self.projector(image_features.to(dtype))
        if self.region_embedding is None:
            return grid
        if region_features is None or region_labels is None or region_geometry is None:
            raise ValueError(f"this student sees {REGION_EYES}: {', '.join(REGION_INPUTS)} needed")
        regions = self.region_embedding(
            self.projector(region_features.to(dtype)), region_labels, region_geometry.to(dtype)
        )
        return torch.cat([grid, regions], dim=1)

    def _merge_image_tokens(
        self, input_ids: torch.Tensor, embeds: torch.Tensor, image_inputs: dict[str, Any]
    ) -> torch.Tensor:
        slots = input_ids == self.config.image_token_id
        needed = int(slots.sum())
        if needed == 0:
            return embeds
        projected = self.get_image_features(**image_inputs).to(embeds.dtype)
        if needed != projected.shape[0] * projected.shape[1]:
            raise ValueError(
                f"the prompt holds {needed} image tokens but the images give "
                f"{projected.shape[0] * projected.shape[1]} ({projected.shape[1]} per image)"
            )
        mask = slots.unsqueeze(-1).expand_as(embeds)
        return embeds.masked_scatter(mask, projected.reshape(-1, embeds.shape[-1]))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        image_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        region_features: torch.Tensor | None = None,
        region_labels: torch.LongTensor | None = None,
        region_geometry: torch.Tensor | None = None,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        if inputs_embeds is None:
            inputs_embeds = self.get_input_embeddings()(input_ids)
            if image_features is not None:
                image_inputs = {
                    "image_features": image_features,
                    "region_features": region_features,
                    "region_labels": region_labels,
                    "region_geometry": region_geometry,
                }
                inputs_embeds = self._merge_image_tokens(input_ids, inputs_embeds, image_inputs)
        return self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            labels=labels,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )

    def prepare_inputs_for_generation(  # type: ignore[override]
        self,
        input_ids: torch.LongTensor,
        image_features: torch.Tensor | None = None,
        region_features: torch.Tensor | None = None,
        region_labels: torch.LongTensor | None = None,
        region_geometry: torch.Tensor | None = None,
        is_first_iteration: bool | None = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Image inputs go in with the prompt only; later steps read them from the cache."""
        inputs = super().prepare_inputs_for_generation(
            input_ids, is_first_iteration=is_first_iteration, **kwargs
        )
        if is_first_iteration or not kwargs.get("use_cache", True):
            inputs["image_features"] = image_features
            regions = (region_features, region_labels, region_geometry)
            inputs.update(zip(REGION_INPUTS, regions, strict=True))
        return inputs


AutoConfig.register(MODEL_TYPE, StudentConfig, exist_ok=True)
AutoModelForImageTextToText.register(StudentConfig, StudentForConditionalGeneration, exist_ok=True)
