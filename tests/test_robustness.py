"""Old, odd and broken inputs and failing outputs: never a traceback, never a half-written or clobbered file.

Policy for damaged video (documented in VideoReader): what can be decoded is colorized, what could not is counted
and reported on stderr (and in --report); a file whose index is missing (an MP4 cut off before its moov box) is
refused, since no frame can be found without it.
"""
from __future__ import annotations

import errno
import json
import os
from fractions import Fraction

import av
import numpy as np
import pytest

from media import (corrupt_packet, jpeg_bytes, make_clip, moving_pattern, psnr, read_video, still, truncate,
                   write_image)

LUMA_PSNR_MIN_DB = 45.0


# ---------------------------------------------------------------------------------------------------------------
# inputs that are not videos


@pytest.mark.parametrize("name, content, words", [
    ("empty.mp4", b"", "empty (0 bytes)"),
    ("random.mp4", np.random.default_rng(1).bytes(5000), "not a video file"),
    ("text.mp4", b"#!/bin/sh\necho this is a script\n" * 30, "not a video file"),
    ("only-header.mp4", b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2", "no index (moov box)"),
])
def test_not_a_video(cli, tmp_path, snapshot, name, content, words):
    src = tmp_path / name
    src.write_bytes(content)
    before = snapshot(tmp_path)
    assert words in cli.error(cli.video(src, tmp_path / "out.mp4"))
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name", ["photo.png", "photo.jpg", "jpeg-named-as.mp4"])
def test_still_image_passed_to_the_video_command(cli, tmp_path, snapshot, name):
    src = tmp_path / name
    if name.endswith(".png"):
        write_image(src, still())
    else:
        src.write_bytes(jpeg_bytes(still()))
    before = snapshot(tmp_path)
    message = cli.error(cli.video(src, tmp_path / "out.mp4"))
    assert "still image" in message and "vidcolor image" in message
    assert snapshot(tmp_path) == before


def test_directory_as_input(cli, tmp_path):
    (tmp_path / "clips").mkdir()
    assert "is a directory" in cli.error(cli.video(tmp_path / "clips", tmp_path / "out.mp4"))


# ---------------------------------------------------------------------------------------------------------------
# damaged videos


def test_truncated_mp4_without_its_index_is_refused(cli, tmp_path, snapshot):
    whole = make_clip(tmp_path / "whole.mp4", frames=12, audio=True)  # moov box at the end, as a camera writes it
    src = truncate(whole, tmp_path / "cut.mp4", 0.5)
    before = snapshot(tmp_path)
    message = cli.error(cli.video(src, tmp_path / "out.mp4"))
    assert "truncated" in message and "moov" in message
    assert snapshot(tmp_path) == before


def test_truncated_mp4_with_its_index_first_keeps_what_decodes(cli, tmp_path):
    whole = make_clip(tmp_path / "whole.mp4", frames=24, audio=True, container_options={"movflags": "faststart"})
    src = truncate(whole, tmp_path / "cut.mp4", 0.6)
    dst, report = tmp_path / "out.mp4", tmp_path / "report.json"
    result = cli.ok(cli.video(src, dst, "--report", report))
    summary = json.loads(report.read_text())
    output, source = read_video(dst), read_video(whole)
    kept = len(output["y"])
    assert 0 < kept < 24
    assert summary["frames"] == kept and summary["frames_expected"] == 24 and summary["frames_lost"] == 24 - kept
    assert f"{24 - kept} of 24 frames could not be decoded" in result.stderr
    assert result.stderr.startswith("vidcolor: warning: ") and len(result.stderr.splitlines()) == 1
    assert output["pts"] == source["pts"][:kept]  # the frames kept are the first ones, at their own times
    assert output["has_audio"]


def test_truncated_matroska_reports_an_estimate_of_the_frames_lost(cli, tmp_path):
    whole = make_clip(tmp_path / "whole.mkv", frames=48, audio=True)  # Matroska has no frame count, only a duration
    src = truncate(whole, tmp_path / "cut.mkv", 0.5)
    dst, report = tmp_path / "out.mp4", tmp_path / "report.json"
    result = cli.ok(cli.video(src, dst, "--report", report))
    summary = json.loads(report.read_text())
    kept = len(read_video(dst)["y"])
    assert 0 < kept < 48 and summary["frames_counted"] is False
    assert abs(summary["frames_lost"] - (48 - kept)) <= 1 and summary["frames_expected"] == kept + summary["frames_lost"]
    assert f"about {summary['frames_lost']} of {summary['frames_expected']} frames" in result.stderr


def test_corrupt_packet_mid_stream_is_skipped_and_counted(cli, tmp_path):
    whole = make_clip(tmp_path / "whole.mp4", frames=12, audio=True)
    src = corrupt_packet(whole, tmp_path / "damaged.mp4", index=6)
    dst, report = tmp_path / "out.mp4", tmp_path / "report.json"
    result = cli.ok(cli.video(src, dst, "--report", report))
    summary = json.loads(report.read_text())
    output, source = read_video(dst), read_video(whole)
    assert summary["corrupt_packets"] == 1
    assert "1 damaged packets skipped" in result.stderr
    kept = len(output["y"])
    assert kept == 12 - summary["frames_lost"] and 6 <= kept < 12
    # The frames after the damage are there, each at its own time: the picture stays in sync with the audio.
    assert set(output["pts"]) < set(source["pts"]) and output["pts"] == sorted(output["pts"])
    assert output["pts"][-1] == source["pts"][-1]
    assert output["audio"] == source["audio"]


# ---------------------------------------------------------------------------------------------------------------
# odd formats and sizes


def expected_luma(index: int, width: int, height: int, full_range: bool) -> np.ndarray:
    """The Y' plane of the (gray) test pattern, as a decoder of an 8-bit stream of that range would give it."""
    value = moving_pattern(index, width, height)[..., 0].astype(np.float64)
    return value.astype(np.uint8) if full_range else np.rint(16 + value * 219 / 255).astype(np.uint8)


@pytest.mark.parametrize("name, codec, pix_fmt, full_range", [
    ("yuvj420p.mp4", "libx264", "yuvj420p", True),
    ("yuv444p.mp4", "libx264", "yuv444p", False),
    ("yuv422p.mkv", "libx264", "yuv422p", False),
    ("yuv420p10le.mp4", "libx264", "yuv420p10le", False),
    ("gray.mkv", "ffv1", "gray", True),
    ("rgb.mkv", "libx264rgb", "rgb24", True),
])
def test_pixel_formats(cli, tmp_path, name, codec, pix_fmt, full_range):
    src = make_clip(tmp_path / name, frames=4, codec=codec, pix_fmt=pix_fmt, lossless=True)
    dst = tmp_path / "out.mp4"
    cli.ok(cli.video(src, dst, "--crf", 0))
    output = read_video(dst)
    assert len(output["y"]) == 4 and (output["width"], output["height"]) == (64, 48)
    assert output["pix_fmt"] in ("yuv420p", "yuvj420p")
    for index, y in enumerate(output["y"]):
        assert psnr(y, expected_luma(index, 64, 48, full_range)) >= LUMA_PSNR_MIN_DB - 5, index  # 10-bit rounds
    assert np.abs(output["u"][0].astype(int) - 128).mean() > 1.0


@pytest.mark.parametrize("rotation", [90, 180, -90])
def test_rotation_metadata_is_kept(cli, tmp_path, rotation):
    src = make_clip(tmp_path / "phone.mp4", frames=3, rotation=rotation)
    assert read_video(src)["rotation"] % 360 == rotation % 360  # 180 reads back as -180
    dst = tmp_path / "out.mp4"
    cli.ok(cli.video(src, dst))
    output = read_video(dst)
    assert output["rotation"] == read_video(src)["rotation"]
    assert (output["width"], output["height"]) == (64, 48)  # pixels as stored; players turn them


def test_very_small_frame(cli, tmp_path):
    src = make_clip(tmp_path / "tiny.mp4", frames=4, width=16, height=16)
    cli.ok(cli.video(src, tmp_path / "out.mp4"))
    output = read_video(tmp_path / "out.mp4")
    assert (output["width"], output["height"]) == (16, 16) and len(output["y"]) == 4


def test_4k_frame_keeps_its_size_and_every_frame(cli, tmp_path):
    # The model only ever sees the working size, so a 4K frame costs the decoder and encoder, not the network;
    # memory is bounded by the queues (see test_memory_stays_bounded_however_long_the_video).
    src = make_clip(tmp_path / "uhd.mp4", frames=3, width=3840, height=2160)
    cli.ok(cli.video(src, tmp_path / "out.mp4", "--preset", "ultrafast"))
    output = read_video(tmp_path / "out.mp4")
    assert (output["width"], output["height"]) == (3840, 2160) and len(output["y"]) == 3


def test_path_with_spaces_and_non_ascii(cli, tmp_path):
    folder = tmp_path / "vidéos d'été 彩色"
    folder.mkdir()
    src = make_clip(folder / "clip ñ ü.mp4", frames=3, audio=True)
    dst = folder / "sortie colorisée 色.mp4"
    cli.ok(cli.video(src, dst))
    assert len(read_video(dst)["y"]) == 3
    image = write_image(folder / "photo été.png", still())
    cli.ok(cli.image(image, "-o", folder / "résultat 色.png"))
    assert (folder / "résultat 色.png").is_file()


def test_memory_stays_bounded_however_long_the_video(colorizer, tmp_path, monkeypatch):
    """Decoding runs ahead of a slow encoder by a bounded number of frames, not by the whole video."""
    import time

    from vidcolor import pipeline, video_io

    src = make_clip(tmp_path / "long.mp4", frames=60, width=32, height=32)
    decoded, written, ahead = [0], [0], []
    original_frame, original_write = video_io.VideoReader._frame, video_io.VideoWriter.write

    def counting_frame(self, frame, index):
        decoded[0] += 1
        return original_frame(self, frame, index)

    def slow_write(self, *args):
        time.sleep(0.005)
        ahead.append(decoded[0] - written[0])
        written[0] += 1
        return original_write(self, *args)

    monkeypatch.setattr(video_io.VideoReader, "_frame", counting_frame)
    monkeypatch.setattr(video_io.VideoWriter, "write", slow_write)
    batch = 4
    pipeline.colorize_video(src, tmp_path / "out.mp4", colorizer,
                            pipeline.VideoOptions(size=64, batch_size=batch, progress=False))
    assert written[0] == 60
    # inbox + one batch + outbox + the frame in each worker's hands
    assert max(ahead) <= 2 * batch + batch + 2 * batch + 3 < 60


# ---------------------------------------------------------------------------------------------------------------
# outputs that fail


def test_output_folder_not_writable(cli, clip_with_audio, tmp_path, monkeypatch, snapshot):
    from vidcolor import pipeline

    # Simulated: the tests may run as root, for whom a read-only folder mode is no obstacle.
    real_access = os.access
    monkeypatch.setattr(pipeline.os, "access",
                        lambda path, mode, **kw: False if mode & os.W_OK and str(path) == str(tmp_path)
                        else real_access(path, mode, **kw))
    message = cli.error(cli.video(clip_with_audio, tmp_path / "out.mp4"))
    assert "not writable" in message
    assert snapshot(tmp_path) == {}


def test_output_file_cannot_be_created(cli, clip_with_audio, tmp_path, monkeypatch, snapshot):
    from vidcolor import video_io

    real_open = av.open

    def refusing_open(path, mode="r", *args, **kwargs):
        if mode == "w":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr(video_io.av, "open", refusing_open)
    message = cli.error(cli.video(clip_with_audio, tmp_path / "out.mp4"))
    assert "cannot create" in message and "Permission denied" in message
    assert snapshot(tmp_path) == {}


def fill_disk_after(monkeypatch, frames: int):
    from vidcolor import video_io

    original = video_io.VideoWriter.write
    calls = [0]

    def write(self, *args):
        calls[0] += 1
        if calls[0] > frames:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return original(self, *args)

    monkeypatch.setattr(video_io.VideoWriter, "write", write)
    return calls


def test_disk_full_mid_run(cli, clip_copy, tmp_path, monkeypatch, snapshot):
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"an earlier result")  # replaced only by a finished file
    calls = fill_disk_after(monkeypatch, frames=5)
    before = snapshot(tmp_path)
    message = cli.error(cli.video(clip_copy, dst, "-y", "--batch-size", 2))
    assert calls[0] == 6
    assert "no space left on device" in message and "free some space" in message
    assert snapshot(tmp_path) == before


def test_disk_full_writing_an_image(cli, tmp_path, monkeypatch, snapshot):
    from vidcolor import pipeline

    src = write_image(tmp_path / "a.png", still())

    def full_disk(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    before = snapshot(tmp_path)
    # The temporary file was written; moving it into place fails (a link without -y, a rename with it).
    monkeypatch.setattr(pipeline.os, "replace", full_disk)
    monkeypatch.setattr(pipeline.os, "link", full_disk)
    message = cli.error(cli.image(src, "-o", tmp_path / "out.png"))
    assert "no space left on device" in message
    assert snapshot(tmp_path) == before


def test_frame_rate_and_time_base_of_a_vfr_clip_in_mkv(cli, tmp_path):
    """Matroska's millisecond time base: timestamps still survive exactly."""
    pts = [0, 33, 83, 100, 200, 217]
    src = make_clip(tmp_path / "vfr.mkv", frames=len(pts), pts_list=pts, time_base=Fraction(1, 1000))
    result = cli.ok(cli.video(src, tmp_path / "out.mkv"))
    assert read_video(tmp_path / "out.mkv")["pts"] == read_video(src)["pts"] == [p / 1000 for p in pts]
    assert result.stderr == ""  # irregular steps are not mistaken for lost frames
