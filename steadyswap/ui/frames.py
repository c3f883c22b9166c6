"""FrameStore: a target's frames at preview size, decoded once in the background and kept as JPEG bytes.

The first ``prefetch`` frames are decoded in order on a thread as soon as the target is opened, so the
frame slider answers from memory; a frame past them is read with a seek and then kept too.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from steadyswap.errors import MediaDecodeError, SteadySwapError
from steadyswap.io import VideoReader, media_kind, probe, read_image

PREFETCH = 600
"""Frames decoded ahead from the start of a video (about 40 KB each at 640 px)."""
WAIT_AHEAD = 90
"""A frame at most this far past the decoder's position is waited for; a farther one is read with a seek."""


def fit(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` scaled down so that its longest side is at most ``size`` (never up)."""
    height, width = image.shape[:2]
    scale = size / max(height, width)
    if scale >= 1:
        return image
    return cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                      interpolation=cv2.INTER_AREA)


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """RGB uint8 → JPEG bytes."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return data.tobytes()


def encode_png(image: np.ndarray) -> bytes:
    """A grey H×W uint8 image → PNG bytes (lossless: the preview's mask mode)."""
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise ValueError("PNG encoding failed")
    return data.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@dataclass
class MediaInfo:
    """What the page needs to know of a target."""

    kind: str
    width: int
    height: int
    frames: int
    fps: float
    audio: int


class FrameStore:
    """Preview-size frames of one target (image or video).

    Args:
        path: the target, already checked by the PathGuard.
        preview_size: longest side of the stored frames.
        prefetch: frames decoded ahead from the start.

    Raises:
        InputNotFoundError, MediaDecodeError: the target cannot be read.
    """

    def __init__(self, path: Path, preview_size: int, prefetch: int = PREFETCH) -> None:
        self.path = path
        self.mtime = path.stat().st_mtime_ns
        self.preview_size = preview_size
        self._frames: dict[int, bytes] = {}
        self._decoded = 0
        self._ready = threading.Condition()
        self._error: SteadySwapError | None = None
        self._stop = threading.Event()
        if media_kind(path) == "image":
            image = read_image(path)
            self.info = MediaInfo("image", image.shape[1], image.shape[0], 1, 0.0, 0)
            self._frames[0] = encode_jpeg(fit(image, preview_size))
            self._prefetch_end = 1
            self._thread: threading.Thread | None = None
        else:
            video = probe(path)
            self.info = MediaInfo("video", video.width, video.height, video.frame_count, video.fps, len(video.audio))
            self._prefetch_end = min(prefetch, video.frame_count)
            self._thread = threading.Thread(target=self._decode, name="steadyswap-ui-frames", daemon=True)
            self._thread.start()

    @property
    def scale(self) -> float:
        """Preview pixels per target pixel."""
        return min(1.0, self.preview_size / max(self.info.width, self.info.height))

    def _decode(self) -> None:
        try:
            with VideoReader(self.path, 0, self._prefetch_end, high_bit_depth=False) as reader:
                for frame in reader:
                    if self._stop.is_set():
                        break
                    data = encode_jpeg(fit(frame.image, self.preview_size))
                    with self._ready:
                        self._frames[frame.index] = data
                        self._decoded = frame.index + 1
                        self._ready.notify_all()
        except SteadySwapError as error:  # handed to whoever waits for a frame
            self._error = error
        finally:
            with self._ready:
                self._thread = None
                self._ready.notify_all()

    def get(self, index: int) -> np.ndarray:
        """Frame ``index`` (clamped to the video) at preview size, RGB uint8."""
        index = min(max(index, 0), self.info.frames - 1)
        with self._ready:
            while (index not in self._frames and index < self._prefetch_end and self._thread is not None
                   and index - self._decoded <= WAIT_AHEAD):
                self._ready.wait(0.5)
            if index in self._frames:
                return decode_jpeg(self._frames[index])
            if self._error is not None:
                raise self._error
        with VideoReader(self.path, index, index + 1, high_bit_depth=False) as reader:
            frame = next(iter(reader), None)
        if frame is None:
            raise MediaDecodeError(f"{self.path}: frame {index} cannot be decoded")
        image = fit(frame.image, self.preview_size)
        with self._ready:
            self._frames[index] = encode_jpeg(image)
        return image

    def close(self) -> None:
        self._stop.set()


class FrameStores:
    """The few most recently used FrameStores, by path (reopened when the file changes)."""

    def __init__(self, preview_size: int, keep: int = 3) -> None:
        self.preview_size = preview_size
        self.keep = keep
        self._stores: OrderedDict[Path, FrameStore] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path) -> FrameStore:
        with self._lock:
            store = self._stores.pop(path, None)
            if store is None or store.mtime != path.stat().st_mtime_ns:
                if store is not None:
                    store.close()
                store = FrameStore(path, self.preview_size)
            self._stores[path] = store
            while len(self._stores) > self.keep:
                _, old = self._stores.popitem(last=False)
                old.close()
            return store

    def close(self) -> None:
        with self._lock:
            for store in self._stores.values():
                store.close()
            self._stores.clear()
