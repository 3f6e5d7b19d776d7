"""Still images in and out: decoding with the checks a user's files need, and atomic writing."""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError, OutputError
from .files import as_output_error, check_input_file, partial_path, place_output, remove_quietly

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".3gp"}
# The first bytes of formats OpenCV reads, to tell "damaged" from "not an image at all".
IMAGE_SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"BM": "BMP", b"II*\x00": "TIFF",
                    b"MM\x00*": "TIFF", b"RIFF": "WebP"}


# OpenCV's decoders refuse larger images (its CV_IO_MAX_IMAGE_PIXELS default). Below it, a still takes about 4
# bytes per pixel (8-bit) while it is colorized: the output, its luma, and a few strips of rows.
MAX_IMAGE_PIXELS = int(os.environ.get("CV_IO_MAX_IMAGE_PIXELS", 1 << 30))


def _png_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's header (its IHDR chunk comes first), or None."""
    if len(head) >= 24 and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    return None


def _looks_like_video(path: Path, head: bytes) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES or head[4:8] == b"ftyp" or head[:4] == b"\x1a\x45\xdf\xa3"


def _decode_quietly(data: np.ndarray, flags: int):
    """cv2.imdecode without OpenCV's own warnings on stderr (a damaged file is reported by the caller, once)."""
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    try:
        return cv2.imdecode(data, flags)
    except cv2.error:
        return None
    finally:
        cv2.utils.logging.setLogLevel(previous)


@dataclass
class Picture:
    """A decoded still, EXIF orientation applied: pixels H x W (gray) or H x W x 3 (BGR), uint8 or uint16 (16-bit
    PNG and TIFF keep their depth); alpha H x W of the same dtype, or None."""
    pixels: np.ndarray
    alpha: np.ndarray | None

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]


def read_picture(path: Path) -> Picture:
    """Decode a still with the checks a user's files need. A gray image stays one plane (a third of the memory);
    float images are reduced to 8 bits. A damaged file (truncated JPEG or PNG...) is refused rather than colorized
    with a gray or missing part."""
    check_input_file(path, "image")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except PermissionError:
        raise InputError(f"input {path} is not readable (permission denied)") from None
    except OSError as exc:
        raise InputError(f"input {path} cannot be read: {exc.strerror or exc}") from None
    return decode_image(data, path, f"input {path}")


def decode_image(data: np.ndarray, path: Path, label: str) -> "Picture":
    """read_picture for bytes already in memory (uint8 array): a file's, or an upload's (the studio). path: the name
    the bytes came with (its suffix tells a video from an unknown format); label names them in errors."""
    if data.size == 0:
        raise InputError(f"{label} is empty (0 bytes)")
    raw = _decode_quietly(data, cv2.IMREAD_UNCHANGED)
    if raw is None:
        head = data[:16].tobytes()
        kind = next((name for signature, name in IMAGE_SIGNATURES.items() if head.startswith(signature)), None)
        size = _png_size(head + data[16:24].tobytes()) if kind == "PNG" else None
        if size and size[0] * size[1] > MAX_IMAGE_PIXELS:
            raise InputError(f"input {path} is {size[0]} x {size[1]} pixels, too large: vidcolor reads stills of up "
                             f"to {MAX_IMAGE_PIXELS:,} pixels (32768 x 32768); scale or cut it first")
        if kind:
            raise InputError(f"{label} is a damaged or truncated {kind} file that cannot be decoded")
        if _looks_like_video(path, head):
            raise InputError(f"{label} is a video, not an image; use `vidcolor {path} OUT.mp4`")
        raise InputError(f"{label} is not an image OpenCV can decode (PNG, JPEG, BMP, TIFF, WebP)")
    alpha = None
    if raw.ndim == 3 and raw.shape[2] == 4:
        # OpenCV applies EXIF orientation to every decode except IMREAD_UNCHANGED, the only one that keeps alpha.
        alpha = orient(np.ascontiguousarray(raw[..., 3]), exif_orientation(data.tobytes()))
    del raw  # before the second decode: a large still is not held twice
    # ANYDEPTH keeps 16 bits, ANYCOLOR keeps gray as one plane (CMYK becomes BGR); EXIF orientation is applied.
    pixels = _decode_quietly(data, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    if pixels is None:
        raise InputError(f"{label} is an image OpenCV cannot convert to colour")
    if pixels.ndim == 3 and pixels.shape[2] == 4:  # BGRA where the decoder keeps it: the alpha is taken above
        pixels = np.ascontiguousarray(pixels[..., :3])
    if pixels.dtype not in (np.uint8, np.uint16):  # float and signed images: the model works on 8-bit luma
        pixels = to_uint8(pixels)
    if alpha is not None and alpha.dtype != pixels.dtype:
        alpha = to_uint8(alpha) if pixels.dtype == np.uint8 else (alpha.astype(np.uint16) * 257)
    if alpha is not None and alpha.shape != pixels.shape[:2]:
        raise InputError(f"{label}: its alpha channel and its picture disagree in size after EXIF orientation")
    return Picture(pixels, alpha)


def read_image(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """-> (uint8 RGB H x W x 3 with EXIF orientation applied, alpha H x W or None): read_picture, in 8-bit RGB."""
    return rgb8(read_picture(path))


def rgb8(picture: "Picture") -> tuple[np.ndarray, np.ndarray | None]:
    """A decoded Picture as (uint8 RGB H x W x 3, uint8 alpha H x W or None)."""
    pixels, alpha = picture.pixels, picture.alpha
    if pixels.dtype != np.uint8:
        pixels = to_uint8(pixels)
        alpha = None if alpha is None else to_uint8(alpha)
    code = cv2.COLOR_GRAY2RGB if pixels.ndim == 2 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(pixels, code), alpha


def to_uint8(image: np.ndarray) -> np.ndarray:
    scale = 255.0 / np.iinfo(image.dtype).max if image.dtype.kind in "ui" else 255.0
    return cv2.convertScaleAbs(image, alpha=scale)


# EXIF orientation (1-8) -> how to turn the stored pixels upright, as OpenCV does for the colour channels.
ORIENTATIONS = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.T,
    6: lambda a: a.T[:, ::-1],  # 90 degrees clockwise
    7: lambda a: a[::-1, ::-1].T,
    8: lambda a: a.T[::-1],  # 90 degrees counter-clockwise
}


def orient(plane: np.ndarray, orientation: int | None) -> np.ndarray:
    turn = ORIENTATIONS.get(orientation or 1)
    return plane if turn is None else np.ascontiguousarray(turn(plane))


def exif_orientation(data: bytes) -> int | None:
    """The EXIF Orientation tag of a PNG (eXIf chunk) or WebP (EXIF chunk) file, or None. (OpenCV's TIFF decoder
    orients even IMREAD_UNCHANGED, alpha included; JPEG has no alpha.)"""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            offset = 8
            while offset + 8 <= len(data):
                length, kind = struct.unpack(">I4s", data[offset:offset + 8])
                if kind == b"eXIf":
                    return _tiff_orientation(data[offset + 8: offset + 8 + length])
                if kind in (b"IDAT", b"IEND"):  # eXIf must come before the image data
                    return None
                offset += 12 + length
        elif data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            offset = 12
            while offset + 8 <= len(data):
                kind, length = struct.unpack("<4sI", data[offset:offset + 8])
                if kind == b"EXIF":
                    exif = data[offset + 8: offset + 8 + length]
                    return _tiff_orientation(exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
                offset += 8 + length + (length & 1)
    except struct.error:  # a damaged chunk: no orientation, as OpenCV would also find none
        return None
    return None


def _tiff_orientation(tiff: bytes) -> int | None:
    order = "<" if tiff[:2] == b"II" else ">"
    (first,) = struct.unpack(order + "I", tiff[4:8])
    (count,) = struct.unpack(order + "H", tiff[first:first + 2])
    for index in range(count):
        entry = tiff[first + 2 + 12 * index: first + 14 + 12 * index]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag == 0x0112 and kind == 3:  # SHORT
            (value,) = struct.unpack(order + "H", entry[8:10])
            return value if 1 <= value <= 8 else None
    return None


# Formats that hold an alpha channel, and 16 bits per channel, as OpenCV writes them.
ALPHA_SUFFIXES = {".png", ".tif", ".tiff", ".webp"}
DEEP_SUFFIXES = {".png", ".tif", ".tiff"}


def write_image_atomic(dst: Path, image: np.ndarray, alpha: np.ndarray | None, overwrite: bool = False,
                       bgr: bool = False) -> None:
    """Encode in memory, write to a temporary name beside dst, then move it into place: dst is never half-written,
    and without overwrite a dst that another run wrote meanwhile is not replaced.

    image: RGB (BGR or BGRA, as OpenCV writes it, with bgr=True; a large still is built that way, without another
    full-size copy) or gray; uint8, or uint16 for DEEP_SUFFIXES. alpha: kept where the format holds it.
    """
    if not bgr and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if alpha is not None and dst.suffix.lower() in ALPHA_SUFFIXES:
        image = np.dstack([image, alpha])
    try:
        ok, encoded = cv2.imencode(dst.suffix, image)
    except cv2.error:
        ok = False
    if not ok:
        raise OutputError(f"cannot write an image named {dst.name!r}; use .png, .jpg, .bmp, .tif or .webp")
    tmp = partial_path(dst)
    try:
        encoded.tofile(str(tmp))
        del encoded
        place_output(tmp, dst, overwrite)
    except OSError as exc:  # disk full, folder removed...
        remove_quietly(tmp)
        raise as_output_error(exc, dst) from None
    except BaseException:
        remove_quietly(tmp)
        raise
