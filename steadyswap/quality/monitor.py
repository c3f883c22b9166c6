"""QualityMonitor: per-frame quality figures of a swap, fed one frame at a time, plus ``measure``.

The monitor keeps the previous target/output pair (for the consecutive-frame metrics), one
``FrameStats`` of scalars per frame and, per track, a few recent landmark sets and its centroid path;
never the whole video.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from steadyswap.blend.hold import STILL_LEVELS
from steadyswap.errors import UsageError
from steadyswap.quality import report
from steadyswap.quality.look import colour_contrast, region_change, regions, seam_ratio
from steadyswap.quality.metrics import (
    Box,
    face_region,
    jitter,
    lag_frames,
    psnr,
    sharpness_ratio,
    summarize,
    td_fidelity,
)
from steadyswap.types import Faces, FrameStats, check_shape

TPSNR_FACE_OUT = "tpsnr_face_out"
TPSNR_FACE_TGT = "tpsnr_face_tgt"
TPSNR_FRAME_OUT = "tpsnr_frame_out"
TPSNR_FRAME_TGT = "tpsnr_frame_tgt"
TD_FIDELITY_FACE = "td_fidelity_face"
SHARPNESS_FACE = "sharpness_face"
COLOUR_CONTRAST = "colour_contrast"
SEAM = "seam_ratio"
STILL_MOTION_OUT = "still_motion_out"
STILL_MOTION_TGT = "still_motion_tgt"
JITTER = "jitter"
JITTER_RAW = "jitter_raw"

IMAGE_KEYS = (TPSNR_FACE_OUT, TPSNR_FACE_TGT, TPSNR_FRAME_OUT, TPSNR_FRAME_TGT, TD_FIDELITY_FACE, SHARPNESS_FACE,
              COLOUR_CONTRAST, SEAM, STILL_MOTION_OUT, STILL_MOTION_TGT)
"""Per-frame keys computed from the pictures, known as soon as ``update`` returns."""

PSNR_KEYS = IMAGE_KEYS[:5]
"""Keys in dB; their aggregates count ``inf`` as the monitor's ``psnr_cap``."""


@dataclass
class _Track:
    """One unbroken run of a track id (consecutive frames, no cut inside): the last ``window`` landmark sets
    for jitter, and the whole centroid path (raw and smoothed) for the lag."""

    points: deque[np.ndarray]
    raw: deque[np.ndarray]
    iod: deque[float]
    centroids: list[np.ndarray] = field(default_factory=list)
    raw_centroids: list[np.ndarray] = field(default_factory=list)


def _raw_rows(faces: Faces, raw: np.ndarray | Faces | None) -> np.ndarray | None:
    """Raw landmarks row-aligned with ``faces``: (n, k, 2) float64, NaN for a track the raw faces lack."""
    if raw is None:
        return None
    if not isinstance(raw, Faces):
        check_shape("raw_landmarks", raw, faces.landmarks.shape)
        return np.array(raw, np.float64)
    rows = np.full(faces.landmarks.shape, np.nan)
    if raw.landmarks.shape[1:] == faces.landmarks.shape[1:]:
        by_id = {track_id: row for row, track_id in enumerate(raw.track_ids.tolist()) if track_id >= 0}
        for row, track_id in enumerate(faces.track_ids.tolist()):
            if track_id in by_id:
                rows[row] = raw.landmarks[by_id[track_id]]
    return rows


def _union(a: Box | None, b: Box | None) -> Box | None:
    if a is None or b is None:
        return a if b is None else b
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


class QualityMonitor:
    """Measures flicker, temporal fidelity, sharpness, landmark jitter and the look of the pasted face.

    Call ``update`` once per frame, in order. Consecutive-frame figures (tPSNR, TD fidelity) compare a
    frame with the one before, in the face region (union of this and the previous frame's face boxes,
    enlarged by ``margin``) and over the whole frame; they are NaN on the first frame and on a scene cut.
    The look (``quality.look``): the face's colour contrast against its surroundings moved from the
    target's (ΔE), the seam's gradient energy along the face outline over the target's, and, on still
    frames (the target's face region changed by less than ``blend.hold.STILL_LEVELS``), how much the
    output's face region changed and the target's (``still_motion_out`` / ``_tgt``, levels; NaN elsewhere).
    Jitter (and ``jitter_raw`` when raw landmarks are given) needs ``jitter_window // 2`` frames on both
    sides, so it is written into a frame's ``FrameStats`` that many frames later (NaN at run ends).
    Memory: per-frame scalars, each track's last ``jitter_window`` landmark sets and its centroid path.

    Args:
        margin: face boxes grow by this fraction of their size on each side.
        jitter_window: odd moving-average length (frames) whose residual is the jitter.
        max_lag: largest smoothing lag (frames) searched.
        psnr_cap: dB value an infinite PSNR counts as in aggregates.
    """

    def __init__(
        self, margin: float = 0.1, jitter_window: int = 7, max_lag: int = 8, psnr_cap: float = 100.0
    ) -> None:
        if jitter_window < 1 or jitter_window % 2 == 0:
            raise UsageError(f"jitter_window must be odd and positive, got {jitter_window}")
        self.margin = margin
        self.jitter_window = jitter_window
        self.max_lag = max_lag
        self.psnr_cap = psnr_cap
        self._stats: list[FrameStats] = []
        self._previous: tuple[np.ndarray, np.ndarray, Box | None] | None = None
        self._tracks: list[_Track] = []
        self._open: dict[int, _Track] = {}
        self._has_raw = False
        self._jitter_sums: dict[str, list[float]] = {JITTER: [], JITTER_RAW: []}
        self._jitter_counts: dict[str, list[int]] = {JITTER: [], JITTER_RAW: []}

    def update(
        self,
        target: np.ndarray,
        output: np.ndarray,
        faces: Faces,
        scene_cut: bool = False,
        raw_landmarks: np.ndarray | Faces | None = None,
    ) -> FrameStats:
        """Measure the next frame.

        Args:
            target: H×W×3 uint8 RGB frame before the swap.
            output: H×W×3 uint8 RGB frame after the swap.
            faces: tracked faces of this frame (landmarks in output coordinates); may be empty.
            scene_cut: this frame starts a new shot (no comparison with the previous frame).
            raw_landmarks: landmarks before smoothing: the raw ``Faces`` (rows matched to ``faces`` by
                track id, missing ones left out), or an (n, k, 2) array row-aligned with ``faces``;
                enables ``jitter_raw`` and the smoothing lag.

        Returns:
            This frame's ``FrameStats`` (index = number of earlier updates).

        Raises:
            ShapeError: an image or ``raw_landmarks`` of the wrong shape or dtype.
        """
        check_shape("target", target, (None, None, 3), np.uint8)
        check_shape("output", output, target.shape, np.uint8)
        raw = _raw_rows(faces, raw_landmarks)
        index = len(self._stats)
        box = face_region(faces, target.shape, self.margin)
        values = dict.fromkeys(IMAGE_KEYS, math.nan)
        if box is not None:
            values[SHARPNESS_FACE] = sharpness_ratio(output, target, box)
            where = regions(faces, face_region(faces, target.shape, max(self.margin, 0.5)))  # type: ignore[arg-type]
            values[COLOUR_CONTRAST] = colour_contrast(output, target, where)
            values[SEAM] = seam_ratio(output, target, where)
        if self._previous is not None and not scene_cut:
            tgt_prev, out_prev, prev_box = self._previous
            values[TPSNR_FRAME_OUT] = psnr(out_prev, output)
            values[TPSNR_FRAME_TGT] = psnr(tgt_prev, target)
            pair_box = _union(box, prev_box)
            if pair_box is not None:
                values[TPSNR_FACE_OUT] = psnr(out_prev, output, pair_box)
                values[TPSNR_FACE_TGT] = psnr(tgt_prev, target, pair_box)
                values[TD_FIDELITY_FACE] = td_fidelity(out_prev, output, tgt_prev, target, pair_box)
                still = region_change(tgt_prev, target, pair_box)
                if still < STILL_LEVELS:
                    values[STILL_MOTION_TGT] = still
                    values[STILL_MOTION_OUT] = region_change(out_prev, output, pair_box)
        self._previous = (target.copy(), output.copy(), box)
        values[JITTER] = math.nan
        stats = FrameStats(index, values, scene_cut)
        self._stats.append(stats)
        for key in (JITTER, JITTER_RAW):
            self._jitter_sums[key].append(0.0)
            self._jitter_counts[key].append(0)
        self._extend_tracks(index, faces, scene_cut, raw)
        return stats

    def _extend_tracks(self, index: int, faces: Faces, scene_cut: bool, raw: np.ndarray | None) -> None:
        """Append this frame's landmarks to the runs of its track ids (a gap or a cut starts a new run) and
        measure the jitter of each run's frame ``index - window // 2``, now that its window is complete."""
        self._has_raw |= raw is not None
        seen: dict[int, _Track] = {}
        for row, track_id in enumerate(faces.track_ids.tolist()):
            if track_id < 0 or track_id in seen:
                continue
            points = np.array(faces.landmarks[row], np.float64)
            track = None if scene_cut else self._open.get(track_id)
            if track is None or track.points[-1].shape != points.shape:
                window = self.jitter_window
                track = _Track(deque(maxlen=window), deque(maxlen=window), deque(maxlen=window))
                self._tracks.append(track)
            raw_points = np.full_like(points, np.nan) if raw is None else raw[row]
            track.points.append(points)
            track.raw.append(raw_points)
            track.iod.append(float(np.linalg.norm(faces.kps[row, 1] - faces.kps[row, 0])))
            track.centroids.append(points.mean(axis=0))
            track.raw_centroids.append(raw_points.mean(axis=0))
            if len(track.points) == self.jitter_window:
                self._add_jitter(JITTER, index, track.points, track.iod)
                self._add_jitter(JITTER_RAW, index, track.raw, track.iod)
            seen[track_id] = track
        self._open = seen

    def _add_jitter(self, key: str, index: int, points: deque[np.ndarray], iod: deque[float]) -> None:
        """Add one face's jitter at the centre of its full window to that frame's mean over faces."""
        half = self.jitter_window // 2
        value = jitter(np.stack(points), np.array(iod), self.jitter_window)[half]
        if math.isnan(value):
            return
        frame = index - half
        self._jitter_sums[key][frame] += value
        self._jitter_counts[key][frame] += 1
        self._stats[frame].values[key] = self._jitter_sums[key][frame] / self._jitter_counts[key][frame]

    def lag(self) -> float:
        """Frames the smoothed landmark centroid trails the raw one on fast motion (``lag_frames``), averaged
        over the runs with raw landmarks throughout, weighted by length; NaN without raw landmarks."""
        lags, weights = [], []
        for track in self._tracks:
            raw = np.array(track.raw_centroids)
            if np.isfinite(raw).all():
                lag = lag_frames(raw, np.array(track.centroids), self.max_lag)
                if not math.isnan(lag):
                    lags.append(lag)
                    weights.append(len(raw))
        return float(np.average(lags, weights=weights)) if lags else math.nan

    @property
    def frame_stats(self) -> list[FrameStats]:
        """Every frame's stats so far (the last ``jitter_window // 2`` frames' jitter is not known yet)."""
        return list(self._stats)

    def summary(self) -> dict[str, Any]:
        """Aggregates over the frames so far, undefined (NaN) frames left out.

        Keys: ``frames``, ``scene_cuts`` (frame indices), ``settings``; one ``summarize`` dict per per-frame
        key (``tpsnr_face_out``, ``tpsnr_face_tgt``, ``tpsnr_frame_out``, ``tpsnr_frame_tgt``,
        ``td_fidelity_face``, ``sharpness_face``, ``jitter``, and ``jitter_raw`` when raw landmarks were
        given); ``flicker_added_face`` / ``flicker_added_frame`` (target minus output mean tPSNR in dB:
        > 0 when the swap adds flicker); ``lag_frames`` (smoothed behind raw, NaN without raw landmarks);
        ``colour_contrast``, ``seam_ratio``, ``still_motion_out`` / ``still_motion_tgt`` (``count``: the still
        frames) and ``still_motion_added`` (output minus target mean change on still frames, levels).
        """
        stats = self._stats
        result: dict[str, Any] = {
            "frames": len(stats),
            "scene_cuts": [s.index for s in stats if s.scene_cut],
            "settings": {
                "margin": self.margin,
                "jitter_window": self.jitter_window,
                "max_lag": self.max_lag,
                "psnr_cap": self.psnr_cap,
            },
        }
        for key in (*IMAGE_KEYS, JITTER, *((JITTER_RAW,) if self._has_raw else ())):
            result[key] = summarize(report.column(stats, key), self.psnr_cap if key in PSNR_KEYS else None)
        for region in ("face", "frame"):
            target, output = result[f"tpsnr_{region}_tgt"]["mean"], result[f"tpsnr_{region}_out"]["mean"]
            result[f"flicker_added_{region}"] = target - output
        result["lag_frames"] = self.lag()
        result["still_motion_added"] = result[STILL_MOTION_OUT]["mean"] - result[STILL_MOTION_TGT]["mean"]
        return result

    def write_json(self, path: str | PathLike[str]) -> None:
        """Write ``{"summary": ..., "frames": [...]}``; see ``report.write_json``."""
        report.write_json(path, self.summary(), self.frame_stats)

    def write_csv(self, path: str | PathLike[str]) -> None:
        """Write one row per frame; see ``report.write_csv``."""
        report.write_csv(path, self.frame_stats)

    def plot(self, path: str | PathLike[str]) -> None:
        """Save a PNG of tPSNR and jitter over time with scene cuts marked."""
        report.plot(path, self.frame_stats, self.psnr_cap)

    def text_summary(self) -> str:
        """A one-screen text report of ``summary()``."""
        return report.text_summary(self.summary())


def write_report(monitor: QualityMonitor, path: str | PathLike[str]) -> str:
    """Write the JSON report at ``path``, the CSV and PNG beside it (same name, ``.csv`` / ``.png``).

    Returns:
        The text summary, for the caller to print.

    Raises:
        OutputError: a file cannot be written.
    """
    json_path = Path(path)
    monitor.write_json(json_path)
    monitor.write_csv(json_path.with_suffix(".csv"))
    monitor.plot(json_path.with_suffix(".png"))
    return monitor.text_summary()


def measure(
    target_frames: Iterable[np.ndarray],
    output_frames: Iterable[np.ndarray],
    faces: Iterable[Faces],
    cuts: Iterable[bool] | None = None,
    monitor: QualityMonitor | None = None,
) -> QualityMonitor:
    """Feed matching target frames, output frames, faces (and scene-cut flags) to a monitor.

    Args:
        target_frames, output_frames: H×W×3 uint8 RGB images, frame by frame.
        faces: the tracked faces of each frame.
        cuts: per-frame scene-cut flags, or None for a single shot.
        monitor: the monitor to feed (and its settings); a default one when None.

    Returns:
        The monitor, ready for ``summary()`` and the reports.

    Raises:
        ValueError: the iterables differ in length.
    """
    monitor = QualityMonitor() if monitor is None else monitor
    if cuts is None:
        for target, output, frame_faces in zip(target_frames, output_frames, faces, strict=True):
            monitor.update(target, output, frame_faces)
    else:
        for target, output, frame_faces, cut in zip(target_frames, output_frames, faces, cuts, strict=True):
            monitor.update(target, output, frame_faces, scene_cut=bool(cut))
    return monitor
