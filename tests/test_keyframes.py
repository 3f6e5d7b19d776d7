"""Colour keyframes in video (vidcolor/keyframes.py, `vidcolor IN OUT --keyframes DIR`): the keyframe frame keeps the
keyframe's colours, colour is carried both ways along the motion and never across a scene cut, --resume honours
keyframes, and bad keyframe folders are refused with one line and nothing written."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from media import make_clip, moving_pattern, read_video, tinted

FRAMES = 12
CUT_AT = 7


def two_shots(index: int, width: int, height: int) -> np.ndarray:
    """A moving texture, then from CUT_AT on a much darker one moving another way."""
    if index < CUT_AT:
        return moving_pattern(index, width, height)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    v = 55 + 25 * np.sin((y + 2.0 * index) / 4.0) * np.cos(x / 9.0) + 15 * np.cos((x + y) / 13.0)
    return np.repeat(np.clip(v, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


@pytest.fixture(scope="module")
def gray_clip(tmp_path_factory):
    """A gray moving pattern, lossless, whose colour version is tinted(moving_pattern(i)) with the same luma."""
    return make_clip(tmp_path_factory.mktemp("kf") / "gray.mp4", frames=FRAMES, lossless=True)


@pytest.fixture(scope="module")
def shots_clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("kf") / "shots.mp4", frames=FRAMES, lossless=True, pattern=two_shots)


def colour_frame(index: int, width: int = 64, height: int = 48) -> np.ndarray:
    return tinted(moving_pattern(index, width, height))


def keyframe_folder(path, frames: dict[int, np.ndarray]):
    path.mkdir()
    for index, rgb in frames.items():
        cv2.imwrite(str(path / f"{index}.png"), np.ascontiguousarray(rgb[..., ::-1]))
    return path


def chroma_levels(rgb: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The limited-range 8-bit Cb and Cr planes an encoder would get for rgb, at height x width."""
    from vidcolor import color
    from vidcolor.guidance import rgb_to_chroma

    chroma = rgb_to_chroma(rgb)
    return tuple(color.chroma_to_plane(cv2.resize(c, (width, height), interpolation=cv2.INTER_AREA), True)
                 for c in chroma)


def chroma_error(out: dict, index: int, rgb: np.ndarray) -> float:
    """Mean absolute difference, in 8-bit levels, between an output frame's Cb/Cr and rgb's."""
    u, v = out["u"][index], out["v"][index]
    cb, cr = chroma_levels(rgb, *u.shape)
    return float((np.abs(u.astype(int) - cb).mean() + np.abs(v.astype(int) - cr).mean()) / 2)


def test_keyframe_frame_has_the_keyframes_colours(cli, hinted_checkpoint, gray_clip, tmp_path):
    folder = keyframe_folder(tmp_path / "keys", {4: colour_frame(4)})
    dst = tmp_path / "out.mp4"
    cli.ok(cli.video(gray_clip, dst, "--keyframes", folder, "--crf", 0, "--weights", hinted_checkpoint))
    out = read_video(dst)
    assert len(out["y"]) == FRAMES
    u, v = out["u"][4], out["v"][4]
    cb, cr = chroma_levels(colour_frame(4), *u.shape)
    assert np.abs(u.astype(int) - cb).max() <= 1 and np.abs(v.astype(int) - cr).max() <= 1
    # The frame keeps its own luma: the gray input's, bit for bit at --crf 0.
    assert np.array_equal(out["y"][4], read_video(gray_clip)["y"][4])


def test_a_keyframe_of_another_size_with_the_same_aspect_ratio_is_scaled(cli, hinted_checkpoint, gray_clip, tmp_path):
    big = cv2.resize(colour_frame(0), (128, 96), interpolation=cv2.INTER_LINEAR)
    folder = keyframe_folder(tmp_path / "keys", {0: big})
    dst = tmp_path / "out.mp4"
    cli.ok(cli.video(gray_clip, dst, "--keyframes", folder, "--crf", 0, "--weights", hinted_checkpoint))
    assert chroma_error(read_video(dst), 0, colour_frame(0)) < 1.5


def test_colour_is_carried_forward_and_backward(cli, hinted_checkpoint, gray_clip, tmp_path):
    automatic = tmp_path / "automatic.mp4"
    cli.ok(cli.video(gray_clip, automatic, "--crf", 0, "--weights", hinted_checkpoint))
    forward = tmp_path / "forward.mp4"
    cli.ok(cli.video(gray_clip, forward, "--crf", 0, "--weights", hinted_checkpoint,
                     "--keyframes", keyframe_folder(tmp_path / "first", {0: colour_frame(0)})))
    backward = tmp_path / "backward.mp4"
    last = FRAMES - 1
    cli.ok(cli.video(gray_clip, backward, "--crf", 0, "--weights", hinted_checkpoint,
                     "--keyframes", keyframe_folder(tmp_path / "last", {last: colour_frame(last)})))
    auto, fwd, bwd = read_video(automatic), read_video(forward), read_video(backward)
    for index in (3, 6, 9):
        truth = colour_frame(index)
        # The random network's guess is far off; the carried colour is close to the truth.
        assert chroma_error(fwd, index, truth) < 0.5 * chroma_error(auto, index, truth)
        assert chroma_error(bwd, index, truth) < 0.5 * chroma_error(auto, index, truth)


def test_two_keyframes_beat_one(cli, hinted_checkpoint, gray_clip, tmp_path):
    last = FRAMES - 1
    one, both = tmp_path / "one.mp4", tmp_path / "both.mp4"
    cli.ok(cli.video(gray_clip, one, "--crf", 0, "--weights", hinted_checkpoint,
                     "--keyframes", keyframe_folder(tmp_path / "one", {0: colour_frame(0)})))
    cli.ok(cli.video(gray_clip, both, "--crf", 0, "--weights", hinted_checkpoint,
                     "--keyframes", keyframe_folder(tmp_path / "both", {0: colour_frame(0),
                                                                         last: colour_frame(last)})))
    errors_one = [chroma_error(read_video(one), i, colour_frame(i)) for i in range(7, last)]
    errors_both = [chroma_error(read_video(both), i, colour_frame(i)) for i in range(7, last)]
    assert np.mean(errors_both) <= np.mean(errors_one)


def test_a_keyframe_never_colours_another_shot(cli, hinted_checkpoint, shots_clip, tmp_path):
    automatic, guided = tmp_path / "automatic.mp4", tmp_path / "guided.mp4"
    cli.ok(cli.video(shots_clip, automatic, "--crf", 0, "--weights", hinted_checkpoint, "--report",
                     tmp_path / "report.json"))
    assert json.loads((tmp_path / "report.json").read_text())["scene_cuts"] == 1
    keyframe = tinted(two_shots(2, 64, 48))
    cli.ok(cli.video(shots_clip, guided, "--crf", 0, "--weights", hinted_checkpoint,
                     "--keyframes", keyframe_folder(tmp_path / "keys", {2: keyframe})))
    auto, kept = read_video(automatic), read_video(guided)
    for index in range(CUT_AT, FRAMES):  # the second shot: exactly as without keyframes
        assert np.array_equal(auto["u"][index], kept["u"][index]) and np.array_equal(auto["v"][index], kept["v"][index])
    assert not np.array_equal(auto["u"][CUT_AT - 1], kept["u"][CUT_AT - 1])  # the first shot did change


def test_json_keyframe_points_colour_the_frame(cli, hinted_checkpoint, gray_clip, tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    (folder / "5.json").write_text(json.dumps({"points": [{"x": 20, "y": 20, "color": "#3050d0", "radius": 3}]}))
    dst = tmp_path / "out.mp4"
    cli.ok(cli.video(gray_clip, dst, "--keyframes", folder, "--crf", 0, "--weights", hinted_checkpoint))
    from vidcolor.guidance import hex_to_chroma

    cb, cr = hex_to_chroma("#3050d0")
    out = read_video(dst)
    u, v = out["u"][5], out["v"][5]  # 4:2:0: pixel (20, 20) is at (10, 10) of the chroma planes
    assert abs(int(u[10, 10]) - (128 + cb * 224)) <= 2 and abs(int(v[10, 10]) - (128 + cr * 224)) <= 2


def test_resume_honours_keyframes(cli, hinted_checkpoint, gray_clip, tmp_path):
    folder = keyframe_folder(tmp_path / "keys", {0: colour_frame(0), FRAMES - 1: colour_frame(FRAMES - 1)})
    plain, resumed = tmp_path / "plain.mp4", tmp_path / "resumed.mp4"
    cli.ok(cli.video(gray_clip, plain, "--keyframes", folder, "--crf", 0, "--weights", hinted_checkpoint))
    cli.ok(cli.video(gray_clip, resumed, "--keyframes", folder, "--crf", 0, "--weights", hinted_checkpoint,
                     "--resume", "--segment-frames", 4, "--batch-size", 4))
    a, b = read_video(plain), read_video(resumed)
    for index in range(FRAMES):
        assert np.abs(a["u"][index].astype(int) - b["u"][index]).max() <= 2
        assert np.abs(a["v"][index].astype(int) - b["v"][index]).max() <= 2
    assert not list(tmp_path.glob(".*"))  # no work folder, no keyframe cache left


def test_keyframes_with_worker_processes_equal_the_one_process_run(cli, hinted_checkpoint, gray_clip, tmp_path):
    """Keyframed segments seek to the colour keyframe whose carry reaches them and carry its colour from there (no
    network) up to their warm-up, with the first pass's cache made once by the driver in the work folder: --jobs 2
    equals one process exactly."""
    frames = 30  # segments of 8: the third one's warm-up (frames 8-15) starts after keyframe 2, which it carries
    clip = make_clip(tmp_path / "gray.mp4", frames=frames)
    folder = keyframe_folder(tmp_path / "keys", {2: colour_frame(2), 20: colour_frame(20)})
    one, two, plain = tmp_path / "one.mp4", tmp_path / "two.mp4", tmp_path / "plain.mp4"
    plan = ("--keyframes", folder, "--crf", 0, "--weights", hinted_checkpoint, "--segment-frames", 8,
            "--batch-size", 4)
    cli.ok(cli.video(clip, one, *plan, "--resume", "--report", tmp_path / "report.json"))
    cli.ok(cli.video(clip, two, *plan, "--jobs", 2))
    a, b = read_video(one), read_video(two)
    assert a["pts"] == b["pts"] and len(a["y"]) == frames
    for plane in "yuv":
        assert all(np.array_equal(x, y) for x, y in zip(a[plane], b[plane])), plane
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["segment_entry"], report["segments"], report["keyframes"]) == ("seek", 4, [2, 20])
    # and close to one sequential pass, which carries colour through every frame
    cli.ok(cli.video(clip, plain, *plan[:-4]))
    c = read_video(plain)
    difference = max(np.abs(x.astype(int) - y).max() for plane in "uv" for x, y in zip(a[plane], c[plane]))
    print(f"keyframed segments vs plain: chroma max {difference}")
    assert difference <= 2


def test_weights_without_a_hint_path_still_carry_keyframes(cli, gray_clip, tmp_path):
    automatic, guided = tmp_path / "automatic.mp4", tmp_path / "guided.mp4"
    cli.ok(cli.video(gray_clip, automatic, "--crf", 0))
    cli.ok(cli.video(gray_clip, guided, "--crf", 0,
                     "--keyframes", keyframe_folder(tmp_path / "keys", {0: colour_frame(0)})))
    truth = colour_frame(3)
    assert chroma_error(read_video(guided), 3, truth) < 0.5 * chroma_error(read_video(automatic), 3, truth)


@pytest.mark.parametrize("files, expected", [
    ({"99.png": "image"}, "past the end"),
    ({"3.png": "wide"}, "aspect ratio"),
    ({"3.json": "{\"points\": [}"}, "not valid JSON"),
    ({"3.json": "{\"points\": [{\"x\": 1, \"y\": 2}]}"}, "has no \"color\""),
    ({"3.json": "{\"points\": [{\"x\": 1, \"y\": 2, \"color\": \"teal\"}]}"}, "is not a colour"),
    ({"3.json": "{\"points\": [{\"x\": 500, \"y\": 2, \"color\": \"#102030\"}]}"}, "outside"),
    ({"frame3.png": "image"}, "0-based frame index"),
    ({"3.png": "garbage"}, "3.png"),
])
def test_bad_keyframe_folders_are_refused(cli, hinted_checkpoint, gray_clip, tmp_path, snapshot, files, expected):
    folder = tmp_path / "keys"
    folder.mkdir()
    for name, kind in files.items():
        path = folder / name
        if kind == "image":
            cv2.imwrite(str(path), colour_frame(0))
        elif kind == "wide":
            cv2.imwrite(str(path), np.zeros((48, 96, 3), np.uint8))
        elif kind == "garbage":
            path.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
        else:
            path.write_text(kind)
    before = snapshot(tmp_path)
    message = cli.error(cli.video(gray_clip, tmp_path / "out.mp4", "--keyframes", folder,
                                  "--weights", hinted_checkpoint))
    assert expected in message and str(folder) in message
    assert snapshot(tmp_path) == before


def test_a_missing_keyframes_folder_is_refused(cli, gray_clip, tmp_path):
    message = cli.error(cli.video(gray_clip, tmp_path / "out.mp4", "--keyframes", tmp_path / "nowhere"))
    assert "does not exist" in message


def test_backward_carry_is_bounded(monkeypatch, gray_clip, tmp_path):
    """The first pass keeps at most MAX_CARRY_FRAMES frames, and colour is carried back no further."""
    from vidcolor import keyframes
    from vidcolor.video_io import VideoReader

    monkeypatch.setattr(keyframes, "MAX_CARRY_FRAMES", 4)
    folder = keyframe_folder(tmp_path / "keys", {10: colour_frame(10)})
    cache = tmp_path / "cache"
    cache.mkdir()
    guide = keyframes.KeyframeGuide(folder, 64, 48, False, (48, 64), cache)
    with VideoReader(gray_clip, with_audio=False) as reader:
        guide.prepare((item for kind, item in reader if kind == "video"), None, 64)
    assert sorted(guide._backward) == [7, 8, 9]  # 3 steps back from frame 10, then the carry ends
    assert guide.frames == FRAMES


def test_exact_edge_aware_spread_keeps_the_known_and_stops_at_edges():
    """guidance.edge_aware_spread(exact=True): known pixels keep their value, unknown ones on the same surface take
    it, and a strong luma edge stops it (beyond, the spread decays to 0)."""
    from vidcolor.guidance import edge_aware_spread

    luma = np.full((20, 30), 0.3, np.float32)
    luma[:, 20:] = 0.9  # a strong edge at column 20
    target = np.zeros((1, 20, 30), np.float32)
    target[0, :, :5] = 0.2
    known = np.zeros((20, 30), np.float32)
    known[:, :5] = 1.0
    out = edge_aware_spread(luma, target, known, exact=True)
    assert np.array_equal(out[0, :, :5], target[0, :, :5])
    assert np.abs(out[0, :, 5:20] - 0.2).max() < 0.01  # the same surface: the known value
    assert np.abs(out[0, :, 21:]).max() < 0.01  # behind the edge: nothing


def test_content_entering_a_pan_takes_the_carried_colour_of_its_surface():
    """A carry step over a fast pan: the band that entered the frame is new to the carry. Where it continues a
    reached surface it takes that surface's carried colour with the trust of carried colour; where a strong edge
    separates it from every reached pixel it gets no trust (the network colours it)."""
    from vidcolor.keyframes import CARRY_EDGE_MARGIN_PX, fill_entering, REACHED_TRUST, Carry, carry_step, new_carry_flow

    height, width, step, bright = 64, 128, 30, 6
    rng = np.random.default_rng(3)
    scene = cv2.GaussianBlur(rng.uniform(60, 180, (height, width + step)).astype(np.float32), (0, 0), 2.0)
    scene[:, width + step - bright:] = 250  # a bright, flat object that only the later frame shows
    prev = np.clip(scene[:, :width], 0, 255).astype(np.uint8)
    cur = np.clip(scene[:, step:], 0, 255).astype(np.uint8)  # the camera moved right by step pixels
    chroma = np.zeros((2, height, width), np.float32)
    chroma[1] = 0.2  # reddish everywhere the keyframe saw
    carry = carry_step(Carry(chroma, np.ones((height, width), np.float32), 0), new_carry_flow(), prev, cur)
    assert carry is not None
    assert np.abs(carry.chroma[1][:, :width - step - 8] - 0.2).max() < 0.02  # content both frames show
    # Entered from outside the frame (past the edge margin the carry allows): textured surface continuing the
    # reached one ...
    entered = slice(width - step + int(CARRY_EDGE_MARGIN_PX) + 2, width - bright - 2)
    assert np.abs(carry.chroma[1][4:-4, entered] - 0.2).max() < 0.03
    assert carry.trust[4:-4, entered].min() >= REACHED_TRUST * 0.9
    # A bright object behind a strong edge, which no carry reached, is not filled (with a flat object at the frame's
    # edge the flow itself may claim it: here the trust says what was reached).
    trust = np.ones((height, width), np.float32)
    trust[:, width - step:] = 0.0
    filled_chroma, filled_trust = fill_entering(chroma.copy(), trust, cur)
    assert np.abs(filled_chroma[1][:, width - step:width - bright - 2] - 0.2).max() < 0.03
    assert filled_trust[:, width - bright + 1:].max() < 0.05


def test_keyframes_with_fewer_network_calls(cli, hinted_checkpoint, gray_clip, tmp_path):
    # With --every 3 the keyframe frame still gets exactly its colours (without a network call), and the frames
    # after it that the network skips get the carried keyframe colour blended with the smoother's.
    folder = keyframe_folder(tmp_path / "keys", {4: colour_frame(4)})
    dst, report = tmp_path / "out.mp4", tmp_path / "report.json"
    automatic = tmp_path / "automatic.mp4"
    cli.ok(cli.video(gray_clip, automatic, "--crf", 0, "--weights", hinted_checkpoint, "--every", 3))
    cli.ok(cli.video(gray_clip, dst, "--keyframes", folder, "--crf", 0, "--weights", hinted_checkpoint,
                     "--every", 3, "--report", report))
    summary = json.loads(report.read_text())
    assert summary["network_frames"] < FRAMES - 1  # the keyframe and carried frames had no network call
    out, auto = read_video(dst), read_video(automatic)
    assert len(out["y"]) == FRAMES
    assert chroma_error(out, 4, colour_frame(4)) < 1.0
    for index in (5, 6, 7):
        truth = colour_frame(index)
        assert chroma_error(out, index, truth) < chroma_error(auto, index, truth)


def _zoom_views(frames: int, height: int = 96, width: int = 128):
    """A slow, off-centre zoom (sub-pixel steps) over a textured scene with a colour pattern of its own: gray views
    (uint8) and their chroma (2 x h x w), rendered from the same scene by cubic interpolation."""
    rng = np.random.default_rng(5)
    scene = cv2.GaussianBlur(rng.uniform(0, 255, (height, width)).astype(np.float32), (0, 0), 1.5)
    scene = cv2.normalize(scene, None, 30, 220, cv2.NORM_MINMAX)
    paint = cv2.GaussianBlur(rng.uniform(-0.3, 0.3, (2, height, width)).astype(np.float32), (0, 0), 2.0)
    lumas, chromas = [], []
    for t in range(frames):
        scale = 1.012 ** t
        matrix = cv2.getRotationMatrix2D((0.6 * width, 0.45 * height), 0.0, scale)
        view = lambda plane: cv2.warpAffine(plane, matrix, (width, height), flags=cv2.INTER_CUBIC,
                                            borderMode=cv2.BORDER_REFLECT_101)
        lumas.append(np.clip(view(scene), 0, 255).astype(np.uint8))
        chromas.append(np.stack([view(paint[0]), view(paint[1])]))
    return lumas, chromas


def test_anchored_carry_reads_the_keyframe_and_drifts_less_than_a_chained_one():
    """A carry follows each pixel back to its place in the keyframe and reads the colour there (Carry.at_keyframe):
    over a 30-frame slow zoom it stays closer to the true colour than the same carry re-warping its own colour from
    frame to frame (no anchor), which blurs and drifts a little more at every step."""
    from vidcolor.keyframes import Carry, carry_step, new_carry_flow

    lumas, chromas = _zoom_views(30)
    anchored = Carry.at_keyframe(chromas[0], lumas[0])
    assert np.array_equal(anchored.anchor.map_x[5], np.arange(lumas[0].shape[1], dtype=np.float32))
    chained = Carry(chromas[0], np.ones(lumas[0].shape, np.float32), 0)
    flow_a, flow_c = new_carry_flow(), new_carry_flow()
    for t in range(1, len(lumas)):
        anchored = carry_step(anchored, flow_a, lumas[t - 1], lumas[t])
        chained = carry_step(chained, flow_c, lumas[t - 1], lumas[t])
    inner = (slice(None), slice(8, -8), slice(8, -8))  # away from the edges, where the zoom brings no new content

    def error(carry):
        return float(np.abs(carry.chroma - chromas[-1])[inner].mean())

    assert error(anchored) < 0.8 * error(chained), (error(anchored), error(chained))
    assert anchored.anchor.valid[8:-8, 8:-8].mean() > 0.95
