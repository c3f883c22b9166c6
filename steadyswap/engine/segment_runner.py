"""Swap one segment of a video into its own file: warm up on the frames before it, write only its own.

The file keeps the source's timestamps (or the output frame rate's) and has no audio, so
``steadyswap.io.segments.join`` can concatenate segments by copying packets. Every segment uses the same
writer settings as a plain run (``engine.output``). The CPU path (``run_segment``) and the GPU engine
(``run_on_engine``) write the same files with the same checks (``check_complete``); a batch's tasks and the
engine's own segments plan their warm-up and lookahead with the same rule (``lookahead_frames``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from steadyswap.config import RunConfig
from steadyswap.engine.frame_swapper import FaceSwapper
from steadyswap.engine.output import output_settings
from steadyswap.engine.stream import prepare_references, swap_stream
from steadyswap.errors import MediaDecodeError
from steadyswap.io import VideoReader, VideoWriter, atomic_output
from steadyswap.io.probe import PathLike, file_sha256
from steadyswap.io.segments import Segment
from steadyswap.provenance import watermark_for

if TYPE_CHECKING:
    from steadyswap.engine.gpu.engine import GpuEngine

SegmentProgress = Callable[[int], None]
"""Called with the number of frames of the segment written so far."""
REPORT_EVERY = 10
"""Frames between two progress calls (a batch turns each into a message to its scheduler)."""


@dataclass(frozen=True)
class SegmentResult:
    """A finished segment file."""

    segment: Segment
    path: Path
    frames: int
    warmup_frames: int
    seconds: float
    sha256: str

    @classmethod
    def of_file(cls, segment: Segment, path: PathLike, frames: int, began: float) -> SegmentResult:
        """The result of ``frames`` of ``segment`` written to ``path`` by a run that began at ``began``
        (``time.perf_counter``); hashes the file."""
        return cls(segment, Path(path), frames, segment.start - segment.warmup, time.perf_counter() - began,
                   file_sha256(path))


def every_few(progress: SegmentProgress, total: int) -> SegmentProgress:
    """``progress`` called only every ``REPORT_EVERY`` frames and at the ``total``-th."""
    def report(written: int) -> None:
        if written % REPORT_EVERY == 0 or written == total:
            progress(written)
    return report


def run_segment(
    swapper: FaceSwapper,
    segment: Segment,
    output: PathLike,
    config: RunConfig,
    progress: SegmentProgress | None = None,
    cancel: threading.Event | None = None,
) -> SegmentResult:
    """Swap ``segment`` with a freshly reset ``swapper`` and write frames ``[start, end)`` to ``output``.

    Frames ``[warmup, decode_end)`` go through ``swapper.push``/``flush`` exactly as in a single run, so a
    lookahead smoother sees the same neighbours; only the results of ``[start, end)`` are encoded.

    Args:
        swapper: a FaceSwapper built for the run's sources and options (reused across segments).
        segment: the frames to decode (from ``warmup``) and to write (from ``start``).
        output: the segment file (.mp4, .mkv...); it appears only when complete.
        config: the run's options (output settings, reference frame).
        progress: called every few written frames with the count written so far.
        cancel: set it to stop; no file is left.

    Raises:
        MediaDecodeError: the target yields fewer frames than the segment needs (corrupt or truncated).
        Interrupted: ``cancel`` was set.
        OutputError: the file cannot be written.
    """
    began = time.perf_counter()
    swapper.reset_tracking()
    prepare_references(swapper, Path(segment.target))
    report = every_few(progress, segment.frames) if progress is not None else None
    written = 0
    with atomic_output(output, inputs=[segment.target, *swapper.inputs]) as temporary:
        with VideoReader(segment.target, segment.warmup, segment.decode_end) as reader, VideoWriter(
            temporary, reader.info, output_settings(config, reader.info, output), audio_source=None,
            watermark=watermark_for(segment.target, config),
        ) as writer:

            for frame, result in swap_stream(swapper, reader, cancel):
                if segment.start <= frame.index < segment.end:
                    writer.write(replace(frame, image=result.image) if result.image is not frame.image else frame)
                    written += 1
                    if report is not None:
                        report(written)
            check_complete(segment, written)
    return SegmentResult.of_file(segment, output, written, began)


def run_on_engine(engine: GpuEngine, segment: Segment, output: PathLike, progress: SegmentProgress | None = None,
                  cancel: threading.Event | None = None) -> SegmentResult:
    """``run_segment`` on a GPU engine: the same file, written by the engine's step loop.

    Raises:
        as ``run_segment``.
    """
    began = time.perf_counter()
    report = every_few(progress, segment.frames) if progress is not None else None
    frames = engine.run_segment(segment, output, progress=None if report is None else
                                lambda written, _total: report(written), cancel=cancel)
    return SegmentResult.of_file(segment, output, frames, began)


def check_complete(segment: Segment, written: int) -> None:
    """Raise MediaDecodeError unless all of ``segment``'s frames were written (the target ended early)."""
    if written != segment.frames:
        raise MediaDecodeError(
            f"{segment.target}: decoding stopped after frame {segment.start + written - 1}; "
            f"frames {segment.start}-{segment.end - 1} are needed (truncated or corrupt file)"
        )


def lookahead_frames(config: RunConfig) -> int:
    """Frames each segment decodes past its end, so its last frames are analysed and smoothed as in a single run:
    the smoother's lookahead, and the frames after that up to the detection cadence's next keyframe (whose
    detection the frames before it are carried from)."""
    smoothing = config.smoothing_lookahead if config.face_smoothing == "one-euro" else 0
    return smoothing + config.detection_interval - 1
