"""`vidcolor image`: one file or a folder of outputs, the input's size and luma kept, alpha kept, and the stills the
world sends (16-bit, gray, CMYK, EXIF-rotated, truncated, not an image)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from media import (jpeg_bytes, make_clip, psnr, read_image_rgb, still, write_cmyk_jpeg, write_image,
                   write_jpeg_with_orientation)
from vidcolor.color import image_to_luma
from vidcolor.colorizer import choose_precision

# Rebuilding RGB from luma + predicted chroma rounds and clips each channel: the luma comes back within a few levels.
STILL_LUMA_PSNR_MIN_DB = 35.0


def colourfulness(rgb: np.ndarray) -> float:
    """Mean distance from gray, 8-bit levels."""
    return float(np.abs(rgb.astype(int) - image_to_luma(rgb)[..., None]).mean())


def test_single_file(cli, tmp_path):
    src = write_image(tmp_path / "gray.png", still(width=70, height=45))
    dst = tmp_path / "colour.png"
    result = cli.ok(cli.image(src, "-o", dst))
    assert result.stdout.strip() == str(dst)
    out = read_image_rgb(dst)
    assert out.shape == (45, 70, 3)
    assert colourfulness(out) > 1.0
    assert psnr(image_to_luma(out), image_to_luma(still(width=70, height=45))) >= STILL_LUMA_PSNR_MIN_DB


def test_several_files_to_a_folder_keep_their_names_and_sizes(cli, tmp_path):
    sources = [write_image(tmp_path / "a.png", still(64, 48)), write_image(tmp_path / "b.jpg", still(33, 91))]
    out = tmp_path / "out"
    report = tmp_path / "report.json"
    cli.ok(cli.image(*sources, "-o", out, "--report", report))
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.jpg"]
    assert read_image_rgb(out / "a.png").shape == (48, 64, 3)
    assert read_image_rgb(out / "b.jpg").shape == (91, 33, 3)
    summary = json.loads(report.read_text())
    assert [(i["width"], i["height"]) for i in summary["images"]] == [(64, 48), (33, 91)]
    chosen = choose_precision(torch.device("cpu"))
    assert summary["precision"] == chosen.name and summary["precision_reason"] == chosen.reason


def test_one_file_to_a_folder(cli, tmp_path):
    src = write_image(tmp_path / "a.png", still())
    cli.ok(cli.image(src, "-o", tmp_path / "out"))
    assert read_image_rgb(tmp_path / "out" / "a.png").shape == (48, 64, 3)


def test_colour_input_is_colorized_from_its_luma(cli, tmp_path):
    colour = still(colour=True)
    gray = np.repeat(image_to_luma(colour)[..., None], 3, axis=2)
    cli.ok(cli.image(write_image(tmp_path / "colour.png", colour), "-o", tmp_path / "from-colour.png"))
    cli.ok(cli.image(write_image(tmp_path / "gray.png", gray), "-o", tmp_path / "from-gray.png"))
    assert np.array_equal(read_image_rgb(tmp_path / "from-colour.png"), read_image_rgb(tmp_path / "from-gray.png"))


def test_alpha_is_kept(cli, tmp_path):
    alpha = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (48, 1))
    src = write_image(tmp_path / "logo.png", np.dstack([still(), alpha]))
    cli.ok(cli.image(src, "-o", tmp_path / "out.png"))
    out = read_image_rgb(tmp_path / "out.png")
    assert out.shape == (48, 64, 4)
    assert np.array_equal(out[..., 3], alpha)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_still(cli, tmp_path, suffix):
    # Archive scans: the output keeps 16 bits, and its luma is the input's, every bit of it (the network sees less).
    rng = np.random.default_rng(0)
    image16 = still().astype(np.uint16) * 257 + rng.integers(0, 257, (48, 64, 1), dtype=np.uint16)
    src = write_image(tmp_path / f"deep{suffix}", image16)
    cli.ok(cli.image(src, "-o", tmp_path / f"out{suffix}"))
    out = read_image_rgb(tmp_path / f"out{suffix}")
    assert out.dtype == np.uint16 and out.shape == (48, 64, 3)
    luma = image_to_luma(out).astype(int)
    assert np.abs(luma - image16[..., 0]).max() <= 2  # within rounding, at 16 bits (one 8-bit level is 257)
    assert len(np.unique(luma % 257)) > 100  # not an 8-bit picture scaled up


def test_16_bit_png_with_alpha(cli, tmp_path):
    alpha16 = np.full((48, 64), 40000, np.uint16)
    src = write_image(tmp_path / "deep.png", np.dstack([still().astype(np.uint16) * 257, alpha16]))
    cli.ok(cli.image(src, "-o", tmp_path / "out.png"))
    out = read_image_rgb(tmp_path / "out.png")
    assert out.shape == (48, 64, 4) and out.dtype == np.uint16 and int(out[0, 0, 3]) == 40000


def test_16_bit_tiff_to_jpeg_is_8_bit(cli, tmp_path):
    src = write_image(tmp_path / "deep.tif", still().astype(np.uint16) * 257)
    cli.ok(cli.image(src, "-o", tmp_path / "out.jpg"))
    out = read_image_rgb(tmp_path / "out.jpg")
    assert out.dtype == np.uint8 and psnr(image_to_luma(out), image_to_luma(still())) >= STILL_LUMA_PSNR_MIN_DB


def test_gray_jpeg(cli, tmp_path):
    gray = still()[..., 0]
    src = write_image(tmp_path / "gray.jpg", gray)
    cli.ok(cli.image(src, "-o", tmp_path / "out.png"))
    out = read_image_rgb(tmp_path / "out.png")
    assert out.shape == (48, 64, 3) and colourfulness(out) > 1.0
    assert psnr(image_to_luma(out), cv2.imread(str(src), cv2.IMREAD_GRAYSCALE)) >= STILL_LUMA_PSNR_MIN_DB


def test_cmyk_jpeg(cli, tmp_path):
    src = write_cmyk_jpeg(tmp_path / "print.jpg", still())
    cli.ok(cli.image(src, "-o", tmp_path / "out.png"))
    out = read_image_rgb(tmp_path / "out.png")
    assert out.shape == (48, 64, 3)
    # CMYK converted to the right picture, not its negative.
    assert psnr(image_to_luma(out), image_to_luma(still())) >= 25.0


def test_exif_orientation_is_honoured(cli, tmp_path):
    stored = still(width=64, height=48)
    stored[:, :32] = 20  # dark left half as stored; orientation 6 means "turn 90 degrees clockwise to view"
    src = write_jpeg_with_orientation(tmp_path / "phone.jpg", stored, orientation=6)
    cli.ok(cli.image(src, "-o", tmp_path / "out.png"))
    out = read_image_rgb(tmp_path / "out.png")
    assert out.shape == (64, 48, 3)  # as displayed: portrait
    luma = image_to_luma(out)
    assert luma[:28].mean() < 40 < luma[36:].mean()  # the dark half is now on top


def test_truncated_jpeg_is_refused(cli, tmp_path, snapshot):
    src = tmp_path / "cut.jpg"
    src.write_bytes(jpeg_bytes(still())[:600])
    before = snapshot(tmp_path)
    message = cli.error(cli.image(src, "-o", tmp_path / "out.png"))
    assert "damaged or truncated JPEG" in message
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name, content, words", [
    ("empty.png", b"", "empty"),
    ("notes.png", b"just some text\n" * 10, "not an image"),
    ("drawing.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not an image"),
])
def test_unsupported_or_empty_input(cli, tmp_path, name, content, words, snapshot):
    src = tmp_path / name
    src.write_bytes(content)
    before = snapshot(tmp_path)
    assert words in cli.error(cli.image(src, "-o", tmp_path / "out.png"))
    assert snapshot(tmp_path) == before


def test_video_passed_to_the_image_command(cli, tmp_path, snapshot):
    src = make_clip(tmp_path / "clip.mp4", frames=2)
    before = snapshot(tmp_path)
    message = cli.error(cli.image(src, "-o", tmp_path / "out.png"))
    assert "is a video" in message and "vidcolor" in message
    assert snapshot(tmp_path) == before


def test_directory_as_input(cli, tmp_path):
    (tmp_path / "photos").mkdir()
    assert "is a directory" in cli.error(cli.image(tmp_path / "photos", "-o", tmp_path / "out.png"))


def test_missing_input(cli, tmp_path):
    assert "does not exist" in cli.error(cli.image(tmp_path / "missing.png", "-o", tmp_path / "out.png"))


def test_one_bad_input_among_several_writes_nothing(cli, tmp_path, snapshot):
    good = write_image(tmp_path / "good.png", still())
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    before = snapshot(tmp_path)
    cli.error(cli.image(good, bad, "-o", tmp_path / "out"))
    assert snapshot(tmp_path) == before and not (tmp_path / "out").exists()


def test_existing_output_needs_overwrite(cli, tmp_path, snapshot):
    src = write_image(tmp_path / "a.png", still())
    dst = tmp_path / "out.png"
    dst.write_bytes(b"earlier")
    assert "already exists" in cli.error(cli.image(src, "-o", dst))
    assert dst.read_bytes() == b"earlier"
    cli.ok(cli.image(src, "-o", dst, "-y"))
    assert read_image_rgb(dst).shape == (48, 64, 3)


def test_output_is_the_input(cli, tmp_path, snapshot):
    src = write_image(tmp_path / "a.png", still())
    before = snapshot(tmp_path)
    assert "is the input file itself" in cli.error(cli.image(src, "-o", src, "-y"))
    assert "is the input file itself" in cli.error(cli.image(src, "-o", tmp_path, "-y"))  # folder: same name
    assert snapshot(tmp_path) == before


def test_output_folder_parent_missing(cli, tmp_path):
    src = write_image(tmp_path / "a.png", still())
    message = cli.error(cli.image(src, src, "-o", tmp_path / "missing" / "out"))
    assert "same file name" in message  # two inputs with one name: refused before anything else
    other = write_image(tmp_path / "b.png", still())
    assert "does not exist" in cli.error(cli.image(src, other, "-o", tmp_path / "missing" / "out"))
    assert not (tmp_path / "missing").exists()


def test_library_writes_only_image_suffixes(colorizer, tmp_path):
    from vidcolor import OutputError
    from vidcolor.pipeline import colorize_image

    src = write_image(tmp_path / "a.png", still())
    with pytest.raises(OutputError, match="use .png"):
        colorize_image(src, tmp_path / "out.gif", colorizer, size=64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_saturation_scales_the_colour_and_zero_gives_the_gray_picture(cli, tmp_path):
    src = write_image(tmp_path / "gray.png", still(width=70, height=45))
    outputs = {}
    for saturation in ("0", "1", "2"):
        dst = tmp_path / f"saturation-{saturation}.png"
        cli.ok(cli.image(src, "-o", dst, "--saturation", saturation))
        outputs[saturation] = read_image_rgb(dst)
    gray = outputs["0"].astype(int)
    assert np.abs(gray - gray[..., :1]).max() <= 1  # R = G = B up to rounding
    assert colourfulness(outputs["0"]) < 0.5 < colourfulness(outputs["1"]) < colourfulness(outputs["2"])
    for out in outputs.values():  # the luma is the input's whatever the colour strength
        assert psnr(image_to_luma(out), image_to_luma(still(width=70, height=45))) >= STILL_LUMA_PSNR_MIN_DB


def test_saturation_out_of_range_is_a_usage_error(cli, tmp_path):
    src = write_image(tmp_path / "gray.png", still())
    message = cli.error(cli.image(src, "-o", tmp_path / "out.png", "--saturation", "-1"), exit_code=2)
    assert "--saturation" in message
    assert not (tmp_path / "out.png").exists()


def test_saturation_multiplies_the_predicted_chroma_and_clips_it_to_range(checkpoint):
    import torch

    from vidcolor.colorizer import Colorizer, load_colorizer
    from vidcolor.model import default_config

    luma = np.random.default_rng(0).random((2, 64, 96), dtype=np.float32)
    plain = load_colorizer(str(checkpoint), "cpu").predict(luma)
    assert np.allclose(load_colorizer(str(checkpoint), "cpu", saturation=3.0).predict(luma), 3.0 * plain, atol=1e-6)
    # A network whose raw output is a constant (0.3, -0.2), i.e. chroma (0.15, -0.1) at chroma_gain 1: at 4x the
    # first channel passes the edge of the range and is clipped, the second is not.
    constant = torch.nn.Conv2d(1, 2, 1)
    with torch.no_grad():
        constant.weight.zero_()
        constant.bias.copy_(torch.tensor([0.3, -0.2]))
    config = default_config("effnet-unet")
    assert config.chroma_gain == 1.0
    bold = Colorizer(model=constant, config=config, device=torch.device("cpu"), saturation=4.0).predict(luma)
    assert np.allclose(bold[:, 0], 0.5) and np.allclose(bold[:, 1], -0.4, atol=0.01)  # bfloat16 on some CPUs
    with pytest.raises(ValueError, match="saturation"):
        load_colorizer(str(checkpoint), "cpu", saturation=-0.5)
