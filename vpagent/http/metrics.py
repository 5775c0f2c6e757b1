"""`GET /metrics`: the server's Prometheus metrics, in a registry of its own per app."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from vpagent.result import Result

SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160, 320)


class RoleSeconds(Collector):
    """``vpagent_model_seconds_total{role}``: the toolbox's model time per role, read at
    scrape time (a tool call may use several roles: find uses the detector, then the matcher)."""

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "vpagent_model_seconds", "Seconds the models of each role ran.", labels=["role"]
        )
        for role, seconds in sorted(self.read().items()):
            family.add_metric([role], seconds)
        yield family


class ServerMetrics:
    """Requests, latencies, queue and refusals; what one question's answer cost."""

    def __init__(
        self,
        waiting: Callable[[], float],
        running: Callable[[], float],
        role_seconds: Callable[[], dict[str, float]],
    ) -> None:
        self.registry = CollectorRegistry()
        options = {"registry": self.registry}
        self.requests = Counter(
            "vpagent_http_requests", "HTTP requests by route and status.", ["route", "status"],
            **options,
        )  # fmt: skip
        self.latency = Histogram(
            "vpagent_http_request_seconds", "HTTP request latency by route.", ["route"],
            buckets=SECONDS, **options,
        )  # fmt: skip
        self.plan = Histogram(
            "vpagent_plan_seconds", "Planning time per question.", buckets=SECONDS, **options
        )
        self.execute = Histogram(
            "vpagent_execute_seconds", "Program run time per question.", buckets=SECONDS, **options
        )
        self.tool = Histogram(
            "vpagent_tool_call_seconds", "Seconds per tool call, by tool.", ["tool"],
            buckets=SECONDS, **options,
        )  # fmt: skip
        self.refused = Counter(
            "vpagent_refused", "Requests refused or abandoned, by reason.", ["reason"], **options
        )
        self.single_flight_hits = Counter(
            "vpagent_single_flight_hits", "Requests that shared a computation in flight.",
            **options,
        )  # fmt: skip
        Gauge("vpagent_queue_depth", "Questions waiting for a place.", **options).set_function(
            waiting
        )
        Gauge("vpagent_in_flight", "Questions being answered.", **options).set_function(running)
        self.registry.register(RoleSeconds(role_seconds))

    def observe(self, result: Result) -> None:
        """Record where one computed answer's time went."""
        self.plan.observe(result.timings.get("plan_s", 0.0))
        self.execute.observe(result.timings.get("execute_s", 0.0))
        if result.trace is not None:
            for step in result.trace.steps:
                self.tool.labels(step.tool).observe(step.duration_s)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
