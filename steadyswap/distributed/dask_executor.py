"""The Dask distributed implementation of ``Executor``: a local cluster, or a running scheduler.

Each worker process holds one ``SwapperPool`` (a worker plugin), so models load once per process:
FaceSwappers on the CPU path, GpuEngines for ``--execution-providers cuda``. A local cluster runs
worker processes under nannies (a killed worker is restarted and its task retried elsewhere, up to
``retries`` times); with GPUs, one worker per GPU pinned with ``CUDA_VISIBLE_DEVICES``, so a worker's
engine runs on its ``cuda:0``. The scheduler's event of a worker that left unexpectedly (with the tasks
it held) becomes a ``WorkerLoss``.

Every worker runs one task at a time (one thread), rather than guarding the pool with a lock: a pooled
FaceSwapper or GpuEngine (models, device memory plan) is never used by two tasks at once, and a GPU
gets one segment at a time, whose decoding, device work and encoding the engine already overlaps. A
running cluster given with ``--scheduler`` is refused when its workers have more threads (start them
with ``dask worker --nthreads 1``).

The nannies do not set Dask's pre-spawn environment: its ``MALLOC_TRIM_THRESHOLD_=65536`` makes every
frame-sized allocation an mmap/munmap pair, which slowed a segment 1.8x on the CPU path (17 s → 31 s,
liveportrait_d14), and its one-thread limits for OpenMP/MKL/OpenBLAS suit many small tasks, not one big
worker per GPU. Workers of a cluster given with ``--scheduler`` should be started with
``DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON='{}'``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import os
import queue
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable
from typing import Any

import dask
from distributed import Client, KilledWorker, Nanny, Scheduler, SpecCluster, WorkerPlugin, as_completed, get_worker

from steadyswap.distributed.executor import (
    Executor, Outcome, Task, TaskEvent, WorkerContext, WorkerLoss, WorkerLost,
)
from steadyswap.engine.swapper_pool import SwapperPool
from steadyswap.errors import UsageError

PLUGIN = "steadyswap"
TOPIC = "steadyswap-progress"
CLUSTER_TOPIC = "all"
"""The scheduler's own events: workers added and removed (with the tasks a removed one held)."""


class SwapperPlugin(WorkerPlugin):
    """Gives each worker process one SwapperPool, closed when the worker stops.

    It also lets the worker start child processes (the GPU engine's decoders and encoders), which
    multiprocessing refuses in a daemonic process, as a nanny's worker is. Its nanny still stops it.
    """

    def __init__(self, capacity: int = 2) -> None:
        self.capacity = capacity
        self.pool: SwapperPool | None = None

    def setup(self, worker: Any) -> None:
        multiprocessing.current_process().daemon = False
        self.pool = SwapperPool(self.capacity)

    def teardown(self, worker: Any) -> None:
        if self.pool is not None:
            self.pool.close()


class _DaskContext(WorkerContext):
    def __init__(self, key: str) -> None:
        self._worker = get_worker()
        self.pool = self._worker.plugins[PLUGIN].pool
        self._key = key

    def report(self, frames: int) -> None:
        self._worker.log_event(TOPIC, {"key": self._key, "pid": os.getpid(), "host": socket.gethostname(),
                                       "frames": frames})


def _call(key: str, task: Task, *args: Any) -> Any:
    """Run ``task`` in a worker with that worker's context."""
    return task(_DaskContext(key), *args)


def _has_bokeh() -> bool:
    return importlib.util.find_spec("bokeh") is not None


def gpu_ids() -> list[str]:
    """The GPUs this host offers: ``CUDA_VISIBLE_DEVICES`` when set, else those ``nvidia-smi -L`` lists."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False).stdout
    return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


def local_worker_envs(workers: int | None, gpus: bool) -> list[dict[str, str]]:
    """Environment of each local worker: one per GPU (or ``workers``, sharing GPUs round robin) when ``gpus``.

    Raises:
        UsageError: GPUs asked for but none found, or fewer than one worker.
    """
    if not gpus:
        count = workers or max(1, (os.cpu_count() or 2) // 2)
        if count < 1:
            raise UsageError("--workers must be 1 or more")
        return [{} for _ in range(count)]
    ids = gpu_ids()
    if not ids:
        raise UsageError("--execution-providers cuda: no GPU found (CUDA_VISIBLE_DEVICES / nvidia-smi -L)")
    count = workers or len(ids)
    return [{"CUDA_VISIBLE_DEVICES": ids[i % len(ids)]} for i in range(count)]


class DaskExecutor(Executor):
    """Run tasks on Dask: a local cluster of ``len(worker_envs)`` processes, or the cluster at ``scheduler``.

    Args:
        worker_envs: one environment per local worker process (see ``local_worker_envs``); ignored with ``scheduler``.
        scheduler: address of a running ``dask scheduler`` (its workers must see the same files).
        retries: times a task is rerun after its worker dies (the local scheduler's allowed failures;
            a running scheduler keeps its own ``distributed.scheduler.allowed-failures``).
        dashboard: serve the dashboard of a local cluster (needs bokeh) on ``dashboard_port``.
    """

    def __init__(self, worker_envs: list[dict[str, str]] | None = None, scheduler: str | None = None,
                 retries: int = 2, dashboard: bool = True, dashboard_port: int = 8787) -> None:
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._cluster_events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._losses: list[WorkerLoss] = []
        self._names: dict[str, str] = {}
        self._futures: dict[str, Any] = {}
        self._cluster: SpecCluster | None = None
        with dask.config.set({"distributed.scheduler.allowed-failures": retries,
                              "distributed.nanny.pre-spawn-environ": {}}):
            if scheduler is None:
                self._cluster = self._local_cluster(worker_envs or [{}], dashboard, dashboard_port)
                self.client = Client(self._cluster)
            else:
                self.client = Client(scheduler)
        try:
            if scheduler is not None:
                self._need_single_threaded_workers(scheduler)
            self._completed = as_completed()
            self.client.register_plugin(SwapperPlugin(), name=PLUGIN)
            self.client.subscribe_topic(TOPIC, lambda event: self._events.put(event[1]))
            self.client.subscribe_topic(CLUSTER_TOPIC, lambda event: self._cluster_events.put(event[1]))
            self.workers = self.count_workers()
            served = dashboard and self.client.run_on_scheduler(_has_bokeh)  # the dashboard needs bokeh there
            self.dashboard_link = self.client.dashboard_link if served else None
        except BaseException:
            self.close()
            raise

    def _need_single_threaded_workers(self, scheduler: str) -> None:
        """Refuse a running cluster whose workers run several tasks at once (see the module docstring).

        Raises:
            UsageError: a worker with more than one thread.
        """
        threads = max((w["nthreads"] for w in self.client.scheduler_info()["workers"].values()), default=1)
        if threads > 1:
            raise UsageError(f"the workers of {scheduler} run {threads} threads; a batch needs one task at a time "
                             "per worker: start them with 'dask worker --nthreads 1'")

    @staticmethod
    def _local_cluster(envs: list[dict[str, str]], dashboard: bool, port: int) -> SpecCluster:
        with_bokeh = dashboard and _has_bokeh()
        scheduler = {"cls": Scheduler, "options": {
            "host": "127.0.0.1", "dashboard_address": f":{port}" if with_bokeh else ":0", "dashboard": with_bokeh}}
        workers = {
            f"steadyswap-{i}": {"cls": Nanny, "options": {
                "nthreads": 1, "memory_limit": 0, "host": "127.0.0.1", "env": env, "silence_logs": 50}}
            for i, env in enumerate(envs)
        }
        return SpecCluster(workers=workers, scheduler=scheduler, silence_logs=40, name="steadyswap")

    def submit(self, key: str, task: Task, *args: Any) -> None:
        future = self.client.submit(_call, key, task, *args, key=key, pure=False)
        self._futures[key] = future
        self._completed.add(future)

    def wait(self, timeout: float) -> tuple[list[Outcome], list[TaskEvent]]:
        deadline = time.monotonic() + timeout
        while not self._completed.has_ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        outcomes = [
            self._outcome(future.key, future)
            for future in self._completed.next_batch(block=False)
            if self._futures.pop(future.key, None) is not None  # not cancelled meanwhile
        ]
        events = [TaskEvent(e["key"], e["pid"], e["host"], e["frames"]) for e in _drained(self._events)]
        for event in _drained(self._cluster_events):
            if event.get("action") == "add-worker":
                self.count_workers()  # learns the new worker's name
            elif event.get("action") == "remove-worker" and not event.get("expected"):
                address = event["worker"]
                self._losses.append(WorkerLoss(self._names.get(address, address), tuple(event["processing-tasks"])))
        return outcomes, events

    def losses(self) -> list[WorkerLoss]:
        losses, self._losses = self._losses, []
        return losses

    def count_workers(self) -> int:
        workers = self.client.scheduler_info()["workers"]
        self._names.update({address: str(info.get("name", address)) for address, info in workers.items()})
        return len(workers)

    @staticmethod
    def _outcome(key: str, future: Any) -> Outcome:
        if future.status == "finished":
            return Outcome(key, value=future.result())
        if future.status != "error":
            return Outcome(key, error=WorkerLost(f"the cluster dropped the task ({future.status})"))
        error = future.exception()
        if isinstance(error, KilledWorker):
            error = WorkerLost(f"the worker process running it died too often ({error})")
        return Outcome(key, error=error)

    def cancel(self, keys: Iterable[str]) -> None:
        futures = [self._futures.pop(k) for k in keys if k in self._futures]
        if futures:
            self.client.cancel(futures)

    def close(self) -> None:
        client, self._futures = getattr(self, "client", None), {}
        if client is not None:
            for topic in (TOPIC, CLUSTER_TOPIC):  # else events of the workers stopping meet a closed client
                with contextlib.suppress(ValueError):  # not subscribed: __init__ failed before
                    client.unsubscribe_topic(topic)
            client.close()
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def _drained(events: queue.Queue[dict[str, Any]]) -> list[dict[str, Any]]:
    """Everything in ``events`` now, without waiting."""
    drained = []
    while True:
        try:
            drained.append(events.get_nowait())
        except queue.Empty:
            return drained
