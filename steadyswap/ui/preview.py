"""Preview frames: one target frame at preview size, swapped with the page's options, drawn in a mode.

Swappers are kept between requests (keyed by sources, options and people map), so moving the slider
costs one analysis and one swap at preview size. While the slider moves only the latest request of a
page is served: an older one still waiting for the lock answers "superseded" without computing.

The mask overlay is the swap's own paste mask (``blend.paste.paste_mask`` of the patches the swap pasted,
after every mask type, the hand occluder and the enhancer), tinted onto the output: nothing here
recomputes a mask.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from steadyswap.blend.paste import paste_mask
from steadyswap.config import RunConfig
from steadyswap.engine.frame_swapper import FaceSwapper
from steadyswap.types import Faces
from steadyswap.ui.faces import PersonChoice, face_map_json
from steadyswap.ui.frames import FrameStore, FrameStores, encode_jpeg, encode_png

MODES = ("side", "crops", "output", "mask")
"""side: before | after; crops: each swapped face, before and after; output: the swapped frame; mask: the
frame-space paste mask alone, a grey PNG (255: the swapped face, 0: the target's pixels kept exactly)."""
CROP_HEIGHT = 192
TINT = np.array([255, 0, 170], np.float32)
"""The overlay's colour (magenta: rare on skin), mixed in at half the paste mask's strength."""


@dataclass
class PreviewRequest:
    """What the page asks to see."""

    sources: list[Path]
    target: Path
    frame: int
    mode: str
    config: RunConfig
    people: list[PersonChoice] | None = None
    client: str = ""
    seq: int = 0
    mask: bool = False
    """Tint the output where the swap is pasted (its paste mask)."""


@dataclass
class Preview:
    """A rendered preview: the picture's bytes (JPEG; PNG for the mask mode), faces swapped, and milliseconds
    spent computing it."""

    data: bytes
    media_type: str
    faces: int
    frame: int
    ms: float


class PreviewService:
    """Renders previews one at a time, keeping the few most recent swappers.

    Args:
        stores: the targets' preview-size frames.
        work_dir: where preview face maps are written.
        keep: swappers kept.
    """

    def __init__(self, stores: FrameStores, work_dir: Path, keep: int = 3) -> None:
        self.stores = stores
        self.work_dir = work_dir
        self.keep = keep
        self._swappers: OrderedDict[str, FaceSwapper] = OrderedDict()
        self._lock = threading.Lock()
        self._latest: dict[str, int] = {}
        self._latest_lock = threading.Lock()

    def render(self, request: PreviewRequest) -> Preview | None:
        """The preview of ``request``, or None when a newer request of the same page arrived meanwhile.

        Raises:
            SteadySwapError: unreadable inputs, no face in a source, bad options (shown in the page).
        """
        with self._latest_lock:
            self._latest[request.client] = max(self._latest.get(request.client, request.seq), request.seq)
        with self._lock:
            if request.seq < self._latest[request.client]:
                return None
            began = time.perf_counter()
            store = self.stores.get(request.target)
            swapper = self._swapper(request, store)
            before = store.get(request.frame)
            result = swapper.swap_image(before)
            index = min(max(request.frame, 0), store.info.frames - 1)
            mask = paste_mask(before.shape, result.patches) if request.mask or request.mode == "mask" else None
            if request.mode == "mask":
                assert mask is not None
                data, media_type = encode_png(np.round(mask * 255).astype(np.uint8)), "image/png"
            else:
                after = result.image if mask is None else tint(result.image, mask)
                data, media_type = encode_jpeg(draw(request.mode, before, after, result.faces), 85), "image/jpeg"
            return Preview(data, media_type, len(result.faces), index, (time.perf_counter() - began) * 1000)

    def _swapper(self, request: PreviewRequest, store: FrameStore) -> FaceSwapper:
        config = request.config
        if request.people is not None:
            text = face_map_json(request.people, store.scale)
            digest = hashlib.sha1(text.encode()).hexdigest()[:16]
            path = self.work_dir / "preview" / f"map-{digest}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                path.write_text(text)
            config = replace(config, face_map=str(path))
        key = json.dumps([[str(s) for s in request.sources], str(request.target), store.mtime,
                          config.to_dict()], sort_keys=True, default=str)
        swapper = self._swappers.pop(key, None)
        if swapper is None:
            swapper = FaceSwapper(request.sources, config)
            if swapper.needs_references:
                swapper.set_references([store.get(index) for index in swapper.reference_frames])
        self._swappers[key] = swapper
        while len(self._swappers) > self.keep:
            self._swappers.popitem(last=False)[1].close()
        return swapper

    def close(self) -> None:
        with self._lock:
            for swapper in self._swappers.values():
                swapper.close()
            self._swappers.clear()


def tint(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` with ``TINT`` mixed in at half of ``mask`` (H×W in [0, 1]); pixels where it is 0 unchanged."""
    weight = 0.5 * mask[..., None]
    return np.round(image + weight * (TINT - image)).astype(np.uint8)


def draw(mode: str, before: np.ndarray, after: np.ndarray, faces: Faces) -> np.ndarray:
    """The picture of ``mode``: before|after side by side, face crops before/after, or the output alone."""
    if mode == "output":
        return after
    if mode == "side":
        gap = np.full((before.shape[0], 6, 3), 255, np.uint8)
        return np.hstack([before, gap, after])
    if len(faces) == 0:
        return after
    rows = []
    height, width = before.shape[:2]
    for x0, y0, x1, y1 in faces.boxes:
        margin = 0.25 * max(x1 - x0, y1 - y0)
        left, top = int(max(x0 - margin, 0)), int(max(y0 - margin, 0))
        right, bottom = int(min(x1 + margin, width)), int(min(y1 + margin, height))
        if right - left < 2 or bottom - top < 2:
            continue
        size = (max(1, round((right - left) * CROP_HEIGHT / (bottom - top))), CROP_HEIGHT)
        pair = [cv2.resize(image[top:bottom, left:right], size, interpolation=cv2.INTER_CUBIC)
                for image in (before, after)]
        rows.append(np.hstack([pair[0], np.full((CROP_HEIGHT, 4, 3), 255, np.uint8), pair[1]]))
    if not rows:
        return after
    widest = max(row.shape[1] for row in rows)
    padded = [np.pad(row, ((0, 4), (0, widest - row.shape[1]), (0, 0)), constant_values=255) for row in rows]
    return np.vstack(padded)
