"""FaceFusion's ONNX face detectors (retinaface, scrfd, yolo_face, yunet) as a ``FaceAnalyzer``.

Pre-processing as FaceFusion 3.5 does it: the frame (BGR) is shrunk to fit the detector size, keeping its
aspect, and placed top-left on a black canvas. Each family's raw outputs are decoded by a pure function
into boxes, scores and five points; the score threshold and non-maximum suppression (IoU 0.4) follow.
``landmarks`` are the five points unless 2dfan4 (or, at ``--face-landmarker-score 0``, fan_68_5 alone) adds 68.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import onnxruntime as ort

from steadyswap.analysis.base import FaceAnalyzer
from steadyswap.analysis.landmarker_2dfan4 import Fan68Landmarker, landmarks_68_to_5
from steadyswap.analysis.landmarker_68_5 import Fan68From5, face_angles
from steadyswap.errors import ModelError, UsageError
from steadyswap.models import runtime
from steadyswap.models.registry import ModelSpec
from steadyswap.types import Faces, check_shape

STRIDES = (8, 16, 32)
Detections = tuple[np.ndarray, np.ndarray, np.ndarray]
"""boxes (m, 4) xyxy, scores (m,), kps (m, 5, 2), in detector-input pixels."""


def fit(image: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Shrink ``image`` to fit height×width (never enlarge): the part of the letterboxed detector input that is
    not black (``runtime.blob`` with ``size`` places it top-left on the black canvas).

    Returns:
        (the image, shrunk or as it is; ratio (2,) = original / shrunk size as (x, y)).
    """
    h, w = image.shape[:2]
    if h > height or w > width:
        scale = min(height / h, width / w)
        image = cv2.resize(image, (int(w * scale), int(h * scale)))
    return image, np.array([w / image.shape[1], h / image.shape[0]], np.float32)


@functools.lru_cache(maxsize=16)
def anchor_centers(stride: int, rows: int, cols: int, per_cell: int) -> np.ndarray:
    """(rows·cols·per_cell, 2) anchor points (x, y) in pixels, row-major, each repeated ``per_cell`` times
    (read-only: one array per grid, made once)."""
    ys, xs = np.mgrid[:rows, :cols]
    centers = np.stack([xs, ys], -1).reshape(-1, 2).astype(np.float32) * stride
    centers = np.repeat(centers, per_cell, axis=0)
    centers.setflags(write=False)
    return centers


def decode_distances(scores: np.ndarray, boxes: np.ndarray, kps: np.ndarray, stride: int, rows: int, cols: int,
                     threshold: float, per_cell: int = 2) -> Detections:
    """Decode one stride of scrfd / retinaface: distances (in strides) from anchor points to box sides and points."""
    centers = anchor_centers(stride, rows, cols, per_cell)
    scores = scores.reshape(-1)
    keep = scores >= threshold
    centers, distances, offsets = centers[keep], boxes.reshape(-1, 4)[keep] * stride, kps.reshape(-1, 5, 2)[keep]
    xyxy = np.concatenate([centers - distances[:, :2], centers + distances[:, 2:]], axis=1)
    return xyxy, scores[keep], centers[:, None] + offsets * stride


def decode_yunet(cls: np.ndarray, obj: np.ndarray, boxes: np.ndarray, kps: np.ndarray, stride: int, rows: int,
                 cols: int, threshold: float) -> Detections:
    """Decode one stride of yunet: score = cls·obj; centre offset and log size in strides; points in strides."""
    centers = anchor_centers(stride, rows, cols, 1)
    scores = (cls.reshape(-1) * obj.reshape(-1))
    keep = scores >= threshold
    raw = boxes.reshape(-1, 4)[keep]
    middle = raw[:, :2] * stride + centers[keep]
    half = np.exp(raw[:, 2:4]) * stride / 2
    points = kps.reshape(-1, 5, 2)[keep] * stride + centers[keep][:, None]
    return np.concatenate([middle - half, middle + half], axis=1), scores[keep], points


def decode_yolo_face(prediction: np.ndarray, threshold: float) -> Detections:
    """Decode yolo_face's (1, 20, A): centre x, y, width, height, score, then five (x, y, confidence)."""
    rows = prediction.reshape(20, -1).T
    rows = rows[rows[:, 4] > threshold]
    middle, half = rows[:, :2], rows[:, 2:4] / 2
    points = rows[:, 5:].reshape(-1, 5, 3)[:, :, :2]
    return np.concatenate([middle - half, middle + half], axis=1), rows[:, 4], points


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression, best score first.

    >>> nms(np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30.]]), np.array([0.9, 0.8, 0.7]), 0.4).tolist()
    [0, 2]
    """
    order = np.argsort(-scores, kind="stable")
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep: list[int] = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        top_left = np.maximum(boxes[best, :2], boxes[rest, :2])
        bottom_right = np.minimum(boxes[best, 2:], boxes[rest, 2:])
        overlap = np.prod(np.clip(bottom_right - top_left, 0, None), axis=1)
        iou = overlap / np.maximum(areas[best] + areas[rest] - overlap, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.array(keep, np.int64)


def decode(family: str, outputs: list[np.ndarray], height: int, width: int, threshold: float) -> Detections:
    """All strides of one image's raw outputs, in detector-input pixels."""
    if family == "yolo_face":
        return decode_yolo_face(outputs[0], threshold)
    parts: list[Detections] = []
    for index, stride in enumerate(STRIDES):
        rows, cols = height // stride, width // stride
        if family == "yunet":
            cls, obj, boxes, kps = (outputs[index + 3 * k] for k in range(4))
            parts.append(decode_yunet(cls, obj, boxes, kps, stride, rows, cols, threshold))
        else:
            scores, boxes, kps = (outputs[index + 3 * k] for k in range(3))
            parts.append(decode_distances(scores, boxes, kps, stride, rows, cols, threshold))
    boxes, scores, kps = (np.concatenate([p[k] for p in parts]) for k in range(3))
    return boxes.reshape(-1, 4), scores.reshape(-1), kps.reshape(-1, 5, 2)


def split_images(outputs: list[np.ndarray], count: int) -> list[list[np.ndarray]]:
    """Each image's share of the raw outputs of a batch of ``count`` images.

    Outputs are batch-first ((count, A, k), yunet and yolo_face) or the 2-D (count·A, k) that retinaface and
    scrfd graphs give, their anchors stacked image after image: either way image i owns the i-th of ``count``
    equal runs of leading rows.

    >>> [part[0].shape for part in split_images([np.zeros((6, 4))], 2)]
    [(3, 4), (3, 4)]
    """
    if any(len(output) % count for output in outputs):
        shapes = ", ".join(str(output.shape) for output in outputs)
        raise ModelError(f"detector outputs {shapes} do not split into {count} images")
    return [list(parts) for parts in zip(*(np.split(output, count) for output in outputs))]


def detections(spec: ModelSpec, outputs: list[np.ndarray], size: tuple[int, int], ratio: np.ndarray,
               score_threshold: float, iou_threshold: float) -> Faces:
    """One image's raw outputs → its faces in original pixels, best score first (``landmarks`` = ``kps``).

    Args:
        spec: the detector's registry entry (its family picks the decoder).
        outputs: the graph's outputs for this image alone (``split_images``).
        size: the detector input's (height, width).
        ratio: (x, y) original / shrunk size (``fit``).
    """
    boxes, scores, kps = decode(spec.family, outputs, size[0], size[1], score_threshold)
    keep = nms(boxes, scores, iou_threshold)
    kps = (kps[keep] * ratio).astype(np.float32)
    return Faces(boxes=(boxes[keep] * np.tile(ratio, 2)).astype(np.float32),
                 scores=scores[keep].astype(np.float32), landmarks=kps.copy(), kps=kps)


def input_size(spec: ModelSpec, fixed: tuple[int, int] | None, size: int | None) -> tuple[int, int]:
    """(height, width) a detector runs at: ``size`` (``--face-detector-size``), else the registry's default.

    A graph fixed to one input size runs at that size only: another ``size`` is a UsageError (both paths).
    """
    side = size or spec.size or 640
    height, width = fixed or (side, side)
    if size is not None and (height, width) != (size, size):
        raise UsageError(f"--face-detector-size: {spec.name}'s graph takes {width}x{height} only, not {size}x{size}")
    if height % 32 or width % 32:
        raise ModelError(f"detector size {width}×{height} is not a multiple of 32")
    return height, width


class OnnxDetector(FaceAnalyzer):
    """A FaceFusion detector, optionally followed by the 2dfan4 landmarker.

    Args:
        spec: a registry entry of task ``detector``.
        session: its onnxruntime session.
        score_threshold: minimum detection score (``--face-detector-score``).
        iou_threshold: NMS overlap above which the weaker box is dropped.
        landmarker: 2dfan4: 68 ``landmarks``; the five ``kps`` then come from them where its score passes.
        landmarker_score: the landmarker score above which its points replace the detector's five.
        size: detector input side (FaceFusion's ``--face-detector-size``), see ``input_size``.
        estimator: fan_68_5: 68 points estimated from the five, for 2dfan4's crop angle, and the ``landmarks``
            where 2dfan4 is not run (``landmarker`` None); needed by ``landmarker``.
    """

    def __init__(self, spec: ModelSpec, session: ort.InferenceSession, score_threshold: float = 0.5,
                 iou_threshold: float = 0.4, landmarker: Fan68Landmarker | None = None,
                 landmarker_score: float = 0.5, size: int | None = None,
                 estimator: Fan68From5 | None = None) -> None:
        if spec.task != "detector":
            raise ModelError(f"'{spec.name}' is a {spec.task}, not a detector")
        if landmarker is not None and estimator is None:
            raise ModelError("2dfan4 needs fan_68_5 beside it (the angle of its crops), as in FaceFusion")
        self.spec = spec
        self.session = session
        self.name = spec.name
        self.score_threshold = score_threshold
        self.iou_threshold = iou_threshold
        self.landmarker = landmarker
        self.landmarker_score = landmarker_score
        self.estimator = estimator
        self.landmark_count = 68 if estimator else 5
        self.height, self.width = input_size(spec, runtime.fixed_size(session), size)

    def detect(self, image: np.ndarray) -> Faces:
        """Faces in one H×W×3 uint8 RGB image, best score first, landmarks = the five points."""
        check_shape("image", image, (None, None, 3), np.uint8)
        shrunk, ratio = fit(image, self.height, self.width)
        tensor = runtime.blob(shrunk[None], self.spec.mean, self.spec.std, self.spec.bgr, (self.height, self.width))
        outputs = self.session.run(None, {self.session.get_inputs()[0].name: tensor})
        return detections(self.spec, outputs, (self.height, self.width), ratio, self.score_threshold,
                          self.iou_threshold)

    def analyze(self, images: list[np.ndarray], video: bool = False) -> list[Faces]:
        results = [self.detect(image) for image in images]
        if self.estimator is None:
            return results
        return [self._add_landmarks(image, faces) for image, faces in zip(images, results)]

    def _add_landmarks(self, image: np.ndarray, faces: Faces) -> Faces:
        if not len(faces):
            return Faces.empty(k=68)
        assert self.estimator is not None
        estimate = self.estimator.estimate(faces.kps)
        if self.landmarker is None:
            return faces.with_(landmarks=estimate)
        points, scores = self.landmarker.landmarks(image, faces.boxes, face_angles(estimate))
        return with_landmarks(faces, points, scores, self.landmarker_score)


def with_landmarks(faces: Faces, points: np.ndarray, scores: np.ndarray, landmarker_score: float) -> Faces:
    """``faces`` with 2dfan4's 68 ``points`` as ``landmarks``; their five points replace the detector's where
    ``scores`` passes ``landmarker_score`` (both paths). As in FaceFusion, the 68 points stay 2dfan4's below the
    cut-off too (its '68' landmark set, which the area masks use); only the five points fall back."""
    if not len(faces):
        return Faces.empty(k=68)
    good = (scores > landmarker_score)[:, None, None]
    kps = np.where(good, landmarks_68_to_5(points), faces.kps).astype(np.float32)
    return faces.with_(landmarks=points, kps=kps)
