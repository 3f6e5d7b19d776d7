"""Output files: refusing outputs that would clobber something, hidden partial names, and write errors as one line.
Shared by video, stills and live recordings."""
from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

from .errors import InputError, OutputError, VidcolorError


# What a path that is not a regular file is, for "input X is a FIFO..." (stat.S_IS* test, words).
SPECIAL_FILES = [(stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                 (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]


def check_input_file(path: Path, kind: str) -> None:
    """Refuse an input that is missing, a folder, not a regular file (FIFO, /dev/zero: vidcolor reads its input
    more than once and needs its size), or empty. kind: "video" or "image", for the messages."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InputError(f"input {path} does not exist") from None
    except OSError as exc:
        raise InputError(f"input {path} cannot be read: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        hint = "pass the image files inside it" if kind == "image" else "pass a video file"
        raise InputError(f"input {path} is a directory, not {'an image' if kind == 'image' else 'a video file'}; {hint}")
    if not stat.S_ISREG(mode):
        what = next((words for test, words in SPECIAL_FILES if test(mode)), "not a regular file")
        raise InputError(f"input {path} is {what}, not a file; vidcolor reads a saved file (save the stream to a "
                         f"file first)")
    if path.stat().st_size == 0:
        raise InputError(f"input {path} is empty (0 bytes)")


def check_writable_file(path: Path, what: str) -> None:
    """Refuse, before any work, a side output (--report) that could not be written at the end."""
    if path.is_dir():
        raise OutputError(f"{what} {path} is a directory; give a file name")
    parent = path.parent
    if not parent.is_dir():
        raise OutputError(f"{what} folder {parent} does not exist; create it first")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{what} {path} is not writable")
    if not path.exists() and not os.access(parent, os.W_OK):
        raise OutputError(f"{what} folder {parent} is not writable")


def check_output(src: Path, dst: Path, overwrite: bool) -> None:
    """Refuse, before anything is opened for writing, an output that would clobber the input or an existing file.
    Also removes the partial files that runs killed while writing dst (SIGKILL, a power cut) left beside it."""
    remove_stale_partials(dst)
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


# Partial names this process has handed out: removed by remove_own_partials() when an interrupt lands inside the
# clean-up that would have removed them (two Ctrl-C in quick succession).
_OWN_PARTIALS: set[Path] = set()


def partial_path(dst: Path) -> Path:
    """A hidden temporary name beside dst that keeps its suffix (PyAV and OpenCV pick the format from it); the
    process id in it tells a live run's partial from a dead one's (remove_stale_partials)."""
    path = dst.with_name(f".{dst.stem}.vidcolor-{os.getpid()}.partial{dst.suffix}")
    _OWN_PARTIALS.add(path)
    return path


def remove_own_partials() -> None:
    """Remove every partial file this process may have created (the CLI calls it when a run is interrupted)."""
    for path in list(_OWN_PARTIALS):
        remove_quietly(path)


def _process_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill would terminate it there: keep every partial rather than guess
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: alive, another user's
        return True
    return True


def remove_stale_partials(dst: Path) -> None:
    """Remove dst's partial files whose process is gone (killed with SIGKILL, or the machine went down). The pid
    is only meaningful on this machine: on a folder shared between machines, run one job per output."""
    pattern = re.compile(rf"\.{re.escape(dst.stem)}\.vidcolor-(\d+)\.partial{re.escape(dst.suffix)}")
    try:
        names = os.listdir(dst.parent)
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if match and int(match.group(1)) != os.getpid() and not _process_alive(int(match.group(1))):
            remove_quietly(dst.parent / name)


def place_output(tmp: Path, dst: Path, overwrite: bool) -> None:
    """Move the finished tmp to dst. Without overwrite, never replace a file that appeared at dst meanwhile
    (another run writing the same OUT): a hard link fails if dst exists, atomically; the later run then fails."""
    if overwrite:
        os.replace(tmp, dst)
        return
    try:
        os.link(tmp, dst)
    except FileExistsError:
        remove_quietly(tmp)
        raise OutputError(f"output {dst} appeared while this run was writing it (another run?); it was left as it is; "
                          "pass -y/--overwrite to replace it") from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS):
            raise
        # A file system without hard links (FAT, some network shares): exclusive creation still refuses an
        # existing dst; the rename then fills it.
        try:
            os.close(os.open(dst, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            remove_quietly(tmp)
            raise OutputError(f"output {dst} appeared while this run was writing it (another run?); it was left as "
                              "it is; pass -y/--overwrite to replace it") from None
        os.replace(tmp, dst)
        return
    remove_quietly(tmp)


def remove_quietly(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def as_output_error(exc: BaseException, dst: Path) -> BaseException:
    """An OS or FFmpeg error while writing, as a one-line OutputError that names the output and says what to do."""
    import av

    from .streams import ffmpeg_log_line  # here, not at the top: streams imports av, files stays light

    if isinstance(exc, VidcolorError) or not isinstance(exc, (OSError, av.FFmpegError)):
        return exc
    if getattr(exc, "errno", None) == errno.ENOSPC:
        return OutputError(f"writing {dst} failed: no space left on device; free some space and run again")
    reason = getattr(exc, "strerror", None) or str(exc)
    line = ffmpeg_log_line(exc)  # FFmpeg's own, e.g. "[mov] opus only supported in MP4"
    if line:
        reason = f"{reason} ({line})"
    return OutputError(f"writing {dst} failed: {reason}")
