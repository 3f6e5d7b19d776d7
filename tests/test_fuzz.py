"""Seeded random damage to small valid clips and stills, run through the CLI in-process: every case ends within a
time bound with exit 0 (and a finished output) or a one-line error (and nothing written), never a traceback or a
hang."""
from __future__ import annotations

import faulthandler
import signal

import numpy as np
import pytest

from media import jpeg_bytes, make_clip, still, write_image

SEED = 5
CASES = 150
IMAGE_CASES = 60
CASE_BOUND_S = 30  # generous: the machine may be busy; a healthy case takes well under a second
HARD_BOUND_S = 120  # a hang inside C code never returns to Python: faulthandler then ends the run, loudly


class CaseTimeout(BaseException):
    """Not an Exception, so that nothing in vidcolor can swallow it."""


def mutate(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One of the ways files get damaged, at a random place."""
    data = bytearray(data)
    size = len(data)
    kind = rng.choice(["flip", "overwrite", "truncate", "delete", "duplicate", "size-field"])
    if kind == "flip":
        for position in rng.integers(0, size, rng.integers(1, 20)):
            data[position] = rng.integers(0, 256)
    elif kind == "overwrite":
        start = int(rng.integers(0, size))
        length = int(rng.integers(1, 64))
        data[start: start + length] = rng.bytes(length)[: size - start]
    elif kind == "truncate":
        data = data[: int(rng.integers(0, size))]
    elif kind == "delete":
        start = int(rng.integers(0, size))
        del data[start: start + int(rng.integers(1, 256))]
    elif kind == "duplicate":
        start = int(rng.integers(0, size))
        chunk = data[start: start + int(rng.integers(1, 256))]
        data[start:start] = chunk
    else:  # a box or NAL length field (4 bytes, big-endian) set to an extreme value
        start = int(rng.integers(0, size - 4))
        data[start: start + 4] = rng.choice([b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x00\x00\x00\x01"])
    return kind, bytes(data)


@pytest.fixture(scope="module")
def seed_clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    return [
        make_clip(folder / "plain.mp4", frames=6, width=32, height=32, audio=True).read_bytes(),
        make_clip(folder / "faststart.mp4", frames=6, width=32, height=32, audio=True,
                  container_options={"movflags": "faststart"}).read_bytes(),
        make_clip(folder / "matroska.mkv", frames=6, width=32, height=32, audio=True).read_bytes(),
    ]


@pytest.fixture
def time_bound():
    def on_alarm(signum, frame):
        raise CaseTimeout(f"case ran over {CASE_BOUND_S} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_BOUND_S)
    faulthandler.dump_traceback_later(HARD_BOUND_S, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("case", range(CASES))
def test_damaged_clip(cli, seed_clips, tmp_path, case, time_bound):
    rng = np.random.default_rng([SEED, case])
    which = case % len(seed_clips)
    kind, data = mutate(seed_clips[which], rng)
    src = tmp_path / ("input.mkv" if which == 2 else "input.mp4")
    src.write_bytes(data)
    dst = tmp_path / "out.mp4"
    result = cli.video(src, dst, "--size", 32, "--preset", "ultrafast")
    names = sorted(p.name for p in tmp_path.iterdir())
    if result.exit_code == 0:
        cli.ok(result)
        assert names == sorted([src.name, "out.mp4"]), kind
        assert all(line.startswith("vidcolor: warning: ") for line in result.stderr.splitlines()), result.stderr
    else:
        message = cli.error(result)
        assert "unexpected" not in message, kind  # every failure is one vidcolor foresaw and explains
        assert names == [src.name], kind


@pytest.fixture(scope="module")
def seed_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-images")
    alpha = np.dstack([still(40, 30), np.full((30, 40), 200, np.uint8)])
    return [(".png", write_image(folder / "a.png", alpha).read_bytes()), (".jpg", jpeg_bytes(still(40, 30)))]


@pytest.mark.parametrize("case", range(IMAGE_CASES))
def test_damaged_image(cli, seed_images, tmp_path, case, time_bound):
    rng = np.random.default_rng([SEED, CASES + case])
    suffix, original = seed_images[case % len(seed_images)]
    kind, data = mutate(original, rng)
    src = tmp_path / f"input{suffix}"
    src.write_bytes(data)
    result = cli.image(src, "-o", tmp_path / "out.png")
    names = sorted(p.name for p in tmp_path.iterdir())
    if result.exit_code == 0:
        cli.ok(result)
        assert names == sorted([src.name, "out.png"]), kind
    else:
        assert "unexpected" not in cli.error(result), kind
        assert names == [src.name], kind
