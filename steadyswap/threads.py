"""Bounded hand-offs between threads that can be stopped: the pattern every pipeline stage shares."""

from __future__ import annotations

import queue
import threading


def put_unless_stopped(handoff: queue.Queue, item: object, stop: threading.Event, poll: float = 0.1) -> bool:
    """Put ``item``, waiting while the queue is full; False (item dropped) once ``stop`` is set."""
    while not stop.is_set():
        try:
            handoff.put(item, timeout=poll)
            return True
        except queue.Full:
            continue
    return False


def drain(handoff: queue.Queue) -> None:
    """Discard everything queued right now (so a blocked producer can see its stop event)."""
    try:
        while True:
            handoff.get_nowait()
    except queue.Empty:
        pass
