"""ProcessReader and ProcessWriter: a decoder or an encoder in its own process, frames through shared memory.

The GPU engine runs several decoder/encoder pairs beside its own threads. As threads of one process they
share its GIL (PyAV holds it while it wraps and converts frames) with the device loop; as processes each
has its own interpreter, and frames cross in ``FrameSlots`` with only slot numbers pickled
(docs/benchmarks.md: 1.39x faster than threads at ultrafast, level at the default quality). Each child is
a fresh interpreter running this module (``steadyswap.children``).

Inside, the child runs the same ``VideoReader``/``VideoWriter`` as a single-process run, so decoding,
trimming, timestamps, audio, tags and every error message are theirs. A child's failure is raised in the
parent as the same exception; a child that dies is reported as such, never waited on forever.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import av
import numpy as np

from steadyswap import children
from steadyswap.errors import OutputError, SteadySwapError, UsageError
from steadyswap.io.probe import PathLike, probe
from steadyswap.io.reader import VideoReader
from steadyswap.io.shared_frames import FrameSlots
from steadyswap.io.writer import OutputSettings, VideoWriter, yuv420p_output
from steadyswap.types import VideoInfo, check_shape

SLOTS = 8
"""Frames in flight between a child and the parent, each way."""


def yuv420p_shape(info: VideoInfo) -> tuple[int, int]:
    """(rows, columns) of one planar yuv420p frame of ``info``'s size: Y, then U and V below it."""
    return info.height * 3 // 2, info.width


def planar_decoding(info: VideoInfo) -> bool:
    """Whether frames of ``info`` can travel as their own yuv420p planes (8-bit 4:2:0, upright, even size)."""
    return (info.pix_fmt in ("yuv420p", "yuvj420p") and info.rotation == 0
            and info.width % 2 == 0 and info.height % 2 == 0)


def _stop(process: subprocess.Popen, conn: Connection, slots: FrameSlots) -> None:
    children.stop(process, conn)
    slots.close()


class _PlanarReader(VideoReader):
    """A VideoReader whose items are (index, pts, yuv420p planes) instead of RGB Frames."""

    def _convert(self, index: int, frame: av.VideoFrame) -> Any:  # type: ignore[override]
        return index, frame.pts, frame.to_ndarray(format="yuv420p")


def _decode(conn: Connection, path: str, start: int, end: int, planar: bool, threads: int,
            slots_path: str, count: int, shape: tuple[int, ...]) -> None:
    """Child: decode frames [start, end) into the slots the parent hands back."""
    slots = FrameSlots(count, shape, slots_path)
    free = list(range(count))
    try:
        conn.send(("ready",))
        kind = _PlanarReader if planar else VideoReader
        with kind(path, start, end, queue_size=2, high_bit_depth=False, threads=threads) as reader:
            for item in reader:
                index, pts, image = item if planar else (item.index, item.pts, item.image)
                while not free or conn.poll():
                    slot = conn.recv()
                    if slot is None:
                        return
                    free.append(slot)
                slot = free.pop()
                slots[slot][...] = image
                conn.send(("frame", slot, index, pts))
        conn.send(("end",))
    except (EOFError, BrokenPipeError):
        return
    except BaseException as error:
        conn.send(("error", children.portable(error)))
    finally:
        slots.close()


class ProcessReader:
    """Iterate (index, pts, array) for frames [start, end) of a video decoded in a child process.

    Args:
        path: the video.
        start, end: the frame range (end exclusive; None: to the end).
        planar: deliver yuv420p planes ((H·3/2)×W, see ``planar_decoding``) instead of H×W×3 RGB.
        slots: frames decoded ahead.
        threads: decoder threads (0: FFmpeg's choice, one per core).

    Each array is a view into shared memory, valid until the next frame is asked for: copy what you keep.

    Raises:
        MediaDecodeError, InputNotFoundError, UsageError: as ``VideoReader`` (from the child, on iteration).
    """

    def __init__(self, path: PathLike, start: int | None = None, end: int | None = None, planar: bool = False,
                 slots: int = SLOTS, threads: int = 0) -> None:
        self.info = probe(path)
        if planar and not planar_decoding(self.info):
            raise UsageError(f"{path}: {self.info.pix_fmt} frames cannot be delivered as yuv420p planes")
        self.start = start or 0
        self.end = self.info.frame_count if end is None else min(end, self.info.frame_count)
        shape = yuv420p_shape(self.info) if planar else (self.info.height, self.info.width, 3)
        self._slots = FrameSlots(slots, shape)
        self._process, self._conn = children.start(__name__, "decode", self.info.path, self.start, self.end, planar,
                                                   threads, self._slots.path, slots, shape)
        self._closed = False

    def __iter__(self) -> Iterator[tuple[int, int | None, np.ndarray]]:
        held: int | None = None
        try:
            children.receive(self._conn, self._process, "decoder")  # "ready": the child has mapped the slots
            self._slots.unlink()
            while True:
                if held is not None:
                    try:
                        self._conn.send(held)
                    except (BrokenPipeError, OSError):
                        pass  # the child has sent its last frame and left; a death shows in _receive
                    held = None
                message = children.receive(self._conn, self._process, "decoder")
                if message[0] == "end":
                    return
                _, held, index, pts = message
                yield index, pts, self._slots[held]
        finally:
            self.close()

    def close(self) -> None:
        """Stop the child and release the shared frames; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            self._conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        _stop(self._process, self._conn, self._slots)

    def __enter__(self) -> ProcessReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _encode(conn: Connection, path: str, info: VideoInfo, options: dict[str, Any],
            slots_path: str, count: int, shape: tuple[int, ...]) -> None:
    """Child: a VideoWriter fed from the slots; answers "free" per frame taken and "closed" at the end."""
    slots = FrameSlots(count, shape, slots_path)
    writer: VideoWriter | None = None
    try:
        writer = VideoWriter(path, info, queue_size=2, **options)
        conn.send(("ready", writer.pix_fmt, writer.size))
        while True:
            message = conn.recv()
            if message[0] == "frame":
                _, slot, index, pts = message
                data = slots[slot].copy()
                conn.send(("free", slot))
                writer.write_yuv420p(index, pts, data)
            else:
                if message[0] == "close":
                    writer.close()
                else:
                    writer.abort()
                conn.send(("closed",))
                return
    except (EOFError, BrokenPipeError):
        if writer is not None:
            writer.abort()
    except BaseException as error:
        if writer is not None:
            writer.abort()
        conn.send(("error", children.portable(error)))
    finally:
        slots.close()


class ProcessWriter:
    """A ``VideoWriter`` in a child process, fed yuv420p frames (the GPU engine's output).

    Args:
        path, info: as ``VideoWriter``.
        slots: frames queued ahead of the encoder.
        **options: the rest of ``VideoWriter``'s arguments (settings, audio_source, trim, threads).

    The output must be 8-bit 4:2:0 taken at the source's even size (``VideoWriter.write_yuv420p``; it may be
    scaled after); a writer that would choose another format fails with UsageError at construction.

    Raises:
        UsageError, OutputError: as ``VideoWriter`` (construction errors at construction, encoding errors
            from ``write_yuv420p``/``close``).
    """

    def __init__(self, path: PathLike, info: VideoInfo, slots: int = SLOTS, **options: Any) -> None:
        self.path, self.info = Path(path), info
        settings = options.get("settings", OutputSettings())
        if not yuv420p_output(settings, info):
            raise UsageError(f"{self.path}: {settings.encoder} would not write {info.pix_fmt} at "
                             f"{info.width}x{info.height} as 8-bit 4:2:0; a process writer takes yuv420p at the "
                             "source's size only")
        self.pix_fmt, self.takes_yuv420p = "yuv420p", True
        shape = yuv420p_shape(info)
        self._slots = FrameSlots(slots, shape)
        self._free = list(range(slots))
        self._process, self._conn = children.start(__name__, "encode", str(self.path), info, options, self._slots.path, slots, shape)
        self._closed = False
        self._ready = False

    def _await_ready(self) -> None:
        """Wait for the child's VideoWriter (its construction errors are raised here), then unlink the slots'
        name. Deferred to the first write so that several writers start side by side."""
        if not self._ready:
            self._expect("ready")
            self._ready = True
            self._slots.unlink()

    def write_yuv420p(self, index: int, pts: int | None, data: np.ndarray) -> None:
        """Queue one planar yuv420p frame ((H·3/2)×W uint8); blocks while every slot is queued."""
        if self._closed:
            raise OutputError(f"{self.path}: write after close")
        check_shape("yuv420p data", data, self._slots.shape, np.uint8)
        self._await_ready()
        while not self._free:
            self._free.append(self._expect("free")[1])
        slot = self._free.pop()
        self._slots[slot][...] = data
        try:
            self._conn.send(("frame", slot, index, pts))
        except (BrokenPipeError, OSError):
            self._expect()  # reports how the child ended

    def close(self) -> None:
        """Flush the encoder and finish the file; raise what the child raised."""
        self._finish("close")

    def abort(self) -> None:
        """Stop without flushing (the caller deletes the file); never raises the child's errors."""
        try:
            self._finish("abort")
        except SteadySwapError:
            pass

    def _finish(self, how: str) -> None:
        if self._closed:
            return
        try:
            self._await_ready()
            self._closed = True
            self._conn.send((how,))
            while self._expect("free", "closed")[0] != "closed":
                pass
        except (BrokenPipeError, OSError) as error:
            raise OutputError(f"{self.path}: the encoder process stopped ({error})") from error
        finally:
            if not self._conn.closed:
                _stop(self._process, self._conn, self._slots)

    def _expect(self, *kinds: str) -> tuple[Any, ...]:
        """The child's next message, one of ``kinds``; on its failure or death, the child is stopped."""
        try:
            message = children.receive(self._conn, self._process, "encoder")
            if message[0] not in kinds:
                raise OutputError(f"{self.path}: unexpected message from the encoder process: {message[0]}")
        except BaseException:
            self._closed = True
            if not self._conn.closed:
                _stop(self._process, self._conn, self._slots)
            raise
        return message

    def __enter__(self) -> ProcessWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


if __name__ == "__main__":
    _role, _connection, _setup = children.child_connection()
    {"decode": _decode, "encode": _encode}[_role](_connection, *_setup)
