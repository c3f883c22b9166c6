"""Live swapping: capture → decide (analyse, track, smooth causally, select) → render (swap, paste) → watermark
and show or send, as frames arrive, the stages overlapped on their own threads.

Capture runs on its own thread into ``LatestFrames``, a hand-off that holds at most ``batch`` frames and drops
the oldest when a new one arrives: when swapping is slower than the camera, frames are dropped, never queued,
so latency stays a frame's processing time however long the stream runs. Decide and render run on two more
threads, the output on the caller's, passing steps through ``Handoff``s that hold nothing: one step per stage at
most, in order. Smoothing is causal (no lookahead: live has no future frames), so the face lags its true position
by the One-Euro filter's delay (docs/live.md). The same loop runs the CPU path (``FaceSwapper.analyse`` and
``accept``) and the GPU engine (``GpuEngine.decide_frames`` and ``render_frames``, one or two frames per step).
"""

from __future__ import annotations

import logging
import signal
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from steadyswap.config import RunConfig
from steadyswap.engine.frame_swapper import Analysed, FaceSwapper
from steadyswap.engine.decision import Backend, Entry, decide
from steadyswap.engine.gpu import engine_module
from steadyswap.errors import Terminated, UsageError
from steadyswap.io import read_image
from steadyswap.io.capture import Capture, Captured
from steadyswap.io.live_outputs import LiveOutput
from steadyswap.provenance import watermark_for

log = logging.getLogger(__name__)

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
    """What the live loop needs of a swapper, in the three stages it overlaps: ``decide`` (analyse, track, smooth,
    select) and ``render`` (swap and paste) of consecutive frames, causally and in order, and ``finish`` (the
    watermark, where ``render`` did not add it) of each swapped frame. ``decide`` of the next frames may run while
    ``render`` runs on these."""

    def decide(self, images: list[np.ndarray]) -> object: ...

    def render(self, step: object) -> list[np.ndarray]: ...

    def finish(self, image: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


def _in_frame(photo: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``photo`` scaled to fit a black (height, width, 3) frame of ``size`` (width, height), centred."""
    width, height = size
    scale = min(width / photo.shape[1], height / photo.shape[0])
    w, h = max(1, round(photo.shape[1] * scale)), max(1, round(photo.shape[0] * scale))
    frame = np.zeros((height, width, 3), np.uint8)
    x, y = (width - w) // 2, (height - h) // 2
    frame[y:y + h, x:x + w] = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return frame


class LiveSwapper:
    """The run's swapper for live frames: the GPU engine when ``--execution-providers cuda`` selects it, else the
    CPU path's ``FaceSwapper``; smoothing forced causal. ``warm_up`` swaps the first source photo before any frame
    comes: placed in a frame of ``frame_size`` (the capture's, where it says) and in steps of ``batch`` frames, so
    the stream's own shapes are the ones set up (the GPU engine tunes its kernels for each new shape; a camera's
    first frames would otherwise wait for it while the next ones are dropped).

    Raises:
        UsageError: reference selection or a face map (they name people by a target's frames, which live input
            lacks); a detection interval above 1 (its carried faces need the next keyframe). NoFaceError: no face
            in the sources. ModelError: models or GPU unavailable.
    """

    def __init__(self, sources: list[str | Path | np.ndarray], config: RunConfig, fps: float = 30.0,
                 warm_up: bool = True, frame_size: tuple[int, int] | None = None, batch: int = 1) -> None:
        if config.face_detector_interval not in ("auto", 1):
            raise UsageError("--face-detector-interval: live input has no later keyframe to carry faces towards; "
                             "live runs detect every frame")
        config = replace(config, smoothing_lookahead=0, face_detector_interval=1).validate()
        self.config = config
        self.watermark = watermark_for(None, config)
        """Added to every swapped frame, whatever output it goes to (docs/provenance.md)."""
        decision = decide(config, Entry.LIVE)  # refuses reference selection and face maps
        self.fps = fps
        self._engine = None
        self._frames: FaceSwapper | None = None
        if decision.backend is Backend.ENGINE:
            self._engine = engine_module().GpuEngine(sources, config)
            self.inputs = self._engine.inputs
        else:
            if decision.note:
                log.warning(decision.note)
            self._frames = FaceSwapper(sources, decision.config, fps)
            self.inputs = self._frames.inputs
        if warm_up:
            try:
                self._warm_up(sources[0], frame_size, batch)
            except BaseException:
                self.close()
                raise

    def _warm_up(self, source: str | Path | np.ndarray, frame_size: tuple[int, int] | None, batch: int) -> None:
        """Swap the first source photo (in a frame of ``frame_size``, in steps of one frame and of ``batch``) and
        forget it: the models' first calls (graph set-up, memory plans, kernel tuning) are paid before the stream
        starts, not by its first frames. On the GPU engine each step runs twice: a model's first real call picks
        its precision, the second runs the graph picked (compiled, with ``--compile``)."""
        photo = source if isinstance(source, np.ndarray) else read_image(source)
        if frame_size is not None:
            photo = _in_frame(photo, frame_size)
        for count in sorted({1, batch}):
            for _ in range(1 if self._engine is None else 2):
                self.swap([photo] * count)
        if self._engine is not None:
            self._engine.reset_tracking()
        else:
            assert self._frames is not None
            self._frames.reset_tracking()

    @property
    def device(self) -> str:
        """Where frames are swapped: "cpu", or the GPU engine's torch device."""
        return "cpu" if self._engine is None else str(self._engine.device)

    def decide(self, images: list[np.ndarray]) -> object:
        """The first stage: scene cut, faces, tracks (on the GPU engine also the upload, detection, smoothing and
        selection); touches only the state of this stage, so the frames before may still be rendering."""
        return _stage_thread("decide").submit(self._decide_frames, images).result()

    def _decide_frames(self, images: list[np.ndarray]) -> object:
        if self._engine is not None:
            return self._engine.decide_frames(images, self.fps)
        assert self._frames is not None
        return [analysed for image in images for analysed in self._frames.analyse(image)]

    def render(self, step: object) -> list[np.ndarray]:
        """The second stage: the frames ``decide`` returned ``step`` for, swapped and pasted, in order."""
        return _stage_thread("render").submit(self._render_step, step).result()

    def _render_step(self, step: object) -> list[np.ndarray]:
        if self._engine is not None:
            return self._engine.render_frames(step, self.watermark)
        assert self._frames is not None
        analysed: list[Analysed] = step  # type: ignore[assignment]
        return [result.image for one in analysed for result in self._frames.accept(one)]

    def finish(self, image: np.ndarray) -> np.ndarray:
        """The last stage: ``image`` with the watermark, where the run has one (the GPU engine's frames have it
        already: it marks them on the device, in ``render``)."""
        return image if self.watermark is None or self._engine is not None else self.watermark.embed_rgb(image)

    def swap(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """The three stages one after the other (the web UI's loop, which swaps one frame at a time)."""
        return [self.finish(image) for image in self.render(self.decide(images))]

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close()
        if self._frames is not None:
            self._frames.close()


_STAGE_THREADS: dict[str, ThreadPoolExecutor] = {}
_STAGE_THREADS_LOCK = threading.Lock()


def _stage_thread(stage: str) -> ThreadPoolExecutor:
    """The one thread of this process that runs ``stage``'s work (decide or render) for every ``LiveSwapper``,
    whichever thread asks. PyTorch keeps per thread the cuDNN kernels it has tuned (torch 2.11: a stage moved to a
    fresh thread tuned every convolution again, for seconds, while frames were dropped; session 9 on CUDA, 1-9
    frames/s against 18) and, before torch 2.13, the CUDA graphs of ``--compile`` (pytorch#123177: a second thread
    fails), so the warm-up tunes the threads the stream then uses, and a second stream (the web UI's) reuses them."""
    with _STAGE_THREADS_LOCK:
        if stage not in _STAGE_THREADS:
            _STAGE_THREADS[stage] = ThreadPoolExecutor(1, thread_name_prefix=f"steadyswap-live-{stage}")
        return _STAGE_THREADS[stage]


class Handoff:
    """Steps passed from one stage of the live loop to the next, with no room to queue: ``put`` returns once the
    next stage has taken the step. A slow stage so holds back the stages before it, and frames wait (and are
    dropped) only in the capture hand-off, however long the stream runs.

    >>> handoff = Handoff(); handoff.end(); handoff.get() is None
    True
    """

    def __init__(self) -> None:
        self._step: object = None
        self._held = False
        self._ended = False
        self._closed = False
        self._error: BaseException | None = None
        self._ready = threading.Condition()

    def put(self, step: object) -> bool:
        """Hand ``step`` over, waiting until it is taken; False when the hand-off was closed first (the step is
        then dropped)."""
        with self._ready:
            while self._held and not self._closed:
                self._ready.wait()
            if self._closed:
                return False
            self._step, self._held = step, True
            self._ready.notify_all()
            while self._held and not self._closed:
                self._ready.wait()
            return not self._held

    def end(self, error: BaseException | None = None) -> None:
        """No more steps will come (``error``: why, raised by ``get`` after the steps already handed over)."""
        with self._ready:
            self._ended, self._error = True, error
            self._ready.notify_all()

    def get(self) -> object | None:
        """The next step, waiting for it; None once the stage before has ended, or the hand-off was closed.

        Raises:
            The error the stage before ended with.
        """
        with self._ready:
            while not (self._held or self._ended or self._closed):
                self._ready.wait()
            if self._held and not self._closed:
                step, self._step, self._held = self._step, None, False
                self._ready.notify_all()
                return step
            if self._error is not None and not self._closed:
                raise self._error
            return None

    def close(self) -> None:
        """Stop both sides: ``put`` and ``get`` return at once from now on; a step not yet taken is dropped."""
        with self._ready:
            self._closed = True
            self._step = None
            self._ready.notify_all()


class Pace:
    """Seconds each stage of the live loop takes per step (its own work, not its waits): the median of its last
    ``window`` steps, so that one slow step (the first frame at a new shape waiting for kernel tuning, a stall
    of the machine) does not hold back the steps after it. The decide stage starts a step every ``period``."""

    def __init__(self, window: int = 9) -> None:
        self.seconds: dict[str, deque[float]] = {stage: deque(maxlen=window)
                                                 for stage in ("decide", "render", "output")}

    def add(self, stage: str, seconds: float) -> None:
        self.seconds[stage].append(seconds)

    def of(self, stage: str) -> float:
        """``stage``'s time (0 before its first step)."""
        times = self.seconds[stage]
        return statistics.median(times) if times else 0.0

    @property
    def period(self) -> float:
        """The slowest stage's time: a step started more often would only wait somewhere, its frames ageing."""
        return max(self.of(stage) for stage in self.seconds)


def run_live(capture: Capture, swapper: FrameSwap, open_output: Callable[[int, int], LiveOutput],
             batch: int = 1, overlay: bool = False, stop: threading.Event | None = None,
             report: Callable[[str], None] | None = None, report_every: float = 2.0) -> LiveResult:
    """Swap frames from ``capture`` into the output ``open_output(width, height)`` opens on the first frame, until
    the input ends, the viewer closes the window, ``stop`` is set, or Ctrl-C/SIGTERM/SIGHUP arrive: all of these
    end the stream and finish the output (a file is completed and renamed into place). An error instead removes
    an unfinished file.

    Four threads overlap: capture; ``swapper.decide`` of the next frames; ``swapper.render`` of the frames before;
    and, on this thread, ``swapper.finish``, the overlay and the output. Between two stages a step waits only to
    be taken (``Handoff``), so at most one step is in each stage and frames leave in the order they came. The
    decide stage starts a step once per ``Pace.period`` (the slowest stage's time), not as soon as it can: a step
    started earlier would only wait for a busy stage further on, its frames ageing.

    Args:
        batch: frames per step (1 or 2; 2 lets the GPU engine batch, for a frame more of latency).
        overlay: draw the frames/s and latency of the last report into the frames.
        report: called every ``report_every`` seconds with a line of frames/s, latency and drops.

    ``capture`` is closed on return (unless its thread is still blocked in a read 2 s after the end); the stage
    threads have ended (each finishes the step it holds), so ``swapper`` may be closed.

    Returns:
        Counts, rate and capture→output latency of the run.
    """
    if not 1 <= batch <= MAX_BATCH:
        raise UsageError(f"--batch-frames: {batch} is outside 1..{MAX_BATCH}")
    stop = stop or threading.Event()
    slot = LatestFrames(batch)
    decided, rendered = Handoff(), Handoff()
    pace = Pace()
    stats = LiveStats()
    threads = [
        threading.Thread(target=_capture, args=(capture, slot, stop), name="steadyswap-capture", daemon=True),
        threading.Thread(target=_decide, args=(swapper, slot, decided, stop, batch, pace), name="steadyswap-decide",
                         daemon=True),
        threading.Thread(target=_render, args=(swapper, decided, rendered, pace), name="steadyswap-render",
                         daemon=True),
    ]
    output: LiveOutput | None = None
    ended = "stop"
    next_report = stats.began + report_every
    for thread in threads:
        thread.start()
    try:
        try:
            while (done := rendered.get()) is not None:
                began = time.monotonic()
                frames, swapped = done  # type: ignore[misc]
                for frame, image in zip(frames, swapped, strict=True):
                    image = swapper.finish(image)
                    if output is None:
                        output = open_output(image.shape[1], image.shape[0])
                    if overlay:
                        image = draw_overlay(image, stats)
                    keep = output.send(image, frame.pts)
                    stats.record(frame.at, time.monotonic())
                    if not keep:
                        ended = "window closed"
                        break
                stats.dropped = slot.dropped
                now = time.monotonic()
                pace.add("output", now - began)
                if now >= next_report:
                    line = stats.roll(now)
                    if report is not None:
                        report(line)
                    next_report = now + report_every
                if ended == "window closed":
                    break
            else:
                ended = "stop" if stop.is_set() else "end of input"
        except KeyboardInterrupt as interrupt:  # the usual way to end a camera stream: finish the output
            ended = signal.Signals(interrupt.signum).name if isinstance(interrupt, Terminated) else "Ctrl-C"
        _stop(stop, decided, rendered, threads[1:])
        stats.dropped = slot.dropped
        if output is not None:
            finishing, output = output, None
            finishing.close()
        return replace(stats.result(ended), held=slot.most_held)
    except BaseException:
        _stop(stop, decided, rendered, threads[1:])
        if output is not None:
            output.abort()
        raise
    finally:
        threads[0].join(timeout=2.0)
        if not threads[0].is_alive():  # a capture still blocked in a read cannot be closed under it
            capture.close()


def _stop(stop: threading.Event, decided: Handoff, rendered: Handoff, stages: list[threading.Thread]) -> None:
    """End the stage threads: steps in flight are dropped, and each thread finishes the call it is in (so the
    swapper is free to close when this returns)."""
    stop.set()
    decided.close()
    rendered.close()
    for thread in stages:
        thread.join()


def _decide(swapper: FrameSwap, slot: LatestFrames, decided: Handoff, stop: threading.Event, batch: int,
            pace: Pace) -> None:
    """The decide thread: take the newest frames, decide them, hand them to the render thread. The render takes
    a step every ``pace.period``, so the next step starts when its decision will end as the render takes it: a
    period after the render took this one, less a decision's time. Its frames then wait for no stage after
    (a step started a period after the last one began would keep whatever wait for the render the first steps
    happened to have, up to a period less a decision, on every frame)."""
    error: BaseException | None = None
    try:
        while not stop.is_set():
            frames: list[Captured] | None = slot.take(batch, timeout=0.1)
            if frames is None:
                break
            if not frames:
                continue
            began = time.monotonic()
            step = swapper.decide([frame.image for frame in frames])
            pace.add("decide", time.monotonic() - began)
            if not decided.put((frames, step)):
                break
            stop.wait(max(0.0, pace.period - pace.of("decide")))  # from now, when the render took the step
    except BaseException as failure:  # handed to the main thread, which raises it
        error = failure
    decided.end(error)


def _render(swapper: FrameSwap, decided: Handoff, rendered: Handoff, pace: Pace) -> None:
    """The render thread: render each decided step and hand it to the output."""
    error: BaseException | None = None
    try:
        while (step := decided.get()) is not None:
            frames, work = step  # type: ignore[misc]
            began = time.monotonic()
            swapped = swapper.render(work)
            pace.add("render", time.monotonic() - began)
            if not rendered.put((frames, swapped)):
                break
    except BaseException as failure:
        error = failure
    rendered.end(error)


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
