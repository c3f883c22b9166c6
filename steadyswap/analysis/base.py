"""The face-analysis interface: a detector that also gives landmarks, fed batches of frames.

Every analyser (the embedded MediaPipe mesh, FaceFusion's ONNX detectors + landmarkers) implements
``FaceAnalyzer`` so the engine can swap one for another without a second code path.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from steadyswap.types import Faces


class FaceAnalyzer(ABC):
    """Finds faces and their landmarks in RGB images.

    ``video=True`` lets an analyser carry state from one call to the next (tracking inside the model);
    ``reset()`` drops that state, e.g. at a scene cut or a segment start.
    """

    name: str = "base"
    landmark_count: int = 5

    @abstractmethod
    def analyze(self, images: list[np.ndarray], video: bool = False) -> list[Faces]:
        """One ``Faces`` per image (H×W×3 uint8 RGB), in pixel coordinates of that image."""

    def reset(self) -> None:
        """Forget temporal state."""

    def close(self) -> None:
        """Release model resources."""

    def __enter__(self) -> FaceAnalyzer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
