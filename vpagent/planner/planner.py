"""Question -> program: static prefix + retrieved examples, ask the chat model, extract, check."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, messages_to_dict

from vpagent.planner.examples import Example, ExampleRetriever
from vpagent.planner.extract import NoProgramFound, extract_program
from vpagent.planner.prompt import (
    SpecStyle,
    build_messages,
    prefix_messages,
    repair_messages,
)
from vpagent.planner.repetition import repeated_unit
from vpagent.sandbox.policy import ProgramRejected, check_program
from vpagent.tools.cache import ResultCache

log = logging.getLogger(__name__)

TokenCallback = Callable[[int], None]
"""Hears the number of tokens written so far while a reply streams in."""


@dataclass
class Usage:
    """Tokens the chat model read (and found cached) and wrote, summed over replies."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0

    def add(self, message: AIMessage) -> None:
        meta: Mapping[str, Any] = message.usage_metadata or {}
        self.prompt_tokens += int(meta.get("input_tokens", 0) or 0)
        self.generated_tokens += int(meta.get("output_tokens", 0) or 0)
        details = meta.get("input_token_details") or {}
        self.cached_tokens += int(details.get("cache_read", 0) or 0)


@dataclass
class Reply:
    """One reply of the chat model and what became of it (a program, or the problem with it)."""

    reply: str
    program: str | None = None
    problem: str | None = None


@dataclass
class Plan:
    """A program that passed the static check, and the conversation that produced it."""

    question: str
    program: str
    conversation: list[BaseMessage]
    replies: list[Reply] = field(default_factory=list)
    llm_seconds: float = 0.0
    usage: Usage = field(default_factory=Usage)


class PlanningFailed(RuntimeError):
    """The chat model gave no usable program within the allowed number of fixes."""

    def __init__(self, message: str, replies: list[Reply]) -> None:
        super().__init__(message)
        self.replies = replies


class OutOfTime(PlanningFailed):
    """The question's time budget ended while the chat model was still writing."""


class CaughtInLoop(PlanningFailed):
    """A reply started to repeat one piece of text (``unit``), so it was cut there."""

    def __init__(self, unit: str, replies: list[Reply]) -> None:
        super().__init__(f"the reply was cut: it wrote {unit!r} again and again", replies)
        self.unit = unit


class _BudgetEnded(Exception):
    """Raised inside a completion when its deadline passes; holds what was written (None:
    the deadline had passed before the model was asked)."""

    def __init__(self, written: str | None) -> None:
        super().__init__(written)
        self.written = written


class Planner:
    """Writes programs with a LangChain chat model.

    The prompt is a static prefix (rules, API spec, ``fixed`` examples), then up to
    ``examples_per_prompt`` examples retrieved by similarity, then the question. ``prefill``
    (for servers that continue an assistant turn, like llama.cpp) starts the reply with the
    function's first line; ``stop`` ends it at the code block's end. Replies that hold no
    program or fail the sandbox's static check are sent back with the reason, at most
    ``max_fixes`` times. A reply ends after ``max_tokens`` tokens (None: the model's own
    limit); with ``stop_repeats`` the reply streams in and is cut as soon as it ends in one
    piece of text that many times in a row (a greedy model caught in a loop), and planning
    ends there with :class:`CaughtInLoop` (sent back, the model loops again). Replies are
    cached by (model, sample, limits, prompt), so with temperature 0 and a seed a question is
    planned the same way every time.
    """

    def __init__(
        self,
        chat_model: BaseChatModel,
        retriever: ExampleRetriever,
        *,
        model_id: str,
        fixed: Sequence[Example] = (),
        examples_per_prompt: int = 0,
        notes: str = "",
        spec: SpecStyle = "compact",
        prefill: str | None = None,
        stop: Sequence[str] = (),
        max_fixes: int = 2,
        max_tokens: int | None = None,
        stop_repeats: int = 0,
        sample_temperature: float = 0.7,
        cache: ResultCache | None = None,
    ) -> None:
        self.chat_model = chat_model
        self.retriever = retriever
        self.model_id = model_id
        self.fixed = list(fixed)
        self.examples_per_prompt = examples_per_prompt
        self.notes = notes
        self.spec = spec
        self.prefill = prefill
        self.stop = list(stop)
        self.max_fixes = max_fixes
        self.max_tokens = max_tokens
        if stop_repeats < 0 or stop_repeats == 1:
            raise ValueError(f"stop_repeats is 0 (never cut) or at least 2, not {stop_repeats}")
        self.stop_repeats = stop_repeats
        self.sample_temperature = sample_temperature
        self.cache = cache if cache is not None else ResultCache(max_entries=1024)

    def prefix(self) -> list[BaseMessage]:
        """The messages every prompt starts with (what a prompt cache can keep)."""
        return prefix_messages(self.fixed, self.notes, self.spec)

    def messages(self, question: str) -> list[BaseMessage]:
        """The whole first prompt for ``question``: the prefix, the retrieved examples, the
        question (what :meth:`plan` sends; no model call)."""
        if not question or not question.strip():
            raise ValueError("the question is empty")
        retrieved = self.retriever.top(question, self.examples_per_prompt, exclude=self.fixed)
        return build_messages(question, self.fixed, retrieved, self.notes, self.spec)

    def plan(
        self,
        question: str,
        *,
        sample: int = 0,
        on_tokens: TokenCallback | None = None,
        deadline: float | None = None,
    ) -> Plan:
        """A checked program for ``question``; ``sample`` > 0 draws a different, sampled one.

        ``deadline`` (a ``time.perf_counter()`` value): a reply still being written then is
        cut and :class:`OutOfTime` raised (a cached reply is still used).
        """
        conversation = self.messages(question)
        first = Plan(question, "", conversation)
        return self._until_valid(first, conversation, sample, on_tokens, deadline)

    def repair(
        self,
        plan: Plan,
        feedback: str,
        *,
        sample: int = 0,
        on_tokens: TokenCallback | None = None,
        deadline: float | None = None,
    ) -> Plan:
        """A new program after ``plan.program`` failed at run time with ``feedback``."""
        conversation = repair_messages(plan.conversation, plan.program, feedback)
        return self._until_valid(plan, conversation, sample, on_tokens, deadline)

    def _until_valid(
        self,
        previous: Plan,
        conversation: list[BaseMessage],
        sample: int,
        on_tokens: TokenCallback | None,
        deadline: float | None,
    ) -> Plan:
        replies = list(previous.replies)
        usage = Usage(**vars(previous.usage))
        llm_seconds = previous.llm_seconds
        for _ in range(self.max_fixes + 1):
            started = time.perf_counter()
            try:
                reply = self._complete(conversation, sample, usage, on_tokens, deadline)
            except _BudgetEnded as ended:
                if ended.written is None:
                    why = f"the time budget ended before reply {len(replies) + 1} was asked for"
                else:
                    replies.append(Reply(ended.written, problem="cut: the time budget ended"))
                    why = f"the time budget ended while the planner wrote reply {len(replies)}"
                log.info("%s", why)
                raise OutOfTime(why, replies) from None
            llm_seconds += time.perf_counter() - started
            answer = Reply(reply=reply)
            replies.append(answer)
            unit = repeated_unit(reply, self.stop_repeats) if self.stop_repeats else None
            if unit is not None:
                # Sent back, a greedy model loops again at the same place: no round can help.
                loop = CaughtInLoop(unit, replies)
                answer.problem = str(loop)
                log.warning("reply %d caught in a loop, planning ends: %r", len(replies), unit)
                raise loop
            try:
                answer.program = extract_program(reply)
                check_program(answer.program)
            except (NoProgramFound, ProgramRejected) as problem:
                answer.problem = _describe(problem)
                log.info("reply %d has no usable program: %s", len(replies), answer.problem)
                conversation = repair_messages(conversation, reply, answer.problem)
                continue
            return Plan(
                previous.question, answer.program, conversation, replies, llm_seconds, usage
            )
        log.warning("no usable program after %d replies", len(replies))
        raise PlanningFailed(
            f"no usable program after {len(replies)} replies; last problem: {replies[-1].problem}",
            replies,
        )

    def _complete(
        self,
        conversation: list[BaseMessage],
        sample: int,
        usage: Usage,
        on_tokens: TokenCallback | None,
        deadline: float | None,
    ) -> str:
        payload = json.dumps(
            [
                self.model_id,
                sample,
                self.prefill,
                self.stop,
                self.max_tokens,
                self.stop_repeats,
                messages_to_dict(conversation),
            ],
            sort_keys=True,
        )
        key = hashlib.sha256(payload.encode()).hexdigest()
        hit, cached = self.cache.get(key)
        if hit:
            return str(cached)
        if deadline is not None and time.perf_counter() >= deadline:
            raise _BudgetEnded(None)
        model: Any = self.chat_model
        options: dict[str, Any] = {"stop": self.stop} if self.stop else {}
        if self.max_tokens is not None:
            options["max_tokens"] = self.max_tokens
        if sample:
            options.update(temperature=self.sample_temperature, seed=sample)
        if options:
            model = model.bind(**options)
        messages = [*conversation, AIMessage(self.prefill)] if self.prefill else conversation
        if on_tokens or self.stop_repeats or deadline is not None:
            message = _stream(model, messages, on_tokens, self.stop_repeats, deadline)
        else:
            message = model.invoke(messages)
        usage.add(message)
        reply = message.content if isinstance(message.content, str) else str(message.content)
        if self.prefill and not reply.startswith(self.prefill):
            reply = self.prefill + reply  # the server continued the prefilled turn
        self.cache.put(key, reply)
        return reply


def _stream(
    model: Any,
    messages: list[BaseMessage],
    on_tokens: TokenCallback | None,
    stop_repeats: int,
    deadline: float | None,
) -> AIMessage:
    """The reply, streamed; ``on_tokens`` hears the count of chunks (about tokens) so far.

    With ``stop_repeats`` the stream is closed (which stops the server writing) as soon as
    the reply ends in one piece of text that many times; the reply then ends there. A chunk
    that arrives after ``deadline`` closes it too, raising :class:`_BudgetEnded` (so the cut
    comes at the next token: the model's reading of the prompt is not interrupted).
    """
    merged, count = None, 0
    stream = model.stream(messages)
    try:
        for chunk in stream:
            merged = chunk if merged is None else merged + chunk
            if deadline is not None and time.perf_counter() >= deadline:
                raise _BudgetEnded(str(merged.content))
            if not chunk.content:
                continue
            count += 1
            if on_tokens:
                on_tokens(count)
            if stop_repeats and repeated_unit(str(merged.content), stop_repeats) is not None:
                log.info("reply cut after %d chunks: it repeats itself", count)
                return AIMessage(content=merged.content, usage_metadata=_written(count))
    finally:
        stream.close()
    if merged is None:
        return AIMessage("")
    return AIMessage(content=merged.content, usage_metadata=merged.usage_metadata)


def _written(chunks: int) -> Any:
    """Usage of a reply cut before the server reported it: the chunks (about tokens) read;
    its prompt tokens are not known and count as 0."""
    return {"input_tokens": 0, "output_tokens": chunks, "total_tokens": chunks}


def _describe(problem: Exception) -> str:
    if isinstance(problem, ProgramRejected) and problem.line:
        return f"{problem.message} (line {problem.line})"
    return str(problem)
