"""GPU engine workers: segments run by engine processes give what one process gives, and failures surface.

The engines run on the CPU here (torch device "cpu"), the same code as on CUDA; models as in
tests/test_gpu_engine.py (the shared YuNet, stand-in swapper and recognizer).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from steadyswap.engine.gpu.engine import GpuEngine, GpuOptions  # noqa: E402
from steadyswap.errors import Interrupted, MediaDecodeError, SteadySwapError  # noqa: E402
from tests.conftest import gpu_engine_config, media_path  # noqa: E402
from tests.helpers import decode, faststart_truncated, photo  # noqa: E402


def _codec_processes() -> set[int]:
    """Process ids of running decoder/encoder children (``io.codec_processes``), from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"steadyswap.io.codec_processes" in (entry / "cmdline").read_bytes():
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def _left_behind(before: set[int], seconds: float = 5.0) -> set[int]:
    """Codec children started since ``before`` still running after ``seconds``."""
    deadline = time.monotonic() + seconds
    while _codec_processes() - before and time.monotonic() < deadline:
        time.sleep(0.1)
    return _codec_processes() - before


def _stamps(path: Path) -> list[int]:
    with av.open(str(path)) as container:
        return [frame.pts for frame in container.decode(video=0)]


def test_workers_give_what_one_process_gives(gpu_models_dir: Path, tmp_path: Path) -> None:
    target = media_path("video/liveportrait_d3_93f.mp4")
    config = gpu_engine_config(gpu_models_dir, trim_frame_start=20, trim_frame_end=80,
                               output_video_quality=100)  # lossless
    options = GpuOptions(device="cpu", half=False, segments=2, warmup_frames=5, frames_per_step=6)
    with GpuEngine([photo(media_path("image/liveportrait_s1_512.jpg"))], config, options) as engine:
        alone = engine.run_video(target, tmp_path / "alone.mp4")
        two = replace(options, workers=2)
        seen: list[tuple[int, int]] = []
        shared = engine.run_video(target, tmp_path / "workers.mp4", progress=lambda done, total: seen.append(
            (done, total)), options=two)
        workers = engine.runs.workers
        assert workers is not None and len(workers.children) == 2
        pids = [process.pid for process, _ in workers.children]
        again = engine.run_video(target, tmp_path / "again.mp4", options=two)
        assert engine.runs.workers is not None
        assert [process.pid for process, _ in engine.runs.workers.children] == pids  # kept between runs
    assert all(process.poll() is not None for process, _ in workers.children)  # stopped on close
    assert alone.frames == shared.frames == again.frames == 60
    assert seen and seen[-1] == (60, 60) and all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    assert _stamps(tmp_path / "workers.mp4") == _stamps(tmp_path / "alone.mp4")
    one, two = (np.stack(decode(tmp_path / name)).astype(np.int16) for name in ("alone.mp4", "workers.mp4"))
    diff = np.abs(one - two)
    assert (one != np.stack(decode(target)[20:80])).mean() > 0.02  # faces were swapped
    # batches differ between the layouts: detector rounding, which the local shading's blurred correction carries
    # a little further (measured: at most 4 levels, on 0.003% of the pixels)
    assert diff.mean() < 0.01 and diff.max() <= 4


def test_failures_cancels_and_deaths_stop_the_workers_and_the_next_run_starts_new_ones(
        gpu_models_dir: Path, tmp_path: Path) -> None:
    truncated = faststart_truncated(tmp_path)
    before = _codec_processes()
    options = GpuOptions(device="cpu", half=False, segments=2, warmup_frames=5, frames_per_step=6, workers=2)
    source = photo(media_path("image/liveportrait_s1_512.jpg"))
    with GpuEngine([source], gpu_engine_config(gpu_models_dir), options) as engine:
        with pytest.raises(MediaDecodeError, match="truncated or corrupt"):
            engine.run_video(truncated, tmp_path / "out.mp4")
        assert engine.runs.workers is None
        assert not list(tmp_path.glob("out*")) and not list(tmp_path.glob(".steadyswap-*"))
        cancel = threading.Event()
        with pytest.raises(Interrupted):
            engine.run_video(media_path("video/liveportrait_d0_crf20.mp4"), tmp_path / "cancelled.mp4",
                             progress=lambda done, total: cancel.set(), cancel=cancel)
        assert engine.runs.workers is None and not list(tmp_path.glob("cancelled*"))
        assert not _left_behind(before)  # the workers' decoders and encoders were stopped with them

        def kill_a_worker(done: int, total: int) -> None:
            if engine.runs.workers is not None and engine.runs.workers.children[0][0].poll() is None:
                os.kill(engine.runs.workers.children[0][0].pid, signal.SIGKILL)

        with pytest.raises(SteadySwapError, match="GPU engine worker process died"):
            engine.run_video(media_path("video/liveportrait_d0_crf20.mp4"), tmp_path / "killed.mp4",
                             progress=kill_a_worker)
        assert engine.runs.workers is None and not list(tmp_path.glob("killed*"))
        assert not _left_behind(before)
        result = engine.run_video(media_path("video/liveportrait_d0_crf20.mp4"), tmp_path / "d0.mp4")
    assert result.frames == 78 and len(_stamps(tmp_path / "d0.mp4")) == 78
