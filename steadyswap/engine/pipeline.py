"""Whole-file runs: decode → FaceSwapper → encode, overlapped on threads, output written atomically."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from steadyswap.config import RunConfig
from steadyswap.engine.frame_swapper import FaceSwapper
from steadyswap.engine.output import output_settings
from steadyswap.engine.phases import PhaseClock
from steadyswap.engine.stream import prepare_references, swap_stream
from steadyswap.analysis.face_map import run_inputs
from steadyswap.errors import InputError, OutputError, UsageError
from steadyswap.io import (
    MediaKind,
    VideoReader,
    VideoWriter,
    atomic_output,
    check_output,
    check_output_extension,
    media_kind,
    probe,
    read_image,
    write_image,
)
from steadyswap.provenance import check_signing, seal_for, watermark_for

log = logging.getLogger(__name__)

Progress = Callable[[int, "int | None"], None]


@dataclass
class RunResult:
    """What a run produced."""

    output: Path
    frames: int
    seconds: float
    fps: float
    summary: str | None = None


def check_sources(sources: list[Path]) -> None:
    """Raise InputError unless there is at least one source and every source is a photo (or unreadable)."""
    if not sources:
        raise InputError("no source image given")
    for source in sources:
        if media_kind(source) != "image":
            raise InputError(f"source {source} is a video; sources must be photos")


def check_run(sources: list[Path], target: Path, output: Path, config: RunConfig) -> MediaKind:
    """Check a run's files before any work and return the target's kind: at least one source, every source a
    photo, and an output that is neither a folder nor any input (target, sources, face map and its photos),
    with an extension that can hold the target's kind and, for a video, its container and this build can take
    the output options (``engine.output``), and usable signing credentials for its C2PA manifest.

    Raises:
        InputError: no source, or a source that is a video (or unreadable), or an unusable --c2pa-cert/-key.
            OutputError: the output is a folder or one of the inputs. UsageError: the output's extension does
            not fit the target's kind, or the output options do not fit its container.
    """
    check_sources(sources)
    kind = media_kind(target)
    if output.is_dir():
        raise OutputError(f"output {output} is a folder; give a file name")
    check_output(output, run_inputs(sources, target, config.face_map))
    check_output_extension(output, kind)
    if kind == "video":
        output_settings(config, probe(target), output)
    check_signing(output, config)
    return kind


def run_image(swapper: FaceSwapper, target: Path, output: Path, config: RunConfig) -> RunResult:
    """Swap a still photo into ``output`` (written to a temporary file, then renamed)."""
    check_output_extension(output, "image")
    began = time.perf_counter()
    image = read_image(target)
    if swapper.needs_references:
        if any(index != 0 for index in swapper.reference_frames):
            raise UsageError("a photo target has only frame 0: reference frames must be 0")
        swapper.set_references([image] * len(swapper.reference_frames))
    result = swapper.swap_image(image)
    save_photo(output, result.image, target, swapper.inputs, config)
    seconds = time.perf_counter() - began
    return RunResult(output, 1, seconds, 1 / seconds if seconds else 0.0)


def save_photo(output: Path, image: np.ndarray, target: Path, inputs: list[Path], config: RunConfig) -> None:
    """Write a swapped photo as every path does: watermarked, encoded to a temporary file, signed with the
    run's C2PA manifest, renamed. ``inputs``: the source photos and face map files the run read."""
    mark = watermark_for(target, config)
    if mark is not None:
        image = mark.embed_rgb(image)
    with atomic_output(output, inputs=[target, *inputs], seal=seal_for(output, target, inputs, config)) as temporary:
        write_image(temporary, image, config.output_image_quality)


def run_video(swapper_factory: Callable[[float], FaceSwapper], target: Path, output: Path,
              config: RunConfig, progress: Progress | None = None,
              cancel: threading.Event | None = None) -> RunResult:
    """Swap every frame of ``target`` (or the trimmed range) into ``output`` with the swapper ``swapper_factory``
    makes for the video's frame rate, closed at the end.

    Decoding and encoding run on their own threads with bounded queues; this thread analyses and
    swaps. Audio, timestamps and colour tags are carried by the writer; frames are watermarked and the
    file signed (``provenance``).

    Raises:
        Interrupted: ``cancel`` was set; no output is left.
    """
    check_output_extension(output, "video")
    began = time.perf_counter()
    reader = VideoReader(target, config.trim_frame_start, config.trim_frame_end)
    info = reader.info
    settings = output_settings(config, info, output)
    log.debug("%s: frames %d-%d at %.3f fps; encoder %s, crf %d, preset %s", target, reader.start, reader.end,
              info.fps, settings.encoder, settings.crf, settings.preset)
    with swapper_factory(info.fps) as swapper:  # closed here whatever happens: its models hold native memory
        prepare_references(swapper, target)
        monitor = _monitor(config)
        total = len(reader)
        done = 0
        clock = PhaseClock()
        log.debug("%s: frames %d-%d of %s at %.3f fps; %s", target, reader.start, reader.end, info.frame_count,
                  info.fps, settings)
        seal = seal_for(output, target, swapper.inputs, config)
        with atomic_output(output, inputs=[target, *swapper.inputs], seal=seal) as temporary:
            with reader, VideoWriter(
                temporary, info, settings, trim=(config.trim_frame_start, config.trim_frame_end),
                watermark=watermark_for(target, config),
            ) as writer:
                for frame, result in swap_stream(swapper, reader, cancel, clock=clock):
                    if monitor is not None:
                        with clock.measure("quality"):
                            monitor.update(frame.image, result.image, result.faces, result.scene_cut,
                                           raw_landmarks=result.raw_faces)
                    with clock.measure("encode"):
                        writer.write(replace(frame, image=result.image) if result.image is not frame.image else frame)
                    done += 1
                    if progress is not None:
                        progress(done, total)
    seconds = time.perf_counter() - began
    log.debug("time by stage (decode and analyse on one thread, swap and encode on another): %s", clock.summary())
    summary = None
    if monitor is not None and config.quality_report:
        summary = _write_report(monitor, Path(config.quality_report))
    return RunResult(output, done, seconds, done / seconds if seconds else 0.0, summary)


def _monitor(config: RunConfig):
    if not config.quality_report:
        return None
    from steadyswap.quality import QualityMonitor

    return QualityMonitor()


def _write_report(monitor, report: Path) -> str:
    from steadyswap.quality import write_report

    return write_report(monitor, report)
