"""train.downsize: a small copy of a training folder that gives the crop sampler the same crops."""
from __future__ import annotations

import cv2
import numpy as np
from click.testing import CliRunner

from train.data import CropSampler, read_rgb
from train.downsize import main as downsize_main


def colour_scene(height, width, seed=0):
    """Smooth colour fields with a few sharp-edged discs: detail at several scales, as in a photograph."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(12):
        centre = (int(rng.integers(width)), int(rng.integers(height)))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.circle(image, centre, int(rng.integers(10, 60)), colour, -1)
    return image  # RGB order does not matter for these tests


def make_tree(root):
    (root / "package" / "nested").mkdir(parents=True)
    big = colour_scene(600, 900)
    cv2.imwrite(str(root / "package" / "big.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 98])
    cv2.imwrite(str(root / "package" / "nested" / "small.png"), colour_scene(150, 200, seed=1))
    cv2.imwrite(str(root / "gray.png"), np.full((400, 400, 3), 128, np.uint8))
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    return root


def test_copy_keeps_layout_shrinks_large_images_and_skips_gray_and_broken(tmp_path):
    source = make_tree(tmp_path / "source")
    result = CliRunner().invoke(downsize_main, [str(source), str(tmp_path / "small"), "--train-size", "100"])
    assert result.exit_code == 0, result.output
    assert "2 images written" in result.output and "skipped 1 gray or near-gray, 1 unreadable" in result.output
    copy = tmp_path / "small"
    written = sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file())
    assert written == ["package/big.jpg", "package/nested/small.png"]
    big = read_rgb(tmp_path / "small" / "package" / "big.jpg")
    assert big.shape == (200, 300, 3)  # short side 2 x --train-size, aspect kept
    # Already small enough: copied byte for byte, not re-encoded.
    small = "package/nested/small.png"
    assert (tmp_path / "small" / small).read_bytes() == (source / small).read_bytes()


def test_sampler_crops_from_the_copy_match_crops_from_the_original(tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    original = colour_scene(720, 1080, seed=2)
    cv2.imwrite(str(source / "scene.png"), original)
    result = CliRunner().invoke(downsize_main, [str(source), str(tmp_path / "small"), "--train-size", "64"])
    assert result.exit_code == 0, result.output
    copy = read_rgb(tmp_path / "small" / "scene.png")
    assert min(copy.shape[:2]) == 128
    full = CropSampler([read_rgb(source / "scene.png")], size=64, seed=5)
    reduced = CropSampler([copy], size=64, seed=5)
    errors = []
    for _ in range(20):
        a, b = full.crop().astype(np.float32), reduced.crop().astype(np.float32)
        errors.append(np.abs(a - b).mean())
    # Same random draws, so the same part of the picture at the same scale; only resampling and the rounding of
    # the rescaled size (a pixel of offset at most) differ. A crop from elsewhere differs by tens of levels (when
    # written: a median of 0.4 levels here, against 68 with another seed).
    assert np.median(errors) < 3, errors


def test_destination_inside_source_is_refused(tmp_path):
    source = make_tree(tmp_path / "source")
    result = CliRunner().invoke(downsize_main, [str(source), str(source / "copy")])
    assert result.exit_code == 2 and "outside SOURCE" in result.output
    assert not (source / "copy").exists()


def test_a_folder_without_images_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(downsize_main, [str(tmp_path / "empty"), str(tmp_path / "out")])
    assert result.exit_code == 1 and "no images found" in result.output


def test_an_unwritable_destination_is_one_line(tmp_path):
    source = make_tree(tmp_path / "source")
    (tmp_path / "a-file").write_text("not a folder")
    result = CliRunner().invoke(downsize_main, [str(source), str(tmp_path / "a-file" / "copy")])
    assert result.exit_code == 1 and "cannot write" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
