"""The planner's prompt: rules, the API spec from the tools' docstrings, examples, question."""

from __future__ import annotations

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from tools.image_patch import api_spec
from vpagent.planner.examples import Example
from vpagent.sandbox.policy import ALLOWED_IMPORTS, ENTRY_POINT

SYSTEM_TEMPLATE = """You answer questions about an image by writing a short Python program.

Write exactly one function `def {entry}(image):` that returns the answer as a short string
(a word, a number, "yes" or "no"). Use only the API below; `image` is an ImagePatch of the
whole image. Allowed imports: {imports}. Do not use underscores at the start of names, classes,
files, eval or exec. Answer with the code in one ```python block and nothing else.

API:
```python
{spec}
```"""

REPAIR_TEMPLATE = """That program cannot be used: {feedback}
Write a corrected program for the same question. Answer with the code only."""


def system_prompt() -> str:
    return SYSTEM_TEMPLATE.format(
        entry=ENTRY_POINT, imports=", ".join(sorted(ALLOWED_IMPORTS)), spec=api_spec().strip()
    )


def _fenced(program: str) -> str:
    return f"```python\n{program.strip()}\n```"


def build_messages(question: str, examples: list[Example]) -> list[BaseMessage]:
    """System rules + API, then each example as a question/answer turn, then the question."""
    messages: list[BaseMessage] = [SystemMessage(system_prompt())]
    for example in examples:
        messages.append(HumanMessage(f"Question: {example.question}"))
        messages.append(AIMessage(_fenced(example.program)))
    messages.append(HumanMessage(f"Question: {question.strip()}"))
    return messages


def repair_messages(
    conversation: list[BaseMessage], reply: str, feedback: str
) -> list[BaseMessage]:
    """The conversation extended with the failed reply and what went wrong."""
    return [
        *conversation,
        AIMessage(reply),
        HumanMessage(REPAIR_TEMPLATE.format(feedback=feedback)),
    ]
