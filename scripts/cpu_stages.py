"""CPU milliseconds per frame of each stage of the CPU path, stage after stage, for finding what to cut.

A run's frames are decoded first, then go through ``FaceSwapper.analyse`` and ``accept`` one at a time on this
thread (no overlap, so each stage's time is its own), then are encoded. Each stage is timed by wrapping the
call the swapper makes (the detector's and swapper's graph calls apart from their pre- and post-processing);
nested stages are listed under their parent. The figures are the process's CPU time (every thread: the graphs'
own thread pools included), which a busy machine changes far less than wall time; the wall time per frame is
printed last. ``--repeat`` runs the clip several times in one process (models loaded once) and prints each
stage's median.

Usage: python scripts/cpu_stages.py --video CLIP --source PHOTO [--frames N] [--repeat R] [FIELD=VALUE ...]
(RunConfig fields, as strings, e.g. face_swapper_model=hyperswap_1a_256 face_detector_model=yunet
models_dir=DIR execution_providers=cpu).
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from steadyswap import RunConfig
from steadyswap.engine import frame_swapper as fs
from steadyswap.engine.frame_swapper import FaceSwapper
from steadyswap.engine.output import output_settings
from steadyswap.engine.phases import PhaseClock
from steadyswap.io import VideoReader, VideoWriter
from steadyswap.provenance import watermark_for

SHARED = Path(__file__).resolve().parents[2] / "shared" / "media"
STAGES = [  # (name, indent): the order of the table
    ("decode", 0), ("cuts", 0), ("detect", 0), ("detect: graph", 1), ("track", 0), ("hands", 0),
    ("smooth", 0), ("select", 0), ("swap", 0), ("swap: graph", 1), ("masks", 0), ("occlude", 0),
    ("colour", 0), ("degrade", 0), ("hold", 0), ("paste", 0), ("paste: seamless", 1), ("encode", 0),
]


class Clocks:
    """The clock of the pass under way: the wrappers are made once and add to whichever it is."""

    current = PhaseClock()


def timed(clock: type[Clocks], phase: str, function: Any) -> Any:
    """``function`` adding its time to ``phase`` of ``clock.current``."""
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            clock.current.add(phase, time.process_time() - began)
    return wrapper


def instrument(swapper: FaceSwapper, clock: type[Clocks]) -> None:
    """Wrap each stage ``swapper`` runs so its time goes to ``clock``."""
    swapper.cuts.update = timed(clock, "cuts", swapper.cuts.update)
    swapper.analyzer.analyze = timed(clock, "detect", swapper.analyzer.analyze)
    session = getattr(swapper.analyzer, "session", None)
    if session is not None:
        session.run = timed(clock, "detect: graph", session.run)
    swapper.tracker.update = timed(clock, "track", swapper.tracker.update)
    if swapper.hand_finder is not None:
        swapper.hand_finder.find = timed(clock, "hands", swapper.hand_finder.find)
    swapper.smoother.push = timed(clock, "smooth", swapper.smoother.push)
    swapper.smoother.pop = timed(clock, "smooth", swapper.smoother.pop)
    swapper.selector.select = timed(clock, "select", swapper.selector.select)
    swapper.swapper.swap = timed(clock, "swap", swapper.swapper.swap)
    session = getattr(swapper.swapper, "session", None)
    if session is not None:
        session.run = timed(clock, "swap: graph", session.run)
    if swapper.masker is not None:
        swapper.masker.apply = timed(clock, "masks", swapper.masker.apply)
    swapper.colour.correct_patch = timed(clock, "colour", swapper.colour.correct_patch)
    swapper.degrade.degrade_patch = timed(clock, "degrade", swapper.degrade.degrade_patch)
    swapper.hold.hold_patches = timed(clock, "hold", swapper.hold.hold_patches)


def patch_module_stages(clock: type[Clocks]) -> None:
    """Wrap the module-level functions ``FaceSwapper`` calls (occlusion, paste and the seamless step in it)."""
    from steadyswap.blend import paste

    fs.occlude = timed(clock, "occlude", fs.occlude)
    fs.paste_patches = timed(clock, "paste", fs.paste_patches)
    paste.seamless_crop = timed(clock, "paste: seamless", paste.seamless_crop)


def one_pass(swapper: FaceSwapper, config: RunConfig, video: Path, frames: int, clock: PhaseClock) -> int:
    """Decode, swap and encode the first ``frames`` frames of ``video`` stage after stage; the frame count."""
    swapper.reset_tracking()
    began = time.process_time()
    with VideoReader(video, 0, frames) as reader:
        decoded = list(reader)
        info = reader.info
    clock.add("decode", time.process_time() - began)
    results = []
    for frame in decoded:
        results += swapper.push(frame.image, frame.index)
    results += swapper.flush()
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "out.mp4"
        began = time.process_time()
        with VideoWriter(output, info, output_settings(config, info, output), trim=(0, frames),
                         watermark=watermark_for(video, config)) as writer:
            for frame, result in zip(decoded, results, strict=True):
                writer.write(replace(frame, image=result.image))
        clock.add("encode", time.process_time() - began)
    return len(decoded)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default=str(SHARED / "video" / "liveportrait_d3.mp4"))
    parser.add_argument("--source", default=str(SHARED / "image" / "fr_obama.jpg"))
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", help="write the per-pass figures here")
    parser.add_argument("fields", nargs="*", help="RunConfig fields, e.g. face_degrade=none")
    args = parser.parse_args()
    fields: dict[str, Any] = dict(field.split("=", 1) for field in args.fields)
    if "execution_providers" in fields:
        fields["execution_providers"] = fields["execution_providers"].split(",")
    config = RunConfig(**fields).validate()
    video = Path(args.video)
    swapper = FaceSwapper([args.source], config, VideoReader(video).info.fps)
    instrument(swapper, Clocks)
    patch_module_stages(Clocks)
    passes = []
    for _ in range(args.repeat):
        Clocks.current = PhaseClock()
        began, wall = time.process_time(), time.perf_counter()
        count = one_pass(swapper, config, video, args.frames, Clocks.current)
        totals = {phase: seconds * 1000 / count for phase, seconds in Clocks.current.totals().items()}
        totals["total"] = (time.process_time() - began) * 1000 / count
        totals["wall"] = (time.perf_counter() - wall) * 1000 / count
        passes.append(totals)
    swapper.close()
    names = [name for name, _ in STAGES if any(name in p for p in passes)] + ["total", "wall"]
    indent = dict(STAGES)
    print(f"{video.name}: {count} frames, CPU ms per frame, all threads (median of {len(passes)} passes; each pass)")
    for name in names:
        values = [p.get(name, 0.0) for p in passes]
        label = ("  " * indent.get(name, 0)) + name
        print(f"{label:<18} {statistics.median(values):8.2f}   " + " ".join(f"{v:.2f}" for v in values))
    if args.json:
        Path(args.json).write_text(json.dumps({"video": str(video), "frames": count, "fields": fields,
                                               "passes": passes}, indent=1))


if __name__ == "__main__":
    main()
