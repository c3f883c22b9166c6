"""The GPU engine's runs: a video cut into segments that run side by side, in this process or shared among engine
worker processes, each segment decoded and encoded in its own child processes, the files joined without
re-encoding; and single segment files for a batch's join (the files ``segment_runner`` writes on the CPU path).

How many worker processes a run gets is ``engine.decision``'s call; the step loop (``steps``) does the frames.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from steadyswap.config import RunConfig
from steadyswap.engine.decision import Entry, EngineRun, decide
from steadyswap.engine.gpu.options import MAX_SEGMENTS, GpuOptions
from steadyswap.engine.gpu.plan import engines_that_fit
from steadyswap.engine.gpu.steps import StepLoop
from steadyswap.engine.gpu.workers import EngineWorkers, Job
from steadyswap.engine.output import output_settings
from steadyswap.engine.phases import PhaseClock
from steadyswap.engine.pipeline import Progress, RunResult
from steadyswap.engine.segment_runner import check_complete, lookahead_frames
from steadyswap.engine.stream import prepare_references
from steadyswap.io import VideoReader, VideoWriter, atomic_output, check_output_extension, probe, scratch_folder
from steadyswap.io.codec_processes import ProcessReader, ProcessWriter, planar_decoding
from steadyswap.io.segments import Segment, join, plan_segments
from steadyswap.io.writer import ENCODERS, yuv420p_output
from steadyswap.provenance import seal_for, watermark_for
from steadyswap.types import VideoInfo

log = logging.getLogger(__name__)

MIN_SEGMENT_FRAMES = 90
"""Segments shorter than this are not worth their warm-up and join."""
HARDWARE_SEGMENTS = 2
"""Segments side by side, so encoder sessions open at once, with a hardware encoder (h264_nvenc, hevc_nvenc). One
NVENC session encodes 1080p H.264 at several hundred frames/s on NVIDIA's published figures (no NVENC was at hand to
measure: the H100 has none), above what the engine delivers, so more sessions add nothing; GeForce drivers cap the
sessions open at once across the whole machine (other programs' included) and each holds GPU memory. Two rather
than one, so that two decoders still share the decoding, which stays on the CPU."""
QUEUE_FRAMES = 24
"""Frames each segment's decoder and encoder may run ahead: enough that one busy encoder (or decoder) does
not stall the others while the engine waits on it in turn."""


def plan_run(info: VideoInfo, start: int, end: int, config: RunConfig, options: GpuOptions) -> list[Segment]:
    """Segments to run side by side, each with its own decoder and encoder (the one place the engine decides how
    many encoders run): ``options.segments``, else one per four CPU cores, at most MAX_SEGMENTS (HARDWARE_SEGMENTS
    with a hardware encoder), none shorter than MIN_SEGMENT_FRAMES (docs/benchmarks.md: on 16 cores 4 segments of
    x264 ran 1.5x faster than 8)."""
    wanted = options.segments
    if wanted is None:
        encoder = config.output_video_encoder
        most = HARDWARE_SEGMENTS if encoder is not None and ENCODERS[encoder].hardware else MAX_SEGMENTS
        wanted = max(1, min(most, (os.cpu_count() or 2) // 4, (end - start) // MIN_SEGMENT_FRAMES))
    if wanted == 1:
        return [Segment(info.path, start, end, start)]
    return plan_segments(info, count=wanted, warmup_frames=options.warmup_frames, start=start, end=end,
                         lookahead_frames=lookahead_frames(config))


def encoder_threads(options: GpuOptions, segments: int) -> int:
    """Threads of each encoder in a run of ``segments``: the option, else a share of the cores
    (docs/benchmarks.md, call 9: workers whose encoders each took every core ran no faster than one process)."""
    return options.encoder_threads or max(2, (os.cpu_count() or 2) // segments)


class Orchestrator:
    """Runs of one engine: whole videos, single segments, and a worker's share of a video.

    Args:
        steps: the engine's step loop.
        sources: the source photos with a face (engine workers build their models from them).
        inputs: the files the engine reads (never an output).
        config, options: what the engine was built with (and its workers are built with).
    """

    def __init__(self, steps: StepLoop, sources: list[np.ndarray], inputs: list[Path], config: RunConfig,
                 options: GpuOptions) -> None:
        self.steps, self.sources, self.inputs, self.config, self.options = steps, sources, inputs, config, options
        self.workers: EngineWorkers | None = None
        """The engine worker processes of the last run that had any (kept for the next)."""

    def run_video(self, target: str | Path, output: str | Path, config: RunConfig, options: GpuOptions,
                  clock: PhaseClock, progress: Progress | None = None,
                  cancel: threading.Event | None = None) -> RunResult:
        """Swap every frame of ``target`` (or the trimmed range) into ``output``; time by phase into ``clock``.

        Raises:
            Interrupted: ``cancel`` was set; no output is left.
            MediaDecodeError: the target yields fewer frames than a segment needs.
        """
        check_output_extension(output, "video")
        began = time.perf_counter()
        target, output = Path(target), Path(output)
        whole = VideoReader(target, config.trim_frame_start, config.trim_frame_end)
        info, start, end = whole.info, whole.start, whole.end
        settings = output_settings(config, info, output)
        plan = plan_run(info, start, end, config, options)
        steps = self.steps
        log.debug("%s: %d segment(s) %s, %d frames per step", target, len(plan),
                  ", ".join(f"{s.start}-{s.end} (warm-up from {s.warmup})" for s in plan),
                  steps.plan.frames_for(info.height, info.width))
        device = steps.device
        decision = decide(config, Entry.ENGINE, run=EngineRun(
            device.type, len(plan), end - start, options.workers,
            lambda: engines_that_fit(steps.plan, info, options.strategy, device)))
        trim = (config.trim_frame_start, config.trim_frame_end)
        seal = seal_for(output, target, self.inputs, config)
        with atomic_output(output, inputs=[target, *self.inputs], seal=seal) as temporary, \
                scratch_folder(output) as scratch:
            files = [temporary] if len(plan) == 1 else [Path(scratch) / f"{s.name}{output.suffix}" for s in plan]
            if decision.workers > 1:
                done = self._run_in_workers(plan, files, info, config, options, decision.workers, clock, progress,
                                            cancel)
            else:
                done = self.run_segments(plan, files, info, config, options, clock, progress, cancel)
            if len(plan) > 1:
                join(files, temporary, target, info, trim, settings)
        seconds = time.perf_counter() - began
        return RunResult(output, done, seconds, done / seconds if seconds else 0.0)

    def run_segment(self, segment: Segment, output: str | Path, config: RunConfig, options: GpuOptions,
                    clock: PhaseClock, progress: Progress | None = None,
                    cancel: threading.Event | None = None) -> int:
        """One segment into its own file for ``io.segments.join``, as ``segment_runner.run_segment`` writes it
        on the CPU: frames ``[start, end)`` with the source's timestamps, no audio. Returns the frames written.

        Raises:
            MediaDecodeError: the target yields fewer frames than the segment needs.
        """
        info = probe(segment.target)
        with atomic_output(Path(output), inputs=[segment.target, *self.inputs]) as temporary:
            return self.run_segments([segment], [temporary], info, config, options, clock, progress, cancel,
                                     whole=False)

    def _run_in_workers(self, plan: list[Segment], files: list[Path], info: VideoInfo, config: RunConfig,
                        options: GpuOptions, count: int, clock: PhaseClock, progress: Progress | None,
                        cancel: threading.Event | None) -> int:
        """``plan`` shared out in order among ``count`` engine processes (started on first use, then kept)."""
        if self.workers is None or len(self.workers.children) < count:
            if self.workers is not None:
                self.workers.close()
            self.workers = EngineWorkers(self.sources, self.config, replace(self.options, workers=1), count)
        cuts = [round(k * len(plan) / count) for k in range(count + 1)]
        jobs = [Job(plan[a:b], files[a:b]) for a, b in zip(cuts, cuts[1:])]
        try:
            each = replace(options, workers=1, encoder_threads=encoder_threads(options, len(plan)))
            done = self.workers.run(jobs, info, config, each, clock, progress, cancel)
            log.debug("GPU engine workers, time by phase (all workers): %s", clock.summary())
            return done
        except BaseException:
            self.workers = None  # stopped by run(); the next run starts new ones
            raise

    def run_segments(self, plan: list[Segment], files: list[Path], info: VideoInfo, config: RunConfig,
                     options: GpuOptions, clock: PhaseClock, progress: Progress | None,
                     cancel: threading.Event | None, whole: bool = True) -> int:
        """Run ``plan`` side by side in this process into ``files``; ``whole``: one segment that is the whole
        output (audio, trim shift), else files for ``join`` (source timestamps, no audio)."""
        steps = self.steps
        single = whole and len(plan) == 1
        streams = [steps.stream(i, segment, info.fps or 30.0, config) for i, segment in enumerate(plan)]
        settings = output_settings(config, info, files[0])
        processes = options.processes and yuv420p_output(settings, info)
        planar = processes and options.planar and planar_decoding(info) and not any(s.full_frames for s in streams)
        mark = watermark_for(info.path, config)
        # frames that leave the device as yuv420p at the output's size are marked there (the same mark the
        # writer would add, torch_ops.watermark_luma); others (10-bit, scaled, RGB) by the writer
        on_device = mark if yuv420p_output(settings, info) and not settings.size else None
        writer_options = dict(
            settings=settings, audio_source=... if single else None,
            trim=(config.trim_frame_start, config.trim_frame_end) if single else (None, None),
            threads=0 if single else encoder_threads(options, len(plan)), watermark=None if on_device else mark)
        try:
            for stream, path in zip(streams, files):
                prepare_references(stream.swapper, Path(info.path))
                segment = stream.segment
                if processes:
                    stream.reader = ProcessReader(info.path, segment.warmup, segment.decode_end, planar=planar,
                                                  threads=options.decoder_threads, slots=QUEUE_FRAMES)
                    stream.writer = ProcessWriter(path, info, slots=QUEUE_FRAMES, **writer_options)
                else:
                    stream.reader = VideoReader(info.path, segment.warmup, segment.decode_end,
                                                queue_size=QUEUE_FRAMES, threads=options.decoder_threads)
                    stream.writer = VideoWriter(path, info, queue_size=QUEUE_FRAMES, **writer_options)
            done = steps.pump(streams, info, config, options, clock, progress, cancel, sum(s.frames for s in plan),
                              planar, on_device)
            for stream in streams:
                assert stream.writer is not None
                stream.writer.close()
                if not single:
                    check_complete(stream.segment, stream.written)
            return done
        except BaseException:
            for stream in streams:
                if stream.writer is not None:
                    stream.writer.abort()
            raise
        finally:
            for stream in streams:
                if stream.reader is not None:
                    stream.reader.close()
                stream.swapper.close()

    def close(self) -> None:
        """Stop the engine workers, if any."""
        if self.workers is not None:
            self.workers.close()
            self.workers = None
