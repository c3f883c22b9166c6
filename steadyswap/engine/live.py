"""Live swapping: capture → analyse, track, smooth (causal) → swap → paste → show or send, as frames arrive.

Capture runs on its own thread into ``LatestFrames``, a hand-off that holds at most ``batch`` frames and drops
the oldest when a new one arrives: when swapping is slower than the camera, frames are dropped, never queued,
so latency stays one frame's processing time however long the stream runs. Smoothing is causal (no lookahead:
live has no future frames), so the face lags its true position by the One-Euro filter's delay
(docs/live.md). The same loop runs the CPU path (``FaceSwapper``) and the GPU engine (``GpuEngine.swap_frames``,
one or two frames per step).
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from steadyswap.config import RunConfig
from steadyswap.engine.frame_swapper import FaceSwapper
from steadyswap.engine.gpu import cpu_fallback, engine_module, use_gpu_engine
from steadyswap.errors import Terminated, UsageError
from steadyswap.io import read_image
from steadyswap.io.capture import Capture, Captured
from steadyswap.io.live_outputs import LiveOutput
from steadyswap.provenance import watermark_for

MAX_BATCH = 2
"""Frames per step at most: more would add a frame's wait to every frame's latency."""
LATENCY_WINDOW = 10_000
"""Latencies kept for the percentiles of a run (the mean covers every frame)."""


class LatestFrames:
    """A hand-off between the capture thread and the swap loop that never blocks the capture: it holds at most
    ``capacity`` frames, and a frame arriving when it is full pushes out the oldest (counted in ``dropped``).

    >>> slot = LatestFrames(1)
    >>> slot.put("a"); slot.put("b"); slot.take(1, timeout=0), slot.dropped
    (['b'], 1)
    """

    def __init__(self, capacity: int = 1) -> None:
        if capacity < 1:
            raise UsageError(f"the live hand-off needs room for at least one frame, not {capacity}")
        self.capacity = capacity
        self.dropped = 0
        self.most_held = 0
        """The most frames it ever held (never more than ``capacity``)."""
        self._frames: deque = deque()
        self._ended = False
        self._error: BaseException | None = None
        self._ready = threading.Condition()

    def put(self, frame: object) -> None:
        with self._ready:
            if len(self._frames) == self.capacity:
                self._frames.popleft()
                self.dropped += 1
            self._frames.append(frame)
            self.most_held = max(self.most_held, len(self._frames))
            self._ready.notify()

    def end(self, error: BaseException | None = None) -> None:
        """No more frames will come (``error``: why, raised by ``take`` once the frames held are taken)."""
        with self._ready:
            self._ended, self._error = True, error
            self._ready.notify()

    def take(self, most: int, timeout: float) -> list | None:
        """Up to ``most`` frames, oldest first, waiting up to ``timeout`` seconds for one; [] when none came in
        time; None once the stream has ended and every frame was taken.

        Raises:
            The error the capture ended with, after its last frame was taken.
        """
        with self._ready:
            if not self._frames and not self._ended:
                self._ready.wait(timeout)
            if not self._frames and self._ended:
                if self._error is not None:
                    raise self._error
                return None
            taken = [self._frames.popleft() for _ in range(min(most, len(self._frames)))]
            return taken


class LiveStats:
    """Frames out, frames dropped and capture→output latency: over the whole run, and over the last report."""

    def __init__(self) -> None:
        self.frames = 0
        self.dropped = 0
        self.began = time.monotonic()
        self._latency_sum = 0.0
        self._latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._recent: list[float] = []
        self._recent_since = self.began
        self.recent_fps = 0.0
        self.recent_latency = 0.0

    def record(self, captured_at: float, shown_at: float) -> None:
        latency = shown_at - captured_at
        self.frames += 1
        self._latency_sum += latency
        self._latencies.append(latency)
        self._recent.append(latency)

    def roll(self, now: float) -> str:
        """Close the current report window: its frames/s and mean latency, as one line."""
        seconds = max(now - self._recent_since, 1e-9)
        self.recent_fps = len(self._recent) / seconds
        self.recent_latency = float(np.mean(self._recent)) if self._recent else 0.0
        self._recent, self._recent_since = [], now
        return (f"{self.recent_fps:.1f} frames/s, latency {self.recent_latency * 1000:.0f} ms "
                f"(capture to output), {self.dropped} dropped so far")

    def result(self, ended: str) -> LiveResult:
        seconds = time.monotonic() - self.began
        latencies = np.asarray(self._latencies) if self._latencies else np.zeros(1)
        return LiveResult(self.frames, self.dropped, seconds, self.frames / seconds if seconds else 0.0,
                          self._latency_sum / self.frames if self.frames else 0.0,
                          float(np.percentile(latencies, 95)), ended)


@dataclass
class LiveResult:
    """What a live run did: frames sent, frames dropped, seconds, frames/s, capture→output latency in seconds
    (mean, 95th percentile), what ended it ("end of input", "window closed", "Ctrl-C", "SIGTERM", "stop") and the
    most frames that ever waited to be swapped (at most ``batch``)."""

    frames: int
    dropped: int
    seconds: float
    fps: float
    latency: float
    latency_p95: float
    ended: str
    held: int = 0


class FrameSwap(Protocol):
    """What the live loop needs of a swapper: consecutive frames in, swapped frames out, causally."""

    def swap(self, images: list[np.ndarray]) -> list[np.ndarray]: ...

    def close(self) -> None: ...


class LiveSwapper:
    """The run's swapper for live frames: the GPU engine when ``--execution-providers cuda`` selects it, else the
    CPU path's ``FaceSwapper``; smoothing forced causal. ``warm_up`` swaps the first source photo once before any
    frame comes.

    Raises:
        UsageError: reference selection or a face map (they name people by a target's frames, which live input
            lacks). NoFaceError: no face in the sources. ModelError: models or GPU unavailable.
    """

    def __init__(self, sources: list[str | Path | np.ndarray], config: RunConfig, fps: float = 30.0,
                 warm_up: bool = True) -> None:
        config = replace(config, smoothing_lookahead=0).validate()
        self.config = config
        self.watermark = watermark_for(None, config)
        """Added to every swapped frame, whatever output it goes to (docs/provenance.md)."""
        if config.face_map or config.face_selector_mode == "reference":
            raise UsageError("live input has no target frames to pick people from: use --face-selector-mode "
                             "one or many (reference selection and face maps are for files)")
        self.fps = fps
        self._engine = None
        self._frames: FaceSwapper | None = None
        if use_gpu_engine(config):
            self._engine = engine_module().GpuEngine(sources, config)
            self.inputs = self._engine.inputs
        else:
            self._frames = FaceSwapper(sources, cpu_fallback(config), fps)
            self.inputs = self._frames.inputs
        if warm_up:
            self._warm_up(sources[0])

    def _warm_up(self, source: str | Path | np.ndarray) -> None:
        """Swap the first source photo once and forget it: the models' first calls (graph set-up, memory
        plans) are paid before the stream starts, not by its first frames."""
        photo = source if isinstance(source, np.ndarray) else read_image(source)
        self.swap([photo])
        if self._engine is not None:
            self._engine.reset_tracking()
        else:
            assert self._frames is not None
            self._frames.reset_tracking()

    @property
    def device(self) -> str:
        """Where frames are swapped: "cpu", or the GPU engine's torch device."""
        return "cpu" if self._engine is None else str(self._engine.device)

    def swap(self, images: list[np.ndarray]) -> list[np.ndarray]:
        if self._engine is not None:
            swapped = self._engine.swap_frames(images, self.fps)
        else:
            assert self._frames is not None
            swapped = self._frames.swap_frames(images)
        mark = self.watermark
        return swapped if mark is None else [mark.embed_rgb(image) for image in swapped]

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
        if self._frames is not None:
            self._frames.close()


def run_live(capture: Capture, swapper: FrameSwap, open_output: Callable[[int, int], LiveOutput],
             batch: int = 1, overlay: bool = False, stop: threading.Event | None = None,
             report: Callable[[str], None] | None = None, report_every: float = 2.0) -> LiveResult:
    """Swap frames from ``capture`` into the output ``open_output(width, height)`` opens on the first frame, until
    the input ends, the viewer closes the window, ``stop`` is set, or Ctrl-C/SIGTERM/SIGHUP arrive: all of these
    end the stream and finish the output (a file is completed and renamed into place). An error instead removes
    an unfinished file.

    Args:
        batch: frames per swap step (1 or 2; 2 lets the GPU engine batch, for a frame more of latency).
        overlay: draw the frames/s and latency of the last report into the frames.
        report: called every ``report_every`` seconds with a line of frames/s, latency and drops.

    ``capture`` is closed on return (unless its thread is still blocked in a read 2 s after the end).

    Returns:
        Counts, rate and capture→output latency of the run.
    """
    if not 1 <= batch <= MAX_BATCH:
        raise UsageError(f"--batch-frames: {batch} is outside 1..{MAX_BATCH}")
    stop = stop or threading.Event()
    slot = LatestFrames(batch)
    stats = LiveStats()
    reader = threading.Thread(target=_capture, args=(capture, slot, stop), name="steadyswap-capture", daemon=True)
    output: LiveOutput | None = None
    ended = "stop"
    next_report = stats.began + report_every
    reader.start()
    try:
        try:
            while not stop.is_set():
                frames: list[Captured] | None = slot.take(batch, timeout=0.1)
                stats.dropped = slot.dropped
                if frames is None:
                    ended = "end of input"
                    break
                if not frames:
                    continue
                swapped = swapper.swap([frame.image for frame in frames])
                for frame, image in zip(frames, swapped, strict=True):
                    if output is None:
                        output = open_output(image.shape[1], image.shape[0])
                    if overlay:
                        image = draw_overlay(image, stats)
                    keep = output.send(image, frame.pts)
                    stats.record(frame.at, time.monotonic())
                    if not keep:
                        ended = "window closed"
                        stop.set()
                now = time.monotonic()
                if now >= next_report:
                    line = stats.roll(now)
                    if report is not None:
                        report(line)
                    next_report = now + report_every
        except KeyboardInterrupt as interrupt:  # the usual way to end a camera stream: finish the output
            ended = signal.Signals(interrupt.signum).name if isinstance(interrupt, Terminated) else "Ctrl-C"
        stop.set()
        stats.dropped = slot.dropped
        if output is not None:
            finishing, output = output, None
            finishing.close()
        return replace(stats.result(ended), held=slot.most_held)
    except BaseException:
        stop.set()
        if output is not None:
            output.abort()
        raise
    finally:
        reader.join(timeout=2.0)
        if not reader.is_alive():  # a capture still blocked in a read cannot be closed under it
            capture.close()


def _capture(capture: Capture, slot: LatestFrames, stop: threading.Event) -> None:
    """The capture thread: read frames into ``slot`` until the source ends or ``stop`` is set."""
    try:
        while not stop.is_set():
            frame = capture.read()
            if frame is None:
                break
            slot.put(frame)
    except BaseException as error:
        slot.end(error)
        return
    slot.end()


def draw_overlay(image: np.ndarray, stats: LiveStats) -> np.ndarray:
    """A copy of ``image`` with the last report's frames/s and latency in its top-left corner."""
    text = f"{stats.recent_fps:.1f} fps  {stats.recent_latency * 1000:.0f} ms"
    out = image.copy()
    scale = max(0.4, image.shape[0] / 720)
    origin = (int(10 * scale), int(30 * scale))
    cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), int(4 * scale) + 1, cv2.LINE_AA)
    cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), int(2 * scale) or 1, cv2.LINE_AA)
    return out
