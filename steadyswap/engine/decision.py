"""The decision point: which path a run takes and how its work is spread, made in one place.

Every entry asks ``decide``: ``api.swap_file`` (``steadyswap run``), the live stream (``engine/live.py``), a
batch (its local Dask workers, ``cli/batch.py``, and each of its tasks, ``distributed/tasks.py``) and the GPU
engine itself (whether a video run goes to engine worker processes). The answer is a ``Decision``: the path
that swaps the pixels (the CPU path or the GPU engine), how the work is spread (this process, engine worker
processes, Dask workers), the options that path runs with, and a line to log where the path is not the one the
options name. An option the chosen path cannot honour is refused here, in one line (``UsageError``).

This module imports no torch: the CPU-only install uses it too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

from steadyswap.config import RunConfig
from steadyswap.errors import UsageError

WORKER_MIN_FRAMES = 9000
"""Runs this long (5 minutes at 30 fps) start engine workers by default. On the H100 machine (docs/benchmarks.md,
call 10) 4 workers ran 1080p at 78.6 frames/s against 56.4 in one process (5 ms less per frame) and took
about 40 s to start: they pay for themselves after about 8,000 frames."""


class Backend(Enum):
    """Where the pixels are swapped."""

    CPU = "the CPU path"
    ENGINE = "the GPU engine"


class Spread(Enum):
    """Where the work runs."""

    PROCESS = "this process"
    WORKERS = "engine worker processes"
    DASK = "Dask workers"


class Entry(Enum):
    """Who asks."""

    RUN = "run"
    """``steadyswap run`` / ``api.swap_file``: a file into a file."""
    LIVE = "live"
    """``steadyswap live``: frames as they arrive."""
    BATCH = "batch"
    """``steadyswap batch``: jobs on Dask (the local workers, and each task)."""
    ENGINE = "engine"
    """A ``GpuEngine`` someone built (for a run, a batch worker's pool, a test): the engine is chosen."""


@dataclass(frozen=True)
class EngineRun:
    """What the GPU engine knows when it splits a video run.

    Attributes:
        device: the torch device's type ("cuda", "cpu").
        segments: the segments the run is cut into.
        frames: frames to write.
        workers: ``GpuOptions.workers`` (None: decide here).
        engines_that_fit: how many engines like this one the device's memory holds (asked only where it matters).
    """

    device: str
    segments: int
    frames: int
    workers: int | None
    engines_that_fit: Callable[[], int]


@dataclass(frozen=True)
class Decision:
    """Which path runs and how.

    Attributes:
        backend: the CPU path or the GPU engine.
        spread: this process, engine worker processes (``workers`` of them) or Dask workers.
        config: the options the path runs with (``cuda cpu`` without a usable GPU: ``cpu`` alone).
        workers: engine worker processes (``Spread.WORKERS``), else 1.
        note: a line to log where the path is not the one the options name first, else None.
    """

    backend: Backend
    spread: Spread
    config: RunConfig
    workers: int = 1
    note: str | None = None


def gpu_usable() -> bool:
    """PyTorch is installed and sees a CUDA GPU."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def decide(config: RunConfig, entry: Entry = Entry.RUN, *, gpu: Callable[[], bool] = gpu_usable,
           run: EngineRun | None = None) -> Decision:
    """The path of a run with ``config`` asked for by ``entry``.

    The GPU engine runs where ``--execution-providers`` lists ``cuda`` first and ``gpu()`` says a GPU is usable,
    or lists no ``cpu`` after it (the engine then reports the missing GPU); else the CPU path (``cuda cpu`` on
    ``cpu`` alone; other lists, ``tensorrt`` first say, as given to onnxruntime).
    A batch spreads over Dask workers; an engine's video run over ``run.segments`` engine worker processes where
    ``GpuOptions.workers`` asks, or by default on CUDA for runs of ``WORKER_MIN_FRAMES`` frames or more, as many
    as the device's memory holds.

    Args:
        config: the run's options.
        entry: who asks.
        gpu: whether a GPU is usable (asked only for ``cuda cpu``); the batch's local cluster passes its own test.
        run: the engine's video run, for the worker processes (with ``Entry.ENGINE``).

    Raises:
        UsageError: an option the path cannot honour, in one line.

    >>> decide(RunConfig()).backend, decide(RunConfig()).spread
    (<Backend.CPU: 'the CPU path'>, <Spread.PROCESS: 'this process'>)
    >>> decided = decide(RunConfig(execution_providers=("cuda", "cpu")), gpu=lambda: False)
    >>> decided.backend.name, decided.config.execution_providers
    ('CPU', ('cpu',))
    """
    if entry is Entry.LIVE and (config.face_map or config.face_selector_mode == "reference"):
        raise UsageError("live input has no target frames to pick people from: use --face-selector-mode "
                         "one or many (reference selection and face maps are for files)")
    if entry is Entry.BATCH and config.quality_report:
        raise UsageError("--quality-report is not supported in batches; use 'steadyswap run'")
    providers = config.execution_providers
    engine = entry is Entry.ENGINE or (providers[0] == "cuda" and ("cpu" not in providers or gpu()))
    note = None
    if not engine and providers[0] == "cuda":
        note = "--execution-providers cuda: no CUDA GPU usable by PyTorch here; running on the CPU"
        config = replace(config, execution_providers=("cpu",))
    if not engine and config.extra.get("gpu", {}).get("compile"):
        raise UsageError("--compile (the GPU option 'compile') needs the GPU engine: --execution-providers cuda on "
                         "a machine with a CUDA GPU")
    if engine and config.quality_report:
        raise UsageError("--quality-report is measured on the CPU path only; pass --execution-providers cpu")
    backend = Backend.ENGINE if engine else Backend.CPU
    if entry is Entry.BATCH:
        return Decision(backend, Spread.DASK, config, note=note)
    workers = _engine_workers(run) if run is not None else 1
    return Decision(backend, Spread.WORKERS if workers > 1 else Spread.PROCESS, config, workers, note)


def _engine_workers(run: EngineRun) -> int:
    """Engine worker processes for ``run``: the option, else one per segment on CUDA for long runs, as many as
    fit; never more than the segments."""
    wanted = run.workers
    if wanted is None:
        wanted = run.segments if run.device == "cuda" and run.frames >= WORKER_MIN_FRAMES else 1
        if wanted > 1:
            wanted = min(wanted, run.engines_that_fit())
    return max(1, min(wanted, run.segments))
