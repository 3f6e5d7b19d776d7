"""Issue 18's closing check: every input the round-2 tests generate, in one folder, through the real command line
(one process per run, as a user runs it). Reports per input what happened and fails on exit 0 with wrong output, on
an "unexpected" line, on a traceback, and on any file left behind (a partial, a stale partial, a stray folder).

    PYTHONPATH=. python tests/robustness_folder.py [FOLDER]    (default: a new temporary folder)

Uses a randomly initialised checkpoint (as the tests do): the check is about files, not colours.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from media import (make_clip, make_cover_art_first_mp4, make_edit_list_mp4, make_interlaced_clip,  # noqa: E402
                   make_joined_ts, make_repeated_pts_mkv, png_with_claimed_size, still, write_image, write_png_with_orientation)


def frames_and_times(path: Path) -> tuple[int, list[float]]:
    with av.open(str(path)) as container:
        stream = next(s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic)
        times = [frame.time for frame in container.decode(stream)]
    return len(times), times


def video_ok(frames: int, seconds: float | None = None):
    def check(out: Path) -> str | None:
        count, times = frames_and_times(out)
        if count != frames:
            return f"{count} frames, expected {frames}"
        if any(b <= a for a, b in zip(times, times[1:])):
            return "timestamps not increasing"
        if seconds is not None and abs(times[-1] - times[0] - seconds) > 0.02:
            return f"lasts {times[-1] - times[0]:.3f} s, expected {seconds:.3f}"
        return None
    return check


def image_ok(shape: tuple[int, ...], dtype) -> callable:
    def check(out: Path) -> str | None:
        image = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
        if image is None or image.shape != shape or image.dtype != dtype:
            return f"got {None if image is None else (image.shape, image.dtype)}, expected {shape} {np.dtype(dtype)}"
        return None
    return check


def main(folder: Path) -> int:
    import torch

    from vidcolor.model import build_model, default_config
    from vidcolor.weights import save_checkpoint

    inputs, outputs = folder / "inputs", folder / "outputs"
    inputs.mkdir(parents=True, exist_ok=True)
    outputs.mkdir(exist_ok=True)
    torch.manual_seed(0)
    config = default_config("effnet-unet")
    weights = folder / "random.pt"
    save_checkpoint(weights, build_model(config), config, metadata={"note": "random, for a robustness run"})

    rgba = np.dstack([still(), np.full((48, 64), 200, np.uint8)])
    y, x = np.mgrid[0:3000, 0:4000]
    fifo = inputs / "pipe.mp4"
    if not fifo.exists():
        os.mkfifo(fifo)
    stale = outputs / f".joined.vidcolor-{2 ** 22 + 1}.partial.mp4"  # above pid_max's default: a dead run's
    stale.write_bytes(b"left by a run killed with SIGKILL")
    # (name, arguments after the input, what must happen: a check of OUT, or words of the one error line)
    video, image = [], []
    video += [
        (make_cover_art_first_mp4(inputs / "cover-first.mp4"), "cover-first.mp4", [], video_ok(12)),
        (make_clip(inputs / "dvr.h264", frames=20, fps=25), "dvr.mp4", [], video_ok(20, 19 / 25)),
        (make_clip(inputs / "raspivid.hevc", frames=20, fps=25, codec="libx265"), "raspivid.mp4", [],
         video_ok(20, 19 / 25)),
        (make_joined_ts(inputs / "joined.ts"), "joined.mp4", [], video_ok(24, 23 / 24)),
        (inputs / "joined.ts", "joined-resumed.mkv", ["--resume", "--segment-frames", "10"], video_ok(24, 23 / 24)),
        (make_repeated_pts_mkv(inputs / "repeated-pts.mkv"), "repeated-pts.mp4", [], video_ok(8)),
        (make_edit_list_mp4(inputs / "edit-list.mp4"), "edit-list.mp4", [], video_ok(10)),
        (make_interlaced_clip(inputs / "interlaced-tff.mp4"), "interlaced-tff.mp4", [], video_ok(10)),
        (make_interlaced_clip(inputs / "interlaced-bff.mp4", top_field_first=False), "interlaced-bff.mkv", [],
         video_ok(10)),
        (fifo, "from-fifo.mp4", [], "is a FIFO (named pipe)"),
        (Path("/dev/zero"), "from-zero.mp4", [], "is a character device"),
        (inputs / "dvr.h264", "reported.mp4", ["--report", str(outputs / "no-such-folder" / "r.json")],
         "report folder"),
    ]
    image += [
        (write_png_with_orientation(inputs / "rgba-exif6.png", rgba, 6), "rgba-exif6.png", [],
         image_ok((64, 48, 4), np.uint8)),
        (write_image(inputs / "scan16.png", still().astype(np.uint16) * 257), "scan16.png", [],
         image_ok((48, 64, 3), np.uint16)),
        (write_image(inputs / "scan16.tif", still().astype(np.uint16) * 257), "scan16.tif", [],
         image_ok((48, 64, 3), np.uint16)),
        (inputs / "scan16.tif", "scan16.jpg", [], image_ok((48, 64, 3), np.uint8)),
        (write_image(inputs / "large-gray.png", ((x // 100 + y // 100) % 2 * 120 + 60).astype(np.uint8)),
         "large-gray.png", [], image_ok((3000, 4000, 3), np.uint8)),
        (png_with_claimed_size(inputs / "huge-header.png", 40000, 40000), "huge.png", [], "too large"),
        (inputs / "scan16.png", "a-colour.gif", [], "cannot write an image named"),
        (inputs / "scan16.png", "typo.jgp", [], "cannot write an image named"),
        (fifo, "from-fifo.png", [], "is a FIFO (named pipe)"),
    ]
    del x, y
    failures = 0
    common = ["--weights", str(weights), "--size", "64"]
    for kind, runs in (("video", video), ("image", image)):
        for src, out_name, extra, expect in runs:
            out = outputs / out_name
            if kind == "video":
                command = [sys.executable, "-m", "vidcolor", str(src), str(out), *common, "--quiet", *extra]
            else:
                command = [sys.executable, "-m", "vidcolor", "image", str(src), "-o", str(out), *common, *extra]
            result = subprocess.run(command, capture_output=True, text=True, timeout=600)
            lines = result.stderr.splitlines()
            problem = None
            if "Traceback" in result.stderr or "unexpected" in result.stderr:
                problem = f"bad stderr: {result.stderr.strip()[-300:]}"
            elif callable(expect):
                if result.returncode != 0:
                    problem = f"exit {result.returncode}: {result.stderr.strip()}"
                else:
                    problem = expect(out)
            else:
                errors = [line for line in lines if line.startswith("vidcolor: error: ")]
                if result.returncode == 0:
                    problem = "exit 0, expected an error"
                elif len(errors) != 1 or expect not in errors[0]:
                    problem = f"expected one error line with {expect!r}: {result.stderr.strip()}"
                elif out.exists():
                    problem = f"{out.name} was written"
            failures += problem is not None
            status = "ok " if problem is None else "BAD"
            said = " | ".join(lines)[:150]
            print(f"{status} {src.name:>18} -> {out_name:<20} exit {result.returncode}  {problem or said}")
    leftovers = sorted(p.name for p in outputs.iterdir() if p.name.startswith(".") or p.is_dir())
    if leftovers:
        failures += 1
        print(f"BAD leftover files in {outputs}: {leftovers}")
    else:
        print(f"ok  no file left behind in {outputs} (the stale partial {stale.name} is gone)")
    print(f"{failures} problem(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="vidcolor-robustness-"))
    sys.exit(main(target))
