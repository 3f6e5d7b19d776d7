"""The work folder of a segmented run (vidcolor/engine.py): `vidcolor IN OUT --resume` (and --jobs, --ray,
--start/--end) keep their segments there, so that an interrupted run (Ctrl-C, SIGTERM, a crash, a power cut, a
cluster node lost) rerun with the same command and --resume continues with the segments not yet done.

Work folder. Everything lives in a hidden folder beside OUT, `.OUT.vidcolor-work/` (with --ray, on a filesystem
every node reads and writes):
    manifest.json          the input's identity (size, mtime, sha256 of its first MiB), the options that change the
                           output (weights, device, working size, smoothing, batch size, segment length, encoder
                           settings, audio, range, vidcolor's version), the plan (engine.plan_segments) and the
                           completed segments' records, in the order they completed
    segment-00000.nut ...  each segment's colorized video, no audio, encoded as OUT would be (same encoder and
                           settings), in FFmpeg's NUT container: it keeps any time base and timestamp exactly, where
                           MP4 would round a segment's start to its movie timescale (milliseconds)
    progress-00000         frames a running segment has encoded so far (the driver's progress bar)
    keyframes/             with --keyframes: the first pass's cache, made once by the driver, read by every worker
A manifest made for another input or other options is refused (one line: delete the folder or drop --resume), so
that a resumed file is never a patchwork of two different jobs.

Crash safety. A segment is written under a partial name, flushed to disk and renamed, and only then is it recorded
in the manifest (itself replaced atomically): the manifest is the commit point, and anything in the folder it does
not list is ignored and overwritten. The segments of a plan are independent (each starts its smoother with a
warm-up, engine.py), so a resumed file is identical in decoded frames to an uninterrupted run of the same command
(the encoder is deterministic given the same frames).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from . import __version__
from .errors import VidcolorError

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 2  # bumped whenever the folder's layout or the meaning of a field changes
HEAD_HASH_BYTES = 1 << 20  # the input's first MiB identifies it along with size and mtime, without reading it all


class ResumeError(VidcolorError):
    """The work folder cannot be used to resume this job."""


def work_folder(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.vidcolor-work")


def input_identity(src: Path) -> dict:
    stat = src.stat()
    with open(src, "rb") as f:
        head = hashlib.sha256(f.read(HEAD_HASH_BYTES)).hexdigest()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "head_sha256": head}


def output_options(colorizer, options, strength: float, suffix: str) -> dict:
    """Everything that changes the output's pixels or streams. Batch size and device are in it because a different
    batch or device can change the network's output in the last bits, and the resumed file must equal an
    uninterrupted run's."""
    weights = colorizer.weights
    weights_file = Path(weights)
    if weights_file.is_file():
        stat = weights_file.stat()
        weights = {"path": str(weights_file.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    encoder = options.encoder
    return {"vidcolor": __version__, "weights": weights, "device": colorizer.device.type,
            "engine": colorizer.engine_choice.name, "size": options.size, "saturation": colorizer.saturation,
            "smooth": strength, "every": options.every, "batch_size": options.batch_size,
            "segment_frames": options.segment_frames,
            "codec": encoder.codec, "crf": encoder.crf, "preset": encoder.preset, "pix_fmt": encoder.pix_fmt,
            "audio": options.audio, "suffix": suffix, "keyframes": keyframes_identity(options.keyframes)}


def keyframes_identity(folder) -> str | None:
    """A digest of a keyframes folder's files (names and contents): a resumed job with changed keyframes is refused."""
    if folder is None:
        return None
    from .guidance import list_keyframes

    digest = hashlib.sha256()
    for index, path in sorted(list_keyframes(folder).items()):
        digest.update(f"{index}:{path.name}:".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# durable files


def _fsync(path: Path) -> None:
    """Flush a file, or a folder's entries, to disk; a power cut must not leave a manifest naming lost data."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # folders cannot be opened on Windows; its renames are durable enough there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_durably(tmp: Path, final: Path) -> None:
    _fsync(tmp)
    os.replace(tmp, final)
    _fsync(final.parent)


def save_manifest(folder: Path, manifest: dict) -> None:
    tmp = folder / f"{MANIFEST_NAME}.partial"
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    replace_durably(tmp, folder / MANIFEST_NAME)


def open_manifest(folder: Path, identity: dict, job: dict) -> dict:
    """The folder's manifest if it matches this job, a new one if there is none; refuse one that does not match."""
    path = folder / MANIFEST_NAME
    advice = f"delete {folder} to start over, or run without --resume"
    if not path.exists():
        return {"format": MANIFEST_FORMAT, "input": identity, "options": job, "plan": None, "segments": []}
    try:
        manifest = json.loads(path.read_text())
        segments = manifest["segments"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ResumeError(f"the work folder's manifest {path} cannot be read; {advice}") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ResumeError(f"the work folder {folder} was made by another version of vidcolor; {advice}")
    if manifest.get("input") != identity:
        raise ResumeError(f"the work folder {folder} was made for a different input file (or it changed); {advice}")
    stored = manifest.get("options", {})
    changed = sorted(key for key in set(stored) | set(job) if stored.get(key) != job.get(key))
    if changed:
        raise ResumeError(f"the work folder {folder} was made with other options ({', '.join(changed)}); {advice}")
    missing = [s["file"] for s in segments if not (folder / s["file"]).is_file()]
    if missing:
        raise ResumeError(f"the work folder {folder} lacks {missing[0]}, which its manifest lists; {advice}")
    return manifest


class FolderLock:
    """Two runs writing the same work folder would corrupt it: the second one is refused."""

    def __init__(self, folder: Path):
        self.file = open(folder / "lock", "w")
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; the user is trusted not to run the job twice
            return
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.close()
            raise ResumeError(f"another vidcolor run is using the work folder {folder}; wait for it to end") from None

    def release(self):
        self.file.close()  # closing drops the lock
