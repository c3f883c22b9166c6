"""Small shared helpers for tests: decode a few frames of a clip, load a photo, one analyser per session."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import av
import cv2
import numpy as np


def decode(path: Path, limit: int | None = None) -> list[np.ndarray]:
    """RGB frames of a clip (the first ``limit`` of them)."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if limit is not None and len(frames) >= limit:
                break
    return frames


def photo(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@lru_cache(maxsize=1)
def still_analyzer():
    from steadyswap.analysis.mediapipe_mesh import MediaPipeAnalyzer

    return MediaPipeAnalyzer(max_faces=8)
