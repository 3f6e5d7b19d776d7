"""The CLI's error contract, case by case: exit code 1 (2 for usage errors), one line on stderr, no traceback,
nothing written. And --help / --version answer without importing torch."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from media import make_audio_only, still, write_image


@pytest.fixture
def out_dir(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def test_missing_input(cli, out_dir, snapshot):
    before = snapshot(out_dir)
    message = cli.error(cli.video(out_dir / "missing.mp4", out_dir / "out.mp4"))
    assert "does not exist" in message
    assert snapshot(out_dir) == before


def test_not_a_video(cli, tmp_path, out_dir, snapshot):
    src = tmp_path / "notes.mp4"
    src.write_text("these are notes, not a video\n" * 20)
    message = cli.error(cli.video(src, out_dir / "out.mp4"))
    assert "not a video file" in message
    assert snapshot(out_dir) == {}


def test_no_video_stream(cli, tmp_path, out_dir, snapshot):
    src = make_audio_only(tmp_path / "song.m4a")
    message = cli.error(cli.video(src, out_dir / "out.mp4"))
    assert "no video stream" in message and "audio" in message
    assert snapshot(out_dir) == {}


def test_output_folder_missing(cli, clip_with_audio, tmp_path):
    message = cli.error(cli.video(clip_with_audio, tmp_path / "missing" / "out.mp4"))
    assert "does not exist" in message and "create it" in message
    assert not (tmp_path / "missing").exists()


def test_output_is_the_input(cli, clip_copy, tmp_path, snapshot):
    before = snapshot(tmp_path)
    message = cli.error(cli.video(clip_copy, clip_copy, "-y"))
    assert "is the input file itself" in message
    # the same file under another spelling
    message = cli.error(cli.video(clip_copy, tmp_path / "." / clip_copy.name, "-y"))
    assert "is the input file itself" in message
    assert snapshot(tmp_path) == before


def test_output_is_a_hard_link_to_the_input(cli, clip_copy, tmp_path, snapshot):
    link = tmp_path / "link.mp4"
    os.link(clip_copy, link)
    before = snapshot(tmp_path)
    assert "is the input file itself" in cli.error(cli.video(clip_copy, link, "-y"))
    assert snapshot(tmp_path) == before


def test_unknown_weights_name(cli, clip_with_audio, out_dir, snapshot):
    from vidcolor.cli import main

    result = cli.runner.invoke(main, [str(clip_with_audio), str(out_dir / "out.mp4"), "--weights", "no-such-model",
                                      "--quiet"])
    message = cli.error(result)
    assert "no-such-model" in message and "available" in message and "default" in message
    assert snapshot(out_dir) == {}


def test_weights_file_that_is_not_a_checkpoint(cli, clip_with_audio, tmp_path, out_dir, snapshot):
    from vidcolor.cli import main

    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    result = cli.runner.invoke(main, [str(clip_with_audio), str(out_dir / "out.mp4"), "--weights", str(bogus)])
    assert "checkpoint" in cli.error(result)
    assert snapshot(out_dir) == {}


@pytest.mark.parametrize("codec", ["no-such-codec", "aac"])  # a name FFmpeg lacks, and an audio encoder
def test_unknown_video_codec(cli, clip_with_audio, out_dir, snapshot, codec):
    message = cli.error(cli.video(clip_with_audio, out_dir / "out.mp4", "--codec", codec))
    assert f"unknown video encoder '{codec}'" in message
    assert snapshot(out_dir) == {}


def test_codec_the_container_cannot_hold(cli, clip_with_audio, out_dir, snapshot):
    message = cli.error(cli.video(clip_with_audio, out_dir / "out.webm", "--codec", "libx264"))
    assert ".webm files cannot hold libx264" in message
    assert snapshot(out_dir) == {}


def test_output_without_a_video_suffix(cli, clip_with_audio, out_dir, snapshot):
    message = cli.error(cli.video(clip_with_audio, out_dir / "out"))
    assert "suffix" in message and ".mp4" in message
    assert snapshot(out_dir) == {}


@pytest.mark.parametrize("args, words", [
    (["video"], "Missing argument"),
    (["in.mp4"], "Missing argument"),
    (["in.mp4", "out.mp4", "--crf", "99"], "--crf"),
    (["in.mp4", "out.mp4", "--device", "tpu"], "--device"),
    (["in.mp4", "out.mp4", "--preset", "warp"], "--preset"),
    (["in.mp4", "out.mp4", "--size", "8"], "--size"),
    (["in.mp4", "out.mp4", "--batch-size", "0"], "--batch-size"),
    (["in.mp4", "out.mp4", "--no-such-option"], "--no-such-option"),
    (["image", "in.png"], "--output"),
])
def test_usage_errors_exit_2_with_one_line(cli, tmp_path, args, words):
    message = cli.error(cli.invoke(*args), exit_code=2)
    assert words in message and "--help" in message
    assert list(tmp_path.iterdir()) == []


def test_no_arguments_prints_help(cli):
    result = cli.invoke()
    assert "Usage:" in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------------------------------------------------------
# fast answers, no torch


def run_python(*args, cwd=None):
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


HEAVY_MODULES = ("torch", "av", "cv2")
CHECK_IMPORTS = (
    "import sys\n"
    "from vidcolor.cli import main\n"
    "try:\n"
    "    main([{flag!r}], prog_name='vidcolor')\n"
    "except SystemExit as exit:\n"
    "    assert exit.code in (0, None), exit.code\n"
    "print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
)


@pytest.mark.parametrize("flag", ["--help", "--version", "-h"])
def test_help_and_version_do_not_import_heavy_modules(flag):
    result = run_python("-c", CHECK_IMPORTS.format(flag=flag, heavy=HEAVY_MODULES))
    assert result.returncode == 0, result.stderr
    *answer, imported = result.stdout.strip().splitlines()
    assert imported == "[]"
    assert answer  # it did answer
    if flag == "--version":
        from vidcolor import __version__

        assert __version__ in answer[0]


def test_help_import_time_has_no_torch():
    result = run_python("-X", "importtime", "-m", "vidcolor", "--help")
    assert result.returncode == 0
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "vidcolor.cli" in imported
    assert not {name for name in imported if name.split(".")[0] in HEAVY_MODULES}


def test_python_dash_m_vidcolor():
    result = run_python("-m", "vidcolor", "--help")
    assert result.returncode == 0 and "Usage: vidcolor" in result.stdout
    result = run_python("-m", "vidcolor", "image", "--help")
    assert result.returncode == 0 and "--output" in result.stdout


def test_console_script_error_is_one_line_in_a_real_process(tmp_path):
    """The same contract outside CliRunner: nothing from FFmpeg, OpenCV or Python's logging on stderr."""
    src = tmp_path / "random.mp4"
    src.write_bytes(os.urandom(4096))
    result = run_python("-m", "vidcolor", str(src), str(tmp_path / "out.mp4"), "--quiet")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("vidcolor: error: "), result.stderr
    write_image(tmp_path / "broken.png", still())
    (tmp_path / "broken.png").write_bytes((tmp_path / "broken.png").read_bytes()[:200])
    result = run_python("-m", "vidcolor", "image", str(tmp_path / "broken.png"), "-o", str(tmp_path / "o.png"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "damaged or truncated PNG" in result.stderr, result.stderr
