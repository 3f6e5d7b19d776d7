"""Live mode: colorize a camera, a stream or a file in real time; show it, record it, or both.

The only module that opens windows. Three threads:
    capture thread : reads frames from OpenCV's capture into a one-frame slot. A newer frame replaces one the main
                     loop has not taken yet (counted as dropped), so the loop always works on the newest frame and
                     latency stays bounded however slow the colorizer is: it never builds a queue.
    main thread    : luma -> Colorizer at the working size -> ChromaSmoother -> chroma upsampled and joined to the
                     frame's own full-resolution luma -> window (input and colorized side by side) and recorder.
                     To keep up on a slow CPU, the network runs on only one frame in k (the smoother carries colour
                     along the motion to the others, ChromaSmoother.schedule); by default k follows the measured
                     cost of a frame with and without the network (choose_every).
    record thread  : (with a record path) encodes the shown frames with PyAV into a temporary file, renamed when
                     the run ends (end of source, q, Ctrl-C), so a recording is either complete and playable or absent.

A file source is paced at its own frame rate, as a camera would deliver it; with realtime=False it is instead handed
over frame by frame as fast as the loop takes them (none dropped), which measures the headroom. Cameras and URLs
deliver at their own pace and always drop when the loop is slower.
"""
from __future__ import annotations

import math
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from . import color
from .colorizer import MAX_SATURATION, Colorizer, check_saturation, load_colorizer, resize_plane
from .errors import InputError, OutputError, Terminated, VidcolorError
from .files import check_output, partial_path, place_output, remove_quietly
from .smoothing import DEFAULT_STRENGTH, ChromaSmoother, check_every
from .video_io import EncoderSettings, VideoInfo, VideoWriter

# Working short side in live mode, pixels. Smaller than the video default (256): measured on a 2-core CPU, one
# 160 x 214 inference (640x480 source) costs ~16 ms of CPU, 256 x 342 ~40 ms, which alone would exceed a 30 fps
# frame's 33 ms. The default model is trained at 160 too.
DEFAULT_LIVE_SIZE = 160
# The + and - keys change the working size by this much, within these bounds (pixels).
SIZE_STEP_PX = 32
SATURATION_STEP = 0.25  # [ and ] change the colour strength by this much
MIN_LIVE_SIZE = 64
MAX_LIVE_SIZE = 512

# Opening a source (and reading its first frame) gives up after this long: a dead URL or a camera that never
# delivers must end in an error, not a hang (seconds).
OPEN_TIMEOUT_S = 10.0
# A stream that delivers nothing for this long has ended (seconds); FFmpeg's own read timeout.
READ_TIMEOUT_S = 10.0
# Some cameras and streams report no frame rate (0 or nonsense); this is assumed then (frames per second).
FALLBACK_FPS = 30.0
MAX_PLAUSIBLE_FPS = 240.0
# How often a blocked wait checks whether the run has been asked to stop (seconds).
POLL_S = 0.05
# How long the main thread waits for the capture thread to finish its current read at the end (seconds).
CAPTURE_JOIN_S = READ_TIMEOUT_S + 1.0

# On a small CPU, one intra-op thread for the network: the capture thread (decoding) and the record thread
# (encoding) need the other core, and with two threads each small inference pays a synchronisation cost that is
# large when the cores are busy (measured with this loop on a loaded 2-core machine, 640x480 at 30 fps, size 160:
# 21.6 fps shown with one thread, 5.6 fps with two). Machines with more cores keep the Colorizer's choice.
SMALL_CPU_CORES = 4

# Recording: x264 "veryfast" keeps encoding a 640x480 frame to a few ms of CPU; crf 20 looks clean at that speed.
RECORD_CRF = 20
RECORD_PRESET = "veryfast"
# Frames waiting for the encoder. Bounded so memory cannot grow; when it is full the loop waits (every shown frame
# is recorded) and the capture thread drops instead.
RECORD_QUEUE_FRAMES = 8

WINDOW_NAME = "vidcolor live"
# The side-by-side view is scaled down to at most this width (pixels), so a 1080p source still fits a screen.
DISPLAY_MAX_WIDTH_PX = 1600
# Displayed fps is the rate over the last this many shown frames.
FPS_WINDOW_FRAMES = 30

# Automatic network calls (--every auto): k is the smallest that brings the expected time of a frame,
# (time without the network) + (network time) / k, under this fraction of the source's frame interval. The rest is
# headroom for the capture and record threads and for the neighbours on a shared machine. At most MAX_LIVE_EVERY:
# beyond that, colour carried for long drifts on moving scenes.
LIVE_BUSY_FRACTION = 0.85
MAX_LIVE_EVERY = 4
# The two times are exponential moving averages over about this many frames.
COST_AVERAGE_FRAMES = 10
# Asking a child process to open a window tells whether one can open here. Needed because OpenCV's Qt backend
# aborts the whole process (no exception) when it cannot reach a display (seconds).
DISPLAY_PROBE_TIMEOUT_S = 20.0
KEY_ESCAPE = 27


@dataclass(frozen=True)
class LiveOptions:
    source: str = "0"  # camera index (digits), video file path, or stream URL (anything with "://")
    weights: str = "default"
    device: str = "auto"
    size: int | None = None  # working short side, pixels; None: DEFAULT_LIVE_SIZE
    saturation: float = 1.0  # colour strength (Colorizer.saturation)
    record: Path | str | None = None  # also write the colorized stream here (.mp4, .mkv, .mov)
    window: bool = True
    max_frames: int = 0  # stop after this many shown frames; 0: until the source ends (or q / Ctrl-C)
    realtime: bool = True  # pace a file source at its frame rate; False: as fast as the loop takes frames
    smooth: float | None = None  # temporal smoothing strength in [0, 1); None: the smoother's default; 0: off
    # The network on one frame in `every` (the smoother carries colour to the rest); None: chosen as the run goes,
    # from 1 up to MAX_LIVE_EVERY, to keep up with the source (choose_every). Needs smoothing on.
    every: int | None = None
    engine: str | None = None  # what runs the network (vidcolor/engines.py); None: $VIDCOLOR_ENGINE or auto
    overwrite: bool = False  # replace an existing record file
    open_timeout_s: float = OPEN_TIMEOUT_S


# ---------------------------------------------------------------------------------------------------------------
# sources


@dataclass(frozen=True)
class SourceSpec:
    kind: str  # "camera", "file" or "url"
    target: int | str  # camera index, or the path / URL handed to OpenCV
    label: str


def parse_source(source: str) -> SourceSpec:
    text = str(source).strip()
    if text.isdigit():
        return SourceSpec("camera", int(text), f"camera {int(text)}")
    if "://" in text:
        return SourceSpec("url", text, text)
    path = Path(text).expanduser()
    if not path.exists():
        raise InputError(f"input {path} does not exist (give a camera index, a video file or a stream URL)")
    if path.is_dir():
        raise InputError(f"input {path} is a directory, not a video file")
    if not os.access(path, os.R_OK):
        raise InputError(f"input {path} is not readable (permission denied)")
    return SourceSpec("file", str(path), str(path))


@dataclass
class OpenedSource:
    spec: SourceSpec
    capture: cv2.VideoCapture
    first_frame: np.ndarray  # BGR (or gray) as OpenCV delivers it
    fps: float
    fps_reported: bool  # False when the source gave no usable rate and FALLBACK_FPS is assumed


def _open_capture(spec: SourceSpec, timeout_s: float) -> cv2.VideoCapture:
    if spec.kind == "camera":
        capture = cv2.VideoCapture(spec.target)
        # Fewer driver buffers: a camera otherwise hands out frames several buffers old (latency).
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return capture
    timeout_ms = int(timeout_s * 1000)
    return cv2.VideoCapture(spec.target, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms,
                                                         cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(READ_TIMEOUT_S * 1000)])


def _cannot_open_message(spec: SourceSpec) -> str:
    if spec.kind == "camera":
        return (f"camera {spec.target} cannot be opened (no such camera, or it is in use); "
                f"try another index, or give a video file or stream URL with --source")
    if spec.kind == "url":
        return f"stream {spec.label} cannot be opened (refused, unreachable, or not a video stream OpenCV can read)"
    return f"input {spec.label} is not a video file OpenCV can read"


def open_source(spec: SourceSpec, timeout_s: float = OPEN_TIMEOUT_S) -> OpenedSource:
    """Open the capture and read its first frame, giving up after timeout_s.

    OpenCV's open and read can block indefinitely (a camera driver that never answers, a server that accepts and
    stays silent), so both run in a helper thread that the caller stops waiting for. An abandoned helper releases
    its capture itself when the blocked call finally returns.
    """
    # OpenCV and its FFmpeg print warnings for every backend they try; the error raised here says it in one line.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET; read when FFmpeg is first used
    previous_level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    lock = threading.Lock()
    result: dict = {}

    def attempt():
        capture = None
        try:
            capture = _open_capture(spec, timeout_s)
            ok, frame = capture.read() if capture.isOpened() else (False, None)
        except cv2.error:
            ok, frame = False, None
        with lock:
            if result.get("abandoned") or not ok or frame is None:
                if capture is not None:
                    capture.release()
                result["done"] = "failed"
                return
            result.update(done="ok", capture=capture, frame=frame)

    helper = threading.Thread(target=attempt, name="vidcolor-open", daemon=True)
    helper.start()
    helper.join(timeout_s)
    cv2.utils.logging.setLogLevel(previous_level)
    with lock:
        if "done" not in result:
            result["abandoned"] = True
            raise InputError(f"{spec.label} did not deliver a frame within {timeout_s:g} s "
                             f"(no answer from the camera or server); check it, or give another --source")
    if result["done"] != "ok":
        raise InputError(_cannot_open_message(spec))
    capture = result["capture"]
    fps = capture.get(cv2.CAP_PROP_FPS)
    reported = math.isfinite(fps) and 0 < fps <= MAX_PLAUSIBLE_FPS
    return OpenedSource(spec, capture, result["frame"], fps if reported else FALLBACK_FPS, reported)


# ---------------------------------------------------------------------------------------------------------------
# capture thread


@dataclass
class CapturedFrame:
    image: np.ndarray  # BGR H x W x 3 (or gray H x W) uint8, as the capture delivered it
    index: int  # position in the source's sequence of frames
    time_s: float  # presentation time from the source's start: a file's own timeline, or the arrival clock
    arrived: float  # time.perf_counter() when the frame became available: latency is counted from here


class NewestFrameSlot:
    """A one-frame mailbox between the capture thread and the main loop.

    put() with drop_old=True replaces a frame not yet taken (counting it as dropped), so the reader always gets the
    newest; with drop_old=False it waits for the reader (a file read as fast as possible loses nothing).
    """

    def __init__(self):
        self._condition = threading.Condition()
        self._frame: CapturedFrame | None = None
        self._ended = False
        self._error: BaseException | None = None
        self.dropped = 0

    def put(self, frame: CapturedFrame, drop_old: bool, stop: threading.Event) -> None:
        with self._condition:
            while not drop_old and self._frame is not None:
                if stop.is_set():
                    return  # the reader is gone; this frame was never due
                self._condition.wait(POLL_S)
            if not drop_old:
                # A frame that waited for the reader was not available to it until now; latency starts here.
                frame.arrived = time.perf_counter()
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._condition.notify_all()

    def end(self, error: BaseException | None = None) -> None:
        with self._condition:
            self._ended, self._error = True, error
            self._condition.notify_all()

    def take(self, timeout_s: float) -> CapturedFrame | None:
        """The newest frame; None when the source has ended (after its last frame) or none came within timeout_s."""
        deadline = time.perf_counter() + timeout_s
        with self._condition:
            while self._frame is None and not self._ended:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return None
                self._condition.wait(min(remaining, POLL_S))
            frame, self._frame = self._frame, None
            self._condition.notify_all()
            if frame is None and self._error is not None:
                raise self._error
            return frame

    @property
    def ended(self) -> bool:
        with self._condition:
            return self._ended and self._frame is None


class CaptureThread(threading.Thread):
    """Reads the source into a NewestFrameSlot until the source ends or stop is set, then releases the capture.

    The thread that reads is the one that releases: releasing a capture while another thread is inside read()
    can crash OpenCV.
    """

    def __init__(self, source: OpenedSource, slot: NewestFrameSlot, pace: bool, drop_old: bool):
        super().__init__(name="vidcolor-capture", daemon=True)
        self.source, self.slot, self.pace, self.drop_old = source, slot, pace, drop_old
        self.stop = threading.Event()
        self.frames_read = 0

    def run(self):
        capture = self.source.capture
        is_file = self.source.spec.kind == "file"
        # A file's first frame, read while opening, is frame 0. A live source's is stale by now (the model loaded
        # meanwhile), so the live clock starts with a fresh one.
        image = self.source.first_frame if is_file else None
        clock_start = None  # perf_counter at the source's time 0
        try:
            while not self.stop.is_set():
                if image is None:
                    ok, image = capture.read()
                    if not ok or image is None:
                        break  # end of file, camera unplugged, stream closed: the run ends normally
                if is_file:
                    # A constant rate is assumed for pacing; a variable-rate file plays at its average rate.
                    time_s = self.frames_read / self.source.fps
                    if clock_start is None:
                        clock_start = time.perf_counter()
                    if self.pace:
                        delay = clock_start + time_s - time.perf_counter()
                        if delay > 0 and self.stop.wait(delay):
                            break
                    arrived = time.perf_counter()
                else:
                    arrived = time.perf_counter()
                    clock_start = arrived if clock_start is None else clock_start
                    time_s = arrived - clock_start
                self.slot.put(CapturedFrame(image, self.frames_read, time_s, arrived), self.drop_old, self.stop)
                self.frames_read += 1
                image = None
            self.slot.end()
        except cv2.error as exc:
            self.slot.end(InputError(f"{self.source.spec.label}: reading frame {self.frames_read} failed: "
                                     f"{exc.err.strip() or exc}"))
        except BaseException as exc:  # handed to the main loop, which re-raises it
            self.slot.end(exc)
        finally:
            capture.release()


# ---------------------------------------------------------------------------------------------------------------
# recording


class Recorder:
    """Encodes shown frames in its own thread into a temporary file; finish() renames it into place.

    Always H.264 yuv420p (where the container takes it), the format every player reads. 4:2:0 needs even sizes, so
    an odd-sized source loses its last row or column in the recording (the window still shows all of it).
    Frames carry their source time, at the source's rate: dropped frames leave gaps in time rather than making the
    recording play fast.
    """

    def __init__(self, path: Path, width: int, height: int, fps: float, overwrite: bool = False):
        self.path = path
        self.overwrite = overwrite
        self.temporary = partial_path(path)
        self.width, self.height = width - width % 2, height - height % 2
        if self.width < 2 or self.height < 2:
            raise OutputError(f"cannot record a {width}x{height} source: too small for yuv420p")
        self.rate = Fraction(fps).limit_denominator(1001)  # 29.97 -> 30000/1001
        self.time_base = 1 / self.rate
        info = VideoInfo(width=self.width, height=self.height, rate=self.rate, time_base=self.time_base, frames=0,
                         duration_s=None, codec="rawvideo", pix_fmt=None, full_range=True, has_audio=False)
        settings = EncoderSettings(crf=RECORD_CRF, preset=RECORD_PRESET, pix_fmt="yuv420p")
        # OpenCV delivers full-range RGB; its luma goes to the file as it is, flagged full range, not re-quantised.
        self.writer = VideoWriter(self.temporary, info, settings)
        self.frames = 0
        self.error: BaseException | None = None
        self._last_pts = -1
        self._queue: queue.Queue = queue.Queue(maxsize=RECORD_QUEUE_FRAMES)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._encode_loop, name="vidcolor-record", daemon=True)
        self._thread.start()

    def add(self, luma: np.ndarray, chroma: np.ndarray, time_s: float) -> None:
        """luma: full-resolution uint8 H x W; chroma: 2 x h x w in [-0.5, 0.5] at any size (the model's output)."""
        if self.error is not None:
            raise self.error
        if luma.shape != (self.height, self.width):
            if luma.shape[0] - luma.shape[0] % 2 == self.height and luma.shape[1] - luma.shape[1] % 2 == self.width:
                luma = luma[: self.height, : self.width]  # the odd row / column
            else:  # the source changed size mid-run (a camera renegotiated): the recording keeps its first size
                luma = resize_plane(luma, self.height, self.width)
        planes = [color.chroma_to_plane(resize_plane(c, self.height // 2, self.width // 2), limited=False)
                  for c in chroma]
        # Strictly increasing timestamps, at the source's rate: a time that rounds onto the previous frame's slot
        # takes the next one.
        pts = max(self._last_pts + 1, round(time_s * self.rate))
        self._last_pts = pts
        while True:
            try:
                self._queue.put((luma, planes[0], planes[1], pts), timeout=POLL_S)
                break
            except queue.Full:
                if self.error is not None:
                    raise self.error
        self.frames += 1

    def _encode_loop(self):
        try:
            while True:
                try:
                    item = self._queue.get(timeout=POLL_S)
                except queue.Empty:
                    if self._stop.is_set():
                        return
                    continue
                if item is None:
                    return
                luma, cb, cr, pts = item
                self.writer.write(luma, cb, cr, pts, self.time_base)
        except BaseException as exc:
            self.error = exc
            self._stop.set()

    def finish(self) -> bool:
        """Flush the encoder and move the file into place. Returns False (nothing written) when no frame came."""
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error
        if self.frames == 0:
            self.abort()
            return False
        self.writer.finish()
        place_output(self.temporary, self.path, self.overwrite)  # never over another run's file without -y
        return True

    def abort(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.writer.abort()
        remove_quietly(self.temporary)


# ---------------------------------------------------------------------------------------------------------------
# window


def check_display() -> None:
    """Raise VidcolorError unless a window can open here.

    Policy: a window that was asked for (the default) and cannot open is an error with the fix in the message, not
    a silent switch to headless: a camera running with nothing on screen would look like a hang.
    """
    if sys.platform in ("win32", "darwin"):
        return  # these always have a window system; OpenCV raises (not aborts) if its GUI is missing
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise VidcolorError("no display to open the window on (DISPLAY is not set); use --no-window to run "
                            "headless, with --record OUT.mp4 to keep the colorized stream")
    probe = ("import cv2, numpy; cv2.namedWindow('probe'); cv2.imshow('probe', numpy.zeros((8, 8), numpy.uint8)); "
             "cv2.waitKey(1); cv2.destroyAllWindows()")
    try:
        child = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                               timeout=DISPLAY_PROBE_TIMEOUT_S)
        failed, output = child.returncode != 0, (child.stderr or child.stdout or "").strip()
    except subprocess.TimeoutExpired:
        failed, output = True, f"no answer within {DISPLAY_PROBE_TIMEOUT_S:g} s"
    if failed:
        lines = [line.strip() for line in output.splitlines() if line.strip()]
        reason = next((line for line in lines if "display" in line.lower()), lines[-1] if lines else "unknown reason")
        display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        raise VidcolorError(f"cannot open a window on display {display!r} ({reason}); use --no-window to run headless")


def compose_view(luma: np.ndarray, colorized_bgr: np.ndarray, lines: list[str]) -> np.ndarray:
    """Input (gray) and colorized frame side by side, scaled to fit DISPLAY_MAX_WIDTH_PX, with text lines on top."""
    view = np.hstack([cv2.cvtColor(luma, cv2.COLOR_GRAY2BGR), colorized_bgr])
    if view.shape[1] > DISPLAY_MAX_WIDTH_PX:
        scale = DISPLAY_MAX_WIDTH_PX / view.shape[1]
        view = cv2.resize(view, (DISPLAY_MAX_WIDTH_PX, max(1, round(view.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    for number, text in enumerate(lines):
        origin = (8, 22 + 22 * number)
        # A dark outline under white text stays readable on any picture.
        cv2.putText(view, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(view, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return view


@dataclass
class LiveControls:
    """What the keys change while running: q/Esc quit, s toggles smoothing, + and - change the working size, [ and ]
    the colour strength (saturation)."""

    size: int  # working short side, pixels
    smoothing: bool
    saturation: float = 1.0

    def handle_key(self, key: int) -> str | None:
        """Apply a key code from cv2.waitKey (-1: none). Returns "quit", "smoothing" (toggled), "size",
        "saturation" or None."""
        if key < 0:
            return None
        key &= 0xFF
        if key in (ord("q"), ord("Q"), KEY_ESCAPE):
            return "quit"
        if key in (ord("s"), ord("S")):
            self.smoothing = not self.smoothing
            return "smoothing"
        if key in (ord("+"), ord("=")):  # "=" is the + key without shift on most layouts
            self.size = min(MAX_LIVE_SIZE, self.size + SIZE_STEP_PX)
            return "size"
        if key in (ord("-"), ord("_")):
            self.size = max(MIN_LIVE_SIZE, self.size - SIZE_STEP_PX)
            return "size"
        if key in (ord("["), ord("]")):
            # To the next multiple of the step in that direction, so that down and up again lands where it started
            # (from --saturation 1.1: ] gives 1.25, [ gives 1.0).
            steps = self.saturation / SATURATION_STEP
            steps = math.floor(steps + 1e-6) + 1 if key == ord("]") else math.ceil(steps - 1e-6) - 1
            self.saturation = min(MAX_SATURATION, max(0.0, steps * SATURATION_STEP))
            return "saturation"
        return None


# ---------------------------------------------------------------------------------------------------------------
# the loop


def _validate(options: LiveOptions) -> tuple[int, float]:
    size = DEFAULT_LIVE_SIZE if options.size is None else int(options.size)
    if size < 32:
        raise VidcolorError(f"working size {size} is too small; use at least 32 pixels")
    strength = DEFAULT_STRENGTH if options.smooth is None else float(options.smooth)
    if not 0.0 <= strength < 1.0:
        raise VidcolorError(f"smoothing strength {strength:g} is out of range; use 0 (off) up to below 1")
    try:
        check_saturation(options.saturation)  # here, before the camera or the recording opens
    except ValueError as exc:
        raise VidcolorError(str(exc)) from None
    if options.max_frames < 0:
        raise VidcolorError("max frames must be 0 (no limit) or more")
    if options.open_timeout_s <= 0:
        raise VidcolorError("the open timeout must be positive")
    if options.every is not None:
        try:
            check_every(options.every)
        except ValueError as exc:
            raise VidcolorError(str(exc)) from None
    return size, strength


def choose_every(network_s: float, other_s: float, frame_interval_s: float) -> int:
    """The fewest network calls that keep up: the smallest k in 1..MAX_LIVE_EVERY with
    other_s + network_s / k <= LIVE_BUSY_FRACTION * frame_interval_s (MAX_LIVE_EVERY where none does).
    network_s: the network's time for one frame; other_s: the rest of a frame's work (flow, merge, display)."""
    budget = LIVE_BUSY_FRACTION * frame_interval_s - other_s
    if budget <= 0:
        return MAX_LIVE_EVERY
    return int(min(MAX_LIVE_EVERY, max(1, math.ceil(network_s / budget - 1e-9))))


def _source_path_for_output_check(spec: SourceSpec) -> Path:
    # check_output refuses to record over the source itself; a camera's "file" is its device node.
    if spec.kind == "camera":
        return Path(f"/dev/video{spec.target}")
    return Path(spec.target)


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


def run_live(options: LiveOptions, on_frame: Callable[[np.ndarray, np.ndarray], None] | None = None) -> dict:
    """Colorize options.source in real time until it ends, max_frames are shown, q/Esc, or Ctrl-C.

    on_frame(rgb, luma), if given, is called with every shown frame (uint8 RGB H x W x 3 and its source luma H x W).
    Returns a flat summary (numbers and strings only), the CLI's --report.
    Ctrl-C ends the run like q: the recording is finalised and the summary returned (ended == "interrupted"); so
    does SIGTERM where the CLI turned it into errors.Terminated (ended == "terminated").
    """
    size, strength = _validate(options)
    spec = parse_source(options.source)
    record_path = Path(options.record) if options.record else None
    if options.window:
        check_display()
    if record_path is not None:
        check_output(_source_path_for_output_check(spec), record_path, options.overwrite)
    if not options.realtime and spec.kind != "file":
        _note("--as-fast-as-possible applies to file sources only; a camera or stream delivers at its own pace")

    source = open_source(spec, options.open_timeout_s)
    capture_thread = None
    recorder = None
    previous_threads = None
    try:
        height, width = source.first_frame.shape[:2]
        if not source.fps_reported:
            _note(f"{spec.label} reports no frame rate; assuming {FALLBACK_FPS:g} fps")
        if record_path is not None:
            recorder = Recorder(record_path, width, height, source.fps, options.overwrite)  # before the model: fail fast on a bad name
            if (recorder.width, recorder.height) != (width, height):
                _note(f"recording {recorder.width}x{recorder.height}: yuv420p needs even sizes, the source is "
                      f"{width}x{height}")
        colorizer = load_colorizer(options.weights, options.device, options.saturation, options.engine)
        if colorizer.device.type == "cpu" and (os.cpu_count() or 1) <= SMALL_CPU_CORES \
                and not os.environ.get("OMP_NUM_THREADS"):
            previous_threads = torch.get_num_threads()
            torch.set_num_threads(1)
        loop = _LiveLoop(options, colorizer, source, size, strength, recorder, on_frame)
        loop.warm_up(height, width)
        slot = NewestFrameSlot()
        is_file = spec.kind == "file"
        capture_thread = CaptureThread(source, slot, pace=is_file and options.realtime,
                                       drop_old=not (is_file and not options.realtime))
        capture_thread.start()
        try:
            loop.run(slot)
        except KeyboardInterrupt:
            loop.ended = "interrupted"
        except Terminated:  # SIGTERM (kill, docker stop, systemd): a request to stop, like Ctrl-C, not a crash
            loop.ended = "terminated"
        recorded = False
        with _stop_signals_ignored():  # a second Ctrl-C or SIGTERM must not cut the release or finalisation short
            capture_thread.stop.set()
            capture_thread.join(CAPTURE_JOIN_S)
            if recorder is not None:
                recorded = recorder.finish()
                recorder = None
        summary = loop.summary(slot.dropped, capture_thread.frames_read)
        summary["record"] = str(record_path) if recorded else None
        return summary
    except BaseException:
        if recorder is not None:
            recorder.abort()
        raise
    finally:
        if capture_thread is None:
            source.capture.release()  # never handed over
        elif capture_thread.is_alive():
            capture_thread.stop.set()
            capture_thread.join(CAPTURE_JOIN_S)
        if previous_threads is not None:
            torch.set_num_threads(previous_threads)
        if options.window:
            cv2.destroyAllWindows()
            cv2.waitKey(1)  # lets the GUI backend actually close the window


def _average(previous: float | None, value: float) -> float:
    """Exponential moving average over about COST_AVERAGE_FRAMES values; the first value starts it."""
    if previous is None:
        return value
    return previous + (value - previous) / COST_AVERAGE_FRAMES


class _stop_signals_ignored:
    """Ctrl-C and SIGTERM do nothing within the block: the run is already stopping (main thread only; elsewhere a
    no-op)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __enter__(self):
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            self.previous = {number: signal.signal(number, signal.SIG_IGN) for number in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        return False


class _LiveLoop:
    def __init__(self, options: LiveOptions, colorizer: Colorizer, source: OpenedSource, size: int, strength: float,
                 recorder: Recorder | None, on_frame):
        self.options, self.colorizer, self.source = options, colorizer, source
        self.controls = LiveControls(size=size, smoothing=strength > 0, saturation=colorizer.saturation)
        # s toggles smoothing; with --smooth 0 it toggles to the default strength.
        self.strength_on = strength if strength > 0 else DEFAULT_STRENGTH
        self.smoother = ChromaSmoother(self.strength_on, options.every or 1)
        self.recorder, self.on_frame = recorder, on_frame
        # Network calls: the smoother's every, fixed by options.every or chosen from these averages (seconds).
        self.network_s: float | None = None  # one network call
        self.other_s: float | None = None  # the rest of a frame's work in the main thread
        self.network_frames = 0
        self.every_sum = 0  # the sum of k over shown frames (the summary's mean k)
        self.shown = 0
        self.latencies_ms: list[float] = []
        self.inference_s = 0.0
        # CPU time, besides wall time: on a shared machine wall time measures the neighbours too, CPU time the work.
        self.loop_cpu_s = 0.0
        self.process_cpu_start = time.process_time()
        self.first_shown: float | None = None
        self.last_shown: float | None = None
        self.recent_shown: deque[float] = deque(maxlen=FPS_WINDOW_FRAMES)
        self.working_shape = (0, 0)
        self.ended = "end of source"
        self.started = time.perf_counter()

    def warm_up(self, height: int, width: int) -> None:
        """One inference before the clock starts: the first call allocates (and on CUDA, tunes) and is much slower."""
        h, w = self.colorizer.working_shape(height, width, self.controls.size)
        self.colorizer.predict(np.zeros((1, h, w), np.float32))

    def run(self, slot: NewestFrameSlot) -> None:
        self.started = time.perf_counter()
        self.process_cpu_start = time.process_time()
        while True:
            if self.options.max_frames and self.shown >= self.options.max_frames:
                self.ended = "max frames"
                return
            frame = slot.take(POLL_S)
            if frame is None:
                if slot.ended:
                    return
                if self.options.window and self._handle_keys(cv2.waitKey(1)):
                    return
                continue
            if self._show(frame):
                return

    def _colorize(self, luma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """-> (chroma 2 x h' x w' at the model's output size, chroma 2 x H x W at the frame's size)."""
        height, width = luma.shape
        h, w = self.colorizer.working_shape(height, width, self.controls.size)
        self.working_shape = (h, w)
        small = resize_plane(luma, h, w)
        needed = True
        if self.controls.smoothing and self.smoother.every > 1:
            needed = self.smoother.schedule([small], self.colorizer.output_shape(h, w))[0]
        chroma = None
        if needed:
            start = time.perf_counter()
            chroma = self.colorizer.predict(small[None].astype(np.float32) / 255.0)[0]  # 2 x h' x w'
            network_s = time.perf_counter() - start
            self.inference_s += network_s
            self.network_frames += 1
            self.network_s = _average(self.network_s, network_s)
        if self.controls.smoothing:
            chroma = self.smoother.smooth(small, chroma)
        full = np.stack([cv2.resize(plane, (width, height), interpolation=cv2.INTER_LINEAR) for plane in chroma])
        return chroma, full

    def _show(self, frame: CapturedFrame) -> bool:
        """Colorize, display, record one frame. Returns True when the user asked to quit."""
        cpu_start = time.thread_time()
        work_start = time.perf_counter()
        inference_before = self.inference_s
        image = frame.image
        # OpenCV's BGR -> gray uses the BT.601 weights of vidcolor.color, so this is the luma the model expects.
        luma = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        chroma, full_chroma = self._colorize(luma)
        rgb = color.merge_luma_chroma(luma, full_chroma)
        if self.recorder is not None:
            self.recorder.add(luma, chroma, frame.time_s)
        quit_requested = False
        if self.options.window:
            view = compose_view(luma, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), self._status_lines())
            try:
                cv2.imshow(WINDOW_NAME, view)
            except cv2.error as exc:  # an OpenCV built without GUI support (opencv-python-headless)
                raise VidcolorError(f"this OpenCV cannot open windows ({exc.err.strip()}); use --no-window") from None
            quit_requested = self._handle_keys(cv2.waitKey(1))
        if self.on_frame is not None:
            self.on_frame(rgb, luma)
        now = time.perf_counter()
        self.other_s = _average(self.other_s, now - work_start - (self.inference_s - inference_before))
        self._adapt_every()
        self.loop_cpu_s += time.thread_time() - cpu_start
        self.shown += 1
        self.latencies_ms.append((now - frame.arrived) * 1e3)
        self.first_shown = self.first_shown or now
        self.last_shown = now
        self.recent_shown.append(now)
        return quit_requested

    def _adapt_every(self) -> None:
        """With automatic network calls, k for the next frames from the measured costs (1 with smoothing off: no
        colour is carried then)."""
        self.every_sum += self.smoother.every
        if self.options.every is not None:
            return
        if not self.controls.smoothing:
            self.smoother.every = 1
        elif self.network_s is not None:
            self.smoother.every = choose_every(self.network_s, self.other_s, 1.0 / self.source.fps)

    def _handle_keys(self, key: int) -> bool:
        """Returns True when the user asked to quit."""
        action = self.controls.handle_key(key)
        if action == "quit":
            self.ended = "quit"
            return True
        if action == "smoothing":
            self.smoother.reset()  # history from before the pause would be warped across unrelated frames
        if action == "saturation":
            self.colorizer.saturation = self.controls.saturation  # read by every predict call
        # Closing the window with its title-bar button counts as quitting.
        if self.shown > 0 and cv2.getWindowProperty(WINDOW_NAME, cv2.WND_PROP_VISIBLE) < 1:
            self.ended = "quit"
            return True
        return False

    def _status_lines(self) -> list[str]:
        fps = 0.0
        if len(self.recent_shown) > 1:
            fps = (len(self.recent_shown) - 1) / max(self.recent_shown[-1] - self.recent_shown[0], 1e-9)
        latency = self.latencies_ms[-1] if self.latencies_ms else 0.0
        h, w = self.working_shape
        network = f"  network 1/{self.smoother.every}" if self.smoother.every > 1 else ""
        return [f"{fps:4.1f} fps  latency {latency:3.0f} ms  size {self.controls.size} ({w}x{h})  "
                f"smoothing {'on' if self.controls.smoothing else 'off'}{network}  colour {self.controls.saturation:g}",
                "q quit   s smoothing   +/- size   [/] colour"]

    def summary(self, dropped: int, frames_read: int) -> dict:
        latencies = np.array(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        span = (self.last_shown - self.first_shown) if self.shown > 1 else 0.0
        h, w = self.working_shape
        height, width = self.source.first_frame.shape[:2]
        return {
            "frames_shown": self.shown,
            "frames_dropped": dropped,
            "frames_read": frames_read,
            "frames_recorded": self.recorder.frames if self.recorder is not None else 0,
            "fps": round((self.shown - 1) / span, 2) if span > 0 else 0.0,
            "latency_ms_mean": round(float(latencies.mean()), 1),
            "latency_ms_p95": round(float(np.percentile(latencies, 95)), 1),
            "latency_ms_max": round(float(latencies.max()), 1),
            "inference_ms_mean": round(self.inference_s / max(self.network_frames, 1) * 1e3, 1),
            # Network calls: --every (0: automatic), the mean k over the shown frames, frames that had the network.
            "every": self.options.every or 0,
            "every_mean": round(self.every_sum / max(self.shown, 1), 2),
            "network_frames": self.network_frames,
            # main thread's CPU per shown frame; and all threads' (capture decoding, recording too)
            "loop_cpu_ms_mean": round(self.loop_cpu_s / max(self.shown, 1) * 1e3, 1),
            "process_cpu_ms_per_frame": round((time.process_time() - self.process_cpu_start)
                                              / max(self.shown, 1) * 1e3, 1),
            "seconds": round(time.perf_counter() - self.started, 3),
            "ended": self.ended,
            "source": self.source.spec.label,
            "source_kind": self.source.spec.kind,
            "source_fps": round(self.source.fps, 3),
            "width": width,
            "height": height,
            "realtime": self.options.realtime,
            "size": self.controls.size,
            "working_width": w,
            "working_height": h,
            "smoothing": self.strength_on if self.controls.smoothing else 0.0,
            "device": str(self.colorizer.device),
            "precision": self.colorizer.precision.name,
            "precision_reason": self.colorizer.precision.reason,
            "engine": self.colorizer.engine_choice.name,
            "engine_reason": self.colorizer.engine_choice.reason,
            "weights": self.colorizer.weights,
            "saturation": self.colorizer.saturation,
        }
