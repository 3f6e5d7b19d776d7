"""Colour hints: the one type for every way a user (or a carried keyframe) tells the network what colour goes where.

A Hints value holds, in the pixel coordinates of the full-resolution picture:
  points   colour points (x, y, radius, Cb, Cr): clicks in the studio, or a hint JSON file
  chroma   a dense Cb/Cr map (2 x h x w, any size with the picture's aspect ratio) with its
  mask     (h x w, 0 none .. 1 full): strokes painted on a transparent layer (their alpha), or a coloured keyframe
These are colours a user chose: the output shows them at those pixels (the Colorizer sees to it with enforce()).
Colour carried from keyframes through a video reaches the network as hint planes directly (vidcolor/keyframes.py).
Only the hints' chroma is used: the picture keeps its own luma.

The network sees hints at its working size as HINT_CHANNELS planes (vidcolor/model.py): Cb and Cr times
CHROMA_SCALE, zero where there is no hint, and the mask. to_network() rasterises them; enforce() then makes the
full-resolution chroma match the hints where they were given, and follow them smoothly nearby.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from . import color
from .errors import InputError
from .image_io import read_image

DEFAULT_POINT_RADIUS_PX = 2.0
# enforce(): the difference between each hint and the network's colour there is spread over the picture along
# its own edges, by the smoothest correction on a graph of neighbouring working-size pixels whose links weaken
# where the luma changes (colorization by optimization, Levin, Lischinski and Weiss 2004, here applied to what the
# network got wrong rather than to gray). Chosen on 16 training images (not val) with the shipped network: on
# 5 and 20 points it gained 0.8 and 1.0 dB over the plain inverse-distance spread, against +0.5 and -0.1 dB for a
# Gaussian spread of the same differences. A sharper EDGE_SIGMA, 0.005, scored 0.1 to 0.2 dB more on 24 other
# training images (1, 5 and 20 points) but, on all 164 val images, +0.04, -0.07 and -0.20 dB (22.29, 24.26 and
# 25.73 dB): the network has seen the training images, so its remaining differences there are not those of new
# pictures. 0.01 stays. Pulling far pixels towards the inverse-distance spread instead of the network (DECAY 1e-5
# to 1e-1 towards it) lost 0.3 to 1.1 dB there, and weakening links where the network's own chroma changes changed
# nothing.
EDGE_SIGMA = 0.01  # luma difference (0..1) at which a link between neighbours falls to exp(-1/2)
DIAGONAL_LINK = 0.7  # weight of diagonal links relative to horizontal and vertical ones
HINT_WEIGHT = 100.0  # how hard the solution is held to the hints (a link weighs at most 1)
DECAY = 1e-6  # how hard it is pulled back to the network's colour far from every hint


@dataclass(frozen=True)
class ColorPoint:
    x: float  # pixels of the full-resolution picture, 0 at the left
    y: float  # pixels, 0 at the top
    cb: float  # chroma of the hinted colour, in [-0.5, 0.5]
    cr: float
    radius: float = DEFAULT_POINT_RADIUS_PX  # pixels of the full-resolution picture


@dataclass(frozen=True)
class Hints:
    points: tuple[ColorPoint, ...] = ()
    chroma: np.ndarray | None = field(default=None, repr=False)  # 2 x h x w float32 in [-0.5, 0.5]
    mask: np.ndarray | None = field(default=None, repr=False)  # h x w float32 in [0, 1]

    def __post_init__(self):
        if (self.chroma is None) != (self.mask is None):
            raise ValueError("dense hints need both chroma and mask")
        if self.chroma is not None and self.chroma.shape[1:] != self.mask.shape:
            raise ValueError(f"hint chroma {self.chroma.shape[1:]} and mask {self.mask.shape} differ in size")

    def is_empty(self) -> bool:
        return not self.points and (self.mask is None or not np.any(self.mask > 0))

    @staticmethod
    def from_rgb(rgb: np.ndarray, alpha: np.ndarray | None = None) -> "Hints":
        """Dense hints from a colour picture (uint8 H x W x 3): every pixel with alpha > 0 (all, without alpha)."""
        chroma = rgb_to_chroma(rgb)
        mask = np.ones(rgb.shape[:2], np.float32) if alpha is None else (alpha.astype(np.float32) / 255.0)
        return Hints(chroma=chroma * (mask > 0), mask=mask)

    # -----------------------------------------------------------------------------------------------------------
    def to_network(self, height: int, width: int, work_h: int, work_w: int) -> np.ndarray:
        """The network's hint planes (3 x work_h x work_w float32) for a height x width picture seen at
        work_h x work_w. A hint smaller than a working pixel still fills the pixel it falls in."""
        planes = np.zeros((3, work_h, work_w), np.float32)
        if self.mask is not None:
            weighted = [cv2.resize(c * self.mask, (work_w, work_h), interpolation=cv2.INTER_AREA) for c in self.chroma]
            # A thin stroke covers only part of a working pixel; the user's stroke is meant in full.
            mask = _spread_thin(self.mask, work_h, work_w)
            area = cv2.resize(self.mask, (work_w, work_h), interpolation=cv2.INTER_AREA)
            inside = area > 1e-6
            for c in range(2):
                planes[c][inside] = weighted[c][inside] / area[inside] * color.CHROMA_SCALE
            planes[2] = np.where(inside, mask, 0.0)
        sy, sx = work_h / height, work_w / width
        for p in self.points:
            cx, cy = (p.x + 0.5) * sx - 0.5, (p.y + 0.5) * sy - 0.5
            r = max(p.radius * max(sx, sy), 0.5)
            x0, x1 = max(0, int(np.floor(cx - r))), min(work_w - 1, int(np.ceil(cx + r)))
            y0, y1 = max(0, int(np.floor(cy - r))), min(work_h - 1, int(np.ceil(cy + r)))
            if x0 > x1 or y0 > y1:
                continue
            yy, xx = np.mgrid[y0:y1 + 1, x0:x1 + 1]
            inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
            if not inside.any():  # a radius under half a pixel: the pixel the point falls in
                inside = (yy == min(max(int(round(cy)), y0), y1)) & (xx == min(max(int(round(cx)), x0), x1))
            planes[0, y0:y1 + 1, x0:x1 + 1][inside] = p.cb * color.CHROMA_SCALE
            planes[1, y0:y1 + 1, x0:x1 + 1][inside] = p.cr * color.CHROMA_SCALE
            planes[2, y0:y1 + 1, x0:x1 + 1][inside] = 1.0
        return planes

    def enforce(self, chroma: np.ndarray, small: np.ndarray | None = None,
                luma: np.ndarray | None = None, quick: bool = False, planes: np.ndarray | None = None) -> np.ndarray:
        """Full-resolution chroma (2 x H x W, float32, changed in place and returned) made to match the hints.

        small, the network's chroma at its own size (2 x h x w), and luma, the working-size luma (float in [0, 1])
        it saw, give the correction around the hints: the difference between each hint and the prediction there,
        spread along the picture's edges (edge_aware_spread), so that the colour around a point follows it instead
        of leaving a dot, and stops where the surface does. Then the hinted pixels themselves get the hinted chroma
        (strokes blended by their alpha, as painted). quick: solve at the network's output size instead of the
        working size, 8x faster (0.2 s instead of 1.5 s at 256 x 384 on the 2-core Xeon) and a little less exact
        along edges (on the training images used to choose the settings, 0 dB at 5 points, -0.3 dB at 20): for
        interactive previews. planes: to_network()'s planes at luma's size, if the caller has them already.
        """
        if self.is_empty():
            return chroma
        height, width = chroma.shape[1:]
        if small is not None and luma is not None:
            if quick:
                luma = cv2.resize(luma, (small.shape[2], small.shape[1]), interpolation=cv2.INTER_AREA)
            h, w = luma.shape
            reuse = planes is not None and planes.shape[1:] == (h, w)
            target = planes if reuse else self.to_network(height, width, h, w)
            base = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in small])
            correction = edge_aware_spread(luma, target[:2] / color.CHROMA_SCALE - base, target[2])
            for c in range(2):
                chroma[c] += cv2.resize(correction[c], (width, height), interpolation=cv2.INTER_LINEAR)
        if self.mask is not None:
            mask = self.mask if self.mask.shape == (height, width) else cv2.resize(
                self.mask, (width, height), interpolation=cv2.INTER_LINEAR)
            for c in range(2):
                hint = self.chroma[c] if self.chroma.shape[1:] == (height, width) else cv2.resize(
                    self.chroma[c], (width, height), interpolation=cv2.INTER_LINEAR)
                chroma[c] += mask * (hint - chroma[c])
        for p in self.points:
            r = max(p.radius, 0.5)
            x0, x1 = max(0, int(np.floor(p.x - r))), min(width - 1, int(np.ceil(p.x + r)))
            y0, y1 = max(0, int(np.floor(p.y - r))), min(height - 1, int(np.ceil(p.y + r)))
            if x0 > x1 or y0 > y1:
                continue
            yy, xx = np.mgrid[y0:y1 + 1, x0:x1 + 1]
            inside = (xx - p.x) ** 2 + (yy - p.y) ** 2 <= r * r
            chroma[0, y0:y1 + 1, x0:x1 + 1][inside] = p.cb
            chroma[1, y0:y1 + 1, x0:x1 + 1][inside] = p.cr
        np.clip(chroma, -0.5, 0.5, out=chroma)
        return chroma


def edge_aware_spread(luma: np.ndarray, target: np.ndarray, mask: np.ndarray, exact: bool = False) -> np.ndarray:
    """The smoothest planes (C x h x w) equal to target where mask is 1, smooth where the luma (h x w, [0, 1]) is,
    free to change across its edges, and falling back to 0 far from any mask: the minimum of
        sum over neighbours r, s of w_rs (x_r - x_s)^2 + HINT_WEIGHT * sum_r mask_r (x_r - target_r)^2
        + DECAY * sum_r x_r^2,   w_rs = exp(-(luma_r - luma_s)^2 / (2 EDGE_SIGMA^2))
    solved exactly (a sparse symmetric system, factorised once for all planes): about a second for 256 x 384.
    exact: pixels with mask 1 keep their target exactly and only the others are solved for (a carry's fill in
    vidcolor/keyframes.py, where most of the frame is known)."""
    import scipy.sparse
    import scipy.sparse.linalg

    h, w = luma.shape
    n = h * w
    index = np.arange(n).reshape(h, w)
    flat = luma.astype(np.float64).ravel()
    rows, cols, weights = [], [], []
    for dy, dx, scale in ((0, 1, 1.0), (1, 0, 1.0), (1, 1, DIAGONAL_LINK), (1, -1, DIAGONAL_LINK)):
        a = index[0:h - dy, max(0, -dx):w - max(0, dx)].ravel()
        b = index[dy:h, max(0, dx):w - max(0, -dx)].ravel()
        weight = scale * np.exp(-((flat[a] - flat[b]) ** 2) / (2.0 * EDGE_SIGMA ** 2))
        rows += [a, b]
        cols += [b, a]
        weights += [weight, weight]
    links = scipy.sparse.csr_matrix((np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
                                    shape=(n, n))
    if exact:
        # Pixels with mask 1 are held exactly: only the others are unknowns, with those as fixed neighbours (the
        # limit of an infinite HINT_WEIGHT), a smaller system when most of the picture is known.
        known = mask.ravel() >= 1.0
        free = np.flatnonzero(~known)
        out = np.array(target, np.float64).reshape(len(target), n)
        out[:, free] = 0.0
        if free.size == 0 or free.size == n:
            return out.reshape(target.shape).astype(np.float32)
        degree = np.asarray(links.sum(axis=1)).ravel()
        inner = links[free][:, free]
        border = links[free][:, np.flatnonzero(known)]
        system = scipy.sparse.diags(degree[free] + DECAY) - inner
        solve = scipy.sparse.linalg.factorized(system.tocsc())
        for c in range(len(target)):
            out[c, free] = solve(border @ out[c, known])
        return out.reshape(target.shape).astype(np.float32)
    held = HINT_WEIGHT * mask.astype(np.float64).ravel()
    system = scipy.sparse.diags(np.asarray(links.sum(axis=1)).ravel() + held + DECAY) - links
    solve = scipy.sparse.linalg.factorized(system.tocsc())
    planes = [solve(held * plane.astype(np.float64).ravel()).reshape(h, w) for plane in target]
    return np.stack(planes).astype(np.float32)


def _spread_thin(mask: np.ndarray, work_h: int, work_w: int) -> np.ndarray:
    """1 in every working pixel that any hinted pixel falls in (the most trusted one's trust, for soft masks)."""
    height, width = mask.shape
    if height <= work_h and width <= work_w:
        return cv2.resize(mask, (work_w, work_h), interpolation=cv2.INTER_NEAREST)
    # Max-pool by whole cells: cv2's area resize averages, a dilation first makes each cell's average its maximum.
    kernel = np.ones((int(np.ceil(height / work_h)) + 1, int(np.ceil(width / work_w)) + 1), np.uint8)
    return cv2.resize(cv2.dilate(mask, kernel), (work_w, work_h), interpolation=cv2.INTER_AREA)


def rgb_to_chroma(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB H x W x 3 -> chroma 2 x H x W float32 in [-0.5, 0.5]."""
    f = rgb.astype(np.float32) / 255.0
    _, cb, cr = color.rgb_to_ycbcr(f[..., 0], f[..., 1], f[..., 2])
    return np.stack([cb, cr]).astype(np.float32)


def hex_to_chroma(text: str) -> tuple[float, float]:
    """'#c83c28' (or 'c83c28', or '#c32') -> (Cb, Cr) in [-0.5, 0.5]; ValueError for anything else."""
    value = text.strip().lstrip("#") if isinstance(text, str) else ""
    if len(value) == 3:
        value = "".join(ch * 2 for ch in value)
    if len(value) != 6 or any(ch not in "0123456789abcdefABCDEF" for ch in value):
        raise ValueError(f"{text!r} is not a colour; use sRGB hex like \"#c83c28\"")
    r, g, b = (int(value[i:i + 2], 16) / 255.0 for i in (0, 2, 4))
    _, cb, cr = color.rgb_to_ycbcr(r, g, b)
    return float(cb), float(cr)


# ---------------------------------------------------------------------------------------------------------------
# hint and keyframe files

HINT_IMAGE_SUFFIXES = {".png"}
KEYFRAME_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}
HINT_SUFFIXES = {".json", *HINT_IMAGE_SUFFIXES}
# A keyframe may be any size with the frame's aspect ratio: within this fraction (a few pixels of rounding when an
# editor scales a 1920x1080 frame to 853x480, say).
ASPECT_TOLERANCE = 0.01
# A hint file is small: points typed or clicked by a person. Anything larger is a mistake (or worse).
MAX_HINT_JSON_BYTES = 10 * 1024 * 1024


class HintError(InputError):
    """A hint or keyframe file that cannot be used; the message names the file and the problem."""


def load_hints(path: str | os.PathLike, width: int, height: int) -> Hints:
    """Hints for a width x height picture from a JSON points file or a PNG stroke layer (see the module notes)."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        return Hints(points=read_points(path, width, height))
    if path.suffix.lower() in HINT_IMAGE_SUFFIXES:
        rgb, alpha = _read_picture(path)
        if alpha is None:
            raise HintError(f"hints {path}: a PNG hint layer needs an alpha channel (paint the strokes on a "
                            "transparent layer); for a fully coloured picture use it as a video keyframe")
        if rgb.shape[:2] != (height, width):
            raise HintError(f"hints {path}: {rgb.shape[1]}x{rgb.shape[0]} pixels, but the picture is {width}x{height};"
                            " a hint layer must have the picture's size")
        hints = Hints.from_rgb(rgb, alpha)
        return hints
    raise HintError(f"hints {path}: not a hint file; use a .json points file or a .png layer with transparency")


def read_points(path: Path, width: int, height: int) -> tuple[ColorPoint, ...]:
    """Points of a JSON hint file, {"points": [{"x": 120, "y": 45, "color": "#c83c28", "radius": 2}, ...]},
    checked against a width x height picture."""
    try:
        size = path.stat().st_size
        if size > MAX_HINT_JSON_BYTES:
            raise HintError(f"hints {path}: {size} bytes is too large for a hint file")
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise HintError(f"hints {path} do not exist") from None
    except OSError as exc:
        raise HintError(f"hints {path} cannot be read: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise HintError(f"hints {path}: not valid JSON ({str(exc).splitlines()[0][:120]})") from None
    return parse_points(data, width, height, f"hints {path}")


def parse_points(data, width: int, height: int, where: str) -> tuple[ColorPoint, ...]:
    """The points of a decoded hint JSON document (see read_points), checked against a width x height picture.
    where names the document in error messages ("hints film.mp4.vidcolor/keyframes/12.json")."""
    if not isinstance(data, dict) or not isinstance(data.get("points"), list):
        raise HintError(f"{where}: expected an object with a \"points\" list, like "
                        "{\"points\": [{\"x\": 120, \"y\": 45, \"color\": \"#c83c28\"}]}")
    points = []
    for i, item in enumerate(data["points"]):
        point = f"{where}: point {i}"
        if not isinstance(item, dict):
            raise HintError(f"{point} is not an object with x, y and color")
        for key in ("x", "y", "color"):
            if key not in item:
                raise HintError(f"{point} has no \"{key}\"")
        x, y, radius = item["x"], item["y"], item.get("radius", DEFAULT_POINT_RADIUS_PX)
        for key, value in (("x", x), ("y", y), ("radius", radius)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise HintError(f"{point}: \"{key}\" must be a number, not {json.dumps(value)[:40]}")
        if radius <= 0 or radius > max(width, height):
            raise HintError(f"{point}: radius {radius:g} must be above 0 and at most the picture's size")
        if not (0 <= x < width and 0 <= y < height):
            raise HintError(f"{point} at ({x:g}, {y:g}) is outside the {width}x{height} picture")
        try:
            cb, cr = hex_to_chroma(item["color"])
        except ValueError as exc:
            raise HintError(f"{point}: {exc}") from None
        points.append(ColorPoint(x=float(x), y=float(y), cb=cb, cr=cr, radius=float(radius)))
    return tuple(points)


def write_points(path: Path, points: list[dict]) -> None:
    """Write a JSON hint file that read_points reads back: points already checked with parse_points, each
    {"x", "y", "color" (sRGB hex), "radius"}. Atomic (a hidden temporary name, then a rename), so that a reader
    (vidcolor run from the command line at the same moment) sees the old file or the new one, never half of one."""
    rows = [json.dumps({"x": p["x"], "y": p["y"], "color": p["color"], "radius": p.get("radius", DEFAULT_POINT_RADIUS_PX)})
            for p in points]
    text = "{\"points\": [" + ",".join(f"\n  {row}" for row in rows) + ("\n]}" if rows else "]}")  # a point a line
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")  # hidden: list_keyframes skips it
    try:
        tmp.write_text(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_picture(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        return read_image(path)
    except InputError as exc:
        raise HintError(str(exc).replace("input ", "hints ", 1)) from None


def hints_for(hints: "str | os.PathLike | Hints | None", image: Path, width: int, height: int) -> Hints | None:
    """What --hints PATH means for one image: PATH a hint file (for every input), or a folder holding
    <image stem>.json or .png (an image without one gets None: automatic colour)."""
    if hints is None or isinstance(hints, Hints):
        return hints
    path = Path(hints)
    if path.is_dir():
        path = find_hint_file(path, image.stem)
        if path is None:
            return None
    elif not path.exists():
        raise HintError(f"hints {path} do not exist")
    return load_hints(path, width, height)


def find_hint_file(folder: Path, stem: str) -> Path | None:
    """<stem>.json or <stem>.png in folder; HintError if both are there (which one was meant?)."""
    found = [folder / f"{stem}{suffix}" for suffix in sorted(HINT_SUFFIXES) if (folder / f"{stem}{suffix}").is_file()]
    if len(found) > 1:
        raise HintError(f"hints folder {folder}: both {found[0].name} and {found[1].name}; keep one")
    return found[0] if found else None


def check_aspect(path: Path, kw: int, kh: int, width: int, height: int) -> None:
    if abs(kw / kh - width / height) > ASPECT_TOLERANCE * (width / height):
        raise HintError(f"keyframe {path}: {kw}x{kh} pixels is not the video's aspect ratio ({width}x{height}); "
                        "scale it without cropping")


def list_keyframes(folder: str | os.PathLike) -> dict[int, Path]:
    """Keyframe files of a folder by 0-based frame index: <index>.png, .jpg or .jpeg (a coloured frame) or
    <index>.json (colour points). Hidden files (.DS_Store...) are ignored; any other name is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise HintError(f"keyframes folder {folder} does not exist" if not folder.exists()
                        else f"keyframes {folder} is not a folder")
    found: dict[int, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        stem, suffix = path.stem, path.suffix.lower()
        if suffix not in KEYFRAME_IMAGE_SUFFIXES | {".json"}:
            raise HintError(f"keyframe {path}: not a keyframe file; use <frame index>.png, .jpg or .json")
        if not stem.isdigit() or not stem.isascii():
            raise HintError(f"keyframe {path}: the name must be a 0-based frame index, like 120{suffix}")
        index = int(stem)
        if index in found:
            raise HintError(f"keyframes {folder}: {found[index].name} and {path.name} are both for frame {index}")
        if not path.is_file():
            raise HintError(f"keyframe {path} is not a file")
        found[index] = path
    return found


def read_keyframe(path: Path, width: int, height: int) -> Hints:
    """A keyframe file as hints for a width x height frame: a coloured frame as dense hints (its chroma at its
    own size), or JSON points."""
    if path.suffix.lower() == ".json":
        return Hints(points=read_points(path, width, height))
    rgb, _ = _read_picture(path)
    check_aspect(path, rgb.shape[1], rgb.shape[0], width, height)
    return Hints.from_rgb(rgb)
