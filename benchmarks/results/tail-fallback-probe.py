"""The fallback answerer's prompt, measured (issue 33, item 4): tokens read, found cached, and
seconds, for the fallback's prompts alone and after the planner's cached prefix; and whether a
fallback call evicts the planner's prefix from llama.cpp's cache (the next plan's cached tokens).

Run (embedded default, from a checkout): .venv/bin/python benchmarks/results/tail-fallback-probe.py
[SHORT_PROMPT.txt]. Prints one JSON line per call (tail-fallback-probe.jsonl holds a run's).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from PIL import Image

from vpagent.agent import LLM_QUERY_SYSTEM
from vpagent.config import load_settings
from vpagent.llm.chat import build_chat_model
from vpagent.planner.factory import build_planner
from vpagent.tools.offline.scene import GUESS_PROMPT, VQA_PROMPT, SceneVQA

IMAGE = Path(__file__).resolve().parents[3] / "shared" / "data" / "images" / "bus.jpg"
QUESTION = "Is there a tree in the image?"


def main() -> None:
    settings = load_settings()
    chat = build_chat_model(settings.llm)
    planner = build_planner(settings, chat, warm=True)
    pixels = np.array(Image.open(IMAGE).convert("RGB"))
    description = SceneVQA.offline(lambda prompt: "").describe(pixels)

    def call(messages: list[BaseMessage], label: str) -> None:
        started = time.perf_counter()
        reply = chat.invoke(messages)
        usage = dict(reply.usage_metadata or {})
        row = {
            "label": label,
            "s": round(time.perf_counter() - started, 2),
            "in": usage.get("input_tokens"),
            "cached": (usage.get("input_token_details") or {}).get("cache_read"),
            "out": usage.get("output_tokens"),
            "reply": reply.text[:80],
        }
        print(json.dumps(row), flush=True)

    def alone(template: str) -> list[BaseMessage]:
        prompt = template.format(description=description, question=QUESTION)
        return [SystemMessage(LLM_QUERY_SYSTEM), HumanMessage(prompt)]

    prefix = planner.prefix()
    call([*prefix, HumanMessage("Question: How many buses are there?")], "plan (prefix warm)")
    call(alone(VQA_PROMPT), "answer prompt alone")
    call(alone(GUESS_PROMPT), "guess prompt alone")
    call([*prefix, HumanMessage("Question: How many people are there?")], "plan after fallback")
    if len(sys.argv) > 1:
        short = Path(sys.argv[1]).read_text().format(description=description, question=QUESTION)
        call([*prefix, HumanMessage(short)], "short prompt after prefix")
        call([*prefix, HumanMessage("Question: Is the bus blue?")], "plan after prefixed fallback")


if __name__ == "__main__":
    main()
