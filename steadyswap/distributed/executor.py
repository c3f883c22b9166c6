"""The small interface between a batch and the engine that runs its tasks (Dask today).

A task is a plain function ``function(context, *args)``; the engine calls it in a worker process
with a ``WorkerContext`` that holds the process's swapper pool and a way to report progress.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from steadyswap.engine.swapper_pool import SwapperPool
from steadyswap.errors import SteadySwapError


class WorkerLost(SteadySwapError):
    """The worker process running a task died more often than the retries allow (killed, out of memory, crash)."""


@dataclass(frozen=True)
class Outcome:
    """A finished task: its value, or the exception it raised."""

    key: str
    value: Any = None
    error: BaseException | None = None


@dataclass(frozen=True)
class TaskEvent:
    """Progress of a task attempt: ``frames`` written so far (0 when it starts) by process ``pid`` on ``host``."""

    key: str
    pid: int
    host: str
    frames: int


class WorkerContext(ABC):
    """What a task receives from the engine: the process's models and a progress channel."""

    pool: SwapperPool

    @abstractmethod
    def report(self, frames: int) -> None:
        """Tell the batch how many frames this task has written so far."""


@dataclass(frozen=True)
class WorkerLoss:
    """A worker process that left the cluster unexpectedly (killed, out of memory, crashed).

    ``keys``: the tasks it held; they run again on other workers (up to the executor's retries).
    """

    worker: str
    keys: tuple[str, ...]


Task = Callable[..., Any]
"""``task(context: WorkerContext, *args)``: must be importable by the workers (a module-level function)."""


class Executor(ABC):
    """Runs tasks on workers and hands back their outcomes and progress events.

    Attributes:
        workers: worker processes available when it started.
        dashboard_link: URL of the engine's dashboard, or None.
    """

    workers: int = 0
    dashboard_link: str | None = None

    @abstractmethod
    def submit(self, key: str, task: Task, *args: Any) -> None:
        """Queue ``task(context, *args)`` under ``key`` (unique within the executor's life)."""

    @abstractmethod
    def wait(self, timeout: float) -> tuple[list[Outcome], list[TaskEvent]]:
        """Tasks finished and progress events received since the last call, waiting up to ``timeout`` seconds.

        A task whose workers died more often than allowed comes back with a ``WorkerLost`` error.
        """

    def losses(self) -> list[WorkerLoss]:
        """Workers lost since the last call (noticed by ``wait``); none for an engine that cannot tell."""
        return []

    def count_workers(self) -> int:
        """Worker processes now (a lost one that was restarted counts again); ``workers`` for an engine whose
        workers do not change."""
        return self.workers

    @abstractmethod
    def cancel(self, keys: Iterable[str]) -> None:
        """Drop queued tasks (a running one may finish; its outcome is then ignored)."""

    @abstractmethod
    def close(self) -> None:
        """Stop what this executor started (a local cluster's workers); safe to call twice."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
