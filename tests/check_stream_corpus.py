"""Issue 18's acceptance run for streams and containers: every generated input into every output container, through
the CLI, each output decoded and checked. Prints one line per run and a tally; exits 1 on any exit-0-with-wrong-output,
"unexpected" line, multi-line error or leftover file.

    PYTHONPATH=. python tests/check_stream_corpus.py /tmp/corpus [CHECKPOINT]

Without CHECKPOINT a randomly initialised one is made (the colours do not matter here, the files do).
"""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))

from click.testing import CliRunner  # noqa: E402

from media import combine, make_audio, make_clip, make_srt, read_streams  # noqa: E402

SUFFIXES = [".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".wmv", ".ts", ".m2ts", ".mpg", ".mxf", ".nut",
            ".y4m", ".h264"]
EXTRA_RUNS = [("--codec", "h264", "--crf", "0"), ("--codec", "hevc", "--crf", "30"), ("--codec", "mjpeg"),
              ("--codec", "mpeg4", "--crf", "5"), ("--codec", "libx264",), ("--no-audio",),
              ("--resume", "--segment-frames", "5")]


def make_inputs(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    video = make_clip(folder / "video.mp4", frames=12)
    mjpeg = make_clip(folder / "mjpeg.avi", frames=12, codec="mjpeg", pix_fmt="yuvj420p")
    tracks = {
        "surround": make_audio(folder / "surround.mka", codec="aac", layout="5.1"),
        "pcm11024": make_audio(folder / "pcm11024.wav", codec="pcm_s16le", layout="stereo", rate=11024),
        "aac44": make_audio(folder / "aac44.m4a", rate=44100),
        "mp3": make_audio(folder / "mp3.mka", codec="mp3", layout="stereo", rate=44100),
        "opus": make_audio(folder / "opus.mka", codec="libopus", layout="stereo"),
        "flac": make_audio(folder / "flac.mka", codec="flac", layout="mono"),
    }
    srt = make_srt(folder / "subtitles.srt")
    inputs = {
        "multi.mkv": [video, tracks["surround"], tracks["pcm11024"], srt],
        "camera.avi": [mjpeg, tracks["pcm11024"]],
        "aac44.mp4": [video, tracks["aac44"]],
        "mp3.mkv": [video, tracks["mp3"]],
        "opus.mkv": [video, tracks["opus"]],
        "flac.mkv": [video, tracks["flac"]],
        "surround.mp4": [video, tracks["surround"]],
    }
    return {name: combine(folder / name, sources, languages={1: "eng", 2: "fra"})
            for name, sources in inputs.items()}


def main(root: Path, checkpoint: str | None) -> int:
    from vidcolor.cli import main as cli

    if checkpoint is None:
        import torch

        from vidcolor.model import build_model, default_config
        from vidcolor.weights import save_checkpoint

        torch.manual_seed(0)
        config = default_config("effnet-unet")
        checkpoint = str(root / "random.pt")
        root.mkdir(parents=True, exist_ok=True)
        save_checkpoint(checkpoint, build_model(config), config, metadata={"note": "random, for this check"})
    inputs = make_inputs(root / "inputs")
    runner = CliRunner()
    tally = {"ok": 0, "refused": 0, "bad": 0}
    runs = [(name, suffix, ()) for name in inputs for suffix in SUFFIXES]
    runs += [(name, ".mp4" if "--resume" not in extra else suffix, extra)
             for name in ("multi.mkv", "camera.avi") for extra in EXTRA_RUNS for suffix in (".mp4",)]
    runs += [("multi.mkv", suffix, ("--resume", "--segment-frames", "5")) for suffix in SUFFIXES]
    for index, (name, suffix, extra) in enumerate(runs):
        out = root / f"out-{index:03d}"
        out.mkdir(parents=True, exist_ok=True)
        for stale in out.iterdir():
            stale.unlink()
        dst = out / f"out{suffix}"
        result = runner.invoke(cli, [str(inputs[name]), str(dst), "--weights", checkpoint, "--size", "64",
                                     "--quiet", *extra])
        stderr = result.stderr
        problems = []
        if "unexpected" in stderr or "Traceback" in stderr or (result.exception is not None and
                                                               not isinstance(result.exception, SystemExit)):
            problems.append("unexpected error")
        leftovers = sorted(p.name for p in out.iterdir() if p.name != dst.name)
        if leftovers:
            problems.append(f"left behind {leftovers}")
        if result.exit_code == 0:
            with_audio = "--no-audio" not in extra
            source = read_streams(inputs[name])
            try:
                output = read_streams(dst)
            except Exception as exc:  # noqa: BLE001 - any failure to read the output is the finding
                output = None
                problems.append(f"output unreadable: {exc!r}")
            if output is not None:
                left_out_audio = len(re.findall(r"audio stream \d+ \([^)]*\)[^;]*; it is left out", stderr))
                left_out_subtitles = len(re.findall(r"subtitle stream \d+ \([^)]*\); it is left out", stderr))
                expected_audio = (len(source["audio"]) if with_audio else 0) - left_out_audio
                expected_subtitles = len(source["subtitles"]) - left_out_subtitles
                if output["video_frames"] != 12 or not output["video_pts_increasing"]:
                    problems.append(f"video {output['video_frames']} frames, in order {output['video_pts_increasing']}")
                if len(output["audio"]) != expected_audio:
                    problems.append(f"{len(output['audio'])} audio streams, expected {expected_audio}")
                if [t["codec"] for t in output["subtitles"]] != [t["codec"] for t in source["subtitles"]][
                        :len(output["subtitles"])]:
                    problems.append(f"subtitles {output['subtitles']} of {source['subtitles']}")
                if len(output["subtitles"]) != expected_subtitles:
                    problems.append(f"{len(output['subtitles'])} subtitle streams, expected {expected_subtitles}")
                for got, want in zip(output["audio"], [a for a in source["audio"]] if with_audio else []):
                    if not got["pts_increasing"] or abs(got["seconds"] - want["seconds"]) > 0.25:
                        problems.append(f"audio {got['seconds']:.3f} s of {want['seconds']:.3f} s")
                    if got["channels"] != want["channels"] and "mixed down" not in stderr:
                        problems.append(f"audio {got['channels']} channels of {want['channels']}, no note")
            status = "bad" if problems else "ok"
        else:
            lines = stderr.strip().splitlines()
            errors = [line for line in lines if line.startswith("vidcolor: error: ")]
            if len(errors) != 1:
                problems.append(f"error output {lines}")
            status = "bad" if problems else "refused"
        tally[status] += 1
        summary = stderr.strip().splitlines()[-1] if result.exit_code and stderr.strip() else ""
        print(f"{status:8s} {name} -> {suffix} {' '.join(extra)} {'; '.join(problems)} {summary}".rstrip())
    print(f"{len(runs)} runs: {tally['ok']} written and correct, {tally['refused']} refused with one line, "
          f"{tally['bad']} wrong")
    return 1 if tally["bad"] else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None))
