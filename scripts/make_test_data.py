"""Regenerate tests/data/, the small media the test suite runs on, from the shared media in ../shared.

Usage: python scripts/make_test_data.py [--shared DIR] [--out DIR] [--hand-clip FILE]

Photos are cropped and/or shrunk with OpenCV (INTER_AREA, JPEG quality 90) or copied as they are; clips
are cut without re-encoding (the first frames' packets and the audio up to their end, copied by PyAV
into a new MP4), except liveportrait_d0, whose 2.9 MB of 78 frames are re-encoded (libx264 crf 20,
same size, rate and timestamps). ``video/hand_over_face_40f.mp4`` is composited: a real hand, cut out of
LivePortrait's ``s20.mp4`` (``--hand-clip``) with its own hand landmarks, moves over the face of
``liveportrait_d3`` (see ``hand_over_face``). tests/data/README.md lists every file, its source and its licence.
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
import numpy as np

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
HAND_CLIP = "video/liveportrait_s20.mp4"
"""KwaiVGI/LivePortrait assets/examples/source/s20.mp4 (MIT): a woman holding a grass stem in both hands."""
HAND_FRAMES = 40
HAND_FIRST = 60
"""The hand clip's frames used: ``HAND_FIRST`` on, one per target frame."""


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


def hand_matte(image: np.ndarray, hands) -> np.ndarray:
    """The right-hand side hand of ``image`` as a uint8 0/1 matte: skin (LAB a* above 133, redder than the
    beige sweater behind it) inside its landmark hull grown by 12 px, opened and closed, largest part."""
    height, width = image.shape[:2]
    found = hands.process(image).multi_hand_landmarks
    if not found:
        raise SystemExit("no hand found in a frame of the hand clip: is it LivePortrait's s20.mp4?")
    points = max((np.array([(p.x * width, p.y * height) for p in hand.landmark], np.float32) for hand in found),
                 key=lambda p: float(p[:, 0].mean()))
    region = np.zeros((height, width), np.uint8)
    cv2.fillConvexPoly(region, cv2.convexHull(points.astype(np.int32)), 1)
    region = cv2.dilate(region, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (25, 25)))
    redness = cv2.cvtColor(cv2.GaussianBlur(image, (5, 5), 0), cv2.COLOR_RGB2LAB)[..., 1]
    skin = ((redness > 133) & (region > 0)).astype(np.uint8)
    skin = cv2.morphologyEx(skin, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    skin = cv2.morphologyEx(skin, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (9, 9)))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(skin)
    return (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)


def hand_over_face(target: Path, hand_clip: Path, output: Path, regions: Path) -> None:
    """Composite a real hand over the target's face: frame k of the output is target frame k with hand-clip
    frame ``HAND_FIRST`` + k's right hand (cut out by ``hand_matte``, scaled 1.8x bicubically, edge softened by a
    3-px blur) moved from beside the face's left eye (as seen) onto the cheek and nose over 20 frames, then held
    there. Encoded by
    libx264 (crf 18, preset slow, one thread) at the target's rate, no audio; ``regions`` (.npz) keeps each frame's
    hand pixels (alpha above 0.5) as packed bits, the ground truth for tests."""
    from mediapipe.python.solutions.hands import Hands

    with av.open(str(hand_clip)) as clip:
        sources = [f.to_ndarray(format="rgb24") for _, f in zip(range(HAND_FIRST + HAND_FRAMES), clip.decode(video=0))]
    with av.open(str(target)) as clip:
        rate = clip.streams.video[0].average_rate
        backgrounds = [f.to_ndarray(format="rgb24") for _, f in zip(range(HAND_FRAMES), clip.decode(video=0))]
    scale, (height, width) = 1.8, backgrounds[0].shape[:2]
    frames, kept = [], []
    with Hands(static_image_mode=True, max_num_hands=2, model_complexity=1) as hands:
        for k, background in enumerate(backgrounds):
            source = sources[HAND_FIRST + k]
            matte = hand_matte(source, hands)
            x, y, w, h = cv2.boundingRect(matte)
            cut = cv2.resize(source[y:y + h, x:x + w], None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
            alpha = cv2.resize(matte[y:y + h, x:x + w].astype(np.float32), cut.shape[1::-1],
                               interpolation=cv2.INTER_LINEAR)
            alpha = cv2.GaussianBlur(alpha, (3, 3), 0)
            step = min(1.0, k / 20)
            cx, cy = 400 + (290 - 400) * step, 300 + (330 - 300) * step
            left, top = int(cx - cut.shape[1] / 2), int(cy - cut.shape[0] / 2)
            full_alpha = np.zeros((height, width), np.float32)
            full_cut = np.zeros_like(background)
            ys = slice(max(top, 0), min(top + cut.shape[0], height))
            xs = slice(max(left, 0), min(left + cut.shape[1], width))
            full_alpha[ys, xs] = alpha[ys.start - top:ys.stop - top, xs.start - left:xs.stop - left]
            full_cut[ys, xs] = cut[ys.start - top:ys.stop - top, xs.start - left:xs.stop - left]
            mixed = background + full_alpha[..., None] * (full_cut.astype(np.float32) - background)
            frames.append(np.clip(mixed + 0.5, 0, 255).astype(np.uint8))
            kept.append(full_alpha > 0.5)
    with av.open(str(output), "w") as out:
        stream = out.add_stream("libx264", rate=rate, options={"crf": "18", "preset": "slow", "threads": "1"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))
    np.savez_compressed(regions, hands=np.packbits(np.stack(kept), axis=-1), width=width)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "media",
                        help="the shared media folder (default: ../shared/media)")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data")
    parser.add_argument("--hand-clip", type=Path, default=None,
                        help=f"LivePortrait's assets/examples/source/s20.mp4 (default: SHARED/{HAND_CLIP})")
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
    hand_over_face(args.shared / "video/liveportrait_d3.mp4", args.hand_clip or args.shared / HAND_CLIP,
                   args.out / "video/hand_over_face_40f.mp4", args.out / "video/hand_over_face_40f_hands.npz")
    for path in sorted(args.out.rglob("*")):
        if path.is_file() and path.name != "README.md":
            print(f"{path.stat().st_size // 1024:6d} KB  {path.relative_to(args.out)}")


if __name__ == "__main__":
    main()
