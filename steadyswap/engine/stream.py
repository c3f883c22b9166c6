"""Frames through a FaceSwapper in order, analysis on its own thread: the loop every file run shares."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from steadyswap.engine.frame_swapper import FaceSwapper, FrameResult
from steadyswap.engine.phases import PhaseClock
from steadyswap.errors import Interrupted, UsageError
from steadyswap.io import VideoReader
from steadyswap.threads import drain, put_unless_stopped
from steadyswap.types import Frame

_END = object()


def swap_stream(swapper: FaceSwapper, frames: Iterable[Frame], cancel: threading.Event | None = None,
                queue_size: int = 4, clock: PhaseClock | None = None) -> Iterator[tuple[Frame, FrameResult]]:
    """Yield ``(frame, result)`` for every frame, in order, lookahead flushed at the end.

    Analysis and tracking of frame t+1 run on a worker thread while this thread smooths, swaps and
    pastes frame t; a bounded queue keeps the two at most ``queue_size`` analysed frames apart (frames between
    two keyframes wait on the worker until the next keyframe is detected). ``clock`` gets
    the seconds spent waiting for decoded frames ("decode"), analysing ("analyse") and swapping ("swap").

    Raises:
        Interrupted: ``cancel`` was set.
    """
    handoff: queue.Queue = queue.Queue(maxsize=queue_size)
    stop = threading.Event()
    clock = clock or PhaseClock()

    def analyse() -> None:
        try:
            decoded = iter(frames)
            held: deque[Frame] = deque()  # frames whose analysis waits for a keyframe (tracking.cadence)
            while True:
                with clock.measure("decode"):
                    frame = next(decoded, None)
                if stop.is_set() or (cancel is not None and cancel.is_set()):
                    break
                with clock.measure("analyse"):
                    if frame is not None:
                        held.append(frame)
                        done = swapper.analyse(frame.image, frame.index)
                    else:
                        done = swapper.finish_analysis()
                for analysed in done:
                    put_unless_stopped(handoff, (held.popleft(), analysed), stop)
                if frame is None:
                    break
            put_unless_stopped(handoff, _END, stop)
        except BaseException as error:  # handed to the consumer, which re-raises it
            put_unless_stopped(handoff, error, stop)

    worker = threading.Thread(target=analyse, name="steadyswap-analyse", daemon=True)
    worker.start()
    waiting: deque[Frame] = deque()
    try:
        while (item := handoff.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            if cancel is not None and cancel.is_set():
                raise Interrupted("run cancelled")
            frame, analysed = item
            waiting.append(frame)
            with clock.measure("swap"):
                results = swapper.accept(analysed)
            for result in results:
                yield waiting.popleft(), result
        if cancel is not None and cancel.is_set():
            raise Interrupted("run cancelled")
        with clock.measure("swap"):
            results = swapper.flush()
        for result in results:
            yield waiting.popleft(), result
    finally:
        stop.set()
        while worker.is_alive():
            drain(handoff)
            worker.join(timeout=0.05)


def frame_at(target: Path, index: int) -> np.ndarray:
    """The RGB image of frame ``index`` of a video.

    Raises:
        UsageError: the video has no such frame.
    """
    with VideoReader(target, index, index + 1, high_bit_depth=False) as reader:
        for frame in reader:
            return frame.image
    raise UsageError(f"{target} has no frame {index} (reference frame)")


def prepare_references(swapper: FaceSwapper, target: Path) -> None:
    """Give a reference-mode or face-map swapper the target frames its people are named in."""
    if swapper.needs_references:
        swapper.set_references([frame_at(target, index) for index in swapper.reference_frames])
