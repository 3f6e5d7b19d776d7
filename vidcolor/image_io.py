"""Still images in and out: decoding with the checks a user's files need, and atomic writing."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from .errors import InputError, OutputError
from .files import as_output_error, partial_path, remove_quietly

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".3gp"}
# The first bytes of formats OpenCV reads, to tell "damaged" from "not an image at all".
IMAGE_SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG", b"BM": "BMP", b"II*\x00": "TIFF",
                    b"MM\x00*": "TIFF", b"RIFF": "WebP"}


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


def read_image(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """-> (uint8 RGB H x W x 3 with EXIF orientation applied, alpha H x W or None).

    16-bit images are reduced to 8 bits (the model works on 8-bit luma); CMYK and gray JPEGs are converted to RGB.
    A damaged file (truncated JPEG or PNG...) is refused rather than colorized with a gray or missing part.
    """
    if not path.exists():
        raise InputError(f"input {path} does not exist")
    if path.is_dir():
        raise InputError(f"input {path} is a directory, not an image; pass the image files inside it")
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except PermissionError:
        raise InputError(f"input {path} is not readable (permission denied)") from None
    except OSError as exc:
        raise InputError(f"input {path} cannot be read: {exc.strerror or exc}") from None
    return decode_image(data, path, f"input {path}")


def decode_image(data: np.ndarray, path: Path, label: str) -> tuple[np.ndarray, np.ndarray | None]:
    """read_image for bytes already in memory (uint8 array): a file's, or an upload's (the studio). path: the name
    the bytes came with (its suffix tells a video from an unknown format); label names them in errors."""
    if data.size == 0:
        raise InputError(f"{label} is empty (0 bytes)")
    raw = _decode_quietly(data, cv2.IMREAD_UNCHANGED)
    if raw is None:
        head = data[:16].tobytes()
        kind = next((name for signature, name in IMAGE_SIGNATURES.items() if head.startswith(signature)), None)
        if kind:
            raise InputError(f"{label} is a damaged or truncated {kind} file that cannot be decoded")
        if _looks_like_video(path, head):
            raise InputError(f"{label} is a video, not an image; use `vidcolor {path} OUT.mp4`")
        raise InputError(f"{label} is not an image OpenCV can decode (PNG, JPEG, BMP, TIFF, WebP)")
    alpha = None
    if raw.ndim == 3 and raw.shape[2] == 4:
        alpha = raw[..., 3]
        bgr = raw[..., :3]
    else:
        # IMREAD_COLOR applies EXIF orientation and converts CMYK and gray to 8-bit BGR.
        bgr = _decode_quietly(data, cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"{label} is an image OpenCV cannot convert to colour")
    if bgr.dtype != np.uint8:  # 16-bit and float images: the model works on 8-bit luma
        bgr = _to_uint8(bgr)
        if alpha is not None:
            alpha = _to_uint8(alpha)
    return cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2RGB), alpha


def _to_uint8(image: np.ndarray) -> np.ndarray:
    scale = 255.0 / np.iinfo(image.dtype).max if image.dtype.kind in "ui" else 255.0
    return cv2.convertScaleAbs(image, alpha=scale)


def write_image_atomic(dst: Path, rgb: np.ndarray, alpha: np.ndarray | None) -> None:
    """Encode in memory, write to a temporary name beside dst, then rename: dst is never half-written."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if alpha is not None and dst.suffix.lower() in {".png", ".tif", ".tiff", ".webp"}:
        bgr = np.dstack([bgr, alpha])
    try:
        ok, encoded = cv2.imencode(dst.suffix, bgr)
    except cv2.error:
        ok = False
    if not ok:
        raise OutputError(f"cannot write an image named {dst.name!r}; use .png, .jpg, .bmp, .tif or .webp")
    tmp = partial_path(dst)
    try:
        encoded.tofile(str(tmp))
        os.replace(tmp, dst)
    except OSError as exc:  # disk full, folder removed...
        remove_quietly(tmp)
        raise as_output_error(exc, dst) from None
    except BaseException:
        remove_quietly(tmp)
        raise

