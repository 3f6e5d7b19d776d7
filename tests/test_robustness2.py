"""Round 2 of real-world inputs (issue 18): files that gave wrong output with exit 0, runs that failed where they
should succeed, and messages that came too late or said the wrong thing. Every input is generated here."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from media import (make_clip, make_cover_art_first_mp4, make_edit_list_mp4, make_interlaced_clip, make_joined_ts,
                   make_repeated_pts_mkv, png_with_claimed_size, read_image_rgb, read_video, still, write_image,
                   write_png_with_orientation)


# ---------------------------------------------------------------------------------------------------------------
# 1, 2, 12, 13: video inputs that came out wrong, or made the run die part-way


def test_cover_art_first_is_not_taken_for_the_film(cli, tmp_path):
    src = make_cover_art_first_mp4(tmp_path / "tagged.mp4", frames=12)
    dst = tmp_path / "out.mp4"
    cli.ok(cli.video(src, dst))
    out = read_video(dst)
    assert len(out["y"]) == 12 and (out["width"], out["height"]) == (64, 48)
    assert out["has_audio"]
    with av.open(str(dst)) as container:  # the cover is kept, as cover art
        covers = [s for s in container.streams.video if s.disposition & av.stream.Disposition.attached_pic]
        assert len(covers) == 1 and covers[0].codec_context.name == "png"


def test_cover_art_is_named_where_the_container_cannot_hold_it(cli, tmp_path):
    src = make_cover_art_first_mp4(tmp_path / "tagged.mp4", frames=6)
    result = cli.ok(cli.video(src, tmp_path / "out.mkv"))
    assert "cover art" in result.stderr
    assert len(read_video(tmp_path / "out.mkv")["y"]) == 6


def test_only_cover_art_is_no_video(cli, tmp_path):
    picture = tmp_path / "cover.png"
    write_image(picture, still())
    src = tmp_path / "song.mp4"
    with av.open(str(src), "w") as out:
        cover = out.add_stream("png")
        cover.width, cover.height, cover.pix_fmt = 64, 48, "rgb24"
        cover.disposition = av.stream.Disposition.attached_pic
        audio = out.add_stream("aac", rate=48000)
        packet = av.Packet(picture.read_bytes())
        packet.stream, packet.pts, packet.dts = cover, 0, 0
        out.mux(packet)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 48000, 0
        for packet in audio.encode(frame):
            out.mux(packet)
        for packet in audio.encode(None):
            out.mux(packet)
    assert "no video stream (it has: audio, cover art)" in cli.error(cli.video(src, tmp_path / "out.mp4"))


@pytest.mark.parametrize("name, codec", [("dvr.h264", "libx264"), ("raspivid.hevc", "libx265")])
def test_raw_annex_b_stream_gets_timestamps_from_its_frame_rate(cli, tmp_path, name, codec):
    src = make_clip(tmp_path / name, frames=20, fps=25, codec=codec)
    dst = tmp_path / "out.mp4"
    cli.ok(cli.video(src, dst))
    pts = read_video(dst)["pts"]
    assert len(pts) == 20
    assert pts == pytest.approx([i / 25 for i in range(20)], abs=1e-3)


def test_joined_recordings_whose_timestamps_restart(cli, tmp_path):
    src = make_joined_ts(tmp_path / "joined.ts", frames_each=12)
    dst = tmp_path / "out.mp4"
    result = cli.ok(cli.video(src, dst))
    assert "went back or repeated" in result.stderr and result.stderr.startswith("vidcolor: warning: ")
    out = read_video(dst)
    assert len(out["y"]) == 24 and out["has_audio"]
    assert all(b > a for a, b in zip(out["pts"], out["pts"][1:]))
    assert out["pts"][-1] - out["pts"][0] == pytest.approx(23 / 24, abs=0.01)  # the second half follows on


def test_joined_recordings_with_resume(cli, tmp_path):
    src = make_joined_ts(tmp_path / "joined.ts", frames_each=12)
    dst = tmp_path / "out.mkv"
    result = cli.ok(cli.video(src, dst, "--resume", "--segment-frames", "10"))
    assert "went back or repeated" in result.stderr
    out = read_video(dst)
    assert len(out["y"]) == 24 and out["has_audio"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["joined.ts", "out.mkv"]


@pytest.mark.parametrize("resume", [False, True])
def test_joined_recordings_with_two_audio_tracks(cli, tmp_path, resume):
    """Each track follows on along its own timeline: the tracks stay together, and with the video."""
    src = make_joined_ts(tmp_path / "joined.ts", frames_each=12, second_audio=True)
    dst = tmp_path / "out.mkv"
    result = cli.ok(cli.video(src, dst, *(["--resume", "--segment-frames", "10"] if resume else [])))
    if not resume:  # one restart in each of the three streams (one timeline shared by the tracks counts more)
        assert "3 timestamps went back or repeated" in result.stderr
    with av.open(str(dst)) as container:
        spans = []
        for stream in container.streams.audio:
            stamps = [float(p.pts * p.time_base) for p in container.demux(stream) if p.size and p.pts is not None]
            container.seek(0)
            assert all(b > a for a, b in zip(stamps, stamps[1:]))
            spans.append((stamps[0], stamps[-1]))
    assert len(spans) == 2
    assert spans[0] == pytest.approx(spans[1], abs=0.1)
    assert spans[0][1] - spans[0][0] == pytest.approx(1.0, abs=0.15)  # two recordings of 0.5 s, one after the other


def test_repeated_timestamps_in_matroska(cli, tmp_path):
    src = make_repeated_pts_mkv(tmp_path / "cut.mkv", frames=8, repeated=(3, 6))
    dst = tmp_path / "out.mp4"
    result = cli.ok(cli.video(src, dst))
    assert "2 timestamps went back or repeated" in result.stderr
    pts = read_video(dst)["pts"]
    assert len(pts) == 8 and all(b > a for a, b in zip(pts, pts[1:]))


@pytest.mark.parametrize("resume", [False, True])
def test_edit_list_is_not_taken_for_lost_frames(cli, tmp_path, resume):
    src = make_edit_list_mp4(tmp_path / "cut.mp4", frames=15, skipped=5)
    dst, report = tmp_path / "out.mp4", tmp_path / "report.json"
    result = cli.ok(cli.video(src, dst, "--report", report, *(["--resume"] if resume else [])))
    assert result.stderr == ""
    summary = json.loads(report.read_text())
    assert summary["frames"] == 10 and summary["frames_lost"] == 0 and summary["frames_expected"] == 10
    assert len(read_video(dst)["y"]) == 10


@pytest.mark.parametrize("top_field_first, field_order", [(True, 2), (False, 3)])
def test_interlaced_input_stays_interlaced(cli, tmp_path, top_field_first, field_order):
    src = make_interlaced_clip(tmp_path / "camcorder.mp4", top_field_first=top_field_first)
    with av.open(str(src)) as container:
        assert container.streams.video[0].codec_context.field_order == field_order
    dst = tmp_path / "out.mp4"
    cli.ok(cli.video(src, dst))
    with av.open(str(dst)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.field_order == field_order
        assert next(container.decode(stream)).interlaced_frame


# ---------------------------------------------------------------------------------------------------------------
# 6, 7, 15 and 16-bit: stills


@pytest.mark.parametrize("name", ["a-colour.gif", "x.mp4", "a.jgp"])
def test_image_output_named_like_a_file_is_not_made_a_folder(cli, tmp_path, snapshot, name):
    src = write_image(tmp_path / "a.png", still())
    before = snapshot(tmp_path)
    message = cli.error(cli.image(src, "-o", tmp_path / name))
    assert f"cannot write an image named '{name}'" in message
    assert snapshot(tmp_path) == before and not (tmp_path / name).exists()


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_applies_to_images_with_alpha(cli, tmp_path, orientation):
    rgb = still(64, 48)
    alpha = np.zeros((48, 64), np.uint8)
    alpha[:10, :20] = 255  # an opaque corner: shows where the alpha went
    plain = write_png_with_orientation(tmp_path / "plain.png", rgb, orientation)
    with_alpha = write_png_with_orientation(tmp_path / "alpha.png", np.dstack([rgb, alpha]), orientation)
    cli.ok(cli.image(plain, with_alpha, "-o", tmp_path / "out"))
    out_plain = read_image_rgb(tmp_path / "out" / "plain.png")
    out_alpha = read_image_rgb(tmp_path / "out" / "alpha.png")
    assert out_alpha.shape[:2] == out_plain.shape[:2] == ((64, 48) if orientation in (6, 8) else (48, 64))
    assert np.array_equal(out_alpha[..., :3], out_plain)
    turned = {3: np.rot90(alpha, 2), 6: np.rot90(alpha, -1), 8: np.rot90(alpha, 1)}[orientation]
    assert np.array_equal(out_alpha[..., 3], turned)


def test_large_still_in_strips_matches_the_whole_image_path(colorizer, monkeypatch):
    from vidcolor import colorizer as colorizer_module
    from vidcolor.color import image_to_luma

    rgb = still(1280, 720)
    luma = image_to_luma(rgb)
    whole = colorizer.colorize_into(luma, np.empty((720, 1280, 3), np.uint8), size=64)
    monkeypatch.setattr(colorizer_module, "STRIP_MIN_PIXELS", 0)
    strips = colorizer.colorize_into(luma, np.empty((720, 1280, 3), np.uint8), size=64)
    assert np.abs(whole.astype(int) - strips.astype(int)).max() <= 1
    assert (whole != strips).mean() < 0.001


def test_large_still_is_colorized_in_bounded_memory(colorizer, tmp_path):
    """A 4000 x 4000 gray PNG: the numpy memory at the peak stays within 8 bytes per pixel (output 3, luma 1, the
    rest strips); full-size float chroma and merge copies took over 30."""
    import tracemalloc

    from vidcolor.pipeline import colorize_image

    y, x = np.mgrid[0:4000, 0:4000]
    src = write_image(tmp_path / "scan.png", ((x // 100 + y // 100) % 2 * 120 + 60).astype(np.uint8))
    del x, y
    tracemalloc.start()
    try:
        colorize_image(src, tmp_path / "out.png", colorizer, size=64)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * 4000 * 4000, peak / 4000 / 4000
    assert cv2.imread(str(tmp_path / "out.png")).shape == (4000, 4000, 3)


def test_still_too_large_to_decode_is_refused_with_its_size(cli, tmp_path):
    src = png_with_claimed_size(tmp_path / "huge.png", 40000, 40000)
    message = cli.error(cli.image(src, "-o", tmp_path / "out.png"))
    assert "40000 x 40000 pixels, too large" in message


# ---------------------------------------------------------------------------------------------------------------
# 16, 17: checks that came too late or said the wrong thing


@pytest.mark.parametrize("where", ["missing-folder/report.json", "a-file/report.json"])
def test_unwritable_report_is_refused_before_any_work(cli, tmp_path, clip_with_audio, where):
    (tmp_path / "a-file").write_text("a file, not a folder")
    dst = tmp_path / "out.mp4"
    message = cli.error(cli.video(clip_with_audio, dst, "--report", tmp_path / where))
    assert "report" in message and not dst.exists()
    image = write_image(tmp_path / "a.png", still())
    message = cli.error(cli.image(image, "-o", tmp_path / "out.png", "--report", tmp_path / where))
    assert "report" in message and not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero"])
def test_special_files_are_named_for_what_they_are(cli, tmp_path, kind):
    if kind == "fifo":
        src = tmp_path / "pipe.mp4"
        os.mkfifo(src)
        words = "is a FIFO (named pipe)"
    else:
        src = Path(kind)
        words = "is a character device"
    assert words in cli.error(cli.video(src, tmp_path / "out.mp4"))
    assert words in cli.error(cli.image(src, "-o", tmp_path / "out.png"))
    assert sorted(p.name for p in tmp_path.iterdir()) == (["pipe.mp4"] if kind == "fifo" else [])


# ---------------------------------------------------------------------------------------------------------------
# 18 and two runs writing one OUT: nothing left behind, nothing replaced


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_partial_of_a_killed_run_is_removed(cli, tmp_path, clip_with_audio):
    dst = tmp_path / "out.mp4"
    stale = tmp_path / f".out.vidcolor-{dead_pid()}.partial.mp4"
    stale.write_bytes(b"half a file from a run killed with SIGKILL")
    alive = tmp_path / ".out.vidcolor-1.partial.mp4"  # pid 1 is alive: another run's, left alone
    alive.write_bytes(b"a live run's")
    cli.ok(cli.video(clip_with_audio, dst))
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name, "out.mp4"]


SLOW_MAIN = (
    "import sys, time\n"
    "from vidcolor.colorizer import Colorizer\n"
    "predict = Colorizer.predict\n"
    "def slow_predict(self, *args, **kwargs):\n"
    "    time.sleep(0.05)\n"
    "    return predict(self, *args, **kwargs)\n"
    "Colorizer.predict = slow_predict\n"
    "from vidcolor import pipeline\n"
    "abort = pipeline.VideoWriter.abort\n"
    "def slow_abort(self):\n"
    "    time.sleep(0.3)  # the clean-up takes a moment, as on a busy machine: the second Ctrl-C lands inside it\n"
    "    abort(self)\n"
    "pipeline.VideoWriter.abort = slow_abort\n"
    "from vidcolor.cli import main\n"
    "main(sys.argv[1:], prog_name='vidcolor')\n"
)


def test_two_quick_interrupts_leave_no_partial(checkpoint, tmp_path):
    src = make_clip(tmp_path / "long.mp4", frames=300, width=32, height=32, audio=True)
    dst = tmp_path / "out.mp4"
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_MAIN, str(src), str(dst), "--weights", str(checkpoint), "--size", "32",
         "--batch-size", "2", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        deadline = time.monotonic() + 120
        while not any(tmp_path.glob(".out.vidcolor-*.partial.mp4")) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert stderr.splitlines()[-1].startswith("vidcolor: interrupted"), stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.mp4"]


def test_output_that_appears_during_the_run_is_not_replaced(cli, tmp_path, clip_with_audio, monkeypatch):
    from vidcolor import pipeline

    dst = tmp_path / "out.mp4"
    finish = pipeline.VideoWriter.finish

    def other_run_finishes_first(self):
        dst.write_bytes(b"the other run's result")
        finish(self)

    monkeypatch.setattr(pipeline.VideoWriter, "finish", other_run_finishes_first)
    message = cli.error(cli.video(clip_with_audio, dst))
    assert "appeared while this run was writing it" in message
    assert dst.read_bytes() == b"the other run's result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    cli.ok(cli.video(clip_with_audio, dst, "-y"))  # with -y the later run replaces it, as asked
    assert len(read_video(dst)["y"]) == 12


def test_still_that_appears_during_the_run_is_not_replaced(cli, tmp_path, monkeypatch):
    from vidcolor import image_io

    src = write_image(tmp_path / "a.png", still())
    dst = tmp_path / "out.png"
    encode = image_io.cv2.imencode

    def other_run_finishes_first(*args):
        dst.write_bytes(b"the other run's result")
        return encode(*args)

    monkeypatch.setattr(image_io.cv2, "imencode", other_run_finishes_first)
    assert "appeared while this run was writing it" in cli.error(cli.image(src, "-o", dst))
    assert dst.read_bytes() == b"the other run's result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "out.png"]


def test_ffmpeg_reason_reaches_the_user(tmp_path):
    from vidcolor.files import as_output_error
    from vidcolor.streams import ffmpeg_reasons

    dst = tmp_path / "out.mov"
    with pytest.raises(av.FFmpegError) as caught:
        with ffmpeg_reasons(), av.open(str(dst), "w") as out:
            out.add_stream("libopus", rate=48000)
            out.start_encoding()
    message = str(as_output_error(caught.value, dst))
    assert message.startswith(f"writing {dst} failed: Invalid argument") and "opus only supported in MP4" in message


def test_ffmpeg_reason_reaches_the_user_from_the_writer(cli, tmp_path, monkeypatch):
    """The same through `vidcolor`: a muxer that refuses a stream only when the header is written (here MOV with
    Opus audio, planned as a copy as if the trial had passed it) reports FFmpeg's line, and leaves nothing behind."""
    from vidcolor import video_io
    from vidcolor.streams import StreamPlan

    src = make_clip(tmp_path / "in.mkv", frames=6, audio=True, audio_codec="libopus")
    monkeypatch.setattr(video_io, "plan_streams",
                        lambda streams, target: ([StreamPlan(s.index, s.type, "copy") for s in streams], []))
    message = cli.error(cli.video(src, tmp_path / "out.mov"))
    assert "opus only supported in MP4" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv"]
