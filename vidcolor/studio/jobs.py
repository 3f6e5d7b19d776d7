"""Work the studio does off the request threads: the one network's previews, the render, the shot list.

The network is shared: previews run one at a time on a single worker thread (a burst of edits queues behind the one
running, and the page always asks for the latest), the render in its own thread through the same public functions
the command line calls (colorize_video, colorize_image), so that what the studio renders is what `vidcolor` renders.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from ..errors import Cancelled, VidcolorError
from .project import Project

# Preview JPEGs: 4:4:4, so that a point's colour is not smeared over its neighbours by chroma subsampling.
JPEG_QUALITY = 90
# How long stop() waits for a cancelled render to remove its partial output (seconds).
STOP_WAIT_S = 30.0


def encode_jpeg(rgb: np.ndarray, width: int | None = None) -> bytes:
    """uint8 RGB (or gray) -> JPEG bytes, scaled down to width pixels if given (thumbnails)."""
    if width is not None and width < rgb.shape[1]:
        height = max(1, round(rgb.shape[0] * width / rgb.shape[1]))
        rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    image = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY,
                                            cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])
    if not ok:
        raise VidcolorError("cannot encode a preview")
    return data.tobytes()


class Previews:
    """Colorized previews on one worker thread; the last few are cached by picture and hints."""

    def __init__(self, project: Project, colorizer, size: int):
        self.project = project
        self.colorizer = colorizer
        self.size = size
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vidcolor-studio-preview")
        self._cache: dict[tuple, bytes] = {}

    def colour_jpeg(self, index: int) -> bytes:
        return self._worker.submit(self._colour_jpeg, index).result()

    def _colour_jpeg(self, index: int) -> bytes:
        hints = self.project.hints(index)
        path = self.project.hint_file(index)
        key = (index, None if path is None else (str(path), path.stat().st_mtime_ns, path.stat().st_size))
        if key not in self._cache:
            # quick: the coarser correction around the points, so that a preview follows an edit within 0.5 s.
            rgb = self.colorizer.colorize_rgb(self.project.luma(index), self.size, hints, quick=True)
            if len(self._cache) >= 16:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = encode_jpeg(rgb)
        return self._cache[key]

    def close(self) -> None:
        self._worker.shutdown(wait=True, cancel_futures=True)


class Shots:
    """The video's shot starts, found in the background (a pass over the whole video, which the page does not wait
    for) with vidcolor.frames.ShotDetector, the smoother's own scene-cut test as shot_starts uses it. The loop is
    shot_starts' own, with a stop check per frame: a server that stops must not leave a decoder running."""

    def __init__(self, project: Project):
        self.state: dict = {"ready": project.kind != "video", "starts": [0]}
        self._stop = threading.Event()
        self._thread = None
        if project.kind == "video":
            self._thread = threading.Thread(target=self._find, args=(project.source,), name="vidcolor-studio-shots")
            self._thread.start()

    def _find(self, source) -> None:
        from ..frames import ShotDetector
        from ..video_io import VideoReader

        try:
            starts = []
            with VideoReader(source, with_audio=False) as reader:
                detector = ShotDetector(reader.info.height, reader.info.width)
                for _, frame in reader:
                    if self._stop.is_set():
                        return
                    if detector.starts_shot(frame.luma):
                        starts.append(frame.index)
                        self.state = {"ready": False, "starts": list(starts)}  # the strip fills in as it goes
            self.state = {"ready": True, "starts": starts or [0]}
        except VidcolorError as exc:
            self.state = {"ready": True, "starts": [0], "note": f"shots could not be found: {exc}"}

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


class Render:
    """One render at a time, in a background thread: start(), status(), cancel(); stop() when the server ends."""

    def __init__(self, project: Project, colorizer, size: int | None):
        self.project = project
        self.colorizer = colorizer
        self.size = size
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._status = {"state": "idle", "done": 0, "total": project.count(), "output": None, "error": None}

    def status(self) -> dict:
        with self._lock:
            return dict(self._status)

    def start(self) -> dict:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                raise RenderBusy("a render is already running; cancel it first")
            self._cancel.clear()
            self._status = {"state": "running", "done": 0, "total": self.project.count(), "output": None,
                            "error": None, "started": time.time()}
            self._thread = threading.Thread(target=self._run, name="vidcolor-studio-render", daemon=True)
            self._thread.start()
            return dict(self._status)

    def cancel(self) -> dict:
        self._cancel.set()
        return self.status()

    def stop(self) -> None:
        """Cancel a running render and wait until it has removed its partial output."""
        self._cancel.set()
        if self._thread is not None:
            self._thread.join(STOP_WAIT_S)

    def _progress(self, done: int) -> None:
        with self._lock:
            self._status["done"] = done
        if self._cancel.is_set():
            raise Cancelled("render cancelled")

    def _run(self) -> None:
        try:
            output = self._render_video() if self.project.kind == "video" else self._render_images()
            state = {"state": "done", "output": str(output)}
        except Cancelled:
            state = {"state": "cancelled"}
        except VidcolorError as exc:
            state = {"state": "failed", "error": str(exc)}
        except Exception as exc:  # a bug: still one line for the page
            first = str(exc).splitlines()[0] if str(exc) else ""
            state = {"state": "failed", "error": f"unexpected {exc.__class__.__name__}: {first}"}
        with self._lock:
            self._status.update(state)

    def _render_video(self):
        from ..pipeline import DEFAULT_VIDEO_SIZE, VideoOptions, colorize_video

        project = self.project
        options = {"size": self.size or DEFAULT_VIDEO_SIZE, "overwrite": True, "progress": False,
                   "on_progress": self._progress}
        if project.keyframes():
            options["keyframes"] = project.keyframes_folder
        colorize_video(project.source, project.output(), self.colorizer, VideoOptions(**options))
        return project.output()

    def _render_images(self):
        from ..pipeline import DEFAULT_SIZE, colorize_image

        project = self.project
        hints = project.hints_argument()
        outputs = project.outputs()
        if project.kind == "images":
            try:
                project.output().mkdir(exist_ok=True)
            except OSError as exc:
                raise VidcolorError(f"cannot create {project.output()}: {exc.strerror or exc}") from None
        for done, (src, dst) in enumerate(outputs):
            if self._cancel.is_set():  # between images: the ones written stay, each complete
                raise Cancelled("render cancelled")
            colorize_image(src, dst, self.colorizer, size=self.size or DEFAULT_SIZE, overwrite=True, hints=hints)
            self._progress(done + 1)
        return project.output()


class RenderBusy(VidcolorError):
    """A second render asked for while one runs."""
