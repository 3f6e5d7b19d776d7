"""Output files: refusing outputs that would clobber something, hidden partial names, and write errors as one line.
Shared by video, stills and live recordings."""
from __future__ import annotations

import errno
import os
from pathlib import Path

from .errors import OutputError, VidcolorError


def check_output(src: Path, dst: Path, overwrite: bool) -> None:
    """Refuse, before anything is opened for writing, an output that would clobber the input or an existing file."""
    if dst.resolve() == src.resolve() or (dst.exists() and src.exists() and os.path.samefile(src, dst)):
        raise OutputError(f"output {dst} is the input file itself; choose another output name")
    parent = dst.parent
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} does not exist; create it first")
    if dst.is_dir():
        raise OutputError(f"output {dst} is a directory; give a file name")
    if dst.exists() and not overwrite:
        raise OutputError(f"output {dst} already exists; pass -y/--overwrite to replace it")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output folder {parent} is not writable")


def partial_path(dst: Path) -> Path:
    """A hidden temporary name beside dst that keeps its suffix (PyAV and OpenCV pick the format from it)."""
    return dst.with_name(f".{dst.stem}.vidcolor-{os.getpid()}.partial{dst.suffix}")


def remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def as_output_error(exc: BaseException, dst: Path) -> BaseException:
    """An OS or FFmpeg error while writing, as a one-line OutputError that names the output and says what to do."""
    import av

    if isinstance(exc, VidcolorError) or not isinstance(exc, (OSError, av.FFmpegError)):
        return exc
    if getattr(exc, "errno", None) == errno.ENOSPC:
        return OutputError(f"writing {dst} failed: no space left on device; free some space and run again")
    reason = getattr(exc, "strerror", None) or str(exc)
    return OutputError(f"writing {dst} failed: {reason}")
