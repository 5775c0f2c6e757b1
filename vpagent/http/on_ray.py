"""`vpagent serve --ray`: the same FastAPI app as a Ray Serve deployment of N agent replicas.

Each replica builds its agent once and serves :func:`vpagent.http.create_app` around it, with
its own admission limits (``server.max_concurrent``, ``server.max_queue``); Ray Serve's proxy
spreads requests over the replicas and replaces one that dies (its requests in flight get an
error, not a hang). Ray is started by :func:`vpagent.ray_cluster.start_ray`: a private Ray on
loopback with a token of its own, or the cluster named with ``--ray-address``; the Serve proxy
binds ``server.host`` (127.0.0.1 unless you change it). docs/serving.md describes a cluster.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from vpagent.config import ServerConfig
from vpagent.http.app import create_app
from vpagent.http.native_heap import settle_native_heap
from vpagent.loopback import is_loopback
from vpagent.pool.job import AgentFactory
from vpagent.ray_cluster import LOOPBACK, RayStartError, ray_listening_addresses, start_ray

APP_NAME = "vpagent"
HEALTH_PERIOD_S = 2.0  # how often the controller checks that a replica is alive


def keep_replica_grpc_on_loopback() -> None:
    """In a replica process: bind its inter-deployment gRPC server on 127.0.0.1.

    Ray Serve 2.60 starts that server on ``[::]:0`` (every interface, plaintext) with no option
    to change it (``ray/serve/_private/replica.py``). On a private single-machine Ray every peer
    is on 127.0.0.1, so the address is rewritten before the server starts (after the replica's
    constructor). :func:`deploy` checks every listener afterwards all the same.
    """
    from ray.serve._private import replica

    bind = replica.add_port_to_grpc_server

    def on_loopback(server: Any, address: str) -> int:
        return int(bind(server, address.replace("[::]", LOOPBACK)))

    replica.add_port_to_grpc_server = on_loopback


class AgentReplica:
    """One replica: its agent, and the HTTP app around it (Ray Serve's ASGI ingress)."""

    def __init__(
        self, factory: AgentFactory, api_key: str | None, config: ServerConfig, private: bool
    ) -> None:
        if private:
            keep_replica_grpc_on_loopback()
        if config.tune_malloc:
            # each replica is a long-running process of its own; Ray's threads started
            # before this keep their arenas, the thresholds apply to every thread
            settle_native_heap()
        self.agent = factory()
        self.http_app = create_app(self.agent, api_key=api_key, config=config)

    def __serve_build_asgi_app__(self) -> FastAPI:
        return self.http_app

    def __del__(self) -> None:
        self.agent.close()


def replica_requests(config: ServerConfig, parallel: int) -> tuple[int, int]:
    """Serve's ``max_ongoing_requests`` and ``max_queued_requests`` for one replica: what its
    own admission takes (``server.max_concurrent`` answered at once, else ``llm.parallel``,
    as :func:`vpagent.http.create_app` decides, plus ``max_queue`` waiting); beyond that
    Serve's proxy queues up to ``max_queue`` more, then answers 503."""
    return (config.max_concurrent or parallel) + config.max_queue, max(config.max_queue, 1)


def deploy(
    factory: AgentFactory,
    *,
    api_key: str | None,
    config: ServerConfig,
    parallel: int,
    replicas: int,
    host: str,
    port: int,
    address: str | None = None,
) -> str:
    """Start (or join) Ray, run the deployment, and return the base URL once it serves.
    ``parallel``: questions each replica's agent answers at once (``llm.parallel``)."""
    start_ray(address)
    from ray import serve

    serve.start(http_options={"host": host, "port": port})
    ingress: Any = serve.ingress()(AgentReplica)
    ongoing, queued = replica_requests(config, parallel)
    deployment = serve.deployment(
        ingress,
        name="agent",
        num_replicas=replicas,
        max_ongoing_requests=ongoing,
        max_queued_requests=queued,
        health_check_period_s=HEALTH_PERIOD_S,
        ray_actor_options={"num_cpus": 0},  # the agent's threads share the machine's cores
    )
    private = address is None
    serve.run(deployment.bind(factory, api_key, config, private), name=APP_NAME, route_prefix="/")
    if private:
        _check_loopback(host)
    return f"http://{host}:{port}"


def _check_loopback(host: str) -> None:
    """Every listener of the private Ray, Serve and the replicas on loopback, or stop."""
    outside = [
        f"{name} on {address}:{port}"
        for name, address, port in ray_listening_addresses()
        if not is_loopback(address) and not (address == host and not is_loopback(host))
    ]
    if outside:
        shutdown()
        raise RayStartError(
            "refusing to serve: Ray Serve listens off loopback (" + ", ".join(outside) + ")"
        )


def shutdown() -> None:
    """Stop the deployment and Serve, if Ray runs (Ray itself is stopped by the caller)."""
    import ray

    if ray.is_initialized():
        from ray import serve

        serve.shutdown()
