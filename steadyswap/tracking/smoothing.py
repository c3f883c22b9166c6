"""Landmark smoothing filters: One-Euro (adaptive) and a plain exponential moving average.

Pure step functions over arrays of any shape, and ``LandmarkSmoother`` that keeps one filter state
per track so smoothing never leaks between two people.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

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

    The cutoff rises with speed: still points are smoothed hard, fast ones follow with little lag.

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
    a = smoothing_factor(min_cutoff + beta * np.abs(derivative) / scale, dt)
    return OneEuroState(a * x + (1 - a) * state.value, derivative)


def zero_phase_one_euro(window: np.ndarray, dt: float, min_cutoff: float, beta: float, scale: float = 1.0) -> np.ndarray:
    """The One-Euro cutoff rule applied as a symmetric (zero-phase) filter over past and future samples.

    Each element is averaged over the window with weights ``r**|k|``, where ``r = 1 − a`` and ``a`` is
    the One-Euro smoothing factor for that element's speed at the centre. A symmetric kernel has no
    lag on steady motion, so the smoothing can be strong where a causal filter would trail behind.

    Args:
        window: (2k+1, ...) samples centred on the one to estimate.
        dt: seconds between samples; min_cutoff, beta, scale: as in ``one_euro_step``.

    Returns:
        The smoothed centre sample, shaped like ``window[0]``.
    """
    k = len(window) // 2
    if k == 0:
        return window[0].astype(np.float64)
    speed = np.abs(window[k + 1] - window[k - 1]) / (2 * dt * scale)
    r = 1.0 - smoothing_factor(min_cutoff + beta * speed, dt)
    distance = np.abs(np.arange(-k, k + 1)).reshape((-1,) + (1,) * (window.ndim - 1))
    weights = r[None] ** distance
    return (weights * window).sum(axis=0) / weights.sum(axis=0)


def ema_step(previous: np.ndarray | None, x: np.ndarray, alpha: float) -> np.ndarray:
    """Exponential moving average: ``alpha`` of the current sample, ``1 − alpha`` of the history."""
    if previous is None:
        return x.astype(np.float64)
    return alpha * x + (1 - alpha) * previous


@dataclass
class _Pending:
    raw: Faces
    causal: Faces


class LandmarkSmoother:
    """Smooths each track's landmarks and five points; boxes move with the landmarks.

    ``update`` is causal: one frame in, its smoothed faces out. ``push``/``pop`` add a lookahead of
    ``lookahead`` frames for files: One-Euro then runs zero-phase over past and future frames of the
    same track (no lag on motion), and falls back to the causal estimate where no future frames exist
    (the end of the stream, the last frame of a track). EMA and off are always causal.

    Args:
        mode: "one-euro", "ema" or "off".
        fps: frame rate (sets the time step).
        min_cutoff, beta, d_cutoff: One-Euro parameters (speeds measured in face sizes per second).
        alpha: EMA weight of the current frame.
        lookahead: future frames used by zero-phase One-Euro (0: causal only).
    """

    def __init__(self, mode: str = "one-euro", fps: float = 30.0, min_cutoff: float = 1.0, beta: float = 2.0,
                 d_cutoff: float = 1.0, alpha: float = 0.25, lookahead: int = 0) -> None:
        self.mode = mode
        self.dt = 1.0 / (fps if fps > 0 else 30.0)
        self.min_cutoff, self.beta, self.d_cutoff, self.alpha = min_cutoff, beta, d_cutoff, alpha
        self.lookahead = lookahead if mode == "one-euro" else 0
        self._states: dict[int, object] = {}
        self._frames: deque[_Pending] = deque()
        self._waiting = 0

    def update(self, faces: Faces) -> Faces:
        """Causally smoothed copy of ``faces`` (tracked rows only; untracked rows pass through)."""
        if self.mode == "off" or len(faces) == 0:
            return faces
        points = _points(faces)
        for row, track in enumerate(faces.track_ids):
            if track >= 0:
                points[row] = self._step(int(track), points[row])
        return _with_points(faces, points)

    def push(self, faces: Faces) -> None:
        """Add the next frame's raw faces; its smoothed faces come from ``pop`` once enough follow."""
        self._frames.append(_Pending(faces, self.update(faces)))
        self._waiting += 1

    def pop(self, final: bool = False) -> Faces | None:
        """Smoothed faces of the oldest waiting frame, or None while it still waits for future frames.

        Args:
            final: the stream has ended (or is flushed): pop even without ``lookahead`` future frames.
        """
        if self._waiting == 0 or (self._waiting <= self.lookahead and not final):
            return None
        centre = len(self._frames) - self._waiting
        entry = self._frames[centre]
        self._waiting -= 1
        result = entry.causal
        if self.lookahead and len(entry.raw):
            points = _points(entry.causal)
            for row, track in enumerate(entry.raw.track_ids):
                window = self._window(int(track), centre)
                if track >= 0 and window is not None:
                    scale = _face_size(window[len(window) // 2])
                    points[row] = zero_phase_one_euro(window, self.dt, self.min_cutoff, self.beta, scale)
            result = _with_points(entry.raw, points)
        while len(self._frames) - self._waiting > self.lookahead:
            self._frames.popleft()
        return result

    def _window(self, track: int, centre: int) -> np.ndarray | None:
        """Raw points of ``track`` in the widest symmetric run of frames around ``centre`` (None: no future)."""
        def points_at(index: int) -> np.ndarray | None:
            raw = self._frames[index].raw
            rows = np.flatnonzero(raw.track_ids == track)
            return _points(raw[rows[:1]])[0] if len(rows) else None

        k, before, after = 0, [], []
        while k < self.lookahead and centre - k - 1 >= 0 and centre + k + 1 < len(self._frames):
            past, future = points_at(centre - k - 1), points_at(centre + k + 1)
            if past is None or future is None:
                break
            before.append(past)
            after.append(future)
            k += 1
        if k == 0:
            return None
        return np.stack(before[::-1] + [points_at(centre)] + after)  # type: ignore[list-item]

    def _step(self, track: int, points: np.ndarray) -> np.ndarray:
        previous = self._states.get(track)
        if self.mode == "ema":
            value = ema_step(previous, points, self.alpha)  # type: ignore[arg-type]
            self._states[track] = value
            return value
        state = one_euro_step(previous, points, self.dt, self.min_cutoff, self.beta, self.d_cutoff,  # type: ignore[arg-type]
                              _face_size(points))
        self._states[track] = state
        return state.value

    def forget(self, keep: set[int]) -> None:
        """Drop the causal state of tracks not in ``keep``."""
        for track in set(self._states) - keep:
            del self._states[track]

    def reset(self) -> None:
        """Forget every track and every waiting frame."""
        self._states.clear()
        self._frames.clear()
        self._waiting = 0


def _points(faces: Faces) -> np.ndarray:
    """(n, k + 5, 2) float64: the landmarks followed by the five points, smoothed together."""
    return np.concatenate([faces.landmarks, faces.kps], axis=1).astype(np.float64)


def _with_points(faces: Faces, points: np.ndarray) -> Faces:
    """``faces`` with smoothed landmarks and five points; boxes shift by the landmarks' mean movement."""
    k = faces.landmarks.shape[1]
    landmarks = points[:, :k].astype(np.float32)
    shift = (landmarks - faces.landmarks).mean(axis=1)
    boxes = faces.boxes + np.concatenate([shift, shift], axis=1)
    return faces.with_(landmarks=landmarks, kps=points[:, k:].astype(np.float32), boxes=boxes.astype(np.float32))


def _face_size(points: np.ndarray) -> float:
    return float(np.ptp(points[:, 0]) + np.ptp(points[:, 1])) / 2 or 1.0


def smooth_per_track(history: dict[int, tuple], track_id: int, momentum: float, *values):
    """``values`` blended into the track's history (``momentum`` of the old, the rest of the new), which they then
    become; a track id below 0 keeps no history. Plain arithmetic, so the values may be numbers, numpy arrays or
    torch tensors: the colour, tone and degrade stages smooth their per-track measurements with it on both paths.

    >>> h = {}; smooth_per_track(h, 3, 0.5, 2.0), smooth_per_track(h, 3, 0.5, 4.0)
    ((2.0,), (3.0,))
    """
    if track_id >= 0 and track_id in history:
        values = tuple(momentum * old + (1 - momentum) * new for old, new in zip(history[track_id], values))
    if track_id >= 0:
        history[track_id] = values
    return values
