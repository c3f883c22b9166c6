"""The tasks of a batch, run in worker processes: check and plan a job, swap a segment, join, swap a photo.

Plain functions of (context, *args) with picklable arguments and results, so any engine can run them.
A job whose options select the GPU engine (``engine.decision.decide``: ``execution_providers`` starting with
``cuda``) runs its segments and photo through the worker's pooled ``GpuEngine``; other jobs run the CPU
``FaceSwapper``. Both write the same segment files, so join and resume do not care
which ran.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from steadyswap.analysis.face_map import run_inputs
from steadyswap.config import RunConfig
from steadyswap.distributed.executor import WorkerContext
from steadyswap.engine.frame_swapper import FaceSwapper
from steadyswap.engine.decision import Backend, Entry, decide
from steadyswap.engine.output import output_settings
from steadyswap.engine.pipeline import check_run, run_image, save_photo
from steadyswap.engine.segment_runner import SegmentResult, lookahead_frames, run_on_engine, run_segment
from steadyswap.io.probe import file_sha256
from steadyswap.errors import UsageError
from steadyswap.io import probe, read_image
from steadyswap.io.segments import Segment, join, plan_segments
from steadyswap.provenance import seal_for
from steadyswap.types import VideoInfo

if TYPE_CHECKING:
    from steadyswap.engine.gpu.engine import GpuEngine

IMAGE_FPS = 30.0
"""Frame rate a FaceSwapper for still targets is built with (it sets no smoothing there)."""


@dataclass(frozen=True)
class JobSpec:
    """A job resolved for the workers: absolute paths, its RunConfig and its work folder."""

    sources: tuple[str, ...]
    target: str
    output: str
    config: RunConfig
    folder: str

    def segment_path(self, segment: Segment) -> Path:
        """Where ``segment`` is written: the work folder, in the output's container."""
        return Path(self.folder) / f"{segment.name}{Path(self.output).suffix.lower()}"


@dataclass(frozen=True)
class JobPlan:
    """What ``prepare`` found: an image, or a video with its segments."""

    kind: Literal["image", "video"]
    info: VideoInfo | None = None
    segments: list[Segment] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return sum(s.frames for s in self.segments) if self.kind == "video" else 1

    @property
    def fps(self) -> float:
        return self.info.fps if self.info is not None else IMAGE_FPS


@dataclass(frozen=True)
class SegmentDone:
    """A segment task's result, with the process that ran it and how often that process built models
    (swappers and GPU engines)."""

    result: SegmentResult
    pid: int
    swapper_builds: int


def _engine(context: WorkerContext, spec: JobSpec) -> GpuEngine | None:
    """The worker's GpuEngine for the job when its options select the GPU engine, else None."""
    if decide(spec.config, Entry.BATCH).backend is not Backend.ENGINE:
        return None
    return context.pool.engine(list(spec.sources), spec.config)


def _swapper(context: WorkerContext, spec: JobSpec, fps: float) -> FaceSwapper:
    """The worker's CPU FaceSwapper for the job at ``fps`` (``cuda cpu`` without a usable GPU: ``cpu``)."""
    return context.pool.get(list(spec.sources), decide(spec.config, Entry.BATCH).config, fps)


def _models(context: WorkerContext, spec: JobSpec, fps: float) -> None:
    """Build (or find pooled) the models the job's segments and photo will use."""
    if _engine(context, spec) is None:
        _swapper(context, spec, fps)


def prepare(context: WorkerContext, spec: JobSpec, segment_frames: int, warmup_frames: int) -> JobPlan:
    """Check a job's inputs, build its models (GPU engine or swapper, source face) and plan its segments.

    Raises:
        InputNotFoundError, MediaDecodeError, InputError: a missing or unreadable input, a video source.
        NoFaceError: no face in the sources. OutputError: the output is one of the inputs.
        UsageError: a trim range outside the video, output options the output's container cannot take, or an
            option batches do not support.
    """
    decide(spec.config, Entry.BATCH)  # refuses what a batch cannot honour
    if check_run([Path(s) for s in spec.sources], Path(spec.target), Path(spec.output), spec.config) == "image":
        _models(context, spec, IMAGE_FPS)
        return JobPlan("image")
    info = probe(spec.target)
    start = spec.config.trim_frame_start or 0
    end = min(spec.config.trim_frame_end or info.frame_count, info.frame_count)
    if start >= end:
        raise UsageError(f"{spec.target}: trim range {start}-{end} holds none of its {info.frame_count} frames")
    segments = plan_segments(info, frames_per_segment=segment_frames, warmup_frames=warmup_frames,
                             start=start, end=end, lookahead_frames=lookahead_frames(spec.config))
    _models(context, spec, info.fps)
    return JobPlan("video", info, segments)


def swap_segment(context: WorkerContext, spec: JobSpec, fps: float, segment: Segment) -> SegmentDone:
    """Swap one segment of a video of ``fps`` frames/s into its file in the work folder (``run_segment`` of the
    GPU engine or of the CPU path)."""
    context.report(0)
    path = spec.segment_path(segment)
    engine = _engine(context, spec)
    if engine is None:
        result = run_segment(_swapper(context, spec, fps), segment, path, spec.config, progress=context.report)
    else:
        result = run_on_engine(engine, segment, path, progress=context.report)
    return SegmentDone(result, os.getpid(), context.pool.builds)


def join_segments(context: WorkerContext, spec: JobSpec, plan: JobPlan) -> str:
    """Join the job's segment files into its output (with the target's audio); returns the output's SHA-256."""
    assert plan.info is not None
    config = spec.config
    files = [spec.segment_path(s) for s in plan.segments]
    seal = seal_for(spec.output, spec.target, run_inputs(spec.sources, None, config.face_map), config)
    join(files, spec.output, spec.target, plan.info, (config.trim_frame_start, config.trim_frame_end),
         output_settings(config, plan.info, spec.output), seal)
    return file_sha256(spec.output)


def swap_photo(context: WorkerContext, spec: JobSpec) -> str:
    """Swap a still target into its output; returns the output's SHA-256."""
    context.report(0)
    engine = _engine(context, spec)
    if engine is None:
        run_image(_swapper(context, spec, IMAGE_FPS), Path(spec.target), Path(spec.output), spec.config)
    else:
        image = engine.swap_image(read_image(spec.target))
        save_photo(Path(spec.output), image, Path(spec.target), engine.inputs, spec.config)
    context.report(1)
    return file_sha256(spec.output)
