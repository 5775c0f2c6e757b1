"""The planner's prompt: a static prefix (rules, API, fixed examples), then the question.

Everything before the question is the same for every question of a configuration, so an LLM
server that caches prompts (llama.cpp does) re-reads only the question. Retrieved examples, if
any, go after that prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from vpagent.planner.examples import Example
from vpagent.planner.spec import compact_spec
from vpagent.sandbox.policy import ALLOWED_IMPORTS, ENTRY_POINT
from vpagent.tools.image_patch import api_spec

SYSTEM_TEMPLATE = """Answer questions about an image by writing a short Python program: one \
function `def {entry}(image):` that returns the answer as a short string (a word, a number, \
"yes" or "no"). A yes/no question ("Is ...?", "Are ...?", "Does ...?") is answered "yes" or \
"no"; a question that names its options ("... left or right?") with one of them. `image` is \
an ImagePatch of the whole image. Use only this API; imports \
allowed: {imports}. No names starting with an underscore, no classes, eval, exec or files. \
Reply with the code in one ```python block.{notes}

```python
{spec}
```"""

SpecStyle = Literal["compact", "full"]

REPAIR_TEMPLATE = """That program cannot be used: {feedback}
Write a corrected program for the same question. Answer with the code only."""

PROGRAM_OPENING = f"```python\ndef {ENTRY_POINT}(image):\n"
"""What every reply starts with: servers that continue an assistant turn are given it."""
PROGRAM_END = "\n```"
"""Stop sequence: the end of the code block."""


def system_prompt(notes: str = "", spec: SpecStyle = "compact") -> str:
    """Rules and the API spec; ``notes`` describe the configured backends (may be empty)."""
    return SYSTEM_TEMPLATE.format(
        entry=ENTRY_POINT,
        imports=", ".join(sorted(ALLOWED_IMPORTS)),
        notes=f"\n{notes.strip()}" if notes.strip() else "",
        spec=compact_spec() if spec == "compact" else api_spec().strip(),
    )


def _fenced(program: str) -> str:
    return f"```python\n{program.strip()}\n```"


def example_turns(examples: Sequence[Example]) -> list[BaseMessage]:
    """Each example as a question turn and a program turn."""
    turns: list[BaseMessage] = []
    for example in examples:
        turns.append(HumanMessage(f"Question: {example.question}"))
        turns.append(AIMessage(_fenced(example.program)))
    return turns


def prefix_messages(
    fixed: Sequence[Example], notes: str = "", spec: SpecStyle = "compact"
) -> list[BaseMessage]:
    """The static prefix: system rules + API, then the fixed examples."""
    return [SystemMessage(system_prompt(notes, spec)), *example_turns(fixed)]


def build_messages(
    question: str,
    fixed: Sequence[Example],
    retrieved: Sequence[Example] = (),
    notes: str = "",
    spec: SpecStyle = "compact",
) -> list[BaseMessage]:
    """The prefix, then the retrieved examples, then the question."""
    return [
        *prefix_messages(fixed, notes, spec),
        *example_turns(retrieved),
        HumanMessage(f"Question: {question.strip()}"),
    ]


def repair_messages(
    conversation: list[BaseMessage], reply: str, feedback: str
) -> list[BaseMessage]:
    """The conversation extended with the failed reply and what went wrong."""
    return [
        *conversation,
        AIMessage(reply),
        HumanMessage(REPAIR_TEMPLATE.format(feedback=feedback)),
    ]
