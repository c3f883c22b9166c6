"""Where the added flicker comes from: the swap with one stage switched off, or one bound changed, at a time.

Usage: python scripts/flicker_ablation.py [--clips a.mp4 ...] [--frames 120] [--source PHOTO]
       [--settings NAME ...] [--sharpness]

For each clip (its first ``--frames`` frames) the swap is run with each chosen setting (``--settings``,
default: the stage ablation: ``default``, ``degrade none``, ``hold none``, ``colour 0``, ``smoothing off``;
``--help`` lists them all), written at the default output settings, decoded and measured against the target by
the quality monitor on the same faces, as ``scripts/look_table.py`` measures its rows. Prints one line per
clip: the added flicker (dB, target minus output face temporal PSNR) of each setting. The ``follow N, lookahead
M`` settings run ``--smoothing-lookahead M`` with the hold stage's follow bound (``blend.hold.FOLLOW_LEVELS``)
set to N levels for the measurement only (each ``StillHold`` the run makes gets ``follow=N``); the defaults
are 4 and 10, 3 and 5 before their measurement (docs/quality.md). ``quality N`` writes the swap at
``--output-video-quality N``; the ``re-encode`` settings write the target itself, unswapped, at the default output
settings or at quality N: what the encoder alone adds. The ``detail K, sigma S`` settings scale each swapped
crop's detail finer than a Gaussian of S pixels by K before the hold stage (a what-if, no option does it).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from look_table import SHARED, figures, frames_of, reencode, target_faces

from steadyswap import RunConfig
from steadyswap.api import swap_file
from steadyswap.blend import hold
from steadyswap.engine import frame_swapper
from steadyswap.quality.monitor import QualityMonitor, measure
from steadyswap.types import SwapPatch

SETTINGS: dict[str, tuple[RunConfig, dict[str, float]]] = {
    "default": (RunConfig(), {}),
    "degrade none": (RunConfig(face_degrade="none"), {}),
    "hold none": (RunConfig(face_hold="none"), {}),
    "colour 0": (RunConfig(color_strength=0.0), {}),
    "smoothing off": (RunConfig(face_smoothing="off"), {}),
} | {
    f"follow {levels}, lookahead {frames}": (RunConfig(smoothing_lookahead=frames), {"follow": float(levels)})
    for levels in (3, 4, 5, 6) for frames in (5, 8, 10)
} | {
    f"quality {quality}": (RunConfig(output_video_quality=quality), {}) for quality in (90, 95)
}
"""Name → (options, the hold stage's bounds for the measurement: ``StillHold`` fields, e.g. ``follow``)."""


class DetailScaled(hold.StillHold):
    """The hold stage, given each swapped crop with its detail (the crop less its Gaussian blur of ``sigma``
    pixels) scaled by ``scale``: a what-if for the measurement only, how much flicker the source's texture
    contrast makes."""

    def __init__(self, scale: float, sigma: float, **fields: object) -> None:
        super().__init__(**fields)  # type: ignore[arg-type]
        self.scale, self.sigma = scale, sigma

    def hold_patches(self, image: np.ndarray, patches: list[SwapPatch]) -> list[SwapPatch]:
        scaled = []
        for patch in patches:
            crop = patch.crop.astype(np.float32)
            blurred = cv2.GaussianBlur(crop, (0, 0), self.sigma)
            detail = np.clip(blurred + self.scale * (crop - blurred) + 0.5, 0, 255).astype(np.uint8)
            scaled.append(replace(patch, crop=detail))
        return super().hold_patches(image, scaled)


DETAIL = {f"detail {scale}, sigma {sigma}": (scale, sigma) for scale, sigma in ((0.7, 3), (0.5, 3), (0.5, 6))}
"""Name → (scale, sigma) of ``DetailScaled``."""
REENCODE = {"re-encode": RunConfig()} | {
    f"re-encode, quality {quality}": RunConfig(output_video_quality=quality) for quality in (90, 95)
}
"""Name → output settings of a plain re-encode of the target, measured as the swaps are (no swap at all)."""
ABLATION = ["default", "degrade none", "hold none", "colour 0", "smoothing off"]
CLIPS = ["liveportrait_d3.mp4", "liveportrait_d10.mp4", "liveportrait_d19.mp4", "liveportrait_s32_1280x720.mp4",
         "fr_short_hamilton_clip.mp4"]


def run(source: str, path: Path, output: Path, config: RunConfig, bounds: dict[str, float],
        stage: Callable[..., hold.StillHold] = hold.StillHold) -> None:
    """``swap_file`` with ``config``, its hold stage made by ``stage`` with ``bounds``."""
    frame_swapper.StillHold = partial(stage, **bounds)  # type: ignore[misc]
    try:
        swap_file([source], path, output, config)
    finally:
        frame_swapper.StillHold = hold.StillHold  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(SHARED / "image" / "liveportrait_s12.jpg"))
    parser.add_argument("--clips", nargs="+", default=CLIPS)
    parser.add_argument("--frames", type=int, default=120, help="first frames of each clip (default: 120)")
    parser.add_argument("--sharpness", action="store_true", help="also print sharpness out/target, in brackets")
    names = list(SETTINGS) + list(DETAIL) + list(REENCODE)
    parser.add_argument("--settings", nargs="+", default=ABLATION, choices=names, metavar="NAME",
                        help="settings to run, in order (quote names with spaces): " + "; ".join(names))
    args = parser.parse_args()
    print("| clip | " + " | ".join(args.settings) + " |")
    print("|" + " --- |" * (len(args.settings) + 1), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "out.mp4"
        for clip in args.clips:
            path = Path(clip) if Path(clip).exists() else SHARED / "video" / clip
            targets = frames_of(path, args.frames)
            faces, cuts = target_faces(targets)
            cells = []
            for name in args.settings:
                if name in REENCODE:
                    reencode(path, args.frames, output, config=REENCODE[name])
                elif name in DETAIL:
                    run(args.source, path, output, RunConfig(trim_frame_end=args.frames), {},
                        partial(DetailScaled, *DETAIL[name]))
                else:
                    config, bounds = SETTINGS[name]
                    run(args.source, path, output, replace(config, trim_frame_end=args.frames), bounds)
                summary = measure(targets, frames_of(output, args.frames), faces, cuts, QualityMonitor()).summary()
                found = figures(summary)
                cells.append(f"{found['flicker']:+.2f}" + (f" ({found['sharpness']:.2f})" if args.sharpness else ""))
            print(f"| {path.stem} ({len(targets)}) | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
