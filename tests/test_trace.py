from pathlib import Path

import numpy as np

from tests.fixtures.fakes import spots_image
from vpagent.tools.types import Mask
from vpagent.trace import ImageInfo, Step, Trace, load_trace, save_trace
from vpagent.trace.render import draw_step, render_html, save_html


def _trace() -> Trace:
    mask = np.zeros((60, 80), dtype=bool)
    mask[10:30, 5:25] = True
    return Trace(
        question="How many <b>spots</b>?",
        program="def execute_command(image):\n    x = '<script>alert(1)</script>'\n    return 2\n",
        image=ImageInfo(sha256="ab" * 32, width=80, height=60),
        steps=[
            Step(
                index=0,
                tool="find",
                args={"image": "i", "box": [0, 0, 80, 60], "name": "spot"},
                result=[{"box": [10, 20, 20, 30], "score": 0.9, "label": "spot"}],
                duration_s=0.01,
                artifacts={
                    "region": [0, 0, 80, 60],
                    "boxes": [{"box": [10, 20, 20, 30], "score": 0.9, "label": "spot"}],
                },
            ),
            Step(
                index=1,
                tool="segment",
                args={"image": "i", "box": [0, 0, 40, 60]},
                error="ValueError: <img src=x onerror=alert(1)>",
                artifacts={
                    "region": [0, 0, 40, 60],
                    "mask": Mask(pixels=mask).to_rle().model_dump(),
                },
            ),
        ],
        answer="<i>2</i>",
        error_line=2,
        timings={"execute_s": 0.25},
    )


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    trace = _trace()
    path = save_trace(trace, tmp_path / "traces")
    assert path.name == f"{trace.id}.json"
    assert load_trace(path) == trace
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left


def test_mask_rle_round_trip() -> None:
    rng = np.random.default_rng(1)
    for shape in [(7, 9), (1, 1), (30, 40)]:
        pixels = rng.random(shape) > 0.5
        mask = Mask(pixels=pixels)
        np.testing.assert_array_equal(Mask.from_rle(mask.to_rle()).pixels, pixels)
    full = Mask(pixels=np.ones((3, 3), dtype=bool))
    assert full.to_rle().counts == [0, 9]
    assert full.box() is not None and full.box().as_list() == [0, 0, 3, 3]


def test_drawing_marks_boxes_and_masks() -> None:
    trace = _trace()
    plain = spots_image()
    boxed = np.asarray(draw_step(plain, trace.steps[0]))
    assert boxed.shape == plain.shape
    assert (boxed[20, 10] != plain[20, 10]).any()  # the result box outline is drawn
    masked = np.asarray(draw_step(plain, trace.steps[1]))
    assert (masked[15, 15] != plain[15, 15]).any()  # the mask is overlaid
    assert (masked[55, 70] == plain[55, 70]).all() or np.abs(
        masked[55, 70].astype(int) - plain[55, 70]
    ).max() < 8


def test_html_is_self_contained_and_escapes_untrusted_text(tmp_path: Path) -> None:
    trace = _trace()
    page = render_html(trace, spots_image())
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page
    assert "<img src=x" not in page
    assert "<i>2</i>" not in page and "&lt;i&gt;2&lt;/i&gt;" in page
    assert page.count("data:image/jpeg;base64,") == 2
    assert "http://" not in page and "https://" not in page
    assert 'class="line bad"' in page  # the error line is highlighted
    path = save_html(trace, spots_image(), tmp_path)
    assert path.read_text(encoding="utf-8") == page


def test_html_shows_how_boxes_were_ranked_and_why_a_step_is_unverified() -> None:
    trace = _trace()
    trace.steps[0].args["name"] = "red spot"
    trace.steps[0].artifacts.attribute = {
        "property": "red",
        "ranked": True,
        "scores": [0.62, 0.1],
        "holds": [True, False],
    }
    trace.steps[0].artifacts.unverified = "no 'spot' is clearly '<red>'"
    page = render_html(trace, spots_image())
    assert "ranked by &#39;red&#39;: 0.62, 0.10 (no)" in page
    assert "unverified: no &#39;spot&#39; is clearly &#39;&lt;red&gt;&#39;" in page
