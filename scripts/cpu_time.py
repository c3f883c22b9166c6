"""CPU time (all threads) and wall time per frame of one default run, for before/after comparisons on a busy
machine: the CPU time a run uses changes far less with the machine's other load than its wall time.

Usage: python scripts/cpu_time.py [--video VIDEO] [--source PHOTO] [FIELD=VALUE ...]   (RunConfig fields, as strings)
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from steadyswap import RunConfig
from steadyswap.api import swap_file
from steadyswap.io import probe

SHARED = Path(__file__).resolve().parents[2] / "shared" / "media"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", default=str(SHARED / "video" / "liveportrait_d3.mp4"))
    parser.add_argument("--source", default=str(SHARED / "image" / "fr_obama.jpg"))
    parser.add_argument("fields", nargs="*", help="RunConfig fields, e.g. face_degrade=none")
    args = parser.parse_args()
    config = RunConfig(**dict(field.split("=", 1) for field in args.fields))
    frames = probe(args.video).frame_count
    with tempfile.TemporaryDirectory() as folder:
        before, began = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        swap_file([args.source], args.video, Path(folder) / "out.mp4", config)
        after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - began
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(f"{Path(args.video).name}: {frames} frames, CPU {cpu / frames * 1000:.1f} ms/frame, "
          f"wall {wall / frames * 1000:.1f} ms/frame")


if __name__ == "__main__":
    main()
