"""Tiny students and exports for the student tests, built offline.

- :func:`build_tiny_lm`: a few-thousand-parameter Llama causal LM with a word-level tokenizer
  and a ChatML template, saved like a hub folder (the embedded student is built on it).
- :func:`build_tiny_llava`, :func:`build_tiny_idefics3` (the VLM tests' builders with this
  tokenizer), :func:`build_tiny_qwen2_vl`, :func:`build_tiny_paligemma`: tiny
  image-text-to-text models with their processors, saved the same way.
- :func:`build_export`: an export folder (``train.jsonl``, ``validation.jsonl``,
  ``validation_items.jsonl``, ``images/``) from a few dev photos.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hf_tiny import seeded
from vlm_tiny import IMAGE_SPECIALS, build_idefics3, build_llava, llama_text

from vpagent.student.records import SFTRecord, rationale_target

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
WORDS = [
    "how", "many", "dogs", "cats", "people", "are", "there", "in", "the", "image", "what",
    "color", "is", "bus", "a", "an", "of", "think", "step", "by", "then", "give", "answer",
    "after", "answer:", "with", "single", "word", "or", "number", "found", "so", ".", ",", "?",
    ":", "0", "1", "2", "3", "4", "5", "red", "blue", "green", "yellow", "black", "white",
    "brown", "yes", "no", "system", "user", "assistant",
]  # fmt: skip
SPECIALS = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]


def tiny_tokenizer(extra_specials: tuple[str, ...] = ()):
    """A word-level fast tokenizer over WORDS (plus letters), ChatML specials, a chat template."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab_list = list(dict.fromkeys([*SPECIALS, *extra_specials, *WORDS, *letters]))
    vocab = {word: index for index, word in enumerate(vocab_list)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<|im_end|>",
        bos_token="<|im_start|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>", *extra_specials],
    )
    tokenizer.chat_template = CHATML
    return tokenizer


@seeded
def build_tiny_lm(path: Path) -> Path:
    """A tiny Llama causal LM with tied embeddings (like SmolLM2) and its tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    config = LlamaConfig.from_dict({**llama_text(tokenizer), "tie_word_embeddings": True})
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_tiny_llava(path: Path) -> Path:
    """LLaVA with the student tests' ChatML tokenizer."""
    tokenizer = tiny_tokenizer(("<image>",))
    return build_llava(path, tokenizer=tokenizer, chat_template=CHATML, spread=False)


def build_tiny_idefics3(path: Path) -> Path:
    """Idefics3 (SmolVLM) with the student tests' ChatML tokenizer."""
    tokenizer = tiny_tokenizer(tuple(IMAGE_SPECIALS))
    return build_idefics3(path, tokenizer=tokenizer, chat_template=CHATML, spread=False)


TRAIN_ITEMS = [  # (photo, question, answer, type)
    ("two_dogs.jpg", "How many dogs are there?", "2", "count"),
    ("bus.jpg", "What color is the bus?", "blue", "attribute"),
    ("zidane.jpg", "How many people are there?", "2", "count"),
    ("truck.jpg", "Is there a dog?", "no", "exists"),
]
VALIDATION_ITEMS = [("dog_bowl.jpg", "How many dogs are there?", "1", "count")]


def _records(items: list[tuple[str, str, str, str]], split: str) -> list[SFTRecord]:
    records = []
    for index, (photo, question, answer, kind) in enumerate(items):
        item_id = f"{split}-{index}"
        common = {
            "item_id": item_id,
            "image": f"images/{photo}",
            "question": question,
            "answer": answer,
            "type": kind,
        }
        rationale = f"found {answer} so"
        records.append(SFTRecord(id=f"{item_id}-a", task="answer", target=answer, **common))
        records.append(
            SFTRecord(
                id=f"{item_id}-r",
                task="rationale",
                target=rationale_target(rationale, answer),
                rationale=rationale,
                **common,
            )
        )
    return records


def build_export(folder: Path, images_dir: Path) -> Path:
    """A small export: 8 training records (4 items x 2 tasks) and 1 validation item."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for photo, *_ in [*TRAIN_ITEMS, *VALIDATION_ITEMS]:
        shutil.copyfile(images_dir / photo, folder / "images" / photo)
    for split, items in (("train", TRAIN_ITEMS), ("validation", VALIDATION_ITEMS)):
        lines = [r.model_dump_json() for r in _records(items, split)]
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = [
        {"id": f"validation-{i}", "image": f"images/{p}", "question": q, "answer": a, "type": t}
        for i, (p, q, a, t) in enumerate(VALIDATION_ITEMS)
    ]
    (folder / "validation_items.jsonl").write_text(
        "".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8"
    )
    return folder


def _text_fields(tokenizer) -> dict:
    """The Llama sizes and token ids, for text configs of other model types."""
    skip = ("model_type", "tie_word_embeddings")
    return {key: value for key, value in llama_text(tokenizer).items() if key not in skip}


QWEN_CHAT = CHATML.replace("<image>", "<|vision_start|><|image_pad|><|vision_end|>")


@seeded
def build_tiny_qwen2_vl(path: Path) -> Path:
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLImageProcessor,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
    )

    specials = ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
    tokenizer = tiny_tokenizer(specials)
    text = _text_fields(tokenizer)
    config = Qwen2VLConfig(
        text_config={
            **text,
            "model_type": "qwen2_vl_text",
            "bos_token_id": tokenizer.bos_token_id,
            "rope_parameters": {"rope_type": "default", "mrope_section": [2, 1, 1]},
        },
        vision_config={
            "depth": 2, "embed_dim": 32, "hidden_size": 32, "num_heads": 4, "mlp_ratio": 2,
            "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
        },
        image_token_id=tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tokenizer.convert_tokens_to_ids("<|vision_end|>"),
    )  # fmt: skip
    Qwen2VLForConditionalGeneration(config).save_pretrained(path)
    side = 56
    image_processor = Qwen2VLImageProcessor(
        min_pixels=side * side, max_pixels=side * side, patch_size=14, merge_size=2,
        temporal_patch_size=2,
    )  # fmt: skip
    Qwen2VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=Qwen2VLVideoProcessor(),
        chat_template=QWEN_CHAT,
    ).save_pretrained(path)
    return path


@seeded
def build_tiny_paligemma(path: Path, image_size: int = 32, patch_size: int = 8) -> Path:
    from transformers import (
        GemmaConfig,
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        SiglipImageProcessor,
    )

    tokenizer = tiny_tokenizer(("<image>",))
    tokens = (image_size // patch_size) ** 2
    text = {**_text_fields(tokenizer), "head_dim": 8}
    config = PaliGemmaConfig(
        vision_config={
            "model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": image_size,
            "patch_size": patch_size, "projection_dim": 32,
        },
        text_config=GemmaConfig(**text).to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        projection_dim=32,
    )  # fmt: skip
    config.vision_config.projection_dim = 32
    PaliGemmaForConditionalGeneration(config).save_pretrained(path)
    image_processor = SiglipImageProcessor(
        size={"height": image_size, "width": image_size}, image_seq_length=tokens
    )
    image_processor.image_seq_length = tokens
    PaliGemmaProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path
