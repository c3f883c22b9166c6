"""Measure steadyswap.io decode and encode speed (frames/s) on one clip.

Usage: python scripts/bench_io.py [VIDEO] [--encoder libx264 --preset veryfast --crf 18]
Decode = VideoReader to RGB frames; encode = VideoWriter from frames already in memory (audio off),
so the two numbers do not include each other.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from steadyswap.io import VideoReader, VideoWriter

DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "shared" / "media" / "video" / "liveportrait_d3.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT_CLIP))
    parser.add_argument("--encoder", default="libx264")
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--crf", type=int, default=18)
    args = parser.parse_args()

    start = time.perf_counter()
    with VideoReader(args.video) as reader:
        frames = list(reader)
        info = reader.info
    decode_s = time.perf_counter() - start
    print(f"{info.width}x{info.height} {info.pix_fmt}, {len(frames)} frames: {Path(args.video).name}")
    print(f"decode: {len(frames) / decode_s:.0f} frames/s")

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        out = Path(folder) / "bench.mp4"
        with VideoWriter(out, info, args.encoder, args.crf, args.preset, audio_source=None) as writer:
            for frame in frames:
                writer.write(frame)
        encode_s = time.perf_counter() - start
    print(f"encode ({args.encoder} {args.preset} crf{args.crf}): {len(frames) / encode_s:.0f} frames/s")


if __name__ == "__main__":
    main()
