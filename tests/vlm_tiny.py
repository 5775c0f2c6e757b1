"""Tiny random-init image-text-to-text models (LLaVA, Idefics3/SmolVLM) for the VLM and student
tests.

Each builder makes the real architecture with a few-thousand-parameter config, a word-level
tokenizer made offline (or the one given), a processor with a chat template, saves them the way
the hub does and returns the folder, which ``vpagent.tools.hf.vlm`` or ``vpagent.student``
then loads through its real code. No download.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hf_tiny import TEST_VOCAB_WORDS, seeded

IMAGE_SPECIALS = ["<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>"]
CHAT_WORDS = ["User", "Assistant", ":", "Answer", "with", "single", "word", "or", "short",
              "phrase", "Describe", "sentence", "Is", "yes", "no"]  # fmt: skip

# A minimal chat template in the style of the hub's: a list of image/text parts per message.
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | capitalize }}:"
    "{% if message['content'] is string %} {{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{% else %} {{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def word_tokenizer():
    """A fast word-level tokenizer over the test words plus the image and chat tokens."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<pad>", "<s>", "</s>", *IMAGE_SPECIALS]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    words = list(dict.fromkeys([*specials, *TEST_VOCAB_WORDS, *CHAT_WORDS, *letters]))
    model = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    model.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=model,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=IMAGE_SPECIALS,
    )


def llama_text(tokenizer, hidden: int = 32) -> dict:
    """A two-layer Llama config (as a dict) over ``tokenizer``'s vocabulary."""
    return {
        "model_type": "llama",
        "vocab_size": len(tokenizer),
        "hidden_size": hidden,
        "intermediate_size": hidden * 2,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
    }


def _spread(model, std: float = 0.3) -> None:
    """Wider random weights, so that answers depend on the image and the prompt."""
    import torch

    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.ndim >= 2 and "embed" not in name:
                parameter.normal_(0.0, std)


@seeded
def build_llava(
    path: Path,
    image_size: int = 32,
    patch_size: int = 8,
    *,
    tokenizer: Any = None,
    chat_template: str = CHAT_TEMPLATE,
    spread: bool = True,
) -> Path:
    """LLaVA: a CLIP vision tower, an MLP projector and a Llama language model. ``tokenizer``
    must hold an ``<image>`` token; ``spread`` widens the random weights."""
    import transformers as tf

    tokenizer = tokenizer or word_tokenizer()
    vision = {
        "model_type": "clip_vision_model",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": image_size,
        "patch_size": patch_size,
        "projection_dim": 32,
    }
    config = tf.LlavaConfig(
        vision_config=vision,
        text_config=llama_text(tokenizer),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(image_size // patch_size) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    model = tf.LlavaForConditionalGeneration(config).eval()
    if spread:
        _spread(model)
    model.save_pretrained(path)
    image_processor = tf.CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    tf.LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, dropped by "default"
        chat_template=chat_template,
    ).save_pretrained(path)
    return path


@seeded
def build_idefics3(
    path: Path,
    image_size: int = 32,
    patch_size: int = 8,
    *,
    tokenizer: Any = None,
    chat_template: str = CHAT_TEMPLATE,
    spread: bool = True,
) -> Path:
    """Idefics3 (SmolVLM's architecture): SigLIP-style vision, pixel shuffle, Llama text.
    ``tokenizer`` must hold the Idefics3 image tokens (``IMAGE_SPECIALS``)."""
    import transformers as tf

    tokenizer = tokenizer or word_tokenizer()
    scale_factor = 2
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": image_size,
        "patch_size": patch_size,
    }
    config = tf.Idefics3Config(
        vision_config=vision,
        text_config=llama_text(tokenizer),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=scale_factor,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = tf.Idefics3ForConditionalGeneration(config).eval()
    if spread:
        _spread(model)
    model.save_pretrained(path)
    image_processor = tf.Idefics3ImageProcessor(
        size={"longest_edge": image_size},
        max_image_size={"longest_edge": image_size},
        do_image_splitting=False,
    )
    image_seq_len = (image_size // patch_size) ** 2 // scale_factor**2
    tf.Idefics3Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=chat_template,
    ).save_pretrained(path)
    return path
