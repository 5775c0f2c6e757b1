"""`vpagent doctor --memory`: weights counted from configs on the meta device, what fits."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from tests.fixtures.hf_tiny import build_blip, build_clip, build_dpt, build_owl, build_sam_hf
from tests.fixtures.vlm_tiny import build_llava
from vpagent.config import load_settings
from vpagent.memory_plan import (
    CUDA_CONTEXT_GB,
    GB,
    activation_bytes,
    count_parameters,
    plan_memory,
)

pytestmark = pytest.mark.hf


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, str]:
    """Tiny model folders for the hf roles that take a transformers model."""
    root = tmp_path_factory.mktemp("memory")
    return {
        "detector": str(build_owl(root / "owl", version=2)),
        "segmenter": str(build_sam_hf(root / "sam")),
        "matcher": str(build_clip(root / "clip")),
        "captioner": str(build_blip(root / "blip")),
        "vqa": str(build_blip(root / "vqa", task="vqa")),
        "depth": str(build_dpt(root / "dpt")),
    }


def _hf_settings(tiny: dict[str, str], **extra):
    tools = {role: {"model": model} for role, model in tiny.items()}
    return load_settings(None, profile="hf", device="cuda", tools=tools, **extra)


def test_parameters_counted_on_the_meta_device_equal_the_loaded_model(tiny):
    from transformers import AutoConfig, AutoModel

    folder = tiny["matcher"]
    loaded = AutoModel.from_pretrained(folder)
    expected = sum(p.numel() for p in loaded.parameters())
    assert count_parameters(AutoConfig.from_pretrained(folder), "AutoModel") == expected


def test_activations_grow_with_the_batch_and_the_image_tokens():
    vit_b16 = {
        "image_size": 224,
        "patch_size": 16,
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_attention_heads": 12,
    }
    one = activation_bytes(vit_b16, 1, 2)
    tokens = 14 * 14 + 1
    assert one == 2 * tokens * (3072 + 12 * tokens) * 2
    assert activation_bytes(vit_b16, 8, 2) == 8 * one
    assert activation_bytes({**vit_b16, "image_size": 448}, 1, 2) > 4 * one


def test_hf_roles_from_local_configs_and_what_fits(tiny):
    plan = plan_memory(_hf_settings(tiny), gpu_gb=1000)
    roles = {r.role: r for r in plan.roles}
    for role in tiny:
        entry = roles[role]
        assert entry.place == "gpu" and entry.dtype == "float16"
        assert entry.parameters and entry.source == "config.json"
        assert entry.weights_gb == pytest.approx(entry.parameters * 2 / GB)
        assert entry.activations_gb > 0
    # ocr and faces stay on the CPU in the hf profile
    assert roles["ocr"].place == roles["faces"].place == "cpu"
    assert plan.fits and plan.together == list(tiny) and not plan.elsewhere
    expected = CUDA_CONTEXT_GB + sum(roles[r].gpu_gb for r in tiny)
    assert plan.total_gpu_gb == pytest.approx(expected)

    # a budget that holds the context and the detector but not the segmenter beside it
    budget = CUDA_CONTEXT_GB + roles["detector"].gpu_gb + roles["segmenter"].gpu_gb / 2
    small = plan_memory(_hf_settings(tiny), gpu_gb=budget)
    assert small.fits is False
    assert small.together[0] == "detector" and "segmenter" in small.elsewhere


def test_a_role_kept_on_the_cpu_and_a_float32_dtype(tiny):
    tools = {role: {"model": model} for role, model in tiny.items()}
    tools["depth"]["options"] = {"device": "cpu"}
    tools["matcher"]["options"] = {"dtype": "float32"}
    plan = plan_memory(load_settings(None, profile="hf", device="cuda", tools=tools), gpu_gb=80)
    roles = {r.role: r for r in plan.roles}
    assert roles["depth"].place == "cpu" and roles["depth"].gpu_gb == 0
    assert roles["depth"].dtype == "float32"
    assert roles["matcher"].weights_gb == pytest.approx(roles["matcher"].parameters * 4 / GB)


def test_a_vlm_serving_several_roles_is_counted_once(tmp_path):
    folder = str(build_llava(tmp_path / "llava"))
    settings = load_settings(
        None, profile="hf", device="cuda", vlm={"provider": "transformers", "model": folder}
    )
    roles = {r.role: r for r in plan_memory(settings, gpu_gb=80).roles}
    assert roles["vqa"].backend == roles["captioner"].backend == "vlm"
    assert roles["vqa"].dtype == "bfloat16" and roles["vqa"].parameters
    sharing = [r for r in ("vqa", "captioner", "matcher") if roles[r].shared_with]
    assert len(sharing) == 2 and all(roles[r].gpu_gb == 0 for r in sharing)


# The hf profile's defaults are not cached here: their built-in config descriptions must give
# the parameter counts published on the model cards (within 2%).
PUBLISHED_MILLIONS = {
    "detector": 155,  # google/owlv2-base-patch16-ensemble
    "segmenter": 94,  # facebook/sam-vit-base
    "matcher": 428,  # openai/clip-vit-large-patch14
    "captioner": 470,  # Salesforce/blip-image-captioning-large (an untied LM head)
    "depth": 343,  # Intel/dpt-large
}


def test_hf_profile_defaults_from_built_in_descriptions():
    settings = load_settings(None, profile="hf", device="cuda")
    plan = plan_memory(settings, gpu_gb=24)
    roles = {r.role: r for r in plan.roles}
    for role, millions in PUBLISHED_MILLIONS.items():
        assert roles[role].source == "built-in config"
        assert roles[role].parameters / 1e6 == pytest.approx(millions, rel=0.02), role
    assert roles["vqa"].parameters > roles["captioner"].parameters
    assert plan.fits
    # at batch 8, SAM's global attention over 64x64 tokens is the largest buffer: on a 12 GiB
    # card the segmenter does not fit beside the others (docs/parity.md)
    small = plan_memory(settings, gpu_gb=12)
    assert not small.fits and small.elsewhere == ["segmenter"]
    assert roles["segmenter"].activations_gb > 5 * roles["segmenter"].weights_gb


def test_offline_profile_runs_on_the_cpu_and_reports_its_files():
    plan = plan_memory(load_settings(None, profile="offline"), gpu_gb=12)
    roles = {r.role: r for r in plan.roles}
    assert all(r.place == "cpu" for r in plan.roles)
    assert plan.total_gpu_gb == 0 and plan.fits
    assert roles["detector"].weights_gb > 0.01  # SSD-MobileNet-v2's frozen graph
    assert roles["ocr"].source == "packaged files" and roles["ocr"].weights_gb > 0
    assert "no weights" in roles["segmenter"].source


def test_cli_memory_plan(tiny, tmp_path):
    from typer.testing import CliRunner

    from vpagent.cli import app

    config = tmp_path / "vpagent.toml"
    config.write_text(
        'profile = "hf"\ndevice = "cuda"\n'
        + "".join(f'[tools.{role}]\nmodel = "{model}"\n' for role, model in tiny.items())
    )
    run = ["doctor", "--memory", "-c", str(config)]
    done = CliRunner().invoke(app, [*run, "--json", "--gpu-gb", "0.5"])
    assert done.exit_code == 0, done.output
    plan = json.loads(done.output)
    assert plan["gpu_gb"] == 0.5 and plan["fits"] is False and plan["together"] == []
    table = CliRunner().invoke(app, [*run, "--gpu-gb", "40"], terminal_width=160)
    assert table.exit_code == 0, table.output
    assert "all GPU roles fit on 40.0 GiB" in table.output
