"""The decision point (``engine.decision.decide``): which path each entry takes, how its work is spread, and the
one-line refusal of an option a path cannot honour. Pure: no torch, no models (the GPU test is injected)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from steadyswap.config import RunConfig
from steadyswap.engine.decision import WORKER_MIN_FRAMES, Backend, EngineRun, Entry, Spread, decide
from steadyswap.errors import UsageError

CPU = RunConfig()
CUDA = RunConfig(execution_providers=("cuda",))
CUDA_CPU = RunConfig(execution_providers=("cuda", "cpu"))


def no_gpu() -> bool:
    return False


def a_gpu() -> bool:
    return True


def never_asked() -> bool:
    raise AssertionError("the GPU test was run where the options already decide")


@pytest.mark.parametrize("entry", [Entry.RUN, Entry.LIVE])
@pytest.mark.parametrize(("config", "gpu", "backend", "providers", "noted"), [
    (CPU, never_asked, Backend.CPU, ("cpu",), False),
    (CUDA, never_asked, Backend.ENGINE, ("cuda",), False),  # no fallback: the engine reports a missing GPU
    (CUDA_CPU, a_gpu, Backend.ENGINE, ("cuda", "cpu"), False),
    (CUDA_CPU, no_gpu, Backend.CPU, ("cpu",), True),
    (RunConfig(execution_providers=("cpu", "cuda")), never_asked, Backend.CPU, ("cpu", "cuda"), False),
    (RunConfig(execution_providers=("tensorrt",)), never_asked, Backend.CPU, ("tensorrt",), False),  # onnxruntime's
])
def test_each_entry_takes_the_path_its_providers_and_the_gpu_give(entry, config, gpu, backend, providers,
                                                                   noted) -> None:
    decision = decide(config, entry, gpu=gpu)
    assert decision.backend is backend and decision.spread is Spread.PROCESS and decision.workers == 1
    assert decision.config.execution_providers == providers
    assert replace(decision.config, execution_providers=config.execution_providers) == config  # nothing else
    assert (decision.note is not None) == noted
    if noted:
        assert "running on the CPU" in decision.note and "\n" not in decision.note


@pytest.mark.parametrize(("config", "gpu", "backend"), [
    (CPU, never_asked, Backend.CPU), (CUDA, never_asked, Backend.ENGINE), (CUDA_CPU, a_gpu, Backend.ENGINE),
    (CUDA_CPU, no_gpu, Backend.CPU)])
def test_a_batch_runs_on_dask_workers_with_the_same_path(config, gpu, backend) -> None:
    decision = decide(config, Entry.BATCH, gpu=gpu)
    assert decision.spread is Spread.DASK and decision.backend is backend


def test_an_engine_someone_built_is_the_engine_whatever_the_providers() -> None:
    decision = decide(CPU, Entry.ENGINE, gpu=never_asked)
    assert decision.backend is Backend.ENGINE and decision.spread is Spread.PROCESS and decision.note is None


def _run(device: str = "cuda", segments: int = 4, frames: int = WORKER_MIN_FRAMES, workers: int | None = None,
         fit: int | None = 8) -> EngineRun:
    def engines_that_fit() -> int:
        if fit is None:
            raise AssertionError("device memory was asked where it does not matter")
        return fit
    return EngineRun(device, segments, frames, workers, engines_that_fit)


@pytest.mark.parametrize(("run", "workers"), [
    (_run(), 4),                                            # long CUDA run: one worker per segment
    (_run(fit=3), 3),                                       # as many as the device's memory holds
    (_run(fit=0), 1),                                       # none fit: this process
    (_run(frames=WORKER_MIN_FRAMES - 1, fit=None), 1),      # too short to pay for the workers' start
    (_run(device="cpu", fit=None), 1),                      # torch on the CPU: never by default
    (_run(segments=1, fit=None), 1),                        # one segment: nothing to share
    (_run(workers=2, fit=None), 2),                         # asked for: no memory test
    (_run(workers=8, segments=3, fit=None), 3),             # never more than the segments
    (_run(workers=1, fit=None), 1),
])
def test_the_engine_spreads_long_runs_over_worker_processes(run: EngineRun, workers: int) -> None:
    decision = decide(CUDA, Entry.ENGINE, run=run)
    assert decision.backend is Backend.ENGINE and decision.workers == workers
    assert decision.spread is (Spread.WORKERS if workers > 1 else Spread.PROCESS)


@pytest.mark.parametrize(("config", "entry", "gpu", "refusal"), [
    (replace(CUDA, quality_report="q.json"), Entry.RUN, never_asked, "--quality-report is measured on the CPU path"),
    (replace(CUDA_CPU, quality_report="q.json"), Entry.LIVE, a_gpu, "--quality-report is measured on the CPU path"),
    (replace(CPU, quality_report="q.json"), Entry.ENGINE, never_asked, "--quality-report is measured on the CPU"),
    (replace(CPU, quality_report="q.json"), Entry.BATCH, never_asked, "--quality-report is not supported in batches"),
    (replace(CUDA, quality_report="q.json"), Entry.BATCH, never_asked, "--quality-report is not supported in batches"),
    (replace(CPU, face_selector_mode="reference"), Entry.LIVE, never_asked, "live input has no target frames"),
    (replace(CUDA, face_map="map.json"), Entry.LIVE, never_asked, "live input has no target frames"),
    (replace(CPU, extra={"gpu": {"compile": "reduce-overhead"}}), Entry.LIVE, never_asked,
     r"--compile \(the GPU option 'compile'\) needs the GPU engine"),
    (replace(CUDA_CPU, extra={"gpu": {"compile": True}}), Entry.RUN, no_gpu, "needs the GPU engine"),
])
def test_an_option_the_path_cannot_honour_is_refused_in_one_line(config, entry, gpu, refusal) -> None:
    with pytest.raises(UsageError, match=refusal) as raised:
        decide(config, entry, gpu=gpu)
    assert "\n" not in str(raised.value)


def test_a_compiled_swapper_runs_on_the_engine() -> None:
    compiled = replace(CUDA_CPU, extra={"gpu": {"compile": "reduce-overhead"}})
    assert decide(compiled, Entry.LIVE, gpu=a_gpu).backend is Backend.ENGINE


def test_the_quality_report_runs_where_it_falls_back_to_the_cpu_path() -> None:
    decision = decide(replace(CUDA_CPU, quality_report="q.json"), gpu=no_gpu)
    assert decision.backend is Backend.CPU and decision.config.quality_report == "q.json"
    assert decide(replace(CPU, face_selector_mode="reference")).backend is Backend.CPU  # files may use references
