"""Shared fixtures: a randomly initialised checkpoint (so that no test depends on the bundled weights, which are
trained separately), a Colorizer loaded from it, a few clips made once per session, and a CliRunner wrapper that
checks the CLI's error contract (exit code, one line on stderr, no traceback)."""
from __future__ import annotations

import os

# One intra-op thread for torch, set before torch is imported: the test model is tiny, and with a thread per core
# OpenMP's spinning threads fight the decode/encode threads and any other load (50x slower on a busy 2-core box).
os.environ.setdefault("OMP_NUM_THREADS", "1")
# The network runs in torch unless a test names another engine (tests/test_engines.py does): the suite then tests
# the same thing whichever optional engines are installed. With OpenVINO loaded into the test process by earlier
# tests, the training test that interrupts itself with SIGINT crashed the whole run (a segfault, seen here).
os.environ.setdefault("VIDCOLOR_ENGINE", "torch")

import shutil  # noqa: E402
from pathlib import Path

import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from media import make_clip  # noqa: E402

# Every model run in the tests: small frames and a small working size keep the suite fast on a 2-core CPU.
TEST_SIZE = 64


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A vidcolor checkpoint with a randomly initialised effnet-unet (seeded: the same weights every run)."""
    import torch

    from vidcolor.model import build_model, default_config
    from vidcolor.weights import save_checkpoint

    torch.manual_seed(0)
    config = default_config("effnet-unet")
    path = tmp_path_factory.mktemp("weights") / "random-effnet-unet.pt"
    save_checkpoint(path, build_model(config), config, metadata={"note": "random initialisation, for tests"})
    return path


@pytest.fixture(scope="session")
def hinted_checkpoint(tmp_path_factory) -> Path:
    """Like checkpoint, with a hint path (vidcolor.model.HintEncoder, hint decoder and gate), randomly initialised
    and with a gate that is open: hinted colour reaches the output, as after training."""
    from dataclasses import replace

    import torch

    from vidcolor.model import build_model, default_config
    from vidcolor.weights import save_checkpoint

    torch.manual_seed(0)
    config = replace(default_config("effnet-unet"), hints=True)
    model = build_model(config)
    with torch.no_grad():
        model.hint_gate.bias.fill_(1.0)  # the gate fully open: the output follows the spread of the hints
    path = tmp_path_factory.mktemp("weights") / "random-effnet-unet-hints.pt"
    save_checkpoint(path, model, config, metadata={"note": "random initialisation with hints, for tests"})
    return path


@pytest.fixture(scope="session")
def colorizer(checkpoint):
    from vidcolor.colorizer import load_colorizer

    return load_colorizer(str(checkpoint), "cpu")


@pytest.fixture(scope="session")
def hinted_colorizer(hinted_checkpoint):
    from vidcolor.colorizer import load_colorizer

    return load_colorizer(str(hinted_checkpoint), "cpu")


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip_with_audio(media_dir) -> Path:
    """64x48, 12 frames at 24 fps, AAC audio. Tests must not write beside it (use tmp_path)."""
    return make_clip(media_dir / "gray with audio.mp4", frames=12, audio=True)


@pytest.fixture
def clip_copy(clip_with_audio, tmp_path) -> Path:
    """A private copy of clip_with_audio, for tests that write beside their input or damage it."""
    return Path(shutil.copy(clip_with_audio, tmp_path / "input.mp4"))


class Cli:
    """Runs `vidcolor` in-process through click's CliRunner with the test checkpoint."""

    def __init__(self, checkpoint: Path):
        self.checkpoint = checkpoint
        self.runner = CliRunner()

    def invoke(self, *args):
        from vidcolor.cli import main

        return self.runner.invoke(main, [str(a) for a in args], prog_name="vidcolor")

    def video(self, src, dst, *extra):
        """`vidcolor IN OUT` with the test weights, small working size, no progress bar."""
        return self.invoke(src, dst, "--weights", self.checkpoint, "--size", TEST_SIZE, "--quiet", *extra)

    def image(self, *args):
        return self.invoke("image", *args, "--weights", self.checkpoint, "--size", TEST_SIZE)

    def ok(self, result):
        assert_no_traceback(result)
        assert result.exit_code == 0, result.stderr
        return result

    def error(self, result, exit_code: int = 1) -> str:
        """Assert the error contract and return the message."""
        assert_no_traceback(result)
        assert result.exit_code == exit_code, (result.exit_code, result.stderr)
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("vidcolor: error: "), lines[0]
        return lines[0]


def assert_no_traceback(result) -> None:
    # CliRunner turns an uncaught exception into exit code 1 and keeps it in result.exception; a clean exit is a
    # SystemExit (or nothing).
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output


@pytest.fixture(scope="session")
def cli(checkpoint) -> Cli:
    return Cli(checkpoint)


def listing(folder: Path) -> dict[str, bytes]:
    """Every file under folder with its content: to show that a failed run wrote, renamed and removed nothing."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def snapshot():
    return listing
