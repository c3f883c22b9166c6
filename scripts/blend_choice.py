"""How to paste the swapped face: plain alpha, multi-band (Laplacian pyramid) or gradient-domain, measured.

Usage: PYTHONPATH=. python scripts/blend_choice.py [--clips liveportrait_d3 ...] [--frames 40] [--step 4]

Each clip's faces are analysed and swapped with the default classic swapper and colour stage; every
``--step``-th frame is pasted three ways:
- ``alpha``: ``mask·crop + (1 − mask)·target`` (steadyswap before);
- ``multiband``: Burt-Adelson multi-band blending over 5 levels (OpenCV pyrDown/pyrUp), each level mixed
  through the mask's Gaussian pyramid; pixels outside the mask are set back to the target's, as every
  paste must leave them;
- ``seamless``: ``blend.seamless`` (the target's low frequencies carried into the crop from the mask's soft
  edge on skin by a push-pull membrane), then the alpha paste.

Measures, each against the same rings of the unswapped target (0 is the target's own value):
- ``step``: the colour step at the paste edge: CIELAB distance between the mean colour of a ring just inside
  the fully pasted region and a ring just outside the mask, output's step vector minus the target's (ΔE);
- ``edge gradient``: mean gradient magnitude in the soft band, output over target (1: no added edge);
Cost: milliseconds of CPU time (this thread's, OpenCV on one thread, so other work on a shared machine does
not count) per face for the blend alone, median of 5, at the clip's face size and with the face box scaled to
512 px and to the face size of a 1080p frame (the clip's frame scaled to 1080 rows).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from steadyswap.blend.colour import ColourMatcher
from steadyswap.blend.paste import blend_into
from steadyswap.blend.seamless import seamless_crop
from steadyswap.config import RunConfig
from steadyswap.engine.frame_swapper import FaceSwapper
from steadyswap.io import VideoReader, read_image

MEDIA = Path(__file__).resolve().parents[2] / "shared" / "media"
RING = 6
"""Width of the measuring rings, in pixels."""


def multiband(crop: np.ndarray, target: np.ndarray, mask: np.ndarray, skin: np.ndarray | None,
              levels: int = 5) -> np.ndarray:
    """Multi-band blend of ``crop`` into ``target`` through ``mask``; outside the mask the target's pixels."""
    c, t, m = crop.astype(np.float32), target.astype(np.float32), mask.astype(np.float32)
    gc, gt, gm = [c], [t], [m]
    for _ in range(levels):
        gc.append(cv2.pyrDown(gc[-1]))
        gt.append(cv2.pyrDown(gt[-1]))
        gm.append(cv2.pyrDown(gm[-1]))
    out = gt[-1] + gm[-1][..., None] * (gc[-1] - gt[-1])
    for level in range(levels - 1, -1, -1):
        size = (gc[level].shape[1], gc[level].shape[0])
        lc = gc[level] - cv2.pyrUp(gc[level + 1], dstsize=size)
        lt = gt[level] - cv2.pyrUp(gt[level + 1], dstsize=size)
        out = cv2.pyrUp(out, dstsize=size) + lt + gm[level][..., None] * (lc - lt)
    out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    return np.where(mask[..., None] > 0, out, target)


def alpha(crop: np.ndarray, target: np.ndarray, mask: np.ndarray, skin: np.ndarray | None = None) -> np.ndarray:
    region = target.copy()
    blend_into(region, crop, mask)
    return region


def seamless(crop: np.ndarray, target: np.ndarray, mask: np.ndarray, skin: np.ndarray | None) -> np.ndarray:
    return alpha(seamless_crop(crop, target, mask, skin), target, mask)


WAYS = {"alpha": alpha, "multiband": multiband, "seamless": seamless}


def filled(region: np.ndarray) -> np.ndarray:
    """``region`` (uint8) with its holes (eye and mouth openings) filled: only the outer edge is measured."""
    contours, _ = cv2.findContours(region, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = np.zeros_like(region)
    cv2.drawContours(out, contours, -1, 1, -1)
    return out


def rings(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inside ring, outside ring, soft band) boolean images of a paste mask, at its outer edge."""
    full = filled((mask >= 0.999).astype(np.uint8))
    support = filled((mask > 0).astype(np.uint8))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * RING + 1, 2 * RING + 1))
    inside = full.astype(bool) & ~cv2.erode(full, kernel).astype(bool)
    outside = cv2.dilate(support, kernel).astype(bool) & ~support.astype(bool)
    return inside, outside, (mask > 0) & (mask < 1) & (support > 0) & ~full.astype(bool)


def lab(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)


def measure(out: np.ndarray, target: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    inside, outside, band = rings(mask)
    if inside.sum() < 20 or outside.sum() < 20:
        return np.nan, np.nan
    lo, lt = lab(out), lab(target)
    step_out = lo[inside].mean(0) - lo[outside].mean(0)
    step_tgt = lt[inside].mean(0) - lt[outside].mean(0)

    def gradient(image: np.ndarray) -> float:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
        return float(np.hypot(gx, gy)[band].mean())

    return float(np.linalg.norm(step_out - step_tgt)), gradient(out) / max(gradient(target), 1e-6)


def cost(way, crop: np.ndarray, target: np.ndarray, mask: np.ndarray, skin: np.ndarray, side: int,
         repeat: int = 9) -> float:
    """Milliseconds to blend one face whose box is scaled to ``side`` pixels on its longer side."""
    scale = side / max(mask.shape)
    size = (max(1, round(mask.shape[1] * scale)), max(1, round(mask.shape[0] * scale)))
    c, t = cv2.resize(crop, size), cv2.resize(target, size)
    m, k = cv2.resize(mask, size), cv2.resize(skin, size, interpolation=cv2.INTER_NEAREST)
    times = []
    for _ in range(repeat):
        began = time.thread_time()
        way(c, t, m, k)
        times.append(time.thread_time() - began)
    return 1000 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=["liveportrait_d3", "liveportrait_d0", "tpsmm_driving"])
    parser.add_argument("--source", type=Path, default=MEDIA / "image" / "liveportrait_s1.jpg")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--step", type=int, default=4)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    source = read_image(args.source)
    print("| clip | way | step ΔE (mean / max) | edge gradient out/target (mean) | ms per face: clip size | "
          "512 px | 1080p |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in args.clips:
        clip = MEDIA / "video" / f"{name}.mp4"
        with VideoReader(clip, 0, args.frames) as reader, \
                FaceSwapper([source], RunConfig(), reader.info.fps) as swapper:
            colour = ColourMatcher(strength=swapper.config.color_strength)
            face_1080 = 1080 / reader.info.height
            patches = []
            for frame in reader:
                result = swapper.process(frame.image)
                if frame.index % args.step or len(result.faces) == 0:
                    continue
                patch = swapper.swapper.swap(swapper.source, [frame.image], [result.faces[:1]])[0][0]
                patches.append(colour.correct_patch(patch))
        for way_name, way in WAYS.items():
            measured = np.array([measure(way(p.crop, p.target, p.mask, p.skin), p.target, p.mask) for p in patches])
            p = patches[len(patches) // 2]
            side = max(p.mask.shape)
            costs = [cost(way, p.crop, p.target, p.mask, p.skin, s) for s in (side, 512, round(side * face_1080))]
            print(f"| {name} ({side} px face) | {way_name} | {np.nanmean(measured[:, 0]):.2f} / "
                  f"{np.nanmax(measured[:, 0]):.2f} | {np.nanmean(measured[:, 1]):.2f} | {costs[0]:.1f} | "
                  f"{costs[1]:.1f} | {costs[2]:.1f} ({round(side * face_1080)} px) |")


if __name__ == "__main__":
    main()
