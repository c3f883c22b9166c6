"""Where a clip's added flicker lies, frame by frame, by what the hold stage did on each frame.

Usage: python scripts/flicker_by_hold.py [--clips a.mp4 ...] [--frames 120] [--source PHOTO]

For each clip (its first ``--frames`` frames) the swap is run with default options and the target is re-encoded
at the default output settings; both are measured against the target by the quality monitor on the same faces, as
``scripts/look_table.py`` measures. Each frame's loss is the re-encode's face temporal PSNR less the swap's (dB,
both capped at the monitor's 100): what the swap adds beyond the encoder. Frames are split by the hold stage's
decision for the face (``blend.hold``): ``still`` (the held patch again), ``follow`` (the held patch plus the
target's change), ``new after held`` (a new patch right after a still or followed one) and ``new after new``.
Prints per split the frames and their share of the mean loss (the shares add up to the swap's added flicker
less the re-encode's), then the worst frames.
"""

from __future__ import annotations

import argparse
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
from flicker_ablation import run
from look_table import SHARED, frames_of, reencode, target_faces

from steadyswap import RunConfig
from steadyswap.blend import hold
from steadyswap.quality.monitor import TPSNR_FACE_OUT, TPSNR_FACE_TGT, QualityMonitor, measure
from steadyswap.quality.report import column
from steadyswap.types import SwapPatch

CLIPS = ["liveportrait_d19.mp4", "liveportrait_s32_1280x720.mp4"]
SPLITS = ("still", "follow", "new after held", "new after new")


class RecordingHold(hold.StillHold):
    """The hold stage, recording its decision for each frame's first face (``decisions``, one per frame)."""

    def __init__(self, decisions: list[str], **fields: object) -> None:
        super().__init__(**fields)  # type: ignore[arg-type]
        self.decisions = decisions

    def hold_patches(self, image: np.ndarray, patches: list[SwapPatch]) -> list[SwapPatch]:
        before = [self.previous(patch.track_id) for patch in patches]
        out = super().hold_patches(image, patches)
        if not patches:
            self.decisions.append("none")
        elif out[0] is patches[0]:
            self.decisions.append("new")
        else:
            self.decisions.append("still" if before[0] is not None and out[0] is before[0].patch else "follow")
        return out


def splits(decisions: list[str]) -> list[str]:
    """Each frame's split (``SPLITS``, or "none" without a face): a new patch named by the decision before it."""
    named = []
    for i, decision in enumerate(decisions):
        if decision == "new":
            decision = "new after held" if i and decisions[i - 1] in ("still", "follow") else "new after new"
        named.append(decision)
    return named


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", nargs="+", default=CLIPS)
    parser.add_argument("--frames", type=int, default=120, help="first frames of each clip (default: 120)")
    parser.add_argument("--source", default=str(SHARED / "image" / "liveportrait_s12.jpg"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        swapped, plain = Path(folder) / "out.mp4", Path(folder) / "re.mp4"
        for clip in args.clips:
            path = Path(clip) if Path(clip).exists() else SHARED / "video" / clip
            targets = frames_of(path, args.frames)
            faces, cuts = target_faces(targets)
            decisions: list[str] = []
            run(args.source, path, swapped, RunConfig(trim_frame_end=args.frames), {},
                partial(RecordingHold, decisions))
            reencode(path, args.frames, plain)
            tpsnr = {}
            for name, output in (("swap", swapped), ("re-encode", plain)):
                stats = measure(targets, frames_of(output, args.frames), faces, cuts, QualityMonitor()).frame_stats
                tpsnr[name] = np.minimum(column(stats, TPSNR_FACE_OUT), 100.0)
            target = np.minimum(column(stats, TPSNR_FACE_TGT), 100.0)
            loss = tpsnr["re-encode"] - tpsnr["swap"]
            named = np.array(splits(decisions) if len(decisions) == len(loss) else ["?"] * len(loss))
            counted = ~np.isnan(loss)
            print(f"{path.stem} ({len(loss)} frames): added flicker beyond the re-encode "
                  f"{loss[counted].sum() / counted.sum():+.2f} dB")
            for split in SPLITS:
                chosen = counted & (named == split)
                print(f"  {split}: {chosen.sum()} frames, {loss[chosen].sum() / counted.sum():+.2f} dB of it")
            worst = np.argsort(np.where(counted, loss, -np.inf))[::-1][:5]
            print("  worst frames (frame: loss dB; target, re-encode, swap tPSNR; split): " + "; ".join(
                f"{i}: {loss[i]:.1f}; {target[i]:.1f}, {tpsnr['re-encode'][i]:.1f}, {tpsnr['swap'][i]:.1f}; "
                f"{named[i]}" for i in worst), flush=True)


if __name__ == "__main__":
    main()
