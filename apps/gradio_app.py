"""The vpagent web app: ask a question about a photo, watch the program run, edit and re-run it.

``build_ui(agent)`` returns the Gradio Blocks; ``launch(settings)`` builds the agent and serves
the page on ``settings.server.host`` (127.0.0.1 unless configured otherwise), never with a
public share link.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from vpagent.agent import Agent
from vpagent.apps.controller import AppController, Outputs
from vpagent.apps.inputs import data_dir, find_examples
from vpagent.apps.marks_input import add_click
from vpagent.apps.render import BACKEND_HEADERS, HISTORY_HEADERS, MODE_LABELS, STEP_HEADERS
from vpagent.config import Settings
from vpagent.student_mode import MODES

TITLE = "vpagent — visual programming agent"

UI_CSS = """
#status { min-height: 2.6em; }
#answer textarea { font-size: 1.25rem; font-weight: 600; }
.rationale-frame { width: 100%; height: 760px; border: 1px solid #e5e7eb; border-radius: 6px; }
"""


@dataclass
class Inputs:
    """The left column: what a person gives and the buttons that act on it."""

    image: gr.Image
    question: gr.Textbox
    mode: gr.Radio
    marks: gr.Textbox
    box_mode: gr.Checkbox
    corner: gr.State
    ask: gr.Button
    cancel: gr.Button
    program: gr.Code
    run: gr.Button


def build_ui(
    agent: Agent,
    settings: Settings | None = None,
    examples: list[tuple[str, str]] | None = None,
) -> gr.Blocks:
    """The Gradio page for ``agent``. ``examples``: (photo, question) pairs; default: bundled."""
    settings = settings or agent.runner.settings
    if examples is None:
        examples = find_examples()
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        gr.Markdown(
            f"# {TITLE}\nAsk a question about a photo. An LLM writes a short Python program "
            "against vision tools, a sandbox runs it, and every tool call is shown on the image."
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=5):
                inputs = _input_column(agent, settings, examples)
            with gr.Column(scale=6):
                outputs = _output_column(program=inputs.program)
        controller = AppController(agent, settings, outputs)
        demo.vpagent_controller = controller  # type: ignore[attr-defined]
        _wire(demo, controller, inputs, outputs)
    return demo


def _input_column(agent: Agent, settings: Settings, examples: list[tuple[str, str]]) -> Inputs:
    image = gr.Image(
        label="Image (upload, paste, or pick an example)",
        type="filepath",
        sources=["upload", "clipboard"],
        buttons=["fullscreen"],
        elem_id="image",
        height=360,
    )
    question = gr.Textbox(
        label="Question",
        placeholder="How many dogs are there?",
        lines=1,
        max_lines=3,
        elem_id="question",
        render=False,  # placed below the examples that fill it
    )
    if examples:
        gr.Examples(
            examples=[[path, text] for path, text in examples],
            inputs=[image, question],
            label="Bundled example photos (click one: it loads with its question)",
            examples_per_page=12,
            visible_columns=[0],
            cache_examples=False,
            elem_id="examples",
        )
    else:
        gr.Markdown(
            f"*No bundled example photos were found (looked in `{data_dir()}/images`;"
            " set `VPAGENT_DATA_DIR`). Upload or paste an image instead.*",
            elem_id="no-examples",
        )
    question.render()
    with gr.Row():
        marks = gr.Textbox(
            label="Marks: click the photo for points A, B, ... (or type 'A: x, y')",
            info="A box: tick 'Clicks draw a box', click two corners (or '1: x0, y0, x1, y1').",
            placeholder="A: 120, 200",
            lines=2,
            elem_id="marks",
        )
        box_mode = gr.Checkbox(label="Clicks draw a box (two corners)", elem_id="box-mode")
    corner = gr.State(None)
    mode = gr.Radio(
        choices=[(MODE_LABELS[name], name) for name in MODES],
        value=settings.agent.mode,
        label="Who answers",
        info=(
            f"Student: {agent.student.folder}"
            if agent.student is not None
            else "Student modes need a trained student: set agent.student (vpagent distill train)."
        ),
        interactive=agent.student is not None,
        elem_id="mode",
    )
    with gr.Row():
        ask = gr.Button("Ask", variant="primary", elem_id="ask")
        cancel = gr.Button("Cancel", variant="stop", elem_id="cancel")
    program = gr.Code(
        label="Generated program (edit it and run it again in the sandbox)",
        language="python",
        interactive=True,
        lines=8,
        max_lines=30,
        elem_id="program",
    )
    run = gr.Button("Run edited program", elem_id="run-program")
    return Inputs(image, question, mode, marks, box_mode, corner, ask, cancel, program, run)


def _output_column(program: gr.Code) -> Outputs:
    status = gr.Markdown("Ready.", elem_id="status")
    answer = gr.Textbox(label="Answer", interactive=False, elem_id="answer")
    with gr.Tabs():
        with gr.Tab("Visual rationale", id="rationale"):
            gallery = gr.Gallery(
                label="Each tool call drawn on the image (click to enlarge)",
                columns=3,
                height=460,
                object_fit="contain",
                preview=True,
                interactive=False,
                buttons=["download", "fullscreen"],
                elem_id="steps-gallery",
            )
            steps = gr.Dataframe(
                headers=STEP_HEADERS,
                label="Steps: tool calls, outputs and timings",
                interactive=False,
                wrap=True,
                column_widths=["7%", "14%", "30%", "37%", "12%"],
                max_height=400,
                elem_id="steps-table",
            )
            with gr.Accordion("Full rationale page", open=False):
                rationale = gr.HTML(elem_id="rationale-page")
                download = gr.File(label="Download the rationale (HTML)")
        with gr.Tab("History", id="history"):
            history_table = gr.Dataframe(
                headers=HISTORY_HEADERS,
                label="This session's questions (click a row to load it again)",
                interactive=False,
                wrap=True,
                elem_id="history",
            )
        with gr.Tab("Backends", id="backends"):
            planner_line = gr.Markdown(elem_id="planner")
            backends_table = gr.Dataframe(
                headers=BACKEND_HEADERS,
                label="Which backend and model serves each role",
                interactive=False,
                wrap=True,
                elem_id="backends",
            )
    return Outputs(
        status=status,
        answer=answer,
        program=program,
        gallery=gallery,
        steps=steps,
        rationale=rationale,
        download=download,
        history_state=gr.State([]),
        history_table=history_table,
        planner_line=planner_line,
        backends_table=backends_table,
    )


def _click_mark(
    text: str, box_mode: bool, corner: list[float] | None, event: gr.SelectData
) -> tuple[str, list[float] | None]:
    """A click on the photo adds a point mark, or a box corner in box mode."""
    x, y = event.index
    return add_click(text, float(x), float(y), box_mode, corner)


def _wire(demo: gr.Blocks, controller: AppController, inputs: Inputs, outputs: Outputs) -> None:
    """What each button, row click and page load runs (one run at a time on the agent)."""
    inputs.image.select(
        _click_mark,
        inputs=[inputs.marks, inputs.box_mode, inputs.corner],
        outputs=[inputs.marks, inputs.corner],
        api_name=False,
    )
    shown = outputs.run_outputs()
    ask_event = gr.on(
        [inputs.ask.click, inputs.question.submit],
        controller.ask,
        inputs=[inputs.image, inputs.question, outputs.history_state, inputs.mode, inputs.marks],
        outputs=shown,
        api_name="ask",
        concurrency_id="agent",
        concurrency_limit=1,
        show_progress="minimal",  # queue position and a timer, on the status line
        show_progress_on=[outputs.status],
        preprocess=False,  # the app reads the upload itself (see image_source)
    )
    run_event = inputs.run.click(
        controller.run_program,
        inputs=[inputs.image, inputs.question, inputs.program, outputs.history_state],
        outputs=shown,
        api_name="run_program",
        concurrency_id="agent",
        concurrency_limit=1,
        show_progress="minimal",
        show_progress_on=[outputs.status],
        preprocess=False,
    )
    inputs.cancel.click(
        controller.cancel,
        outputs=[outputs.status],
        api_name="cancel",
        cancels=[ask_event, run_event],
        queue=False,
    )
    outputs.history_table.select(
        controller.recall,
        inputs=[outputs.history_state],
        outputs=[inputs.question, inputs.program],
        api_name=False,
    )
    demo.load(
        controller.backends,
        outputs=[outputs.backends_table, outputs.planner_line],
        api_name="backends",
    )


def launch_options(
    settings: Settings, host: str | None = None, port: int | None = None
) -> dict[str, Any]:
    """Keyword arguments for ``Blocks.launch``: loopback by default, never a share link."""
    return {
        "server_name": host or settings.server.host,
        "server_port": settings.server.ui_port if port is None else port,
        "share": False,
        "inbrowser": False,
        "show_error": False,
        "ssr_mode": False,
        "max_file_size": f"{settings.server.max_upload_mb}mb",
        "css": UI_CSS,
        "theme": gr.themes.Default(),
        "footer_links": ["api", "settings"],
        "run_history": False,  # the page keeps its own session history
        "quiet": True,
    }


def launch(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Build the agent that ``settings`` describe and serve the app until interrupted."""
    from vpagent.agent import build_agent

    with build_agent(settings) as agent:
        demo = build_ui(agent, settings)
        try:
            demo.queue(default_concurrency_limit=1).launch(
                **launch_options(settings, host, port), prevent_thread_lock=True
            )
            print(f"vpagent ui: {demo.local_url} (Ctrl+C to stop)", flush=True)
            demo.block_thread()
        finally:
            demo.close()
            demo.vpagent_controller.close()  # type: ignore[attr-defined]
