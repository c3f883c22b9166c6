"""CPU speed of `steadyswap run` end to end beside each stage alone (frames/s), on one clip.

Usage: python scripts/bench_cpu.py [VIDEO] [--source PHOTO] [--json OUT.json]

Stages alone: decode (VideoReader to RGB), analysis (the run's analyser: embedded face mesh, video
mode), hands (the hand occluder's MediaPipe hand landmarker, video mode), track+smooth,
swap+paste (classic swapper on the analysed faces), encode (VideoWriter at the default settings:
libx264 veryfast, quality 80 = crf 10). End to end: `swap_file` with default options, which overlaps
decode, analysis, swap and encode on threads, and again with `--hand-occluder off`; the speed that the same stages run one after another in one
thread would reach (computed from the stage times) is printed for comparison. All figures come from
one process, measured one after another.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from steadyswap import RunConfig
from steadyswap.analysis.hands import HandFinder
from steadyswap.api import swap_file
from steadyswap.blend.paste import paste_patches
from steadyswap.engine.frame_swapper import FaceSwapper, build_analyzer
from steadyswap.engine.output import output_settings
from steadyswap.io import VideoReader, VideoWriter
from steadyswap.tracking.smoothing import LandmarkSmoother
from steadyswap.tracking.tracker import FaceTracker

SHARED = Path(__file__).resolve().parents[2] / "shared" / "media"


def timed(label: str, count: int, results: dict, work) -> object:
    began = time.perf_counter()
    value = work()
    results.setdefault(label, []).append(count / (time.perf_counter() - began))
    return value


def measure_once(args: argparse.Namespace, config: RunConfig, folder: Path, results: dict) -> tuple:
    """One pass over every stage and the whole run; appends frames/s to ``results``."""
    with VideoReader(args.video) as reader:
        info = reader.info
        frames = timed("decode", len(reader), results, lambda: list(reader))
    n = len(frames)
    analyzer = build_analyzer(config)
    faces = timed("analysis", n, results, lambda: [analyzer.analyze([f.image], video=True)[0] for f in frames])
    hands = HandFinder()
    timed("hands", n, results, lambda: [hands.find(f.image) for f in frames])
    hands.close()
    tracker, smoother = FaceTracker(), LandmarkSmoother(fps=info.fps)
    faces = timed("track + smooth", n, results, lambda: [smoother.update(tracker.update(f)) for f in faces])
    swapper = FaceSwapper([args.source], config, info.fps)

    def swap_all():
        return [paste_patches(f.image, swapper.swapper.swap(swapper.source, [f.image], [fc[:1]])[0])
                for f, fc in zip(frames, faces)]

    outputs = timed("swap + paste", n, results, swap_all)
    settings = output_settings(config, info, folder / "e.mp4")

    def encode():
        with VideoWriter(folder / "e.mp4", info, settings, audio_source=None) as writer:
            for frame, image in zip(frames, outputs):
                writer.write(type(frame)(frame.index, frame.pts, image))

    timed("encode", n, results, encode)
    timed("end to end (steadyswap run)", n, results,
          lambda: swap_file([args.source], args.video, folder / "o.mp4", config))
    timed("end to end, --hand-occluder off", n, results,
          lambda: swap_file([args.source], args.video, folder / "o.mp4", replace(config, hand_occluder="off")))
    return info, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", default=str(SHARED / "video" / "liveportrait_d3.mp4"))
    parser.add_argument("--source", default=str(SHARED / "image" / "fr_obama.jpg"))
    parser.add_argument("--repeat", type=int, default=3, help="passes; the median of each figure is reported")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    config = RunConfig()
    runs: dict[str, list[float]] = {}
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} (other work on the machine slows every figure)")
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeat):
            info, n = measure_once(args, config, Path(folder), runs)
    print(f"{Path(args.video).name}: {info.width}x{info.height}, {n} frames, {os.cpu_count()} CPUs, "
          f"median of {args.repeat} passes")
    results = {label: round(float(statistics.median(values)), 1) for label, values in runs.items()}
    stages = [v for k, v in results.items() if not k.startswith("end to end")]
    results["stages one after another"] = round(1 / sum(1 / v for v in stages), 1)
    for label, value in results.items():
        print(f"{label:<28} {value:>8.1f} frames/s")
    results["end_to_end_over_slowest_stage"] = round(results["end to end (steadyswap run)"] / min(stages), 2)
    print(f"end to end / slowest stage alone: {results['end_to_end_over_slowest_stage']:.2f}")
    if args.json:
        record = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.node(),
                  "cpus": os.cpu_count(), "load_average_before": load, "load_average_after": os.getloadavg(),
                  "clip": Path(args.video).name, "frames": n, "passes": args.repeat,
                  "fps_median": results, "fps_each_pass": runs}
        Path(args.json).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
