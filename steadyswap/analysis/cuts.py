"""Scene-cut detection: a jump in a downscaled frame far above the recent frame-to-frame change."""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np


def frame_signature(image: np.ndarray, size: tuple[int, int] = (48, 27)) -> np.ndarray:
    """A tiny float32 HSV thumbnail of an RGB frame; cheap to compare between frames."""
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)


def signature_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two signatures (0..255); hue is compared on its circle."""
    d = np.abs(a - b)
    d[..., 0] = np.minimum(d[..., 0], 256 - d[..., 0])
    return float(d.mean())


class SceneCutDetector:
    """Flags frames that start a new shot.

    A frame is a cut when its distance to the previous frame exceeds both ``min_score`` and
    ``ratio`` times the median distance over the last ``window`` frames (an adaptive threshold: a
    fast-moving shot raises the bar), and no cut happened in the last ``min_gap`` frames.

    Args:
        min_score: absolute floor of the distance (0..255 scale).
        ratio: how far above the recent median a jump must be.
        window: frames of history for the median.
        min_gap: shortest shot, in frames.
    """

    def __init__(self, min_score: float = 18.0, ratio: float = 4.0, window: int = 30, min_gap: int = 8) -> None:
        self.min_score, self.ratio, self.min_gap = min_score, ratio, min_gap
        self._history: deque[float] = deque(maxlen=window)
        self._previous: np.ndarray | None = None
        self._since_cut = 0

    def update(self, image: np.ndarray) -> bool:
        """True when ``image`` starts a new shot (never for the first frame)."""
        signature = frame_signature(image)
        previous, self._previous = self._previous, signature
        self._since_cut += 1
        if previous is None:
            return False
        score = signature_distance(previous, signature)
        baseline = float(np.median(self._history)) if self._history else 0.0
        cut = score > self.min_score and score > self.ratio * baseline and self._since_cut > self.min_gap
        if cut:
            self._history.clear()
            self._since_cut = 0
        else:
            self._history.append(score)
        return cut

    def reset(self) -> None:
        self._history.clear()
        self._previous = None
        self._since_cut = 0
