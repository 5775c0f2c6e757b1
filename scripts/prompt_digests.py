"""Print one digest of the planner's whole prompt per question of a dataset (no model runs).

Two trees that print the same lines ask the planner exactly the same thing, so a change that
keeps them equal cannot change a program through the prompt. Usage, in each tree's environment:
python scripts/prompt_digests.py DATASET.jsonl [--config vpagent.toml] > digests.txt
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import BaseMessage

from vpagent.config import load_settings
from vpagent.planner.factory import build_planner


def prompt_digest(messages: Sequence[BaseMessage]) -> str:
    """sha256 (16 hex) of the messages' roles and contents, in order."""
    text = "\n\0".join(f"{message.type}:{message.content}" for message in messages)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--config", type=Path, default=None)
    args = parser.parse_args()
    settings = load_settings(args.config)
    never_called = FakeListChatModel(responses=[])  # prompts are built, never sent
    planner = build_planner(settings, never_called, warm=False)
    for line in args.dataset.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        item = json.loads(line)
        print(item["id"], prompt_digest(planner.messages(item["question"])))


if __name__ == "__main__":
    main()
