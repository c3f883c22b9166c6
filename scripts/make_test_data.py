"""Regenerate tests/data/, the small media the test suite runs on, from the shared media in ../shared.

Usage: python scripts/make_test_data.py [--shared DIR] [--out DIR]

Photos are cropped and/or shrunk with OpenCV (INTER_AREA, JPEG quality 90) or copied as they are; clips
are cut without re-encoding (the first frames' packets and the audio up to their end, copied by PyAV
into a new MP4), except liveportrait_d0, whose 2.9 MB of 78 frames are re-encoded (libx264 crf 20,
same size, rate and timestamps). tests/data/README.md lists every file, its source and its licence.
The files are committed; run this only to change the set, then update README.md's table and the
tests' expected numbers from measurements on the new files.
"""

from __future__ import annotations

import argparse
import shutil
from fractions import Fraction
from pathlib import Path

import av
import cv2

ROOT = Path(__file__).resolve().parents[1]

PHOTOS = {
    # output name: (shared file, crop as (top, bottom) fractions of the height, longest side)
    "image/fr_obama_512.jpg": ("image/fr_obama.jpg", (0.0, 1.0), 512),
    "image/fr_biden_512.jpg": ("image/fr_biden.jpg", (0.0, 0.5), 512),  # the top half: head and shoulders
    "image/liveportrait_s1_512.jpg": ("image/liveportrait_s1.jpg", (0.0, 1.0), 512),
    "image/fr_two_people_640.jpg": ("image/fr_two_people.jpg", (0.0, 1.0), 640),
}
COPIES = {
    "image/liveportrait_s12.jpg": "image/liveportrait_s12.jpg",
    "image/liveportrait_s42.jpg": "image/liveportrait_s42.jpg",
    "image/liveportrait_s33_dog_negative.jpg": "image/liveportrait_s33_dog_negative.jpg",
    "models/yunet/yunet_n_640_640.onnx": "../models/yunet/yunet_n_640_640.onnx",
    "models/yunet/LICENSE": "../models/yunet/LICENSE",
}
CUTS = {
    # output name: (shared file, frames kept from the start)
    "video/liveportrait_d3_93f.mp4": ("video/liveportrait_d3.mp4", 93),
    "video/fr_hamilton_180f.mp4": ("video/fr_short_hamilton_clip.mp4", 180),
    "video/tpsmm_driving_78f.mp4": ("video/tpsmm_driving.mp4", 78),
    "video/liveportrait_d11_61f.mp4": ("video/liveportrait_d11.mp4", 61),
    "video/liveportrait_d14_60f.mp4": ("video/liveportrait_d14.mp4", 60),
    "video/liveportrait_d19_60f.mp4": ("video/liveportrait_d19.mp4", 60),
    "video/liveportrait_s32_1280x720_30f.mp4": ("video/liveportrait_s32_1280x720.mp4", 30),
}
REENCODED = {"video/liveportrait_d0_crf20.mp4": ("video/liveportrait_d0.mp4", 20)}


def shrink_photo(source: Path, output: Path, rows: tuple[float, float], longest: int) -> None:
    """Keep the rows between the two height fractions, then scale so the longest side is at most ``longest``."""
    image = cv2.imread(str(source))
    height = image.shape[0]
    image = image[round(rows[0] * height):round(rows[1] * height)]
    scale = min(1.0, longest / max(image.shape[:2]))
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(output), image, [cv2.IMWRITE_JPEG_QUALITY, 90])


def closed_prefix(source: Path, frames: int) -> tuple[int, Fraction]:
    """The fewest video packets, in decode order, that hold at least ``frames`` frames and nothing shown
    after them (a B-frame's later reference ends up inside the cut, never outside it), and the time in
    seconds where the cut ends: the next frame's timestamp."""
    with av.open(str(source)) as container:
        video = container.streams.video[0]
        stamps = [p.pts for p in container.demux(video) if p.size]
        time_base = video.time_base
    order = sorted(stamps)
    count = next((n for n in range(frames, len(stamps)) if max(stamps[:n]) == order[n - 1]), len(stamps))
    end = order[count] if count < len(order) else order[-1] + 1
    return count, end * time_base


def cut_clip(source: Path, output: Path, frames: int) -> None:
    """The first ``frames`` frames (a few more where B-frames need them) and the audio up to the next
    frame's time, packets copied as they are: timestamps, keyframes and codec settings unchanged."""
    count, end = closed_prefix(source, frames)
    with av.open(str(source)) as src, av.open(str(output), "w") as out:
        video = src.streams.video[0]
        streams = {s.index: out.add_stream_from_template(s) for s in (video, *src.streams.audio[:1])}
        kept = 0
        for packet in src.demux(*(src.streams[i] for i in streams)):
            if not packet.size:
                continue
            if packet.stream.index == video.index:
                kept += 1
                if kept > count:
                    continue
            elif packet.pts is None or packet.pts * packet.time_base >= end:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)


def reencode(source: Path, output: Path, crf: int) -> None:
    """The clip's video encoded again by libx264 at ``crf`` with its own timestamps (no audio kept)."""
    with av.open(str(source)) as src, av.open(str(output), "w") as out:
        video = src.streams.video[0]
        stream = out.add_stream("libx264", rate=video.average_rate,
                                options={"crf": str(crf), "preset": "slow", "threads": "1"})
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        stream.time_base = video.time_base
        for frame in src.decode(video):
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "media",
                        help="the shared media folder (default: ../shared/media)")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data")
    args = parser.parse_args()
    for sub in ("image", "video", "models/yunet"):
        (args.out / sub).mkdir(parents=True, exist_ok=True)
    for name, (source, rows, longest) in PHOTOS.items():
        shrink_photo(args.shared / source, args.out / name, rows, longest)
    for name, source in COPIES.items():
        shutil.copyfile(args.shared / source, args.out / name)
    for name, (source, frames) in CUTS.items():
        cut_clip(args.shared / source, args.out / name, frames)
    for name, (source, crf) in REENCODED.items():
        reencode(args.shared / source, args.out / name, crf)
    for path in sorted(args.out.rglob("*")):
        if path.is_file() and path.name != "README.md":
            print(f"{path.stat().st_size // 1024:6d} KB  {path.relative_to(args.out)}")


if __name__ == "__main__":
    main()
