import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vpagent.images import ImageError, load_image


def test_every_input_kind_gives_the_same_pixels(images_dir: Path) -> None:
    path = images_dir / "bus.jpg"
    from_path = load_image(path)
    assert from_path.dtype == np.uint8 and from_path.shape[2] == 3
    np.testing.assert_array_equal(load_image(str(path)), from_path)
    np.testing.assert_array_equal(load_image(path.read_bytes()), from_path)
    np.testing.assert_array_equal(load_image(Image.open(path)), from_path)
    np.testing.assert_array_equal(load_image(from_path), from_path)


def test_arrays_are_normalised() -> None:
    gray = np.full((20, 30), 7, dtype=np.uint8)
    assert load_image(gray).shape == (20, 30, 3)
    rgba = np.zeros((20, 30, 4), dtype=np.uint8)
    assert load_image(rgba).shape == (20, 30, 3)
    unit = np.full((20, 30, 3), 0.5, dtype=np.float32)
    assert load_image(unit).max() == 127


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"GIF89a not really", "not a readable image|corrupt"),
        (b"plain text, not an image", "not a readable image"),
    ],
)
def test_bad_bytes_are_clear_errors(data: bytes, message: str) -> None:
    with pytest.raises(ImageError, match=message):
        load_image(data)


def test_truncated_jpeg(images_dir: Path) -> None:
    data = (images_dir / "bus.jpg").read_bytes()[:4000]
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(data)


def test_missing_file_and_wrong_types(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no image file"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(ImageError, match="cannot read an image from int"):
        load_image(42)  # type: ignore[arg-type]
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((4, 4, 4, 4), dtype=np.uint8))


def test_tiny_and_oversized_images() -> None:
    with pytest.raises(ImageError, match="too small"):
        load_image(np.zeros((2, 2, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    Image.new("RGB", (8000, 6000)).save(buffer, format="PNG")
    with pytest.raises(ImageError, match="limit"):
        load_image(buffer.getvalue())


def test_bad_bytes_stay_clear_errors_after_ultralytics_patches_pil() -> None:
    """Importing ultralytics replaces PIL.Image.open; a non-image must still be an ImageError."""
    pytest.importorskip("ultralytics")
    import vpagent.offline_env

    vpagent.offline_env.prepare_ultralytics_config_dir()
    import ultralytics  # noqa: F401

    with pytest.raises(ImageError, match="not a readable image"):
        load_image(b"plain text, not an image")
