"""Moving frames between host and device on their own threads, CUDA streams and pinned buffers.

``Uploader``: a thread gathers decoded frames from several sources in turn into a step, copies them into
a pinned host buffer and starts the copy to the device on an upload stream. ``Downloader``: the compute
thread hands finished steps over; a copy stream brings them into pinned buffers and a thread passes each
frame to its consumer (an encoder). Both hold a fixed ring of buffers, so a slow stage stalls the one
before it and memory never grows with the video.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np
import torch

T = TypeVar("T")
_END = object()


def side_stream(device: torch.device, priority: int = 0) -> torch.cuda.Stream | None:
    """A CUDA stream of its own on ``device`` (lower ``priority`` runs first); None on the CPU."""
    return torch.cuda.Stream(device, priority=priority) if device.type == "cuda" else None


def on(stream: torch.cuda.Stream | None) -> AbstractContextManager:
    """Make ``stream`` current inside the ``with`` block; nothing changes for None (the CPU)."""
    return torch.cuda.stream(stream) if stream is not None else nullcontext()


@dataclass
class Step(Generic[T]):
    """Frames of one step: the items they came with, and the (B, …) uint8 frames on the device."""

    items: list[T]
    frames: torch.Tensor


class _Ring:
    """Pinned (or, on the CPU, plain) host buffers of one shape, handed out in turn once their copy is done."""

    def __init__(self, count: int, shape: tuple[int, ...], device: torch.device) -> None:
        pinned = device.type == "cuda"
        self.buffers = [torch.empty(shape, dtype=torch.uint8, pin_memory=pinned) for _ in range(count)]
        self.events: list[torch.cuda.Event | None] = [None] * count
        self.free: queue.Queue[int] = queue.Queue()
        for index in range(count):
            self.free.put(index)


class Uploader(Generic[T]):
    """Iterate ``Step``s of up to ``size`` frames taken in turn from ``sources`` (one frame from each).

    Args:
        sources: iterators of (item, uint8 frame of ``shape``); each is read in order. A frame is copied
            before its source is asked for the next, so a source may hand out a buffer it then reuses.
        size: most frames per step.
        shape: shape of every frame: (H, W, 3) RGB, or (H·3/2, W) yuv420p planes.
        device: where steps go.
        depth: steps prepared ahead of the consumer.
    """

    def __init__(self, sources: Sequence[Iterator[tuple[T, np.ndarray]]], size: int, shape: tuple[int, ...],
                 device: torch.device | str, depth: int = 2) -> None:
        self.sources, self.size, self.device = list(sources), size, torch.device(device)
        self._ring = _Ring(depth + 1, (size, *shape), self.device)
        self._queue: queue.Queue[object] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._turn = 0
        self._stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self._thread = threading.Thread(target=self._run, name="steadyswap-upload", daemon=True)
        self._thread.start()

    def __iter__(self) -> Iterator[Step[T]]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            step, event = item  # type: ignore[misc]
            if event is not None:
                torch.cuda.current_stream(self.device).wait_event(event)
                step.frames.record_stream(torch.cuda.current_stream(self.device))
            yield step

    def close(self) -> None:
        """Stop the thread (after an error downstream); safe to call twice."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _gather(self, live: list[Iterator[tuple[T, np.ndarray]]], into: np.ndarray) -> list[T]:
        """Copy up to ``size`` frames into ``into``, one from each live source in turn (the turn carries over
        between steps, so every source advances alike); exhausted sources are dropped. Returns their items."""
        items: list[T] = []
        while live and len(items) < self.size:
            self._turn %= len(live)
            try:
                item, image = next(live[self._turn])
            except StopIteration:
                del live[self._turn]
                continue
            into[len(items)] = image
            items.append(item)
            self._turn += 1
        return items

    def _run(self) -> None:
        live = list(self.sources)
        try:
            while not self._stop.is_set() and live:
                slot = self._ring.free.get()
                event = self._ring.events[slot]
                if event is not None:
                    event.synchronize()
                host = self._ring.buffers[slot]
                items = self._gather(live, host.numpy())
                if not items:
                    self._ring.free.put(slot)
                    break
                if not self._put(self._send(host[: len(items)], items, slot)):
                    break
        except BaseException as error:  # hand every failure (decode errors included) to the consumer
            self._put(error)
        self._put(_END)

    def _send(self, host: torch.Tensor, items: list[T], slot: int) -> tuple[Step[T], torch.cuda.Event | None]:
        if self._stream is None:
            self._ring.free.put(slot)
            return Step(items, host.clone()), None
        with torch.cuda.stream(self._stream):
            frames = host.to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self._stream)
        self._ring.events[slot] = event
        self._ring.free.put(slot)
        return Step(items, frames), event


class Downloader(Generic[T]):
    """Bring finished steps back to the host and pass each frame to ``consume(item, array)`` on a thread.

    Args:
        consume: called in order with each item and its H'×W' uint8 array.
        shape: (rows, columns[, channels]) of one finished frame (yuv420p: (H·3/2, W)).
        size: most frames per step.
        device: where steps come from.
        depth: steps in flight.
        copies: hand ``consume`` a private copy; False: a view into a buffer, valid during the call
            (for consumers that copy anyway, as ``ProcessWriter`` does into shared memory).
    """

    def __init__(self, consume: Callable[[T, np.ndarray], None], shape: tuple[int, ...], size: int,
                 device: torch.device | str, depth: int = 2, copies: bool = True) -> None:
        self.consume, self.device, self.copies = consume, torch.device(device), copies
        self._ring = _Ring(depth, (size, *shape), self.device)
        self._queue: queue.Queue[object] = queue.Queue()
        self._error: BaseException | None = None
        self._stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self._thread = threading.Thread(target=self._run, name="steadyswap-download", daemon=True)
        self._thread.start()

    def submit(self, items: list[T], frames: torch.Tensor) -> None:
        """Queue a finished step (``frames``: (B, …) uint8 on the device); blocks while every buffer is busy."""
        self._raise()
        slot = self._take_slot()
        host = self._ring.buffers[slot][: len(items)]
        if self._stream is None:
            host.copy_(frames)
            self._queue.put((items, slot, None))
            return
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._stream):
            frames.record_stream(self._stream)
            host.copy_(frames, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self._stream)
        self._queue.put((items, slot, event))

    def close(self) -> None:
        """Wait until every frame was consumed; re-raise a failure of ``consume``."""
        self._queue.put(_END)
        self._thread.join()
        self._raise()

    def abort(self) -> None:
        """Stop without consuming what is left."""
        self._error = self._error or RuntimeError("aborted")
        self._queue.put(_END)
        self._thread.join()

    def _take_slot(self) -> int:
        while True:
            try:
                return self._ring.free.get(timeout=0.1)
            except queue.Empty:
                self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is _END:
                return
            items, slot, event = job  # type: ignore[misc]
            try:
                if self._error is None:
                    if event is not None:
                        event.synchronize()
                    array = self._ring.buffers[slot].numpy()
                    for row, item in enumerate(items):
                        self.consume(item, array[row].copy() if self.copies else array[row])
            except BaseException as error:  # an encoder failure: stop consuming, tell the compute thread
                self._error = error
            finally:
                self._ring.free.put(slot)
