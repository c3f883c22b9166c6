"""fan_68_5: FaceFusion's estimate of a face's 68 landmarks from its five points.

As FaceFusion 3.5 runs it: the five points are moved by the similarity that best puts them on the ffhq_512
template in a unit square, the network maps those (1, 5, 2) points to (1, 68, 2) in the same units, and the
inverse similarity takes the 68 back to the frame. FaceFusion loads it beside 2dfan4 and uses the estimate, as
here, for the face's rough angle (the line from jaw point 0 to 16, to a multiple of 90°), which turns the 2dfan4
crop upright, and as the 68 points where 2dfan4 is not run (``--face-landmarker-score 0``).
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from steadyswap.blend.align import estimate_matrix, invert_affine, transform_points
from steadyswap.errors import ModelError
from steadyswap.models import runtime
from steadyswap.models.registry import ModelSpec
from steadyswap.types import check_shape

TEMPLATE = "ffhq_512"
JAW_ENDS = (0, 16)


def unit_matrices(kps: np.ndarray) -> np.ndarray:
    """(n, 2, 3) frame→unit-square similarities of faces with five points ``kps`` (n, 5, 2).

    FaceFusion fits them with OpenCV's RANSAC at a 100-unit threshold in a 1-unit square, where every point
    is an inlier: the least-squares fit here is the same.
    """
    check_shape("kps", kps, (None, 5, 2))
    return np.stack([estimate_matrix(points, TEMPLATE, 1) for points in kps]).reshape(-1, 2, 3)


def to_unit(kps: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """The network's input: (n, 5, 2) float32 five points in unit-square template units."""
    return np.stack([transform_points(p, m) for p, m in zip(kps, matrices)]).astype(np.float32).reshape(-1, 5, 2)


def to_frame(points: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """The network's (n, 68, 2) unit-square points → (n, 68, 2) float32 frame pixels."""
    return np.stack([transform_points(p, invert_affine(m)) for p, m in zip(points, matrices)]).astype(
        np.float32).reshape(-1, 68, 2)


def face_angles(points: np.ndarray) -> list[int]:
    """Each face's in-plane rotation from its 68 points (n, 68, 2): the jaw line's direction, as 0, 90, 180
    or 270 degrees (the nearest; FaceFusion's rule).

    >>> jaw = np.zeros((1, 68, 2)); jaw[0, 16] = [0, 10]
    >>> face_angles(jaw)
    [90]
    """
    left, right = points[:, JAW_ENDS[0]], points[:, JAW_ENDS[1]]
    degrees = np.degrees(np.arctan2(right[:, 1] - left[:, 1], right[:, 0] - left[:, 0])) % 360
    return [int(np.ceil(d / 90 - 0.5)) % 4 * 90 for d in degrees]  # a tie goes to the smaller angle


class Fan68From5:
    """fan_68_5 in onnxruntime: 68 estimated frame points of faces with five points."""

    def __init__(self, spec: ModelSpec, session: ort.InferenceSession) -> None:
        if spec.family != "fan_68_5":
            raise ModelError(f"'{spec.name}' is not fan_68_5")
        self.spec, self.session = spec, session

    def estimate(self, kps: np.ndarray) -> np.ndarray:
        """(n, 68, 2) float32 frame points from five points ``kps`` (n, 5, 2)."""
        if not len(kps):
            return np.zeros((0, 68, 2), np.float32)
        matrices = unit_matrices(kps)
        name = self.session.get_inputs()[0].name
        points = runtime.run(self.session, {name: to_unit(kps, matrices)})[0]
        return to_frame(points, matrices)
