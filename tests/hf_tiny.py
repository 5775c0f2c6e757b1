"""Builders of tiny, randomly initialised models for the tools.hf backend tests.

Each builder makes a model of the real architecture with a few-thousand-parameter config, a
tokenizer/processor made offline, saves both the way the hub does (``save_pretrained`` or a
weights file) and returns the path. The backends then load them through their real code.
Nothing here downloads anything.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import vpagent  # noqa: F401  (offline environment before any model library loads)
from vpagent.tools.types import Box

TEST_VOCAB_WORDS = [
    "a", "an", "the", "photo", "of", "cat", "dog", "car", "red", "blue", "green", "what",
    "is", "in", "image", "picture", "color", "how", "many", "are", "there", "yes", "no",
    "person", "table", "chair", "left", "right", "one", "two", "?", ".", ",",
]  # fmt: skip


def test_image(height: int = 48, width: int = 64, seed: int = 0) -> np.ndarray:
    """A deterministic RGB uint8 test image with a bright rectangle on noise."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 80, size=(height, width, 3), dtype=np.uint8)
    image[height // 4 : height // 2, width // 4 : width // 2] = (220, 40, 40)
    return image


test_image.__test__ = False  # not a pytest test


# Segmenter inputs shared by the SAM-family tests: mixed sizes, box / point / whole-image
# prompts, and a box that must be clipped to the image.
SEGMENT_IMAGES = [
    test_image(height=40, width=64),
    test_image(height=50, width=30, seed=1),
    test_image(seed=2),
]
SEGMENT_BOXES = [Box.of([5, 5, 30, 30]), None, Box.of([-10, 3, 200, 40])]
SEGMENT_POINTS = [None, (10.0, 20.0), (20.0, 20.0)]


def seeded(build):
    """Run a builder under a fixed torch seed: the same random model on every run."""
    import functools

    @functools.wraps(build)
    def wrapper(*args, **kwargs):
        import torch

        state = torch.random.get_rng_state()
        torch.manual_seed(0)
        try:
            return build(*args, **kwargs)
        finally:
            torch.random.set_rng_state(state)

    return wrapper


# --------------------------------------------------------------------------- tokenizers


def byte_level_clip_tokenizer():
    """A CLIP tokenizer over the 256 byte symbols (no merges): BOS and EOS ids are > 0."""
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPTokenizer

    chars = sorted(ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": i + len(chars) for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[])


def bert_tokenizer(size: int | None = None, fixed: dict[str, int] | None = None, **kwargs):
    """A BertTokenizer (WordPiece) over TEST_VOCAB_WORDS plus single letters and ``##`` pieces.

    ``fixed`` pins tokens to ids (filling the gaps with ``[unusedN]``) when a model hard-codes
    them, e.g. Grounding DINO's bert-base-uncased ids of [CLS], [SEP], "." and "?".
    """
    from transformers import BertTokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    words = list(
        dict.fromkeys([*specials, *TEST_VOCAB_WORDS, *letters, *("##" + c for c in letters)])
    )
    fixed = fixed or {}
    words = [w for w in words if w not in fixed]
    size = max(size or 0, len(words) + len(fixed), max(fixed.values(), default=-1) + 1)
    vocab: list[str | None] = [None] * size
    for token, index in fixed.items():
        vocab[index] = token
    free = iter(w for w in words)
    for index in range(size):
        if vocab[index] is None:
            vocab[index] = next(free, f"[unused{index}]")
    return BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, **kwargs)


def _text_ids(tokenizer) -> dict[str, int]:
    return {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def _small_encoder(hidden: int = 32, layers: int = 2, heads: int = 4) -> dict:
    return {
        "hidden_size": hidden,
        "intermediate_size": hidden * 2,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
    }


# --------------------------------------------------------------------------- CLIP / SigLIP


@seeded
def build_clip(path: Path, image_size: int = 32, patch_size: int = 8) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    tokenizer = byte_level_clip_tokenizer()
    config = CLIPConfig(
        text_config={**_small_encoder(), **_text_ids(tokenizer), "max_position_embeddings": 64},
        vision_config={**_small_encoder(), "image_size": image_size, "patch_size": patch_size},
        projection_dim=16,
    )
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    CLIPModel(config).eval().save_pretrained(path)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path


@seeded
def build_siglip(path: Path, image_size: int = 32, patch_size: int = 8) -> Path:
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor

    tokenizer = byte_level_clip_tokenizer()  # SigLIP's own is SentencePiece; any tokenizer works
    config = SiglipConfig(
        text_config={**_small_encoder(), **_text_ids(tokenizer), "max_position_embeddings": 64},
        vision_config={**_small_encoder(), "image_size": image_size, "patch_size": patch_size},
    )
    image_processor = SiglipImageProcessor(size={"height": image_size, "width": image_size})
    SiglipModel(config).eval().save_pretrained(path)
    SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path


# --------------------------------------------------------------------------- OWL-ViT / OWLv2


def _calm_box_head(layer) -> None:
    """Shrink a random box-regression layer so boxes stay near the model's box prior.

    Random weights saturate the sigmoid and put every box on the image border (or outside it);
    a trained head predicts offsets near zero, which is what this imitates.
    """
    import torch

    with torch.no_grad():
        layer.weight.mul_(0.01)
        layer.bias.zero_()


@seeded
def build_owl(path: Path, version: int = 1, image_size: int = 32, patch_size: int = 8) -> Path:
    """OWL-ViT (version=1) or OWLv2 (version=2); projection_dim equals the text hidden size."""
    import transformers as tf

    tokenizer = byte_level_clip_tokenizer()
    tokenizer.model_max_length = 16  # as the real OWL tokenizers: queries padded to 16
    names = {
        1: ("OwlViTConfig", "OwlViTForObjectDetection", "OwlViTImageProcessor", "OwlViTProcessor"),
        2: ("Owlv2Config", "Owlv2ForObjectDetection", "Owlv2ImageProcessor", "Owlv2Processor"),
    }[version]
    config_cls, model_cls, image_processor_cls, processor_cls = (getattr(tf, n) for n in names)
    config = config_cls(
        text_config={**_small_encoder(), **_text_ids(tokenizer), "max_position_embeddings": 16},
        vision_config={**_small_encoder(), "image_size": image_size, "patch_size": patch_size},
        projection_dim=32,
    )
    if version == 1:
        image_processor = image_processor_cls(
            size={"height": image_size, "width": image_size},
            crop_size={"height": image_size, "width": image_size},
        )
    else:
        image_processor = image_processor_cls(size={"height": image_size, "width": image_size})
    model = model_cls(config).eval()
    _calm_box_head(model.box_head.dense2)
    model.save_pretrained(path)
    processor_cls(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path


# --------------------------------------------------------------------------- Grounding DINO

# GroundingDinoModel hard-codes bert-base-uncased ids of its separator tokens.
GROUNDING_DINO_TOKEN_IDS = {
    "[PAD]": 0,
    "[UNK]": 100,
    "[CLS]": 101,
    "[SEP]": 102,
    ".": 1012,
    "?": 1029,
}


@seeded
def build_grounding_dino(path: Path, image_size: int = 64) -> Path:
    import transformers as tf

    tokenizer = bert_tokenizer(fixed=GROUNDING_DINO_TOKEN_IDS)
    backbone = tf.SwinConfig(
        image_size=image_size,
        patch_size=4,
        embed_dim=8,
        depths=[1, 1, 1, 1],
        num_heads=[1, 1, 1, 1],
        window_size=2,
        out_features=["stage2", "stage3", "stage4"],
    )
    text = tf.BertConfig(
        vocab_size=len(tokenizer), max_position_embeddings=64, **_small_encoder(layers=1, heads=2)
    )
    config = tf.GroundingDinoConfig(
        backbone_config=backbone,
        text_config=text,
        d_model=32,
        num_queries=20,
        encoder_layers=1,
        decoder_layers=2,  # one decoder layer breaks the tied box-head keys
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        max_text_len=32,
    )
    image_processor = tf.GroundingDinoImageProcessor(
        size={"shortest_edge": image_size, "longest_edge": image_size * 3 // 2}
    )
    tf.GroundingDinoForObjectDetection(config).eval().save_pretrained(path)
    tf.GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(
        path
    )
    return path


# --------------------------------------------------------------------------- BLIP


def _spread_weights(model, std: float) -> None:
    """Re-draw the weight matrices wider than the 0.02 default.

    With the default init a tiny decoder says the same words whatever it is shown, which would
    make the batched == unbatched checks pass trivially.
    """
    import torch

    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim >= 2:
                parameter.normal_(0.0, std)


@seeded
def build_blip(path: Path, task: str = "caption", image_size: int = 32) -> Path:
    """BLIP for captioning (task="caption") or question answering (task="vqa")."""
    import transformers as tf

    tokenizer = bert_tokenizer(fixed={"[DEC]": 100}, bos_token="[DEC]")
    text = {
        **_small_encoder(),
        "vocab_size": len(tokenizer),
        "max_position_embeddings": 64,
        "bos_token_id": tokenizer.bos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "eos_token_id": tokenizer.sep_token_id,
    }
    vision = {**_small_encoder(), "image_size": image_size, "patch_size": 8}
    config = tf.BlipConfig(text_config=text, vision_config=vision, projection_dim=16)
    model_cls = {"caption": tf.BlipForConditionalGeneration, "vqa": tf.BlipForQuestionAnswering}[
        task
    ]
    model = model_cls(config).eval()
    _spread_weights(model, std=0.2)  # so that answers depend on image and question
    model.save_pretrained(path)
    image_processor = tf.BlipImageProcessor(size={"height": image_size, "width": image_size})
    tf.BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path


# --------------------------------------------------------------------------- DPT / Depth Anything


@seeded
def build_dpt(path: Path, image_size: int = 32) -> Path:
    import transformers as tf

    config = tf.DPTConfig(
        **_small_encoder(layers=4),
        image_size=image_size,
        patch_size=8,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
    )
    model = tf.DPTForDepthEstimation(config).eval()
    _spread_weights(model, std=0.3)  # the default init predicts a flat map (range ~1e-8)
    model.save_pretrained(path)
    tf.DPTImageProcessor(size={"height": image_size, "width": image_size}).save_pretrained(path)
    return path


@seeded
def build_depth_anything(path: Path, image_size: int = 28, metric: bool = False) -> Path:
    """Depth Anything on a tiny DINOv2 backbone; its processor keeps the aspect ratio."""
    import transformers as tf

    backbone = tf.Dinov2Config(
        **_small_encoder(layers=4),
        image_size=image_size,
        patch_size=14,
        out_indices=[1, 2, 3, 4],
        apply_layernorm=True,
        reshape_hidden_states=False,
    )
    config = tf.DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=32,
        patch_size=14,
        neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16,
        head_hidden_size=8,
        depth_estimation_type="metric" if metric else "relative",
    )
    model = tf.DepthAnythingForDepthEstimation(config).eval()
    _spread_weights(model, std=0.3)
    model.save_pretrained(path)
    tf.DPTImageProcessor(
        size={"height": image_size, "width": image_size},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        do_pad=False,
    ).save_pretrained(path)
    return path


# --------------------------------------------------------------------------- SAM (transformers)


@seeded
def build_sam_hf(path: Path, image_size: int = 64) -> Path:
    """transformers SamModel; the vision ``num_pos_feats`` is half the prompt hidden size."""
    import transformers as tf

    hidden = 32
    config = tf.SamConfig(
        vision_config={
            **_small_encoder(),
            "output_channels": hidden,
            "image_size": image_size,
            "patch_size": 8,
            "window_size": 4,
            "global_attn_indexes": [1],
            "num_pos_feats": hidden // 2,
            "mlp_dim": 64,
        },
        prompt_encoder_config={
            "hidden_size": hidden,
            "image_size": image_size,
            "patch_size": 8,
            "mask_input_channels": 4,
        },
        mask_decoder_config={
            "hidden_size": hidden,
            "mlp_dim": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "iou_head_hidden_dim": 16,
        },
    )
    tf.SamModel(config).eval().save_pretrained(path)
    image_processor = tf.SamImageProcessor(
        size={"longest_edge": image_size}, pad_size={"height": image_size, "width": image_size}
    )
    tf.SamProcessor(image_processor=image_processor).save_pretrained(path)
    return path


# --------------------------------------------------------------------------- segment-anything

SEGMENT_ANYTHING_TINY_TYPE = "vit_tiny_test"


@seeded
def build_tiny_segment_anything(checkpoint: str | None = None):
    """A segment-anything ``Sam`` with a 64-pixel, 32-dim encoder; a registry-style builder."""
    from functools import partial

    import torch
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    dim, size, patch = 32, 64, 8
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=size,
            patch_size=patch,
            embed_dim=dim,
            depth=2,
            num_heads=4,
            mlp_ratio=2,
            out_chans=dim,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=4,
            global_attn_indexes=(1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(size // patch, size // patch),
            input_image_size=(size, size),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=64, num_heads=2),
            transformer_dim=dim,
            iou_head_depth=3,
            iou_head_hidden_dim=16,
        ),
    ).eval()
    if checkpoint is not None:
        sam.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
    return sam


def save_tiny_segment_anything(path: Path) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(build_tiny_segment_anything().state_dict(), path)
    return path


# --------------------------------------------------------------------------- ultralytics


def _ultralytics():
    import vpagent.offline_env

    vpagent.offline_env.prepare_ultralytics_config_dir()
    import ultralytics

    return ultralytics


def coco_names() -> dict[int, str]:
    """The 80 COCO class names, from the dataset yaml that ships inside ultralytics."""
    import yaml

    ultralytics = _ultralytics()
    coco = Path(ultralytics.__file__).parent / "cfg" / "datasets" / "coco.yaml"
    return {int(k): str(v) for k, v in yaml.safe_load(coco.read_text())["names"].items()}


@seeded
def build_yolo(path: Path, yaml_name: str = "yolov8n.yaml") -> Path:
    """An untrained YOLO built from its yaml, given the COCO names, saved as a .pt checkpoint."""
    ultralytics = _ultralytics()
    model = ultralytics.YOLO(yaml_name, verbose=False)
    if len(model.model.names) == 80:
        model.model.names = coco_names()
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path))
    return path


class FakeTextModel:
    """Stands in for ultralytics' CLIP text encoder (needs the clip package and weights).

    Deterministic 512-d unit vectors per text, so YOLO-World's ``set_classes`` runs offline.
    """

    def __init__(self, *args, **kwargs) -> None:
        self._texts: list[str] = []

    def tokenize(self, texts):
        import torch

        self._texts = list(texts)
        return torch.arange(len(self._texts))[:, None]

    def encode_text(self, tokens, dtype=None):
        import torch

        rows = []
        for index in tokens[:, 0].tolist():
            generator = torch.Generator().manual_seed(sum(map(ord, self._texts[index])))
            rows.append(torch.randn(512, generator=generator))
        features = torch.stack(rows)
        return features / features.norm(dim=-1, keepdim=True)


def fake_text_model_module():
    """A stand-in ``ultralytics.nn.text_model`` module whose build_text_model is FakeTextModel."""
    import types

    module = types.ModuleType("ultralytics.nn.text_model")
    module.build_text_model = lambda *args, **kwargs: FakeTextModel()
    return module


@seeded
def build_yolo_world(path: Path, classes: list[str]) -> Path:
    """An untrained YOLO-World v2 whose saved vocabulary is ``classes`` (fake text embeddings)."""
    import sys

    ultralytics = _ultralytics()
    model = ultralytics.YOLOWorld("yolov8s-worldv2.yaml", verbose=False)
    saved = sys.modules.get("ultralytics.nn.text_model")
    sys.modules["ultralytics.nn.text_model"] = fake_text_model_module()
    try:
        model.set_classes(classes)
    finally:
        if saved is None:
            sys.modules.pop("ultralytics.nn.text_model", None)
        else:
            sys.modules["ultralytics.nn.text_model"] = saved
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path))
    return path


@seeded
def build_mobile_sam(path: Path) -> Path:
    """A random-init MobileSAM (TinyViT encoder, ~10M parameters) saved as ``mobile_sam.pt``."""
    import torch

    _ultralytics()
    from ultralytics.models.sam.build import build_mobile_sam as build

    path.mkdir(parents=True, exist_ok=True)
    checkpoint = path / "mobile_sam.pt"
    torch.save(build().state_dict(), checkpoint)
    return checkpoint


ULTRALYTICS_TINY_SAM_NAME = "sam_tiny_test.pt"


@seeded
def build_tiny_ultralytics_sam(checkpoint: str | None = None):
    """An ultralytics ``SAMModel`` with a 64-pixel, 32-dim ViT encoder; a ``sam_model_map`` builder.

    ultralytics picks a SAM architecture from the checkpoint's file name; registering this under
    ULTRALYTICS_TINY_SAM_NAME lets ``SAM(".../sam_tiny_test.pt")`` load it like ``sam_b.pt``.
    """
    from functools import partial

    import torch

    _ultralytics()
    from ultralytics.models.sam.build import _load_checkpoint
    from ultralytics.models.sam.modules.decoders import MaskDecoder
    from ultralytics.models.sam.modules.encoders import ImageEncoderViT, PromptEncoder
    from ultralytics.models.sam.modules.sam import SAMModel
    from ultralytics.models.sam.modules.transformer import TwoWayTransformer

    dim, size, patch = 32, 64, 16  # ultralytics' set_imgsz assumes a patch size of 16
    sam = SAMModel(
        image_encoder=ImageEncoderViT(
            img_size=size,
            patch_size=patch,
            embed_dim=dim,
            depth=2,
            num_heads=4,
            mlp_ratio=2,
            out_chans=dim,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=2,
            global_attn_indexes=(1,),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(size // patch, size // patch),
            input_image_size=(size, size),
            mask_in_chans=4,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=64, num_heads=2),
            transformer_dim=dim,
            iou_head_depth=3,
            iou_head_hidden_dim=16,
        ),
    )
    _calm_iou_head(sam.mask_decoder.iou_prediction_head.layers[-1])
    if checkpoint is not None:
        sam = _load_checkpoint(sam, checkpoint)
    return sam.eval()


def _calm_iou_head(layer) -> None:
    """Keep a random IoU head's scores near 0.5: ultralytics' predictor drops masks scored <= 0."""
    import torch

    with torch.no_grad():
        layer.weight.mul_(0.1)
        layer.bias.fill_(0.5)


def save_tiny_ultralytics_sam(folder: Path) -> Path:
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = folder / ULTRALYTICS_TINY_SAM_NAME
    torch.save(build_tiny_ultralytics_sam().state_dict(), checkpoint)
    return checkpoint
