"""Choosing frames of a video and exporting them as gray PNGs, for a user to colour and give back as keyframes.

`vidcolor frames IN -o DIR --at 0,120` writes DIR/0.png and DIR/120.png; once coloured in an image editor, the
folder is what `vidcolor IN OUT --keyframes DIR` reads (vidcolor.guidance.list_keyframes: <index>.png, .jpg, .json).
So each PNG shows exactly the frame vidcolor will colorize under that index:
  - index: 0-based, in the order and count in which VideoReader yields frames (presentation order, damaged packets
    skipped), which is how the video pipeline numbers them;
  - pixels: the frame's own luma at full resolution, as stored in the file. Rotation metadata (a phone's display
    matrix) is not applied: vidcolor colorizes the stored pixels and only copies the matrix to its output for
    players, and a keyframe must have the stored frame's shape (guidance.check_aspect);
  - levels: limited-range ("TV", 16-235) luma is stretched to full range, as the network sees it, so the picture
    looks normal in an editor; written as 8-bit RGB with R = G = B, so that editors open it in colour mode.

Shots are found with the temporal smoother's own scene-cut test (ChromaSmoother.last_was_cut), driven as the video
pipeline drives it, so that a shot start here is a frame where a colorize run restarts its colour history.
Nothing here loads the network; only --every-shot imports the colorizer module, for the working size.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from . import color
from .errors import InputError, OutputError
from .files import remove_quietly
from .image_io import write_image_atomic
from .video_io import VideoReader

# FFmpeg's display matrix for "show as stored" (16.16 fixed point, last entry 2.30).
IDENTITY_DISPLAY_MATRIX = (1 << 16, 0, 0, 0, 1 << 16, 0, 0, 0, 1 << 30)


class ShotDetector:
    """Feeds frames to a ChromaSmoother exactly as colorize_video does (luma at the default video working size, in
    the video's own range; a chroma map of the network's output size) and reports where it restarts on a cut.

    The cut test only reads luma, so the chroma is neutral and the smoothing itself is thrown away. The cuts are
    those of a run with the default --size and smoothing (a run with --smooth 0 makes none; another working size can
    decide a borderline cut differently).
    """

    def __init__(self, height: int, width: int):
        # The colorizer module imports torch, which only this mode needs (the network is never loaded).
        from .colorizer import DEFAULT_VIDEO_SIZE, resize_plane, working_shape
        from .smoothing import DEFAULT_STRENGTH, ChromaSmoother

        self._resize = resize_plane
        self.work_h, self.work_w = working_shape(height, width, DEFAULT_VIDEO_SIZE)
        # chroma: 2 x ceil(h/2) x ceil(w/2), the effnet-unet's output size at that working size
        self.chroma_shape = ((self.work_h + 1) // 2, (self.work_w + 1) // 2)
        self._chroma = np.zeros((2, *self.chroma_shape), np.float32)
        self._smoother = ChromaSmoother(DEFAULT_STRENGTH)
        self._first = True

    def starts_shot(self, luma: np.ndarray) -> bool:
        """luma: the next frame's full-size uint8 plane, in frame order. True for frame 0 and after each cut."""
        self._smoother.smooth(self._resize(luma, self.work_h, self.work_w), self._chroma)
        first, self._first = self._first, False
        return first or self._smoother.last_was_cut


def shot_starts(src, progress: bool = False) -> list[int]:
    """Indices of the first frame of each shot of the video src: 0 and the frame after each scene cut."""
    src = Path(src)
    starts = []
    with VideoReader(src, with_audio=False) as reader:
        detector = ShotDetector(reader.info.height, reader.info.width)
        with _progress_bar(reader, src, progress) as bar:
            for _, frame in reader:
                if detector.starts_shot(frame.luma):
                    starts.append(frame.index)
                bar.update(1)
        _check_decoded(reader, src)
    return starts


def display_gray(luma: np.ndarray, full_range: bool) -> np.ndarray:
    """A frame's uint8 luma plane (H x W, in the video's range) -> the uint8 RGB H x W x 3 gray picture of it."""
    return np.repeat(color.full_range_luma(luma, full_range)[..., None], 3, axis=2)


def export_frames(src, folder, *, at=None, every: int | None = None, every_shot: bool = False,
                  overwrite: bool = False, progress: bool = False) -> list[Path]:
    """Write chosen frames of the video src as folder/<index>.png (see the module docstring for what they show).

    Exactly one selection: at (frame indices), every (0, every, 2*every, ...) or every_shot (shot_starts). folder is
    created if missing (its parent must exist). Returns the written paths in index order.

    All or nothing: the PNGs are written (each atomically) under hidden names and renamed into place only once every
    chosen frame was decoded, so an index past the end, an undecodable input, a failed write or an interruption
    leaves folder as it was.
    An existing <index>.png is replaced only with overwrite; another keyframe file for a chosen index (.jpg, .json)
    is never written beside, as the keyframes folder could not be read with two for one frame.
    """
    src, folder = Path(src), Path(folder)
    if sum([at is not None, every is not None, bool(every_shot)]) != 1:
        raise ValueError("give exactly one of at, every, every_shot")
    if at is not None:
        at = sorted({int(i) for i in at})
        if not at or at[0] < 0:
            raise ValueError("at: give one or more 0-based frame indices")
    if every is not None and every < 1:
        raise ValueError(f"every must be at least 1, got {every}")

    with VideoReader(src, with_audio=False) as reader:
        info = reader.info
        _check_folder(folder)
        if at is not None:
            if info.frames and at[-1] >= info.frames:  # the container's count; decoding checks it again below
                raise _past_end(src, [i for i in at if i >= info.frames], info.frames)
            _check_free(folder, at, overwrite)
        elif every is not None and info.frames:
            _check_free(folder, range(0, info.frames, every), overwrite)

        created = not folder.exists()
        folder.mkdir(exist_ok=True)
        staged: dict[int, Path] = {}
        try:
            detector = ShotDetector(info.height, info.width) if every_shot else None
            wanted = set(at) if at is not None else None
            display_matrix = None
            with _progress_bar(reader, src, progress, frames=at[-1] + 1 if at else None) as bar:
                for _, frame in reader:
                    if frame.index == 0:
                        display_matrix = frame.display_matrix  # the reader reads it from the first frame only
                    if wanted is not None:
                        chosen = frame.index in wanted
                    elif every is not None:
                        chosen = frame.index % every == 0
                    else:
                        chosen = detector.starts_shot(frame.luma)
                    if chosen:
                        staged[frame.index] = _stage(folder, frame.index)
                        write_image_atomic(staged[frame.index], display_gray(frame.luma, info.full_range), None)
                    bar.update(1)
                    if wanted is not None and frame.index == at[-1]:
                        break  # the rest of the video is not needed
            _check_decoded(reader, src)
            if wanted is not None and len(staged) < len(at):
                raise _past_end(src, [i for i in at if i not in staged], reader.frames_decoded)
            _check_free(folder, staged, overwrite)  # --every-shot's indices are known only now
            written = []
            for index in sorted(staged):
                final = folder / f"{index}.png"
                os.replace(staged.pop(index), final)
                written.append(final)
        except BaseException:
            for path in staged.values():
                remove_quietly(path)
            if created:
                try:
                    folder.rmdir()  # only if empty: a file renamed into place before a failure stays
                except OSError:
                    pass
            raise
    if display_matrix is not None and tuple(display_matrix) != IDENTITY_DISPLAY_MATRIX:
        print(f"note: {src} carries rotation metadata (players show it turned); the frames are written as stored, "
              "the orientation vidcolor colorizes: colour them without turning them", file=sys.stderr)
    return written


def _stage(folder: Path, index: int) -> Path:
    """A hidden name beside <index>.png: ignored by list_keyframes, and never mistaken for a user's file."""
    return folder / f".{index}.vidcolor-{os.getpid()}.staged.png"


def _check_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"output {folder} is a file; give a folder for the frames")
    parent = folder.parent
    if not parent.is_dir():
        raise OutputError(f"output folder {parent} does not exist; create it first")
    target = folder if folder.exists() else parent
    if not os.access(target, os.W_OK):
        raise OutputError(f"output folder {target} is not writable")


def _check_free(folder: Path, indices, overwrite: bool) -> None:
    """Refuse to replace <index>.png without overwrite, or to put it beside another keyframe file for that index
    (120.jpg, 120.json, 0120.png...: any name list_keyframes reads as frame 120)."""
    from .guidance import KEYFRAME_IMAGE_SUFFIXES

    if not folder.is_dir():
        return
    existing: dict[int, list[Path]] = {}
    for path in folder.iterdir():
        if (not path.name.startswith(".") and path.stem.isdigit() and path.stem.isascii()
                and path.suffix.lower() in KEYFRAME_IMAGE_SUFFIXES | {".json"}):
            existing.setdefault(int(path.stem), []).append(path)
    chosen = indices if isinstance(indices, range) else set(indices)  # a range answers `in` without a list
    for index in sorted(i for i in existing if i in chosen):
        for path in sorted(existing[index]):
            if path.name != f"{index}.png":
                raise OutputError(f"{path} is already a keyframe for frame {index}; a {index}.png beside it would "
                                  "give that frame two; move it away or use another folder")
            if not overwrite:
                raise OutputError(f"output {path} already exists; pass -y/--overwrite to replace it")


def _past_end(src: Path, indices: list[int], frames: int) -> InputError:
    named = ", ".join(str(i) for i in indices[:5]) + (", ..." if len(indices) > 5 else "")
    frame_is = "frame {} is" if len(indices) == 1 else "frames {} are"
    return InputError(f"{frame_is.format(named)} past the end of {src}, which has {frames} frames "
                      f"(indices 0 to {frames - 1})")


def _check_decoded(reader: VideoReader, src: Path) -> None:
    if reader.frames_decoded == 0:
        damage = "; ".join(filter(None, [f"{reader.corrupt_packets} damaged packets" if reader.corrupt_packets
                                         else "", reader.read_error]))
        raise InputError(f"input {src} has a video stream but no frame could be decoded"
                         + (f" ({damage})" if damage else ""))


def _progress_bar(reader: VideoReader, src: Path, enabled: bool, frames: int | None = None):
    from tqdm import tqdm

    return tqdm(total=frames or reader.estimated_frames() or None, unit="frame", desc=src.name, file=sys.stderr,
                disable=not enabled, dynamic_ncols=True, leave=True)
