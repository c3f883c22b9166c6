"""Where the added flicker comes from: the swap with one stage switched off at a time, on short trims.

Usage: python scripts/flicker_ablation.py [--clips a.mp4 ...] [--frames 120] [--source PHOTO]

For each clip (its first ``--frames`` frames) the swap is run with the default options and with each of
``--face-degrade none``, ``--face-hold none``, ``--color-strength 0`` and ``--face-smoothing off``, written
at the default output settings, decoded and measured against the target by the quality monitor on the same
faces, as ``scripts/look_table.py`` measures its rows. Prints one line per clip: the added flicker (dB,
target minus output face temporal PSNR) of each setting.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

from look_table import SHARED, figures, frames_of, target_faces

from steadyswap import RunConfig
from steadyswap.api import swap_file
from steadyswap.quality.monitor import QualityMonitor, measure

SETTINGS = {
    "default": RunConfig(),
    "degrade none": RunConfig(face_degrade="none"),
    "hold none": RunConfig(face_hold="none"),
    "colour 0": RunConfig(color_strength=0.0),
    "smoothing off": RunConfig(face_smoothing="off"),
}
CLIPS = ["liveportrait_d3.mp4", "liveportrait_d10.mp4", "liveportrait_d19.mp4", "liveportrait_s32_1280x720.mp4",
         "fr_short_hamilton_clip.mp4"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(SHARED / "image" / "liveportrait_s12.jpg"))
    parser.add_argument("--clips", nargs="+", default=CLIPS)
    parser.add_argument("--frames", type=int, default=120, help="first frames of each clip (default: 120)")
    args = parser.parse_args()
    print("| clip | " + " | ".join(SETTINGS) + " |")
    print("|" + " --- |" * (len(SETTINGS) + 1))
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "out.mp4"
        for clip in args.clips:
            path = Path(clip) if Path(clip).exists() else SHARED / "video" / clip
            targets = frames_of(path, args.frames)
            faces, cuts = target_faces(targets)
            cells = []
            for config in SETTINGS.values():
                swap_file([args.source], path, output, replace(config, trim_frame_end=args.frames))
                summary = measure(targets, frames_of(output, args.frames), faces, cuts, QualityMonitor()).summary()
                cells.append(f"{figures(summary)['flicker']:+.2f}")
            print(f"| {path.stem} ({len(targets)}) | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
