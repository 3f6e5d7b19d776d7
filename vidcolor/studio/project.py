"""What the studio works on: the input it was started with (a video, an image or a folder of images), its pictures
by index, and the hints saved for them in the project folder beside it.

The project folder is IN.vidcolor (for a folder of images, FOLDER.vidcolor), created on the first save:
    video   IN.vidcolor/keyframes/<frame index>.json (colour points) or .png (a colour image of the frame), exactly
            what `vidcolor IN OUT --keyframes IN.vidcolor/keyframes` reads (vidcolor.guidance.list_keyframes);
    image   IN.vidcolor/hints.json, for `vidcolor image IN -o OUT --hints IN.vidcolor/hints.json`;
    folder  FOLDER.vidcolor/hints/<image stem>.json, for `vidcolor image FOLDER/* -o OUT --hints FOLDER.vidcolor/hints`.
Outputs go beside the project folder: IN.colour.mp4 for a video, IN's stem + ".colour" + its suffix for an image,
FOLDER.colour/ for a folder.

Pictures are addressed by a 0-based index only (a frame of the video, or an image of the folder in name order); no
file name ever comes from a request, so the studio reads nothing but its inputs and writes nothing but the project
folder and the outputs.
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import color
from ..errors import InputError, OutputError
from ..files import remove_quietly
from ..guidance import (KEYFRAME_IMAGE_SUFFIXES, HintError, Hints, check_aspect, find_hint_file, hex_to_chroma,
                        list_keyframes, load_hints, parse_points, read_keyframe, read_points, write_points)
from ..image_io import IMAGE_SUFFIXES, decode_image, read_image, rgb8, write_image_atomic

# A person places points one at a time; thousands on one picture is a mistake or an attack.
MAX_POINTS = 2000
# A keyframe image larger than this (pixels) is refused before it is decoded: a small PNG can unpack to gigabytes.
MAX_KEYFRAME_PIXELS = 8192 * 8192
# Decoded frames kept for the scrubber and the previews (a 1080p frame is 2 MB of luma).
FRAME_CACHE_SIZE = 24


@dataclass(frozen=True)
class Picture:
    name: str
    width: int
    height: int


class Project:
    """An input and its project folder. Thread-safe: the server answers requests from several threads."""

    kind: str  # "video", "image" or "images"

    def __init__(self, source: Path):
        self.source = Path(source)
        self.folder = self.source.with_name(self.source.name + ".vidcolor")
        self._lock = threading.RLock()

    @staticmethod
    def open(source) -> "Project":
        """The project for source; InputError (one line) when it is not a video, an image or a folder of images."""
        source = Path(source)
        if not source.exists():
            raise InputError(f"input {source} does not exist")
        if source.is_dir():
            return ImagesProject(source)
        if source.suffix.lower() in IMAGE_SUFFIXES:
            return ImagesProject(source, single=True)
        return VideoProject(source)

    # --- for subclasses ------------------------------------------------------------------------------------------
    def count(self) -> int:
        raise NotImplementedError

    def picture(self, index: int) -> Picture:
        raise NotImplementedError

    def luma(self, index: int) -> np.ndarray:
        """The picture's full-range uint8 luma, H x W: what the network sees and the studio shows as gray."""
        raise NotImplementedError

    def hint_file(self, index: int) -> Path | None:
        """The existing hint (or keyframe) file for a picture, or None."""
        raise NotImplementedError

    def points_file(self, index: int) -> Path:
        """Where the picture's JSON points are written."""
        raise NotImplementedError

    def output(self) -> Path:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"kind": self.kind, "name": self.source.name, "count": self.count(), "folder": str(self.folder),
                "output": str(self.output())}

    # --- hints ---------------------------------------------------------------------------------------------------
    def check_index(self, index: int) -> Picture:
        if not 0 <= index < self.count():
            raise InputError(f"no picture {index}: {self.source.name} has {self.count()} (0 to {self.count() - 1})")
        return self.picture(index)

    def hints(self, index: int) -> Hints | None:
        """The saved hints of a picture as the command line would read them, or None (automatic colour)."""
        picture = self.check_index(index)
        with self._lock:
            path = self.hint_file(index)
            if path is None:
                return None
            return read_keyframe(path, picture.width, picture.height) if self.kind == "video" else \
                load_hints(path, picture.width, picture.height)

    def read_points(self, index: int) -> dict:
        """{"points": [...], "kind": "points" | "image" | None} for the page: the saved points as written (colours as
        #rrggbb), checked as the command line checks them (a hand-edited file with a mistake is a HintError)."""
        picture = self.check_index(index)
        with self._lock:
            path = self.hint_file(index)
            if path is None:
                return {"points": [], "kind": None}
            if path.suffix.lower() != ".json":
                return {"points": [], "kind": "image"}
            read_points(path, picture.width, picture.height)  # every check the command line makes
            data = json.loads(path.read_bytes())
            return {"points": [normalise_point(p) for p in data["points"]], "kind": "points"}

    def save_points(self, index: int, data) -> dict:
        """Check a page's {"points": [...]} against the picture, then write it as the picture's JSON hints. Refused
        where the picture's colour comes from an image (a keyframe image, a PNG stroke layer). Returns what
        read_points will return."""
        picture = self.check_index(index)
        if isinstance(data, dict) and isinstance(data.get("points"), list) and len(data["points"]) > MAX_POINTS:
            raise HintError(f"{len(data['points'])} points on one picture; at most {MAX_POINTS}")
        parse_points(data, picture.width, picture.height, f"hints for {picture.name}")
        points = [normalise_point(p) for p in data["points"]]
        with self._lock:
            path = self.points_file(index)
            existing = self.hint_file(index)
            if existing is not None and existing != path:
                # Never lose a picture painted by hand without being asked: the page offers "Remove" first.
                raise HintError(f"{picture.name} has colour from {existing.name}; remove it before placing points")
            self._make_folder(path.parent)
            try:
                write_points(path, points)
            except OSError as exc:
                raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
            self._remove_others(index, keep=path)
        return {"points": points, "kind": "points"}

    def remove_hints(self, index: int) -> None:
        self.check_index(index)
        with self._lock:
            self._remove_others(index, keep=None)

    def _remove_others(self, index: int, keep: Path | None) -> None:
        """Remove the picture's other hint files, so that the folder never holds two for one picture (the command
        line refuses that)."""
        for path in self._candidate_files(index):
            if path != keep:
                remove_quietly(path)

    def _candidate_files(self, index: int) -> list[Path]:
        raise NotImplementedError

    def _make_folder(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the project folder {folder}: {exc.strerror or exc}") from None


def normalise_point(point: dict) -> dict:
    """A checked point as the studio writes it: x, y and radius as given, the colour as lower-case #rrggbb."""
    from ..guidance import DEFAULT_POINT_RADIUS_PX

    hex_to_chroma(point["color"])  # already checked by parse_points; raises ValueError otherwise
    value = point["color"].strip().lstrip("#").lower()
    if len(value) == 3:
        value = "".join(ch * 2 for ch in value)
    return {"x": point["x"], "y": point["y"], "color": "#" + value,
            "radius": point.get("radius", DEFAULT_POINT_RADIUS_PX)}


# ---------------------------------------------------------------------------------------------------------------
# video


class VideoProject(Project):
    kind = "video"

    def __init__(self, source: Path):
        super().__init__(source)
        self.frames = FrameIndex(source)
        self.keyframes_folder = self.folder / "keyframes"
        info = self.frames.info
        self._picture = Picture(source.name, info.width, info.height)

    def count(self) -> int:
        return len(self.frames)

    def picture(self, index: int) -> Picture:
        return Picture(f"{self.source.name} frame {index}", self._picture.width, self._picture.height)

    def luma(self, index: int) -> np.ndarray:
        self.check_index(index)
        return self.frames.luma(index)

    def describe(self) -> dict:
        info = self.frames.info
        return {**super().describe(), "width": info.width, "height": info.height,
                "rate": float(info.rate) if info.rate else None, "keyframes": self.keyframes()}

    def keyframes(self) -> list[int]:
        with self._lock:
            if not self.keyframes_folder.is_dir():
                return []
            return sorted(list_keyframes(self.keyframes_folder))

    def hint_file(self, index: int) -> Path | None:
        if not self.keyframes_folder.is_dir():
            return None
        return list_keyframes(self.keyframes_folder).get(index)

    def points_file(self, index: int) -> Path:
        return self.keyframes_folder / f"{index}.json"

    def _candidate_files(self, index: int) -> list[Path]:
        return [self.keyframes_folder / f"{index}{suffix}" for suffix in sorted({".json", *KEYFRAME_IMAGE_SUFFIXES})]

    def mark_keyframe(self, index: int) -> dict:
        """Make a frame a keyframe without points yet (an empty points file); a keyframe stays one."""
        with self._lock:
            if self.hint_file(index) is not None:
                return self.read_points(index)
            return self.save_points(index, {"points": []})

    def save_keyframe_image(self, index: int, data: bytes, name: str) -> None:
        """A colour image uploaded for a frame, checked (a PNG or JPEG, not too large, the frame's aspect ratio) and
        saved as <index>.png at its own size, replacing the frame's points."""
        picture = self.check_index(index)
        label = f"keyframe image {name!r}"
        size = image_header_size(data)
        if size is None:
            raise HintError(f"{label} is not a PNG or JPEG image")
        if size[0] * size[1] > MAX_KEYFRAME_PIXELS:
            raise HintError(f"{label}: {size[0]}x{size[1]} pixels is too large; scale it to the video's size")
        rgb, _ = rgb8(decode_image(np.frombuffer(data, np.uint8), Path(name), label))
        check_aspect(Path(name), rgb.shape[1], rgb.shape[0], picture.width, picture.height)
        with self._lock:
            path = self.keyframes_folder / f"{index}.png"
            self._make_folder(path.parent)
            write_image_atomic(path, rgb, None)  # re-encoded: only pixels are kept of what was uploaded
            self._remove_others(index, keep=path)

    def output(self) -> Path:
        return self.source.with_name(f"{self.source.stem}.colour.mp4")


class FrameIndex:
    """Frames of a video by 0-based index in presentation order, read by seeking.

    The index is the presentation timestamps of the video's packets, sorted: demuxing without decoding takes a
    moment even for a long film. A frame is then one seek (to the keyframe before it) and a short decode. Numbering
    matches the video pipeline's (frames in the order the decoder gives them) for any intact file; a file whose
    packets cannot all be decoded can differ after the damage, as the pipeline skips what it cannot decode.
    """

    def __init__(self, source: Path):
        from ..video_io import VideoReader

        self.reader = VideoReader(source, with_audio=False)  # the reader's checks: a video, a known codec...
        self.info = self.reader.info
        self.stream = self.reader.stream
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        pts = []
        try:
            for packet in self.reader.container.demux(self.stream):
                if packet.size:
                    pts.append(packet.pts)
        except Exception as exc:  # a damaged container: what was indexed is what the studio shows
            if not pts:
                raise InputError(f"input {source} cannot be read: {exc}") from None
        if not pts:
            raise InputError(f"input {source} has no video frames")
        self.timestamps = sorted(pts) if None not in pts else None  # None: no timestamps, read from the start
        self.length = len(pts)
        self._rewind()

    def __len__(self) -> int:
        return self.length

    def _rewind(self) -> None:
        self.reader.container.seek(0, stream=self.stream, backward=True)
        self._decoded = self._frames()
        self._next = 0  # index of the next frame _decoded yields, when reading from the start

    def _frames(self):
        for packet in self.reader.container.demux(self.stream):
            try:
                yield from packet.decode()
            except Exception:  # a damaged packet: skipped, as the pipeline skips it
                continue

    def luma(self, index: int) -> np.ndarray:
        with self._lock:
            if index in self._cache:
                self._cache.move_to_end(index)
                return self._cache[index]
            luma = self._read(index)
            self._cache[index] = luma
            while len(self._cache) > FRAME_CACHE_SIZE:
                self._cache.popitem(last=False)
            return luma

    def _read(self, index: int) -> np.ndarray:
        frame = None
        if self.timestamps is not None:
            target = self.timestamps[index]
            self.reader.container.seek(target, stream=self.stream, backward=True)
            for frame in self._frames():
                if frame.pts is not None and frame.pts >= target:
                    break
            self._next = -1  # the decoder is somewhere in the middle now
        else:
            if index < self._next:
                self._rewind()
            for frame in self._decoded:
                self._next += 1
                if self._next > index:
                    break
        if frame is None:
            raise InputError(f"input {self.reader.path}: frame {index} cannot be decoded")
        return color.full_range_luma(self.reader.frame_luma(frame), self.info.full_range)

    def close(self) -> None:
        self.reader.close()


def image_header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header, without decoding; None for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"\xff\xd8":
        offset = 2
        while offset + 9 <= len(data):
            if data[offset] != 0xFF:
                return None
            marker = data[offset + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
                offset += 2
                continue
            length = int.from_bytes(data[offset + 2:offset + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame: the size
                return int.from_bytes(data[offset + 7:offset + 9], "big"), int.from_bytes(data[offset + 5:offset + 7], "big")
            offset += 2 + length
    return None


# ---------------------------------------------------------------------------------------------------------------
# stills


class ImagesProject(Project):
    def __init__(self, source: Path, single: bool = False):
        super().__init__(source)
        self.kind = "image" if single else "images"
        if single:
            paths = [source]
            self.hints_folder = self.folder
        else:
            paths = sorted(p for p in source.iterdir()
                           if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
            if not paths:
                raise InputError(f"input {source} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
            stems: dict[str, Path] = {}
            for path in paths:
                if path.stem in stems:  # `vidcolor image --hints DIR` finds hints by stem
                    raise InputError(f"input {source}: {stems[path.stem].name} and {path.name} share the name "
                                     f"{path.stem!r}, so they would share one hint file; rename one")
                stems[path.stem] = path
            self.hints_folder = self.folder / "hints"
        self.paths = paths
        self._pictures: dict[int, Picture] = {}
        self._luma: OrderedDict[int, np.ndarray] = OrderedDict()
        if single:
            self.picture(0)  # an unreadable image fails at start, with read_image's message

    def count(self) -> int:
        return len(self.paths)

    def _load(self, index: int) -> np.ndarray:
        with self._lock:
            if index in self._luma:
                self._luma.move_to_end(index)
                return self._luma[index]
            rgb, _ = read_image(self.paths[index])
            luma = color.image_to_luma(rgb)
            self._pictures[index] = Picture(self.paths[index].name, luma.shape[1], luma.shape[0])
            self._luma[index] = luma
            while len(self._luma) > FRAME_CACHE_SIZE:
                self._luma.popitem(last=False)
            return luma

    def picture(self, index: int) -> Picture:
        if index not in self._pictures:
            self._load(index)
        return self._pictures[index]

    def luma(self, index: int) -> np.ndarray:
        self.check_index(index)
        return self._load(index)

    def describe(self) -> dict:
        described = super().describe()
        described["names"] = [p.name for p in self.paths]
        described["hinted"] = [i for i in range(self.count()) if self.hint_file(i) is not None]
        if self.kind == "image":
            picture = self.picture(0)
            described.update(width=picture.width, height=picture.height)
        return described

    def hint_file(self, index: int) -> Path | None:
        if self.kind == "image":
            path = self.points_file(index)
            return path if path.is_file() else None
        if not self.hints_folder.is_dir():
            return None
        return find_hint_file(self.hints_folder, self.paths[index].stem)

    def points_file(self, index: int) -> Path:
        if self.kind == "image":
            return self.folder / "hints.json"
        return self.hints_folder / f"{self.paths[index].stem}.json"

    def _candidate_files(self, index: int) -> list[Path]:
        if self.kind == "image":
            return [self.points_file(index)]
        return [self.hints_folder / f"{self.paths[index].stem}{suffix}" for suffix in (".json", ".png")]

    def hints_argument(self) -> Path | None:
        """What `vidcolor image --hints` takes for these images: the hint file, or the hints folder."""
        if self.kind == "image":
            return self.hint_file(0)
        return self.hints_folder if self.hints_folder.is_dir() else None

    def output(self) -> Path:
        if self.kind == "image":
            return self.source.with_name(f"{self.source.stem}.colour{self.source.suffix}")
        return self.source.with_name(self.source.name + ".colour")

    def outputs(self) -> list[tuple[Path, Path]]:
        if self.kind == "image":
            return [(self.source, self.output())]
        return [(path, self.output() / path.name) for path in self.paths]

