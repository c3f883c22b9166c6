"""CPU speed of `steadyswap run` end to end beside each stage alone (frames/s), on one clip.

Usage: python scripts/bench_cpu.py [VIDEO] [--source PHOTO] [--json OUT.json]

Stages alone: decode (VideoReader to RGB), analysis (embedded face mesh, video mode), track+smooth,
swap+paste (classic swapper on the analysed faces), encode (VideoWriter at the default settings:
libx264 veryfast, quality 80 = crf 10). End to end: `swap_file` with default options, which overlaps
decode, compute and encode on threads; the speed that the same stages run one after another in one
thread would reach (computed from the stage times) is printed for comparison. All figures come from
one process, measured one after another.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from steadyswap import RunConfig
from steadyswap.analysis.mediapipe_mesh import MediaPipeAnalyzer
from steadyswap.api import swap_file
from steadyswap.blend.paste import paste_patches
from steadyswap.config import crf_from_quality
from steadyswap.engine.frame_swapper import FaceSwapper
from steadyswap.io import VideoReader, VideoWriter
from steadyswap.tracking.smoothing import LandmarkSmoother
from steadyswap.tracking.tracker import FaceTracker

SHARED = Path(__file__).resolve().parents[2] / "shared" / "media"


def timed(label: str, count: int, results: dict, work) -> object:
    began = time.perf_counter()
    value = work()
    seconds = time.perf_counter() - began
    results[label] = round(count / seconds, 1)
    print(f"{label:<28} {results[label]:>8.1f} frames/s")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", default=str(SHARED / "video" / "liveportrait_d3.mp4"))
    parser.add_argument("--source", default=str(SHARED / "image" / "fr_obama.jpg"))
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    config = RunConfig()
    results: dict[str, float] = {}
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} (other work on the machine slows every figure)")

    with VideoReader(args.video) as reader:
        info = reader.info
        frames = timed("decode", len(reader), results, lambda: list(reader))
    n = len(frames)
    print(f"{Path(args.video).name}: {info.width}x{info.height}, {n} frames, {os.cpu_count()} CPUs")

    analyzer = MediaPipeAnalyzer(analysis_size=config.analysis_size)
    faces = timed("analysis", n, results, lambda: [analyzer.analyze([f.image], video=True)[0] for f in frames])
    tracker, smoother = FaceTracker(), LandmarkSmoother(fps=info.fps)
    faces = timed("track + smooth", n, results, lambda: [smoother.update(tracker.update(f)) for f in faces])

    swapper = FaceSwapper([args.source], config, info.fps)
    source = swapper.source
    classic = swapper.swapper

    def swap_all():
        return [paste_patches(f.image, classic.swap(source, [f.image], [fc[:1]])[0]) for f, fc in zip(frames, faces)]

    outputs = timed("swap + paste", n, results, swap_all)
    crf = crf_from_quality(config.output_video_quality, config.output_video_encoder)
    with tempfile.TemporaryDirectory() as folder:
        def encode():
            with VideoWriter(Path(folder) / "e.mp4", info, config.output_video_encoder, crf,
                             config.output_video_preset, audio_source=None) as writer:
                for frame, image in zip(frames, outputs):
                    writer.write(type(frame)(frame.index, frame.pts, image))

        timed("encode", n, results, encode)

        timed("end to end (steadyswap run)", n, results,
              lambda: swap_file([args.source], args.video, Path(folder) / "o.mp4", config))
    stages = [v for k, v in results.items() if not k.startswith("end to end")]
    results["stages one after another"] = round(1 / sum(1 / v for v in stages), 1)
    print(f"{'stages one after another':<28} {results['stages one after another']:>8.1f} frames/s (computed)")
    slowest = min(stages)
    results["end_to_end_over_slowest_stage"] = round(results["end to end (steadyswap run)"] / slowest, 2)
    print(f"end to end / slowest stage alone: {results['end_to_end_over_slowest_stage']:.2f}")
    if args.json:
        record = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.node(),
                  "cpus": os.cpu_count(), "load_average_before": load, "load_average_after": os.getloadavg(),
                  "clip": Path(args.video).name, "frames": n, "fps": results}
        Path(args.json).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
