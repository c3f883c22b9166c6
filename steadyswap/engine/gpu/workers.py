"""EngineWorkers: GPU engines in child processes that share the device, each running its own segments.

One process's step loop is bound by its GIL: detection decoding, each frame's decisions and launching the
render are Python, and with several segments in one loop their threads take turns on one interpreter
(docs/benchmarks.md: the loop was busy 84% of a 1080p run while the GPU idled 65%). Workers are whole
``GpuEngine``s in their own interpreters (``steadyswap.children``), each with its models, its step loop
and its segments' decoders and encoders; the device interleaves their work. They start once and serve
one run after another, so their start-up (imports, model conversion, the memory probe) is paid once.
"""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING
from multiprocessing.connection import Connection, wait
from pathlib import Path

import numpy as np

from steadyswap import children
from steadyswap.config import RunConfig
from steadyswap.engine.phases import PhaseClock
from steadyswap.engine.pipeline import Progress
from steadyswap.errors import Interrupted
from steadyswap.io.segments import Segment
from steadyswap.types import VideoInfo

if TYPE_CHECKING:
    from steadyswap.engine.gpu.options import GpuOptions

PROGRESS_EVERY = 8
"""Frames between a worker's progress messages."""


@dataclass
class Job:
    """Segments one worker runs side by side, and the file each is written to (for ``io.segments.join``)."""

    segments: list[Segment]
    files: list[Path]


class EngineWorkers:
    """``count`` GPU engine processes built from the same sources, config and options.

    Args:
        sources: source photos (RGB arrays).
        config: run options.
        options: a ``GpuOptions`` for each worker's engine.
        count: processes to start.
    """

    def __init__(self, sources: list[np.ndarray], config: RunConfig, options: GpuOptions, count: int) -> None:
        self.children = [children.start(__name__, "serve", sources, config, options, group=True)
                         for _ in range(count)]
        self._ready = False

    def run(self, jobs: list[Job], info: VideoInfo, config: RunConfig, options: GpuOptions, clock: PhaseClock,
            progress: Progress | None = None, cancel: threading.Event | None = None) -> int:
        """Run one job per worker (at most as many jobs as workers) under the run's ``config`` and ``options``
        (each worker's engine checks them against what it was built from, as the parent's does); returns the
        frames written. The workers' time by phase is added to ``clock``.

        On any failure or a cancel the workers are stopped (the engine starts new ones for its next run)
        and the error is raised here: the worker's own exception, or a report that it died.
        """
        assert len(jobs) <= len(self.children)
        try:
            if not self._ready:
                for process, conn in self.children:
                    children.receive(conn, process, "GPU engine worker")
                self._ready = True
            busy = self.children[:len(jobs)]
            for (_, conn), job in zip(busy, jobs):
                conn.send(("run", job.segments, job.files, info, config, options))
            return self._collect(busy, sum(s.frames for job in jobs for s in job.segments), clock, progress, cancel)
        except BaseException:
            self.close(kill=True)
            raise

    def _collect(self, busy: list[tuple[subprocess.Popen, Connection]], total: int, clock: PhaseClock,
                 progress: Progress | None, cancel: threading.Event | None) -> int:
        written = [0] * len(busy)
        waiting = {conn: k for k, (_, conn) in enumerate(busy)}
        done = 0
        while waiting:
            if cancel is not None and cancel.is_set():
                raise Interrupted("run cancelled")
            for conn in wait(list(waiting), timeout=children.POLL_SECONDS):
                k = waiting[conn]  # type: ignore[index]
                message = children.receive(conn, busy[k][0], "GPU engine worker")  # type: ignore[arg-type]
                if message[0] == "progress":
                    written[k] = message[1]
                elif message[0] == "done":
                    written[k] = message[1]
                    done += message[1]
                    for phase, seconds in message[2].items():
                        clock.add(phase, seconds)
                    del waiting[conn]  # type: ignore[arg-type]
                if progress is not None:
                    progress(sum(written), total)
        return done

    def close(self, kill: bool = False) -> None:
        """Stop the workers (at once with ``kill``, their decoders and encoders too); safe to call twice."""
        for process, conn in self.children:
            if conn.closed:
                continue
            if kill:
                children.kill_group(process, conn)
                continue
            try:
                conn.send(("stop",))
            except OSError:
                pass
            children.stop(process, conn, grace=10)


def _serve(conn: Connection, sources: list[np.ndarray], config: RunConfig, options: GpuOptions) -> None:
    """Child: build one engine, then run the jobs the parent sends until it says stop."""
    from steadyswap.engine.gpu.engine import GpuEngine

    try:
        engine = GpuEngine(sources, config, options)
        conn.send(("ready",))
    except BaseException as error:
        conn.send(("error", children.portable(error)))
        return
    with engine:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                return
            if message[0] == "stop":
                return
            _, segments, files, info, config, options = message
            last = 0

            def advanced(written: int, total: int) -> None:
                nonlocal last
                if written - last >= PROGRESS_EVERY:
                    conn.send(("progress", written))
                    last = written

            try:
                written = engine.run_job(segments, files, info, advanced, config=config, options=options)
                conn.send(("done", written, engine.clock.totals()))
            except BaseException as error:
                conn.send(("error", children.portable(error)))


if __name__ == "__main__":
    _role, _connection, _setup = children.child_connection()
    _serve(_connection, *_setup)
