"""Ctrl-C (SIGINT) and SIGTERM in the middle of a run, in a real process: it stops within a couple of seconds with
exit code 130 / 143 and one line on stderr, removes its temporary file, and leaves an existing OUT untouched."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from media import make_clip

STOP_WITHIN_S = 2.0
# The model slowed down to a known pace, so that the run is surely still going when the signal comes.
SLOW_MAIN = (
    "import sys, time\n"
    "from vidcolor.colorizer import Colorizer\n"
    "predict = Colorizer.predict\n"
    "def slow_predict(self, luma, hints=None):\n"
    "    time.sleep(0.05)\n"
    "    return predict(self, luma, hints)\n"
    "Colorizer.predict = slow_predict\n"
    "from vidcolor.cli import main\n"
    "main(sys.argv[1:], prog_name='vidcolor')\n"
)


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    return make_clip(tmp_path_factory.mktemp("long") / "long.mp4", frames=300, width=32, height=32, audio=True)


def wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("signal_number, exit_code, word", [
    (signal.SIGINT, 130, "interrupted"),
    (signal.SIGTERM, 143, "terminated"),
])
def test_signal_mid_run(long_clip, checkpoint, tmp_path, signal_number, exit_code, word):
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"an earlier result")  # -y is given: only a finished file may replace it
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_MAIN, str(long_clip), str(dst), "--weights", str(checkpoint), "--size", "32",
         "--batch-size", "2", "--quiet", "-y"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    try:
        # Mid-run: the encoder has written its first packets to the temporary file.
        started = wait_for(lambda: any(tmp_path.glob(".out.vidcolor-*.partial.mp4")), timeout_s=120)
        assert started and process.poll() is None, process.communicate()
        process.send_signal(signal_number)
        sent = time.monotonic()
        _, stderr = process.communicate(timeout=30)
        elapsed = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == exit_code, stderr
    assert elapsed < STOP_WITHIN_S
    assert stderr.splitlines() == [f"vidcolor: {word}; no output written (with --resume, finished segments survive "
                                   "an interruption)"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
    assert dst.read_bytes() == b"an earlier result"
