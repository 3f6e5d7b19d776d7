"""vidcolor: colorize black-and-white video, stills and live streams.

Public API (imported lazily, so `vidcolor --help` does not pay for torch):
    load_colorizer(weights="default", device="auto", saturation=1.0) -> Colorizer
    colorize_image(src, dst, colorizer, ..., hints=None) / colorize_video(src, dst, colorizer, options)
    Hints, ColorPoint, load_hints(path, width, height): colour hints (points, strokes, keyframe colour)
    VideoOptions(keyframes=DIR): colour keyframes carried through a video
    available_weights() -> list of bundled weights names
"""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import InputError, OutputError, VidcolorError, WeightsError  # noqa: E402  (no heavy imports)

_LAZY = {
    "load_colorizer": "colorizer",
    "Colorizer": "colorizer",
    "colorize_image": "pipeline",
    "colorize_video": "pipeline",
    "VideoOptions": "pipeline",
    "available_weights": "weights",
    "Hints": "guidance",
    "ColorPoint": "guidance",
    "load_hints": "guidance",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'vidcolor' has no attribute {name!r}")


__all__ = ["__version__", "VidcolorError", "InputError", "OutputError", "WeightsError", *_LAZY]
