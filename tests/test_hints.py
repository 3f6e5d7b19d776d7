"""Colour hints for stills (`vidcolor image IN -o OUT --hints PATH`, vidcolor/guidance.py): JSON points, PNG stroke
layers and folders of them; what the user asked for is what they get at the hinted pixels; bad hint files are
refused with one line naming the file and nothing written."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from media import read_image_rgb, still, write_image

RED = "#c83c28"
BLUE = "#2850c8"


def luma_matching(hex_colour: str, shape=(48, 64)) -> np.ndarray:
    """A gray still whose luma equals the hint colours' own, so that their chroma fits in RGB at every pixel."""
    from vidcolor.color import image_to_luma

    rgb = np.array([[int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]], np.uint8)[None]
    level = int(image_to_luma(rgb)[0, 0])
    return np.full((*shape, 3), level, np.uint8)


def chroma_at(rgb: np.ndarray, x: int, y: int) -> tuple[float, float]:
    """(Cb, Cr) of one pixel in 8-bit levels around 0."""
    from vidcolor import color

    r, g, b = (rgb[y, x].astype(np.float64) / 255.0)
    _, cb, cr = color.rgb_to_ycbcr(r, g, b)
    return cb * 255.0, cr * 255.0


def hint_chroma(hex_colour: str) -> tuple[float, float]:
    from vidcolor.guidance import hex_to_chroma

    cb, cr = hex_to_chroma(hex_colour)
    return cb * 255.0, cr * 255.0


def hinted_image(cli, weights, *args):
    """`vidcolor image ...` with weights that take hints (cli.image uses the plain test weights)."""
    return cli.invoke("image", *args, "--weights", weights, "--size", 64)


def write_points(path, points) -> None:
    path.write_text(json.dumps({"points": points}))


def test_points_are_kept_and_spread(cli, hinted_checkpoint, tmp_path):
    src = write_image(tmp_path / "in.png", luma_matching(RED))
    hints = tmp_path / "hints.json"
    write_points(hints, [{"x": 12, "y": 10, "color": RED}, {"x": 50, "y": 40, "color": RED, "radius": 3}])
    dst = tmp_path / "out.png"
    cli.ok(hinted_image(cli, hinted_checkpoint, src, "-o", dst, "--hints", hints))
    out = read_image_rgb(dst)
    want = hint_chroma(RED)
    for x, y in ((12, 10), (50, 40)):
        got = chroma_at(out, x, y)
        assert abs(got[0] - want[0]) <= 4 and abs(got[1] - want[1]) <= 4, (got, want)
    # Nearby pixels of the same (flat) surface follow the hint, not the network's own guess.
    near = chroma_at(out, 15, 12)
    assert abs(near[1] - want[1]) < abs(want[1]) / 2


def test_a_png_stroke_layer_is_kept(cli, hinted_checkpoint, tmp_path):
    src = write_image(tmp_path / "in.png", luma_matching(BLUE))
    layer = np.zeros((48, 64, 4), np.uint8)
    cv2.line(layer, (5, 30), (40, 30), (0xc8, 0x50, 0x28, 255), 2)  # BGRA: #2850c8
    cv2.imwrite(str(tmp_path / "strokes.png"), layer)
    dst = tmp_path / "out.png"
    cli.ok(hinted_image(cli, hinted_checkpoint, src, "-o", dst, "--hints", tmp_path / "strokes.png"))
    out = read_image_rgb(dst)
    want = hint_chroma(BLUE)
    for x in (5, 20, 40):
        got = chroma_at(out, x, 30)
        assert abs(got[0] - want[0]) <= 4 and abs(got[1] - want[1]) <= 4, (x, got, want)


def test_a_hints_folder_goes_by_input_name(cli, hinted_checkpoint, tmp_path):
    a = write_image(tmp_path / "a.png", luma_matching(RED))
    b = write_image(tmp_path / "b.png", luma_matching(RED))
    folder = tmp_path / "hints"
    folder.mkdir()
    write_points(folder / "a.json", [{"x": 30, "y": 20, "color": RED}])
    out = tmp_path / "out"
    cli.ok(hinted_image(cli, hinted_checkpoint, a, b, "-o", out, "--hints", folder))
    want = hint_chroma(RED)
    got_a = chroma_at(read_image_rgb(out / "a.png"), 30, 20)
    got_b = chroma_at(read_image_rgb(out / "b.png"), 30, 20)
    assert abs(got_a[1] - want[1]) <= 4
    assert abs(got_b[1] - want[1]) > 4  # b has no hint file: automatic colour


def test_no_hints_is_the_automatic_mode(cli, hinted_checkpoint, tmp_path):
    src = write_image(tmp_path / "in.png", still())
    empty = tmp_path / "empty.json"
    write_points(empty, [])
    plain, hinted = tmp_path / "plain.png", tmp_path / "hinted.png"
    cli.ok(hinted_image(cli, hinted_checkpoint, src, "-o", plain))
    cli.ok(hinted_image(cli, hinted_checkpoint, src, "-o", hinted, "--hints", empty))
    assert np.array_equal(read_image_rgb(plain), read_image_rgb(hinted))


def test_the_hint_path_leaves_the_automatic_path_alone(checkpoint, tmp_path):
    """Adding a hint path to trained weights (what train --hints does) does not change what they do without hints."""
    from dataclasses import replace

    import torch

    from vidcolor.model import build_model
    from vidcolor.weights import load_model

    model, config, _ = load_model(str(checkpoint))
    hinted = build_model(replace(config, hints=True))
    hinted.load_state_dict(model.state_dict(), strict=False)
    hinted.copy_decoder_to_hint_path()
    hinted.eval()
    luma = torch.rand(2, 1, 40, 56)
    hints = torch.zeros(2, 3, 40, 56)
    hints[:, 0, 10, 10], hints[:, 2, 10, 10] = 0.5, 1.0
    with torch.no_grad():
        assert torch.equal(model(luma), hinted(luma))
        assert torch.equal(model(luma), hinted(luma, hints))  # at step 0 the hint path is the automatic one


def test_hints_through_the_python_api(hinted_checkpoint, tmp_path):
    import vidcolor

    colorizer = vidcolor.load_colorizer(str(hinted_checkpoint), "cpu")
    src = write_image(tmp_path / "in.png", luma_matching(RED))
    hints = vidcolor.Hints(points=(vidcolor.ColorPoint(x=20, y=20, cb=hint_chroma(RED)[0] / 255,
                                                       cr=hint_chroma(RED)[1] / 255),))
    summary = vidcolor.colorize_image(src, tmp_path / "out.png", colorizer, size=64, hints=hints)
    assert summary["hints"]["points"] == 1
    got = chroma_at(read_image_rgb(tmp_path / "out.png"), 20, 20)
    assert abs(got[1] - hint_chroma(RED)[1]) <= 4
    loaded = vidcolor.load_hints(write_json(tmp_path / "h.json", [{"x": 1, "y": 2, "color": "#fff"}]), 64, 48)
    assert loaded.points[0].x == 1 and abs(loaded.points[0].cb) < 1e-6


def write_json(path, points):
    write_points(path, points)
    return path


def test_weights_without_a_hint_path_refuse_hints(cli, tmp_path):
    src = write_image(tmp_path / "in.png", still())
    hints = write_json(tmp_path / "h.json", [{"x": 1, "y": 2, "color": RED}])
    message = cli.error(cli.image(src, "-o", tmp_path / "out.png", "--hints", hints))
    assert "take no colour hints" in message


@pytest.mark.parametrize("content, expected", [
    ("{\"points\": [", "not valid JSON"),
    ("[1, 2]", "\"points\" list"),
    ("{\"points\": [{\"y\": 2, \"color\": \"#102030\"}]}", "has no \"x\""),
    ("{\"points\": [{\"x\": \"1\", \"y\": 2, \"color\": \"#102030\"}]}", "must be a number"),
    ("{\"points\": [{\"x\": 1, \"y\": 2, \"color\": \"#12345g\"}]}", "is not a colour"),
    ("{\"points\": [{\"x\": 1, \"y\": 2, \"color\": 7}]}", "is not a colour"),
    ("{\"points\": [{\"x\": 64, \"y\": 2, \"color\": \"#102030\"}]}", "outside the 64x48 picture"),
    ("{\"points\": [{\"x\": -1, \"y\": 2, \"color\": \"#102030\"}]}", "outside"),
    ("{\"points\": [{\"x\": 1, \"y\": 2, \"color\": \"#102030\", \"radius\": 0}]}", "radius"),
    ("\xff\xfe", "not valid JSON"),
])
def test_bad_hint_files_are_refused(cli, hinted_checkpoint, tmp_path, snapshot, content, expected):
    src = write_image(tmp_path / "in.png", still())
    hints = tmp_path / "hints.json"
    hints.write_bytes(content.encode("latin-1"))
    before = snapshot(tmp_path)
    message = cli.error(hinted_image(cli, hinted_checkpoint, src, "-o", tmp_path / "out.png", "--hints", hints))
    assert expected in message and str(hints) in message
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("layer, expected", [
    (np.zeros((48, 64, 3), np.uint8), "alpha channel"),
    (np.zeros((24, 32, 4), np.uint8), "must have the picture's size"),
])
def test_bad_png_layers_are_refused(cli, hinted_checkpoint, tmp_path, snapshot, layer, expected):
    src = write_image(tmp_path / "in.png", still())
    cv2.imwrite(str(tmp_path / "layer.png"), layer)
    before = snapshot(tmp_path)
    message = cli.error(hinted_image(cli, hinted_checkpoint, src, "-o", tmp_path / "out.png",
                                     "--hints", tmp_path / "layer.png"))
    assert expected in message
    assert snapshot(tmp_path) == before


def test_a_missing_hint_file_is_refused(cli, hinted_checkpoint, tmp_path):
    src = write_image(tmp_path / "in.png", still())
    message = cli.error(hinted_image(cli, hinted_checkpoint, src, "-o", tmp_path / "out.png",
                                     "--hints", tmp_path / "nope.json"))
    assert "do not exist" in message


def test_a_folder_with_two_hint_files_for_one_input_is_refused(cli, hinted_checkpoint, tmp_path):
    src = write_image(tmp_path / "in.png", still())
    folder = tmp_path / "hints"
    folder.mkdir()
    write_points(folder / "in.json", [])
    cv2.imwrite(str(folder / "in.png"), np.zeros((48, 64, 4), np.uint8))
    message = cli.error(hinted_image(cli, hinted_checkpoint, src, "-o", tmp_path / "out.png", "--hints", folder))
    assert "in.json" in message and "in.png" in message


def test_weights_that_do_not_fit_the_network_are_one_line(cli, hinted_checkpoint, tmp_path):
    """A checkpoint from another version of the hint path (a tensor missing) is refused with one line."""
    import torch

    from vidcolor.weights import read_checkpoint

    checkpoint = read_checkpoint(hinted_checkpoint)
    del checkpoint["state_dict"]["hint_gate.weight"]
    old = tmp_path / "old.pt"
    torch.save(checkpoint, old)
    src = write_image(tmp_path / "in.png", still())
    message = cli.error(hinted_image(cli, old, src, "-o", tmp_path / "out.png"))
    assert "does not fit" in message and str(old) in message
