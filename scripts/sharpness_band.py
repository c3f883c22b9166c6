"""Which sharpness measure tells blur from a codec's noise: the plain 3×3 Laplacian against the Laplacian after
a Gaussian of 0.7, 1 (the monitor's and the degrade stage's ``SHARPNESS_SIGMA``) or 1.5 pixels.

Usage: python scripts/sharpness_band.py [--source PHOTO] [--clips a.mp4 ...] [--frames N]

For each clip (its first ``--frames`` frames) the face region the monitor uses (the tracked mesh faces' boxes,
10% margin) is measured on: a plain re-encode of the target at the default output settings, the same with the
run's invisible watermark, the target blurred by Gaussians of 0.7 and 1 pixel and smeared by a 9-pixel
horizontal box (blurs a measure must catch), and the default swap's file (``swap_file``). Prints, per clip and
measure, the mean ratio over frames of each against the target: a good measure reads about 1 on the re-encode
and clearly below 1 on the blurs.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
from look_table import CLIPS, SHARED, frames_of, reencode, target_faces

from steadyswap import RunConfig
from steadyswap.api import swap_file
from steadyswap.quality.metrics import face_region, laplacian_variance

SIGMAS = {"plain": 0.0, "sigma 0.7": 0.7, "sigma 1": 1.0, "sigma 1.5": 1.5}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default=str(SHARED / "image" / "liveportrait_s12.jpg"))
    parser.add_argument("--clips", nargs="+", default=CLIPS)
    parser.add_argument("--frames", type=int, default=60, help="first frames of each clip (default: 60)")
    args = parser.parse_args()
    print("| clip | image | " + " | ".join(SIGMAS) + " |")
    print("|" + " --- |" * (len(SIGMAS) + 2), flush=True)
    smear = np.full((1, 9), 1 / 9, np.float32)
    with tempfile.TemporaryDirectory() as folder:
        for clip in args.clips:
            path = Path(clip) if Path(clip).exists() else SHARED / "video" / clip
            targets = frames_of(path, args.frames)
            faces, _ = target_faces(targets)
            files = {"re-encode": Path(folder) / "re.mp4", "re-encode, watermarked": Path(folder) / "marked.mp4",
                     "swap": Path(folder) / "swap.mp4"}
            reencode(path, args.frames, files["re-encode"])
            reencode(path, args.frames, files["re-encode, watermarked"], marked=True)
            swap_file([args.source], path, files["swap"], replace(RunConfig(), trim_frame_end=args.frames))
            images = {label: frames_of(file, args.frames) for label, file in files.items()}
            images["blur 0.7"] = [cv2.GaussianBlur(t, (0, 0), 0.7) for t in targets]
            images["blur 1"] = [cv2.GaussianBlur(t, (0, 0), 1.0) for t in targets]
            images["smear 9"] = [cv2.filter2D(t, -1, smear) for t in targets]
            for label, outputs in images.items():
                ratios: dict[str, list[float]] = {name: [] for name in SIGMAS}
                for target, output, found in zip(targets, outputs, faces):
                    box = face_region(found, target.shape, 0.1)
                    if box is None:
                        continue
                    for name, sigma in SIGMAS.items():
                        ratios[name].append(laplacian_variance(output, box, sigma)
                                            / laplacian_variance(target, box, sigma))
                cells = " | ".join(f"{np.mean(values):.2f}" for values in ratios.values())
                print(f"| {path.stem} | {label} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
