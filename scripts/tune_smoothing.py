"""Tune the landmark smoothers on the shared clips: jitter and lag of each setting, side by side.

Usage: python scripts/tune_smoothing.py [CLIP ...]

Each clip is analysed once (embedded face mesh, tracked); every smoother setting then runs over the
same raw landmarks, so the table compares filters, not analysis runs. ``lookahead`` > 0 is the
zero-phase One-Euro that file runs use (past and future frames); 0 is the causal filter (the last row: live's
defaults, ``config.LIVE_SMOOTHING``). Jitter is the quality monitor's (distance from a 7-frame moving average
over the inter-ocular distance, mean over frames); lag is the monitor's velocity cross-correlation of the
landmark centroid on fast motion, in frames.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from steadyswap.analysis.mediapipe_mesh import MediaPipeAnalyzer
from steadyswap.config import LIVE_SMOOTHING
from steadyswap.io import VideoReader
from steadyswap.quality.metrics import jitter, lag_frames
from steadyswap.tracking.smoothing import LandmarkSmoother
from steadyswap.tracking.tracker import FaceTracker

SHARED = Path(__file__).resolve().parents[2] / "shared" / "media" / "video"
CLIPS = ["liveportrait_d0.mp4", "liveportrait_d3.mp4", "liveportrait_d11.mp4", "liveportrait_d14.mp4",
         "liveportrait_d19.mp4", "tpsmm_driving.mp4"]
SETTINGS = [("off", {}), ("ema", {"alpha": 0.25})] + [
    ("one-euro", {"min_cutoff": c, "beta": b, "lookahead": k})
    for k in (0, 5) for c in (0.5, 1.0, 2.0) for b in (0.5, 2.0, 8.0)
] + [("one-euro", {"min_cutoff": LIVE_SMOOTHING["smoothing_min_cutoff"], "beta": LIVE_SMOOTHING["smoothing_beta"],
                   "d_cutoff": LIVE_SMOOTHING["smoothing_d_cutoff"], "lookahead": 0})]  # live's defaults


def raw_track(path: Path) -> tuple[list, float]:
    """Tracked raw faces of the first track of a clip, frame by frame (None where it is missing)."""
    analyzer, tracker, rows = MediaPipeAnalyzer(max_faces=1), FaceTracker(), []
    with VideoReader(path, high_bit_depth=False) as reader:
        fps = reader.info.fps
        for frame in reader:
            faces = tracker.update(analyzer.analyze([frame.image], video=True)[0])
            rows.append(faces[faces.track_ids == 0] if len(faces) else None)
    return rows, fps


def measure(rows: list, fps: float, mode: str, params: dict) -> tuple[float, float]:
    smoother = LandmarkSmoother(mode, fps, **params)
    present = [faces for faces in rows if faces is not None and len(faces)]
    raw = [faces.landmarks[0] for faces in present]
    smooth = []
    for faces in present:
        smoother.push(faces)
        if (out := smoother.pop()) is not None:
            smooth.append(out.landmarks[0])
    while (out := smoother.pop(final=True)) is not None:
        smooth.append(out.landmarks[0])
    raw_a, smooth_a = np.array(raw), np.array(smooth)
    iod = np.linalg.norm(smooth_a[:, 33] - smooth_a[:, 263], axis=-1)
    return float(np.nanmean(jitter(smooth_a, iod))), lag_frames(raw_a.mean(axis=1), smooth_a.mean(axis=1))


def main() -> None:
    clips = sys.argv[1:] or CLIPS
    table: dict[str, list[tuple[float, float]]] = {}
    for clip in clips:
        rows, fps = raw_track(SHARED / clip if not Path(clip).exists() else Path(clip))
        for mode, params in SETTINGS:
            label = mode + "".join(f" {k}={v}" for k, v in params.items())
            table.setdefault(label, []).append(measure(rows, fps, mode, params))
    print("| setting | " + " | ".join(Path(c).stem for c in clips) + " | mean jitter vs off | worst lag |")
    print("| --- |" + " --- |" * (len(clips) + 2))
    off = np.array([j for j, _ in table["off"]])
    for label, figures in table.items():
        jit = np.array([j for j, _ in figures])
        lags = [lag for _, lag in figures]
        cells = " | ".join(f"{j * 1000:.2f} / {lag:.2f}" for j, lag in figures)
        print(f"| {label} | {cells} | {np.mean(jit / off):.0%} | {np.nanmax(lags):.2f} |")


if __name__ == "__main__":
    main()
