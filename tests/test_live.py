"""Live mode, headless: a generated file stands in for the camera; a randomly initialised network stands in for the
trained one (same cost, any colours). Checks the summary, the recording, real-time behaviour and the error cases."""
from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from media import make_clip, read_video
from vidcolor import color
from vidcolor.cli import main
from vidcolor.errors import InputError, Terminated, VidcolorError
from vidcolor.colorizer import MAX_SATURATION, choose_precision
from vidcolor.live import (MAX_LIVE_SIZE, MIN_LIVE_SIZE, SIZE_STEP_PX, CapturedFrame, LiveControls, LiveOptions,
                           NewestFrameSlot, compose_view, parse_source, run_live)

CLIP_FPS = 24
CLIP_FRAMES = 12
CLIP_W, CLIP_H = 64, 48
TEST_SIZE = 48  # working short side: small, so a loaded CI machine still runs these quickly
REQUIRED_KEYS = {"frames_shown", "frames_dropped", "fps", "latency_ms_mean", "latency_ms_p95",
                 "source_fps", "size", "device", "precision", "precision_reason"}


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("media") / "clip.mp4", frames=CLIP_FRAMES, width=CLIP_W,
                     height=CLIP_H, fps=CLIP_FPS)


def options(source, checkpoint, **overrides) -> LiveOptions:
    settings = dict(source=str(source), weights=str(checkpoint), device="cpu", size=TEST_SIZE, window=False)
    settings.update(overrides)
    return LiveOptions(**settings)


def assert_one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("vidcolor: error: ")
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if "partial" in p.name]


# ---------------------------------------------------------------------------------------------------------------
# summary and frames


def test_as_fast_as_possible_shows_every_frame_with_its_own_luma(clip, checkpoint):
    shown = []
    summary = run_live(options(clip, checkpoint, realtime=False), on_frame=lambda rgb, luma: shown.append((rgb, luma)))

    assert REQUIRED_KEYS <= summary.keys()
    assert all(isinstance(v, (int, float, str, bool, type(None))) for v in summary.values()), "summary must be flat"
    assert summary["frames_shown"] == summary["frames_read"] == CLIP_FRAMES
    assert summary["frames_dropped"] == 0
    assert summary["ended"] == "end of source"
    assert (summary["width"], summary["height"]) == (CLIP_W, CLIP_H)
    assert summary["source_fps"] == CLIP_FPS and summary["size"] == TEST_SIZE and summary["device"] == "cpu"
    assert summary["precision"] == choose_precision(torch.device("cpu")).name
    assert summary["fps"] > 0
    assert 0 <= summary["latency_ms_mean"] <= summary["latency_ms_max"]
    assert summary["latency_ms_p95"] <= summary["latency_ms_max"]

    assert len(shown) == CLIP_FRAMES
    for rgb, luma in shown:
        assert rgb.shape == (CLIP_H, CLIP_W, 3) and rgb.dtype == np.uint8
        # Luma is never predicted: wherever no channel was clipped, the output's luma is the input's (rounding).
        unclipped = ((rgb > 0) & (rgb < 255)).all(axis=-1)
        assert unclipped.mean() > 0.5
        difference = np.abs(color.image_to_luma(rgb).astype(int) - luma.astype(int))
        assert difference[unclipped].max() <= 1


def test_realtime_file_is_paced_at_its_frame_rate(clip, checkpoint):
    summary = run_live(options(clip, checkpoint))
    assert summary["realtime"] is True
    # Every frame is either shown or dropped, none lost track of.
    assert summary["frames_shown"] + summary["frames_dropped"] == summary["frames_read"] == CLIP_FRAMES
    # A file is delivered like a camera: the last frame is not available before its time.
    assert summary["seconds"] >= (CLIP_FRAMES - 1) / CLIP_FPS * 0.95


def test_slow_consumer_drops_frames_instead_of_falling_behind(tmp_path, checkpoint):
    frames = 48  # 2 s at 24 fps
    source = make_clip(tmp_path / "two-seconds.mp4", frames=frames, width=CLIP_W, height=CLIP_H, fps=CLIP_FPS)
    slow_s = 0.15  # a consumer at ~6 frames/s; handing over every frame would take 7 s

    summary = run_live(options(source, checkpoint), on_frame=lambda rgb, luma: time.sleep(slow_s))
    assert summary["frames_dropped"] > 0
    assert summary["frames_shown"] + summary["frames_dropped"] == frames
    # It ends with the source (plus one frame's work), not after working through a backlog.
    assert summary["seconds"] < frames / CLIP_FPS + 2.5
    # Latency stays around one frame's work, it does not grow with the run.
    assert summary["latency_ms_max"] < 1000 * (slow_s + 1.0)


def test_max_frames(clip, checkpoint):
    summary = run_live(options(clip, checkpoint, realtime=False, max_frames=5))
    assert summary["frames_shown"] == 5
    assert summary["ended"] == "max frames"


# ---------------------------------------------------------------------------------------------------------------
# recording


def test_recording_is_playable_complete_and_keeps_the_luma(tmp_path, clip, checkpoint):
    out = tmp_path / "live.mp4"
    summary = run_live(options(clip, checkpoint, realtime=False, record=out))
    assert summary["record"] == str(out)
    assert summary["frames_recorded"] == summary["frames_shown"] == CLIP_FRAMES
    assert leftovers(tmp_path) == []

    recorded, source = read_video(out), read_video(clip)
    assert len(recorded["y"]) == CLIP_FRAMES
    assert (recorded["width"], recorded["height"]) == (CLIP_W, CLIP_H)
    assert recorded["pix_fmt"] in ("yuv420p", "yuvj420p")
    assert recorded["rate"] == CLIP_FPS
    np.testing.assert_allclose(np.diff(recorded["pts"]), 1 / CLIP_FPS, atol=1e-3)
    # The Y plane is the source's own luma (full range, as OpenCV delivers it), up to the encoder's loss.
    for y_out, y_in in zip(recorded["y"], source["y"]):
        expected = color.limited_to_full_luma(y_in) * 255.0
        assert np.abs(y_out.astype(np.float32) - expected).mean() < 3.0


def test_odd_sized_source_records_even_yuv420p(tmp_path, checkpoint):
    source = make_clip(tmp_path / "odd.mp4", frames=4, width=65, height=49, fps=CLIP_FPS, pix_fmt="yuv444p")
    out = tmp_path / "odd-live.mp4"
    summary = run_live(options(source, checkpoint, realtime=False, record=out))
    recorded = read_video(out)
    assert (summary["width"], summary["height"]) == (65, 49)
    assert (recorded["width"], recorded["height"]) == (64, 48)
    assert recorded["pix_fmt"] in ("yuv420p", "yuvj420p")
    assert len(recorded["y"]) == 4


@pytest.mark.parametrize("stop, ended", [(KeyboardInterrupt, "interrupted"), (Terminated, "terminated")])
def test_interrupt_or_terminate_finalises_the_recording(tmp_path, clip, checkpoint, stop, ended):
    out = tmp_path / "interrupted.mp4"
    calls = []

    def interrupt_on_third(rgb, luma):
        calls.append(1)
        if len(calls) == 3:
            raise stop  # what Ctrl-C (or SIGTERM, through the CLI's handler) raises in the main thread

    summary = run_live(options(clip, checkpoint, realtime=False, record=out), on_frame=interrupt_on_third)
    assert summary["ended"] == ended
    assert summary["record"] == str(out)
    assert len(read_video(out)["y"]) == summary["frames_recorded"] >= 2
    assert leftovers(tmp_path) == []


@pytest.mark.slow  # a fresh interpreter imports torch: ~10 s on a busy 2-core machine
@pytest.mark.parametrize("stop, ended", [(signal.SIGINT, "interrupted"), (signal.SIGTERM, "terminated")])
def test_ctrl_c_or_sigterm_on_the_command_line_prints_the_summary_and_keeps_the_recording(tmp_path, checkpoint,
                                                                                          stop, ended):
    source = make_clip(tmp_path / "ten-seconds.mp4", frames=240, width=CLIP_W, height=CLIP_H, fps=CLIP_FPS)
    out = tmp_path / "stopped.mp4"
    command = [sys.executable, "-m", "vidcolor", "live", "--source", str(source), "--weights", str(checkpoint),
               "--device", "cpu", "--size", str(TEST_SIZE), "--no-window", "--record", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The temporary file appears once the encoder has written its first packet: the run is under way.
        deadline = time.monotonic() + 60
        while not leftovers(tmp_path) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert leftovers(tmp_path), "the recording never started"
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    assert f"live ({ended}):" in stderr and "Traceback" not in stderr
    assert len(read_video(out)["y"]) >= 1
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------------------------
# the command line


def test_cli_report_and_summary_line(tmp_path, clip, checkpoint):
    report, out = tmp_path / "report.json", tmp_path / "cli.mp4"
    result = CliRunner().invoke(main, ["live", "--source", str(clip), "--weights", str(checkpoint), "--device", "cpu",
                                       "--size", str(TEST_SIZE), "--no-window", "--max-frames", "6",
                                       "--as-fast-as-possible", "--record", str(out), "--report", str(report)])
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert REQUIRED_KEYS <= data.keys()
    assert not any(isinstance(v, (dict, list)) for v in data.values())
    assert data["frames_shown"] == 6 and len(read_video(out)["y"]) == 6
    assert "live (max frames): 6 frames shown, 0 dropped" in result.stderr


def test_cli_missing_file(tmp_path, checkpoint):
    result = CliRunner().invoke(main, ["live", "--source", str(tmp_path / "nope.mp4"), "--weights", str(checkpoint),
                                       "--no-window"])
    assert_one_line_error(result, "does not exist")


def test_cli_bad_camera_index(checkpoint):
    start = time.monotonic()
    result = CliRunner().invoke(main, ["live", "--source", "99", "--weights", str(checkpoint), "--no-window"])
    assert_one_line_error(result, "camera 99")
    assert time.monotonic() - start < 15


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed on exit: nothing listens there


def test_cli_url_with_nothing_listening(checkpoint):
    url = f"http://127.0.0.1:{free_port()}/live.mp4"
    result = CliRunner().invoke(main, ["live", "--source", url, "--weights", str(checkpoint), "--no-window"])
    assert_one_line_error(result, "cannot be opened", url)


def test_silent_server_times_out_instead_of_hanging(checkpoint):
    """A server that accepts the connection and never answers: opening must give up after the timeout."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    held = []
    stop = threading.Event()

    def accept_and_stay_silent():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_stay_silent, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/live.mp4"
    start = time.monotonic()
    try:
        with pytest.raises(InputError):
            run_live(options(url, checkpoint, open_timeout_s=1.0))
        assert time.monotonic() - start < 5
    finally:
        stop.set()
        thread.join()
        for connection in held:
            connection.close()
        server.close()


def test_cli_record_refuses_to_overwrite(tmp_path, clip, checkpoint):
    out = tmp_path / "exists.mp4"
    out.write_bytes(b"keep me")
    result = CliRunner().invoke(main, ["live", "--source", str(clip), "--weights", str(checkpoint), "--no-window",
                                       "--record", str(out)])
    assert_one_line_error(result, "already exists")
    assert out.read_bytes() == b"keep me"


def test_cli_record_with_an_unknown_suffix(tmp_path, clip, checkpoint):
    result = CliRunner().invoke(main, ["live", "--source", str(clip), "--weights", str(checkpoint), "--no-window",
                                       "--record", str(tmp_path / "out.unknownformat")])
    assert_one_line_error(result)
    assert leftovers(tmp_path) == []


def test_cli_window_without_a_display(monkeypatch, clip, checkpoint):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = CliRunner().invoke(main, ["live", "--source", str(clip), "--weights", str(checkpoint)])
    assert_one_line_error(result, "no display", "--no-window")


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="X11 displays only")
def test_cli_window_on_an_unreachable_display(monkeypatch, clip, checkpoint):
    # OpenCV's Qt backend aborts the process on such a display; the probe must turn that into one line.
    monkeypatch.setenv("DISPLAY", ":97")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    result = CliRunner().invoke(main, ["live", "--source", str(clip), "--weights", str(checkpoint)])
    assert_one_line_error(result, "cannot open a window", "--no-window")


def test_smoothing_strength_of_one_is_refused(clip, checkpoint):
    with pytest.raises(VidcolorError, match="smoothing"):
        run_live(options(clip, checkpoint, smooth=1.0))


def test_saturation_out_of_range_is_refused_before_anything_opens(tmp_path, clip, checkpoint):
    with pytest.raises(VidcolorError, match="saturation"):
        run_live(options(clip, checkpoint, saturation=5.0, record=tmp_path / "never.mp4"))
    assert list(tmp_path.iterdir()) == []


def test_saturation_zero_records_a_gray_picture(tmp_path, clip, checkpoint):
    out = tmp_path / "gray.mp4"
    summary = run_live(options(clip, checkpoint, realtime=False, record=out, saturation=0.0, max_frames=3))
    assert summary["saturation"] == 0.0
    chroma = np.concatenate([np.ravel(plane) for plane in read_video(out)["u"] + read_video(out)["v"]])
    assert np.abs(chroma.astype(int) - 128).max() <= 1  # no colour beyond the encoder's rounding


# ---------------------------------------------------------------------------------------------------------------
# parts


def frame(index: int) -> CapturedFrame:
    return CapturedFrame(np.zeros((2, 2), np.uint8), index, index / CLIP_FPS, time.perf_counter())


def test_slot_keeps_only_the_newest_frame():
    slot, stop = NewestFrameSlot(), threading.Event()
    for index in range(3):
        slot.put(frame(index), drop_old=True, stop=stop)
    assert slot.dropped == 2
    assert slot.take(0.1).index == 2
    assert slot.take(0.01) is None  # nothing new yet, source not ended
    slot.end()
    assert slot.ended and slot.take(0.1) is None


def test_slot_without_dropping_waits_for_the_reader():
    slot, stop = NewestFrameSlot(), threading.Event()
    slot.put(frame(0), drop_old=False, stop=stop)
    writer = threading.Thread(target=slot.put, args=(frame(1), False, stop))
    writer.start()
    writer.join(0.2)
    assert writer.is_alive(), "the second put must wait until the first frame is taken"
    assert slot.take(1).index == 0
    writer.join(2)
    assert slot.take(1).index == 1 and slot.dropped == 0


def test_parse_source():
    assert parse_source("0").kind == "camera" and parse_source("12").target == 12
    assert parse_source("rtsp://camera.local/stream").kind == "url"
    with pytest.raises(InputError, match="does not exist"):
        parse_source("/no/such/file.mp4")


def test_keys():
    controls = LiveControls(size=160, smoothing=True)
    assert controls.handle_key(-1) is None  # no key this frame
    assert controls.handle_key(ord("s")) == "smoothing" and controls.smoothing is False
    assert controls.handle_key(ord("+")) == "size" and controls.size == 160 + SIZE_STEP_PX
    controls.handle_key(ord("-"))
    controls.handle_key(ord("-"))
    assert controls.size == 160 - SIZE_STEP_PX
    for _ in range(50):
        controls.handle_key(ord("-"))
    assert controls.size == MIN_LIVE_SIZE
    for _ in range(50):
        controls.handle_key(ord("="))
    assert controls.size == MAX_LIVE_SIZE
    assert controls.handle_key(ord("q")) == "quit" and controls.handle_key(27) == "quit"
    assert controls.handle_key(ord("x")) is None


def test_colour_keys_step_the_saturation_within_range():
    controls = LiveControls(size=160, smoothing=True, saturation=1.1)
    assert controls.handle_key(ord("]")) == "saturation" and controls.saturation == 1.25
    assert controls.handle_key(ord("[")) == "saturation" and controls.saturation == 1.0
    controls.handle_key(ord("["))
    assert controls.saturation == 0.75
    for _ in range(10):
        controls.handle_key(ord("["))
    assert controls.saturation == 0.0
    for _ in range(30):
        controls.handle_key(ord("]"))
    assert controls.saturation == MAX_SATURATION


def test_colour_key_reaches_the_colorizer(checkpoint):
    from vidcolor.colorizer import load_colorizer
    from vidcolor.live import _LiveLoop

    colorizer = load_colorizer(str(checkpoint), "cpu", saturation=0.5)
    loop = _LiveLoop(LiveOptions(window=False), colorizer, None, size=160, strength=0.8, recorder=None, on_frame=None)
    assert loop.controls.saturation == 0.5
    assert loop._handle_keys(ord("]")) is False  # not a request to quit
    assert colorizer.saturation == 0.75 and "colour 0.75" in loop._status_lines()[0]


def test_compose_view_is_side_by_side_and_fits_the_screen():
    luma = np.full((48, 64), 100, np.uint8)
    colorized = np.zeros((48, 64, 3), np.uint8)
    assert compose_view(luma, colorized, ["12 fps"]).shape == (48, 128, 3)
    wide = compose_view(np.zeros((1080, 1920), np.uint8), np.zeros((1080, 1920, 3), np.uint8), [])
    assert wide.shape[1] == 1600 and wide.shape[0] == 450


# ---------------------------------------------------------------------------------------------------------------
# fewer network calls


def test_fixed_every_runs_the_network_on_fewer_frames(clip, checkpoint):
    shown = []
    summary = run_live(options(clip, checkpoint, realtime=False, every=3), on_frame=lambda rgb, luma: shown.append(rgb))
    assert summary["frames_shown"] == CLIP_FRAMES and summary["every"] == 3 and summary["every_mean"] == 3
    assert CLIP_FRAMES // 3 <= summary["network_frames"] < CLIP_FRAMES
    # Every frame still shows colour, the carried ones too.
    assert all(np.abs(rgb.astype(int) - rgb.mean(axis=2, keepdims=True)).max() > 2 for rgb in shown)


def test_slow_network_raises_every_automatically(monkeypatch, tmp_path, checkpoint):
    from vidcolor.colorizer import Colorizer

    frames = 36
    source = make_clip(tmp_path / "clip.mp4", frames=frames, width=CLIP_W, height=CLIP_H, fps=CLIP_FPS)
    real_predict = Colorizer.predict
    network_s = 0.08  # two frame intervals at 24 fps: k = 1 cannot keep up

    def slow_predict(self, luma, hints=None):
        time.sleep(network_s)
        return real_predict(self, luma, hints)

    monkeypatch.setattr(Colorizer, "predict", slow_predict)
    summary = run_live(options(source, checkpoint))
    assert summary["every"] == 0  # automatic
    assert summary["every_mean"] > 2 and summary["network_frames"] < summary["frames_shown"] / 2
    # Keeping up better: with k = 1 about every other frame would be dropped (each takes two frame intervals); now
    # only the frame that arrives second during a network call is.
    assert summary["frames_dropped"] < 0.4 * frames


def test_choose_every():
    from vidcolor.live import MAX_LIVE_EVERY, choose_every

    interval = 1 / 30
    assert choose_every(0.010, 0.005, interval) == 1  # keeps up with the network on every frame
    assert choose_every(0.030, 0.005, interval) == 2  # 5 + 30 / 2 = 20 ms < 28 ms
    assert choose_every(0.060, 0.005, interval) == 3
    assert choose_every(0.500, 0.005, interval) == MAX_LIVE_EVERY
    assert choose_every(0.010, 0.040, interval) == MAX_LIVE_EVERY  # even the rest does not fit


def test_every_out_of_range_is_refused(clip, checkpoint):
    with pytest.raises(VidcolorError, match="every"):
        run_live(options(clip, checkpoint, every=0))
    result = CliRunner().invoke(main, ["live", "--source", str(clip), "--no-window", "--every", "often"])
    assert result.exit_code == 2 and "auto" in result.output
