"""Using a trained student: the commands, Agent modes, and the vqa/captioner backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.fixtures.agents import COUNT, make_agent
from tests.fixtures.fakes import spots_image
from vpagent.agent import Agent, build_agent
from vpagent.cli import app
from vpagent.config import ConfigError, load_settings
from vpagent.events import Event, StudentUnsure
from vpagent.student_mode import StudentAnswerer, build_student_answerer
from vpagent.tools.registry import build_specialist

runner = CliRunner()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory, export: Path, lm_folder: Path) -> Path:
    """A tiny embedded student trained through `vpagent distill train`."""
    out = tmp_path_factory.mktemp("use") / "ckpt"
    done = runner.invoke(
        app,
        ["distill", "train", "--data", str(export), "--out", str(out), "--student", str(lm_folder),
         "--max-steps", "2", "--full", "--lr", "5e-3", "--batch-size", "8"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "trained 2 steps on 8 records" in done.output
    return out


def test_train_refuses_bad_input_with_a_message(tmp_path: Path, export: Path) -> None:
    missing = runner.invoke(
        app, ["distill", "train", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")]
    )
    assert missing.exit_code == 2 and "no train records" in missing.output
    assert "Traceback" not in missing.output
    bad_task = runner.invoke(
        app,
        ["distill", "train", "--data", str(export), "--out", str(tmp_path / "o"), "--task", "x"],
    )
    assert bad_task.exit_code == 2 and "unknown task" in bad_task.output


def test_eval_without_teacher_writes_table_json_and_plot(checkpoint: Path, export: Path) -> None:
    done = runner.invoke(
        app,
        ["distill", "eval", str(export), "--student", str(checkpoint), "--no-teacher", "--json"],
    )
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["n"] == 1 and report["per_type_n"] == {"count": 1}
    assert report["teacher_summary"] is None and report["student_summary"]["seconds"]["median"] > 0
    assert (checkpoint / "eval" / "report.png").stat().st_size > 1000
    rows = (checkpoint / "eval" / "items.jsonl").read_text().splitlines()
    assert json.loads(rows[0])["id"] == "validation-0"


def test_eval_runs_the_student_on_the_device_asked_for(
    checkpoint: Path, export: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["distill", "eval", str(export), "--student", str(checkpoint), "--no-teacher"]
    on_cpu = runner.invoke(app, [*args, "--device", "cpu", "--out", str(tmp_path / "cpu")])
    assert on_cpu.exit_code == 0, on_cpu.output
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    no_gpu = runner.invoke(app, [*args, "--device", "cuda", "--out", str(tmp_path / "gpu")])
    assert no_gpu.exit_code == 2 and "torch sees no CUDA GPU" in no_gpu.output
    assert not (tmp_path / "gpu").exists()
    unknown = runner.invoke(app, [*args, "--device", "tpu", "--out", str(tmp_path / "tpu")])
    assert unknown.exit_code == 2 and "cannot put the student on device 'tpu'" in unknown.output


def test_eval_reuses_teacher_results(checkpoint: Path, export: Path, tmp_path: Path) -> None:
    teacher = tmp_path / "teacher.jsonl"
    row = {"id": "validation-0", "type": "count", "question": "q", "prediction": "1",
           "expected": ["1"], "score": 1.0, "total_s": 9.0}  # fmt: skip
    header = {"vpagent_run": {"kind": "eval"}}  # `vpagent eval --out` files start with one
    teacher.write_text(json.dumps(header) + "\n" + json.dumps(row) + "\n")
    done = runner.invoke(
        app,
        ["distill", "eval", str(export), "--student", str(checkpoint), "--teacher-results",
         str(teacher), "--out", str(tmp_path / "r")],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "teacher" in done.output and "agreement" in done.output
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["teacher_summary"]["accuracy"] == 1.0
    assert report["teacher_summary"]["seconds"]["median"] == 9.0
    assert report["speedup"] > 1.0


def test_ask_with_the_student(checkpoint: Path, images_dir: Path) -> None:
    done = runner.invoke(
        app,
        ["ask", str(images_dir / "two_dogs.jpg"), "How many dogs are there?", "--mode",
         "student", "--student", str(checkpoint), "--json"],
    )  # fmt: skip
    assert done.exit_code in (0, 1), done.output  # 1: the tiny student may give no answer
    payload = json.loads(done.stdout.strip().splitlines()[-1])
    assert payload["answered_by"] == "student" and payload["program"] is None
    assert 0.0 <= payload["student_confidence"] <= 1.0
    no_folder = runner.invoke(
        app, ["ask", str(images_dir / "two_dogs.jpg"), "How many?", "--mode", "student"]
    )
    assert no_folder.exit_code == 2 and "needs agent.student" in no_folder.output


def test_config_rejects_student_mode_without_a_student() -> None:
    with pytest.raises(ConfigError, match=r"agent\.student"):
        load_settings(agent={"mode": "student"})


def test_agent_uses_the_student_first_and_falls_back_to_a_program(checkpoint: Path) -> None:
    confident = StudentAnswerer(checkpoint, mode="student-then-program", threshold=0.0)
    with make_agent([COUNT], student=confident) as agent:
        result = agent.ask(spots_image(), "How many spots are there?")
    assert result.answered_by == "student" and result.program is None
    unsure = StudentAnswerer(checkpoint, mode="student-then-program", threshold=1.0)
    events: list[Event] = []
    with make_agent([COUNT], student=unsure) as agent:
        result = agent.ask(spots_image(), "How many spots are there?", on_event=events.append)
    assert result.answered_by == "program" and result.answer == "2"
    unsure = [event for event in events if isinstance(event, StudentUnsure)]
    assert len(unsure) == 1 and unsure[0].confidence < unsure[0].threshold
    assert str(unsure[0]).startswith("student unsure (confidence")


def test_program_mode_with_a_student_answers_by_program_unless_a_question_asks(
    checkpoint: Path,
) -> None:
    """agent.mode = program with agent.student set: programs answer, and one question (HTTP,
    the app) can still ask for the student, which is loaded for that."""
    settings = load_settings(agent={"mode": "program", "student": str(checkpoint)})
    answerer = build_student_answerer(settings.agent)
    assert answerer is not None and answerer.mode == "program"
    assert build_student_answerer(load_settings().agent) is None
    with make_agent([COUNT], student=answerer) as agent:
        by_program = agent.ask(spots_image(), "How many spots are there?")
        by_student = agent.ask(spots_image(), "How many spots are there?", mode="student")
    assert by_program.answered_by == "program" and by_program.answer == "2"
    assert by_student.answered_by == "student" and by_student.program is None


def test_student_backend_serves_vqa_and_captioner(checkpoint: Path) -> None:
    from vpagent.student.backend import register_student_backends

    register_student_backends()  # the student lives above the tools: it registers itself
    vqa = build_specialist("vqa", "student", model=str(checkpoint), device="cpu")
    answers = vqa.answer_batch([spots_image(), spots_image()], ["How many?", "What color?"])
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
    assert vqa.info().backend == "student" and not vqa.info().stand_in
    captioner = build_specialist("captioner", "student", model=str(checkpoint), device="cpu")
    assert isinstance(captioner.caption(spots_image()), str)
    assert "not captions" in captioner.info().note


def test_http_api_selects_the_mode_per_request(checkpoint: Path) -> None:
    import base64
    import io

    from fastapi.testclient import TestClient
    from PIL import Image

    from vpagent.http.app import create_app

    buffer = io.BytesIO()
    Image.fromarray(spots_image()).save(buffer, format="PNG")
    png = buffer.getvalue()
    unsure = StudentAnswerer(checkpoint, mode="student-then-program", threshold=1.0)
    with make_agent([COUNT, COUNT], student=unsure) as agent:
        client = TestClient(create_app(agent))
        form = {"question": "How many spots?", "mode": "student"}
        by_student = client.post("/v1/ask", files={"image": ("a.png", png)}, data=form).json()
        assert by_student["answered_by"] == "student" and by_student["program"] is None
        fallback = client.post("/v1/ask", files={"image": ("a.png", png)}, data=form | {"mode": ""})
        assert fallback.json()["answered_by"] == "program" and fallback.json()["answer"] == "2"
        body = {"image_base64": base64.b64encode(png).decode(), "question": "How many?"}
        bad = client.post("/v1/ask", json=body | {"mode": "oracle"})
        assert bad.status_code == 422
    with make_agent([COUNT]) as agent:  # no student configured
        client = TestClient(create_app(agent))
        refused = client.post("/v1/ask", json=body | {"mode": "student"})
        assert refused.status_code == 422 and "needs a student" in refused.text


def test_a_student_that_emits_no_answer_scores_zero_with_a_reason(export: Path) -> None:
    from vpagent.distill.student.evaluate import compare, load_items
    from vpagent.student.students import Generation

    class Silent:
        def generate(self, images, prompts, *, max_new_tokens=32):  # type: ignore[no-untyped-def]
            return [Generation(text="", confidence=0.0) for _ in images]

    report, rows = compare(
        Silent(), load_items(export), teacher=None, dataset="x", student_name="silent",
        progress=False,
    )  # type: ignore[arg-type]  # fmt: skip
    assert rows[0].student.prediction is None and rows[0].student.score == 0.0
    assert rows[0].student.error == "the student gave no answer"
    assert report.student_summary.accuracy == 0.0


def test_student_mode_starts_the_planner_only_for_a_program(
    checkpoint: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vpagent.llm.chat as chat

    def no_llm(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("student mode must not start the planner's LLM")

    monkeypatch.setattr(chat, "build_chat_model", no_llm)
    settings = load_settings(agent={"mode": "student", "student": str(checkpoint)})
    with build_agent(settings) as agent:
        result = agent.ask(spots_image(), "How many spots are there?")
        assert result.answered_by == "student" and not agent.program_path_started
    built: list[int] = []
    ready = make_agent([COUNT])

    def program_path():  # type: ignore[no-untyped-def]
        built.append(1)
        return ready.planner, ready.runner

    student = StudentAnswerer(checkpoint, mode="student")
    with Agent(program_path=program_path, student=student) as agent:
        agent.ask(spots_image(), "How many spots?")
        assert built == []
        result = agent.ask(spots_image(), "How many spots?", mode="program")
        assert result.answered_by == "program" and result.answer == "2" and built == [1]
        agent.ask(spots_image(), "How many spots?", mode="program")
        assert built == [1]  # built once
    with pytest.raises(ValueError, match="planner and a runner, or a program_path"):
        Agent()


def test_app_lets_a_person_choose_who_answers(checkpoint: Path, tmp_path: Path) -> None:
    from gradio_client import Client, handle_file
    from PIL import Image

    from tests.browser.driver import free_port
    from vpagent.apps.gradio_app import build_ui, launch_options

    png = tmp_path / "spots.png"
    Image.fromarray(spots_image()).save(png)
    unsure = StudentAnswerer(checkpoint, mode="student-then-program", threshold=1.0)
    with make_agent([COUNT], student=unsure) as agent:
        demo = build_ui(agent, load_settings(), examples=[])
        options = launch_options(load_settings(), "127.0.0.1", free_port())
        _, url, _ = demo.queue().launch(**options, prevent_thread_lock=True)
        try:
            client = Client(url, verbose=False, download_files=False)
            image = handle_file(str(png))
            status, answer, program, *_ = client.predict(
                image, "How many spots?", "student", api_name="/ask"
            )
            assert status.startswith("✔ Answered by the distilled student") and program == ""
            status, answer, program, *_ = client.predict(
                image, "How many spots?", "student-then-program", api_name="/ask"
            )
            assert status.startswith("✔ Answered in") and answer == "2" and "find" in program
            table, planner = client.predict(api_name="/backends")
            assert "Planner LLM" in planner  # a program ran: the planner is described
            assert table["data"][0][0] == "student (first answerer)"
            assert "student-then-program" in table["data"][0][5]
        finally:
            demo.close()
            demo.vpagent_controller.close()  # type: ignore[attr-defined]
