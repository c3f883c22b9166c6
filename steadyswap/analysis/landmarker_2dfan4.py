"""The 2dfan4 68-point landmarker: a 256 crop around each box, 68 heatmaps of 64×64 back to frame points.

As FaceFusion 3.5 does it: the box is scaled so its long side is 195 px and centred in a 256 crop, turned
upright by the face's rough angle (a multiple of 90°, from fan_68_5's estimate: ``landmarker_68_5``), brightened with CLAHE when very dark, and fed BGR
in [0, 1]. The network's first output holds the points in heatmap pixels (×4 to crop pixels); the score
is the mean of the heatmap peaks mapped from [0, 0.9] to [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np
import onnxruntime as ort

from steadyswap.blend.align import invert_affine, transform_points
from steadyswap.errors import ModelError
from steadyswap.models import runtime
from steadyswap.models.registry import ModelSpec
from steadyswap.types import check_shape

CROP = 256
HEATMAP = 64
BOX_SIDE = 195.0
DARK_LIGHTNESS = 30
"""Crops whose mean lightness (OpenCV's 8-bit L) is under this are brightened."""


def landmarks_68_to_5(points: np.ndarray) -> np.ndarray:
    """(..., 68, 2) → (..., 5, 2): eye centres, nose tip, mouth corners."""
    return np.stack([points[..., 36:42, :].mean(-2), points[..., 42:48, :].mean(-2),
                     points[..., 30, :], points[..., 48, :], points[..., 54, :]], axis=-2)


def crop_matrix(box: np.ndarray, angle: int = 0) -> np.ndarray:
    """Frame→crop 2×3 matrix: box long side to 195 px, centred in the 256 crop, turned upright.

    ``angle`` is the face's rough rotation (``landmarker_68_5.face_angles``); OpenCV's positive angle turns the
    crop counter-clockwise.
    """
    scale = BOX_SIDE / max(float(np.max(box[2:] - box[:2])), 1.0)
    tx, ty = (CROP - (box[:2] + box[2:]) * scale) * 0.5
    place = np.array([[scale, 0, tx], [0, scale, ty], [0, 0, 1]])
    rotate = np.vstack([cv2.getRotationMatrix2D((CROP / 2, CROP / 2), angle, 1.0), [0, 0, 1]])
    return (rotate @ place)[:2]


def brighten_if_dark(crop_bgr: np.ndarray) -> np.ndarray:
    """CLAHE (clip 2) on the lightness of a crop whose mean lightness is under ``DARK_LIGHTNESS``, as FaceFusion does.

    FaceFusion hands BGR data to OpenCV's RGB→Lab conversion; the same is done here so results match.
    """
    lab = cv2.cvtColor(crop_bgr, cv2.COLOR_RGB2Lab)
    if lab[:, :, 0].mean() >= DARK_LIGHTNESS:
        return crop_bgr
    lab[:, :, 0] = cv2.createCLAHE(clipLimit=2).apply(lab[:, :, 0])
    return cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)


class Fan68Landmarker:
    """68 landmarks per face box with a confidence in [0, 1]."""

    name = "2dfan4"

    def __init__(self, spec: ModelSpec, session: ort.InferenceSession, batch_size: int | None = None) -> None:
        if spec.task != "landmarker":
            raise ModelError(f"'{spec.name}' is a {spec.task}, not a landmarker")
        self.spec = spec
        self.session = session
        self.batch_size = batch_size

    def landmarks(self, image: np.ndarray, boxes: np.ndarray,
                  angles: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Points and scores for each box of one image.

        Args:
            image: H×W×3 uint8 RGB.
            boxes: (n, 4) xyxy.
            angles: each face's rough rotation in degrees, a multiple of 90 (upright when None).
        Returns:
            (points (n, 68, 2) float32 frame pixels, scores (n,) float32).
        """
        check_shape("image", image, (None, None, 3), np.uint8)
        check_shape("boxes", boxes, (None, 4))
        n = len(boxes)
        if n == 0:
            return np.zeros((0, 68, 2), np.float32), np.zeros((0,), np.float32)
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        matrices = crop_matrices(boxes, angles)
        crops = np.stack([brighten_if_dark(cv2.warpAffine(bgr, m, (CROP, CROP))) for m in matrices])
        tensor = runtime.blob(crops, self.spec.mean, self.spec.std, bgr=False)
        name = self.session.get_inputs()[0].name
        points, heatmaps = runtime.run(self.session, {name: tensor}, self.batch_size)[:2]
        return frame_landmarks(points, matrices), landmark_scores(heatmaps.reshape(n, 68, -1).max(-1))


def crop_matrices(boxes: np.ndarray, angles: list[int] | None) -> np.ndarray:
    """(n, 2, 3) frame→crop matrices of the boxes, each turned upright by its face's angle (upright when None)."""
    return np.stack([crop_matrix(box, angles[i] if angles is not None else 0) for i, box in enumerate(boxes)])


def frame_landmarks(points: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """The network's (n, 68, 3) heatmap-pixel points → (n, 68, 2) float32 frame pixels."""
    crop_points = points[:, :, :2] * (CROP / HEATMAP)
    return np.stack([transform_points(p, invert_affine(m)) for p, m in zip(crop_points, matrices)]).astype(np.float32)


def landmark_scores(peaks: np.ndarray) -> np.ndarray:
    """(n,) float32 confidence from each face's (n, 68) heatmap peaks: their mean from [0, 0.9] to [0, 1]."""
    return np.interp(peaks.mean(-1), [0.0, 0.9], [0.0, 1.0]).astype(np.float32)
