"""The embedded default analyser: MediaPipe's face mesh, whose weights ship inside the wheel.

478 landmarks per face (468 mesh points + 10 iris points), no network and no model files. Frames
larger than ``analysis_size`` are analysed downscaled: the mesh model works on 192-px face crops,
so a larger input only costs time.
"""

from __future__ import annotations

import logging
import os

import cv2
import numpy as np

from steadyswap.analysis.base import FaceAnalyzer
from steadyswap.analysis.mediapipe_import import solution
from steadyswap.analysis.mesh_topology import five_points
from steadyswap.types import Faces

log = logging.getLogger(__name__)

os.environ.setdefault("GLOG_minloglevel", "2")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


class MediaPipeAnalyzer(FaceAnalyzer):
    """Face mesh detector + landmarker.

    Args:
        max_faces: most faces reported per frame.
        min_score: detection confidence below which faces are dropped.
        analysis_size: longest image side the model sees; larger frames are downscaled first.
    """

    name = "mediapipe"
    landmark_count = 478

    def __init__(self, max_faces: int = 4, min_score: float = 0.5, analysis_size: int = 640) -> None:
        self.max_faces = max_faces
        self.min_score = min_score
        self.analysis_size = analysis_size
        self._meshes: dict[bool, object] = {}

    def _mesh(self, video: bool):
        if video not in self._meshes:
            self._meshes[video] = solution("face_mesh").FaceMesh(
                static_image_mode=not video,
                max_num_faces=self.max_faces,
                refine_landmarks=True,
                min_detection_confidence=self.min_score,
                min_tracking_confidence=0.5,
            )
        return self._meshes[video]

    def analyze(self, images: list[np.ndarray], video: bool = False) -> list[Faces]:
        return [self._analyze_one(image, video) for image in images]

    def _analyze_one(self, image: np.ndarray, video: bool) -> Faces:
        height, width = image.shape[:2]
        scale = min(1.0, self.analysis_size / max(height, width))
        small = image
        if scale < 1.0:
            small = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        result = self._mesh(video).process(np.ascontiguousarray(small))
        found = result.multi_face_landmarks or []
        if not found:
            return Faces.empty(self.landmark_count)
        normalised = np.array([[(p.x, p.y) for p in face.landmark] for face in found], dtype=np.float32)
        return faces_from_mesh(normalised * np.array([width, height], np.float32))

    def reset(self) -> None:
        video = self._meshes.pop(True, None)
        if video is not None:
            video.close()

    def close(self) -> None:
        for mesh in self._meshes.values():
            mesh.close()
        self._meshes.clear()


def faces_from_mesh(landmarks: np.ndarray) -> Faces:
    """Faces from (n, 478, 2) pixel landmarks: boxes span the landmarks, score 1 (the mesh gives none)."""
    boxes = np.concatenate([landmarks.min(axis=1), landmarks.max(axis=1)], axis=1).astype(np.float32)
    n = len(landmarks)
    return Faces(
        boxes=boxes,
        scores=np.ones(n, np.float32),
        landmarks=landmarks.astype(np.float32),
        kps=five_points(landmarks),
    )
