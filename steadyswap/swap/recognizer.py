"""ArcFace identity embeddings (arcface_w600k_r50): 112 crop on the arcface_112_v2 template → 512-d.

Pre-processing as FaceFusion 3.5: RGB, ``x / 127.5 - 1``. Embeddings come back raw (not normalised),
as FaceFusion keeps them; ``l2_normalise`` gives the unit vectors used for distances.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from steadyswap.blend.align import warp_face
from steadyswap.errors import ModelError
from steadyswap.models import runtime
from steadyswap.models.registry import ModelSpec
from steadyswap.types import check_shape


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero).

    >>> l2_normalise(np.array([[3.0, 4.0]])).tolist()
    [[0.6, 0.8]]
    """
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1)


class ArcFaceRecognizer:
    """Embeds aligned face crops, batched where the graph allows."""

    def __init__(self, spec: ModelSpec, session: ort.InferenceSession, batch_size: int | None = None) -> None:
        if spec.task != "recognizer":
            raise ModelError(f"'{spec.name}' is a {spec.task}, not a recognizer")
        self.spec = spec
        self.session = session
        self.batch_size = batch_size
        self.name = spec.name
        self.size = spec.size or 112
        self.template = spec.template or "arcface_112_v2"

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """(n, 112, 112, 3) uint8 RGB aligned crops → (n, 512) float32 raw embeddings."""
        check_shape("crops", crops, (None, self.size, self.size, 3), np.uint8)
        if not len(crops):
            return np.zeros((0, 512), np.float32)
        tensor = runtime.blob(crops, self.spec.mean, self.spec.std, self.spec.bgr)
        name = self.session.get_inputs()[0].name
        return runtime.run(self.session, {name: tensor}, self.batch_size)[0].reshape(len(crops), -1)

    def align(self, image: np.ndarray, kps: np.ndarray) -> np.ndarray:
        """(n, 112, 112, 3) aligned crops of the faces with five points ``kps`` (n, 5, 2) in ``image``."""
        check_shape("kps", kps, (None, 5, 2))
        crops = [warp_face(image, points, self.template, self.size)[0] for points in kps]
        return np.stack(crops) if crops else np.zeros((0, self.size, self.size, 3), np.uint8)

    def embed(self, image: np.ndarray, kps: np.ndarray) -> np.ndarray:
        """(n, 512) raw embeddings of the faces with five points ``kps`` (n, 5, 2) in one RGB image."""
        return self.embed_crops(self.align(image, kps))
