"""Question -> program: retrieve examples, ask the chat model, extract, check, repair."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, messages_to_dict

from tools.cache import ResultCache
from vpagent.planner.examples import ExampleRetriever
from vpagent.planner.extract import NoProgramFound, extract_program
from vpagent.planner.prompt import build_messages, repair_messages
from vpagent.sandbox.policy import ProgramRejected, check_program


@dataclass
class Attempt:
    """One reply of the chat model and what became of it."""

    reply: str
    program: str | None = None
    problem: str | None = None


@dataclass
class Plan:
    """A program that passed the static check, and the conversation that produced it."""

    question: str
    program: str
    conversation: list[BaseMessage]
    attempts: list[Attempt] = field(default_factory=list)
    llm_seconds: float = 0.0


class PlanningFailed(RuntimeError):
    """The chat model gave no usable program within the allowed number of fixes."""

    def __init__(self, message: str, attempts: list[Attempt]) -> None:
        super().__init__(message)
        self.attempts = attempts


class Planner:
    """Writes programs with a LangChain chat model.

    Replies that hold no program or fail the sandbox's static check are sent back with the
    reason, at most ``max_fixes`` times. Replies are cached by (model, sample, prompt), so with
    temperature 0 and a seed a question is planned the same way every time.
    """

    def __init__(
        self,
        chat_model: BaseChatModel,
        retriever: ExampleRetriever,
        *,
        model_id: str,
        examples_per_prompt: int = 6,
        max_fixes: int = 2,
        sample_temperature: float = 0.7,
        cache: ResultCache | None = None,
    ) -> None:
        self.chat_model = chat_model
        self.retriever = retriever
        self.model_id = model_id
        self.examples_per_prompt = examples_per_prompt
        self.max_fixes = max_fixes
        self.sample_temperature = sample_temperature
        self.cache = cache if cache is not None else ResultCache(max_entries=1024)

    def plan(self, question: str, *, sample: int = 0) -> Plan:
        """A checked program for ``question``; ``sample`` > 0 draws a different, sampled one."""
        if not question or not question.strip():
            raise ValueError("the question is empty")
        examples = self.retriever.top(question, self.examples_per_prompt)
        return self._until_valid(question, build_messages(question, examples), sample, [], 0.0)

    def repair(self, plan: Plan, feedback: str, *, sample: int = 0) -> Plan:
        """A new program after ``plan.program`` failed at run time with ``feedback``."""
        conversation = repair_messages(plan.conversation, plan.program, feedback)
        return self._until_valid(
            plan.question, conversation, sample, plan.attempts, plan.llm_seconds
        )

    def _until_valid(
        self,
        question: str,
        conversation: list[BaseMessage],
        sample: int,
        attempts: list[Attempt],
        llm_seconds: float,
    ) -> Plan:
        attempts = list(attempts)
        for _ in range(self.max_fixes + 1):
            started = time.perf_counter()
            reply = self._complete(conversation, sample)
            llm_seconds += time.perf_counter() - started
            attempt = Attempt(reply=reply)
            attempts.append(attempt)
            try:
                attempt.program = extract_program(reply)
                check_program(attempt.program)
            except (NoProgramFound, ProgramRejected) as problem:
                attempt.problem = _describe(problem)
                conversation = repair_messages(conversation, reply, attempt.problem)
                continue
            return Plan(question, attempt.program, conversation, attempts, llm_seconds)
        raise PlanningFailed(
            f"no usable program after {len(attempts)} replies; "
            f"last problem: {attempts[-1].problem}",
            attempts,
        )

    def _complete(self, conversation: list[BaseMessage], sample: int) -> str:
        payload = json.dumps(
            [self.model_id, sample, messages_to_dict(conversation)], sort_keys=True
        )
        key = hashlib.sha256(payload.encode()).hexdigest()
        hit, cached = self.cache.get(key)
        if hit:
            return str(cached)
        model = self.chat_model
        if sample:
            model = model.bind(temperature=self.sample_temperature, seed=sample)  # type: ignore[assignment]
        message = model.invoke(conversation)
        reply = message.content if isinstance(message.content, str) else str(message.content)
        self.cache.put(key, reply)
        return reply


def _describe(problem: Exception) -> str:
    if isinstance(problem, ProgramRejected) and problem.line:
        return f"{problem.message} (line {problem.line})"
    return str(problem)
