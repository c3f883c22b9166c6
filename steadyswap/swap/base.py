"""The swapper interface: build a source identity once, then swap it into target faces.

The embedded ``classic`` swapper and FaceFusion's ONNX swappers implement ``Swapper``; each returns
``SwapPatch`` objects (the swapped crop, its mask, and the target pixels it covers) that the colour stage
corrects and the blend stage pastes back, so both are shared by every swapper. A swapper keeps no
per-track state.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from steadyswap.types import Faces, SwapPatch


@dataclass
class SourceFace:
    """What a swapper needs of the source identity: the photo, its face, and model-specific data."""

    image: np.ndarray
    faces: Faces
    embedding: np.ndarray | None = None
    data: dict[str, Any] = field(default_factory=dict)


class Swapper(ABC):
    """Turns target faces into patches carrying the source identity."""

    name: str = "base"

    @abstractmethod
    def prepare_source(self, images: list[np.ndarray], faces: list[Faces]) -> SourceFace:
        """Build the source identity from one or more photos (one face each is used: the largest)."""

    @abstractmethod
    def swap(self, source: SourceFace, frames: list[np.ndarray], faces: list[Faces]) -> list[list[SwapPatch]]:
        """For each frame, one patch per face row (same order)."""

    def close(self) -> None:
        """Release model resources."""
