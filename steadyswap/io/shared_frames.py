"""FrameSlots: a ring of same-shape uint8 frames in shared memory, for handing frames to and from child processes.

Decoders and encoders run in their own processes (``io.codec_processes``) so that they neither share the
parent's GIL nor pickle megabytes per frame: a frame is written into a slot and only the slot number
travels through a pipe. The slots live in a memory-mapped file under /dev/shm (the system's temporary
folder where there is none), which any process can map by its path. Once every process has mapped it,
the owner unlinks the path (``unlink``): the memory stays until the last mapping goes, and nothing is left
behind even when a process is killed.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from pathlib import Path

import numpy as np


def _shared_folder() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


class FrameSlots:
    """``count`` uint8 arrays of ``shape`` in one shared mapping.

    Args:
        count: slots in the ring.
        shape: shape of one frame, e.g. (H, W, 3) or yuv420p's (H·3/2, W).
        path: an existing mapping to attach to (in a child process); None creates one (the owner deletes it).
    """

    def __init__(self, count: int, shape: tuple[int, ...], path: str | None = None) -> None:
        self.count, self.shape = count, tuple(shape)
        self.frame_bytes = int(np.prod(self.shape))
        size = max(1, count * self.frame_bytes)
        self.owner = path is None
        if path is None:
            handle, path = tempfile.mkstemp(prefix="steadyswap-frames-", dir=_shared_folder())
            try:
                os.ftruncate(handle, size)
                self._map = mmap.mmap(handle, size)
            finally:
                os.close(handle)
        else:
            with open(path, "r+b") as handle:
                self._map = mmap.mmap(handle.fileno(), size)
        self.path = path
        self._array = np.frombuffer(self._map, dtype=np.uint8, count=count * self.frame_bytes).reshape(
            (count, *self.shape))

    def __getitem__(self, slot: int) -> np.ndarray:
        """The frame in ``slot`` (a view into the shared mapping)."""
        return self._array[slot]

    def unlink(self) -> None:
        """Remove the backing file's name (owner only); processes that mapped it keep their mapping."""
        if self.owner:
            Path(self.path).unlink(missing_ok=True)

    def close(self) -> None:
        """Unmap; the owner also deletes the backing file. Views handed out must no longer be used."""
        self._array = np.empty((0, *self.shape), np.uint8)
        try:
            self._map.close()
        except BufferError:  # a caller still holds a view: leave the mapping to the garbage collector
            pass
        self.unlink()
