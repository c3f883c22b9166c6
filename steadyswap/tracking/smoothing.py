"""Landmark smoothing filters: One-Euro (adaptive) and a plain exponential moving average.

Pure step functions over arrays of any shape, and ``LandmarkSmoother`` that keeps one filter state
per track so smoothing never leaks between two people.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from steadyswap.analysis.mesh_topology import five_points
from steadyswap.types import Faces


def smoothing_factor(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    """Exponential smoothing weight of a first-order low-pass with ``cutoff`` Hz at time step ``dt`` s."""
    tau = 1.0 / (2 * math.pi * np.asarray(cutoff))
    return 1.0 / (1.0 + tau / dt)


@dataclass
class OneEuroState:
    """Filter memory: last filtered value and last filtered derivative."""

    value: np.ndarray
    derivative: np.ndarray


def one_euro_step(state: OneEuroState | None, x: np.ndarray, dt: float, min_cutoff: float, beta: float,
                  d_cutoff: float, scale: float = 1.0) -> OneEuroState:
    """One step of the One-Euro filter (Casiez et al., CHI 2012), elementwise over ``x``.

    The cutoff rises with speed: still points are smoothed hard, fast ones follow without lag.

    Args:
        state: the previous state, or None for the first sample.
        x: current raw values (any shape).
        dt: seconds since the previous sample.
        min_cutoff: Hz at rest; beta: cutoff gain per unit of speed; d_cutoff: Hz for the derivative.
        scale: speeds are divided by this (e.g. the face size) so ``beta`` is resolution-independent.
    """
    if state is None:
        return OneEuroState(x.astype(np.float64), np.zeros_like(x, np.float64))
    a_d = smoothing_factor(d_cutoff, dt)
    derivative = a_d * (x - state.value) / dt + (1 - a_d) * state.derivative
    speed = np.abs(derivative) / scale
    a = smoothing_factor(min_cutoff + beta * speed, dt)
    return OneEuroState(a * x + (1 - a) * state.value, derivative)


def ema_step(previous: np.ndarray | None, x: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential moving average: ``alpha`` of the current sample, ``1 − alpha`` of the history."""
    if previous is None:
        return x.astype(np.float64)
    return alpha * x + (1 - alpha) * previous


class LandmarkSmoother:
    """Smooths each track's landmarks; boxes and five points are rederived from the smoothed points.

    Args:
        mode: "one-euro", "ema" or "off".
        fps: frame rate (sets the time step).
        min_cutoff, beta, d_cutoff: One-Euro parameters (speeds measured in face sizes per second).
        alpha: EMA weight of the current frame.
    """

    def __init__(self, mode: str = "one-euro", fps: float = 30.0, min_cutoff: float = 1.0, beta: float = 0.05,
                 d_cutoff: float = 1.0, alpha: float = 0.25) -> None:
        self.mode = mode
        self.dt = 1.0 / (fps if fps > 0 else 30.0)
        self.min_cutoff, self.beta, self.d_cutoff, self.alpha = min_cutoff, beta, d_cutoff, alpha
        self._states: dict[int, object] = {}

    def update(self, faces: Faces) -> Faces:
        """Smoothed copy of ``faces`` (tracked rows only; untracked rows pass through)."""
        if self.mode == "off" or len(faces) == 0:
            return faces
        landmarks = faces.landmarks.astype(np.float64)
        for row, track in enumerate(faces.track_ids):
            if track < 0:
                continue
            landmarks[row] = self._step(int(track), landmarks[row])
        smoothed = landmarks.astype(np.float32)
        boxes = np.concatenate([smoothed.min(axis=1), smoothed.max(axis=1)], axis=1)
        kps = five_points(smoothed) if smoothed.shape[1] >= 468 else smoothed[:, :5]
        return faces.with_(landmarks=smoothed, boxes=boxes, kps=kps)

    def _step(self, track: int, points: np.ndarray) -> np.ndarray:
        previous = self._states.get(track)
        if self.mode == "ema":
            value = ema_step(previous, points, self.alpha)  # type: ignore[arg-type]
            self._states[track] = value
            return value
        size = float(np.ptp(points[:, 0]) + np.ptp(points[:, 1])) / 2 or 1.0
        state = one_euro_step(previous, points, self.dt, self.min_cutoff, self.beta, self.d_cutoff, size)  # type: ignore[arg-type]
        self._states[track] = state
        return state.value

    def forget(self, keep: set[int]) -> None:
        """Drop the state of tracks not in ``keep``."""
        for track in set(self._states) - keep:
            del self._states[track]

    def reset(self) -> None:
        self._states.clear()
