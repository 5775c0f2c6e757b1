"""The `vpagent` command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

import vpagent
from vpagent.cli.common import (
    EXIT_PROGRAM_FAILED,
    ConfigOption,
    JsonOption,
    LogJsonOption,
    LogLevelOption,
    RayAddressOption,
    agent_or_fail,
    console,
    errors,
    fail,
    logging_or_fail,
    settings_or_fail,
)
from vpagent.images import ImageError, load_image

if TYPE_CHECKING:
    from vpagent.config import Settings

app = typer.Typer(
    name="vpagent",
    help="Visual programming agent: programs over a vision API, run in a sandbox, with traces.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _mount_subcommands() -> None:
    from vpagent.cli.distill import distill_app
    from vpagent.cli.evaluate import eval_app
    from vpagent.cli.mcp import mcp_command
    from vpagent.llm.cli import models_app

    app.add_typer(models_app, name="models")
    app.add_typer(distill_app, name="distill")
    app.add_typer(eval_app, name="eval")
    app.command("mcp")(mcp_command)


_mount_subcommands()


def _version(value: bool) -> None:
    if value:
        console.print(f"vpagent {vpagent.__version__}")
        raise typer.Exit


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Visual programming agent toolkit."""
    from vpagent.student.backend import register_student_backends

    register_student_backends()  # `backend = "student"` for every command (doctor, ask, ...)


@app.command("run-program")
def run_program(
    program: Annotated[Path, typer.Argument(help="Python file defining execute_command(image).")],
    image: Annotated[Path, typer.Argument(help="Image file.")],
    json_output: JsonOption = False,
    trace_dir: Annotated[
        Path | None, typer.Option("--trace-dir", help="Save the trace as JSON and HTML here.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Run a given program in the sandbox against the configured tools."""
    from vpagent.program_runner import ProgramRunner
    from vpagent.trace import save_trace
    from vpagent.trace.render import save_html

    settings = settings_or_fail(config)
    try:
        source = program.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise fail(f"cannot read the program {program}: {error}") from None
    try:
        pixels = load_image(image)
    except ImageError as error:
        raise fail(str(error)) from None
    with ProgramRunner(settings, pool_size=0) as runner:
        result, trace = runner.run(source, pixels)
    trace.image.source = str(image)
    paths: dict[str, str] = {}
    directory = trace_dir or settings.trace_dir
    if directory is not None:
        paths["trace_path"] = str(save_trace(trace, directory))
        paths["trace_html"] = str(save_html(trace, pixels, directory))
    if json_output:
        payload: dict[str, Any] = {
            "ok": result.ok,
            "answer": result.answer,
            "error": result.error,
            "error_kind": result.error_kind,
            "trace": trace.model_dump(mode="json"),
            **paths,
        }
        typer.echo(json.dumps(payload))
    elif result.ok:
        console.print(result.answer, highlight=False, markup=False)
    else:
        errors.print(escape(result.feedback()), style="red", highlight=False)
    if not json_output and paths:
        errors.print(f"trace: {paths['trace_html']}", highlight=False, markup=False)
    if not result.ok:
        raise typer.Exit(EXIT_PROGRAM_FAILED)


@app.command()
def doctor(
    json_output: JsonOption = False,
    config: ConfigOption = None,
    memory: Annotated[
        bool, typer.Option("--memory", help="Estimate each role's GPU memory and what fits.")
    ] = False,
    gpu_gb: Annotated[
        float | None,
        typer.Option(
            "--gpu-gb",
            min=0.1,
            help="With --memory: the GPU's memory in GiB (default: the GPU found here).",
        ),
    ] = None,
) -> None:
    """Show which backend serves each role, on which device, and whether it is a stand-in."""
    if memory:
        _doctor_memory(settings_or_fail(config), gpu_gb, json_output)
        return
    from vpagent.doctor import diagnose

    report = diagnose(settings_or_fail(config))
    if json_output:
        typer.echo(report.model_dump_json(indent=2))
        return
    table = Table(title=f"vpagent {vpagent.__version__} · profile {report.profile}")
    for column in ("role", "backend", "model", "device", "kind", "status"):
        table.add_column(column)
    for role in report.roles:
        kind = "[yellow]stand-in[/]" if role.stand_in else "real"
        status = "[green]ok[/]" if role.available else f"[red]{escape(role.problem)}[/]"
        table.add_row(role.role, role.backend, role.model, role.device, kind, status)
    console.print(table)
    console.print(f"sandbox isolation: {', '.join(report.sandbox_isolation) or 'rlimits only'}")
    for role in report.roles:
        if role.note:
            console.print(f"{role.role}: {role.note}", style="dim", markup=False)


def _doctor_memory(settings: Any, gpu_gb: float | None, json_output: bool) -> None:
    """`vpagent doctor --memory`: the memory plan as a table (or JSON)."""
    from vpagent.memory_plan import plan_memory

    plan = plan_memory(settings, gpu_gb)
    if json_output:
        typer.echo(plan.model_dump_json(indent=2))
        return
    table = Table(title=f"memory plan · profile {plan.profile} · batch {plan.batch}")
    for column in ("role", "backend", "where", "dtype", "params", "weights GiB", "act. GiB",
                   "from"):  # fmt: skip
        table.add_column(column)
    for r in plan.roles:
        params = f"{r.parameters / 1e6:.1f}M" if r.parameters else ""
        source = f"shares the {r.shared_with} model" if r.shared_with else r.source
        table.add_row(r.role, r.backend, r.place, r.dtype, params, f"{r.weights_gb:.2f}",
                      f"{r.activations_gb:.2f}", escape(source))  # fmt: skip
    console.print(table)
    if plan.total_gpu_gb == 0:
        console.print("no role uses the GPU: every model runs on the CPU (or remotely)")
        return
    console.print(
        f"GPU total {plan.total_gpu_gb:.2f} GiB (with a {plan.cuda_context_gb} GiB CUDA context)"
    )
    if plan.gpu_gb is None:
        console.print("no GPU found here: pass --gpu-gb N to check what fits on an N GiB GPU")
    elif plan.fits:
        console.print(f"[green]all GPU roles fit on {plan.gpu_gb:.1f} GiB[/]")
    else:
        console.print(
            f"[red]on {plan.gpu_gb:.1f} GiB only {', '.join(plan.together) or 'none'} fit "
            f"together[/]; move {', '.join(plan.elsewhere)} to the CPU "
            + escape('([tools.<role>] options = {device = "cpu"})')
            + ", lower "
            + escape("[batching] max_batch")
            + " or use a smaller dtype/model"
        )


TraceDirOption = Annotated[
    Path | None, typer.Option("--trace-dir", help="Save each trace as JSON and HTML here.")
]


@app.command()
def ask(
    image: Annotated[Path, typer.Argument(help="Image file.")],
    question: Annotated[str, typer.Argument(help="The question, in quotes.")],
    json_output: JsonOption = False,
    trace_dir: TraceDirOption = None,
    config: ConfigOption = None,
    mode: Annotated[
        str | None, typer.Option(help="program, student or student-then-program (agent.mode).")
    ] = None,
    student: Annotated[
        Path | None, typer.Option(help="Trained student folder (agent.student).")
    ] = None,
    choice: Annotated[
        list[str] | None,
        typer.Option(help="An option of a multiple-choice question (repeat for each option)."),
    ] = None,
) -> None:
    """Answer a question about an image: plan a program, run it, print the answer.

    With --json: the answer, program, every attempt (each program tried and why it failed,
    the fallback answer) and the trace."""
    from vpagent.result import ResultSummary, validate_question
    from vpagent.student_mode import with_student_options
    from vpagent.trace import save_trace
    from vpagent.trace.render import save_html

    settings = settings_or_fail(config)
    try:
        validate_question(question)
        pixels = load_image(image)
        settings = with_student_options(settings, mode, student)
    except ValueError as error:
        raise fail(str(error)) from None
    directory = trace_dir or settings.trace_dir
    # The trace is saved once, below, with HTML; one question loads only the models it uses.
    one_question = settings.agent.model_copy(update={"warm_tools": False})
    settings = settings.model_copy(update={"trace_dir": None, "agent": one_question})
    with agent_or_fail(settings) as agent, errors.status("planning") as status:
        result = agent.ask(
            pixels,
            question,
            choices=choice or None,
            on_event=lambda e: status.update(escape(str(e))),
        )
    paths: dict[str, str] = {}
    if result.trace is not None:
        result.trace.image.source = str(image)
        if directory is not None:
            paths["trace_path"] = str(save_trace(result.trace, directory))
            paths["trace_html"] = str(save_html(result.trace, pixels, directory))
    if json_output:
        payload = {
            **ResultSummary.of(result).model_dump(mode="json"),
            "trace": result.trace.model_dump(mode="json") if result.trace else None,
            **paths,
        }
        typer.echo(json.dumps(payload))
    elif result.answer is not None:
        console.print(result.answer, highlight=False, markup=False)
        if result.unverified_reason:
            errors.print(f"unverified: {escape(result.unverified_reason)}", style="yellow")
    else:
        errors.print(escape(result.error or "failed"), style="red", highlight=False)
    if not json_output and paths:
        errors.print(f"trace: {paths['trace_html']}", highlight=False, markup=False)
    if result.answer is None:
        raise typer.Exit(EXIT_PROGRAM_FAILED)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    use_ray: Annotated[
        bool, typer.Option("--ray", help="Serve N agent replicas with Ray Serve.")
    ] = False,
    replicas: Annotated[int, typer.Option(min=1, help="Agent replicas (with --ray).")] = 2,
    ray_address: RayAddressOption = None,
    config: ConfigOption = None,
    log_level: LogLevelOption = "INFO",
    log_json: LogJsonOption = False,
) -> None:
    """Serve the HTTP API: /v1/ask, /v1/chat/completions (OpenAI), /metrics, /docs."""
    import os

    logging_or_fail(log_level, log_json)
    settings = settings_or_fail(config)
    key_env = settings.server.api_key_env
    api_key = os.environ.get(key_env) if key_env else None
    if key_env and not api_key:
        raise fail(f"server.api_key_env names ${key_env}, which is not set")
    server = settings.server
    host, port = host or server.host, port or server.port
    if server.tune_malloc:
        from vpagent.http.native_heap import settle_native_heap

        settle_native_heap()  # before any model or thread allocates
    if use_ray or ray_address is not None:
        _serve_on_ray(settings, api_key, host, port, replicas, ray_address or settings.ray.address)
        return
    from vpagent.http import create_app
    from vpagent.http.server import run_server

    with agent_or_fail(settings) as agent:
        http_app = create_app(agent, api_key=api_key, config=server)
        run_server(http_app, host, port, server.request_timeout_s)


def _serve_on_ray(
    settings: Settings,
    api_key: str | None,
    host: str,
    port: int,
    replicas: int,
    address: str | None,
) -> None:
    """Deploy the replicas, then wait for Ctrl-C or SIGTERM and take everything down."""
    import signal
    import threading

    from vpagent.http.on_ray import deploy, shutdown
    from vpagent.pool.factory import SettingsAgentFactory
    from vpagent.ray_cluster import RayStartError, stop_ray

    stop = threading.Event()
    try:
        factory = SettingsAgentFactory(settings, workers=replicas)
        with errors.status(f"starting {replicas} agent replicas on Ray Serve"):
            url = deploy(factory, api_key=api_key, config=settings.server,
                         parallel=settings.llm.parallel, replicas=replicas,
                         host=host, port=port, address=address)  # fmt: skip
        # after Ray started: its core installs a SIGTERM handler that aborts the process
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        console.print(f"serving on {url} with {replicas} replicas (Ctrl-C to stop)")
        stop.wait()
    except KeyboardInterrupt:
        pass
    except (RayStartError, RuntimeError) as error:
        raise fail(f"cannot serve on Ray: {error}") from None
    finally:
        if address is not None:  # a private Ray goes down whole with stop_ray
            shutdown()
        stop_ray()


@app.command()
def ui(
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 7860).")] = None,
    config: ConfigOption = None,
) -> None:
    """Serve the Gradio app: ask questions, see programs and visual rationales."""
    from vpagent.apps.gradio_app import launch

    launch(settings_or_fail(config), host=host, port=port)
