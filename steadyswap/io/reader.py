"""VideoReader: decode on its own thread into a bounded queue and yield upright RGB Frames.

A slow consumer stalls decoding (the queue is bounded), so memory never grows with the video.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain

import av
import numpy as np

from steadyswap.errors import MediaDecodeError, SteadySwapError, UsageError
from steadyswap.io.probe import PathLike, open_input, probe
from steadyswap.threads import drain, put_unless_stopped
from steadyswap.types import Frame, check_shape

SEEK_AFTER = 120
"""A trim starting at this frame or later seeks to the keyframe before it instead of decoding from the start."""
MAX_BAD_PACKETS = 32
"""Consecutive undecodable video packets skipped before the reader gives up."""
SHORT_TOLERANCE = 2
"""Frames (beyond skipped bad packets) a stream may end short of the container's count before it counts as
truncated; edit lists can hide a frame or two."""
_REORDER_MARGIN = 64
"""Packets scanned past ``start`` so that sorting their pts finds frame ``start`` despite B-frame reordering."""
_END = object()


@dataclass
class DeepFrame(Frame):
    """A Frame of a source deeper than 8 bits that also carries the full-precision picture.

    Attributes:
        deep: H×W×3 uint16 RGB scaled to 0..65535 (rgb48), upright like ``image``;
            ``image`` is ``deep >> 8``. ``VideoWriter`` keeps ``deep`` at every pixel where ``image``
            still equals ``deep >> 8`` and takes ``image`` elsewhere, so a stage that edits ``image``
            (in place, or with ``dataclasses.replace(frame, image=new)``) keeps 10-bit detail
            everywhere it did not paint.
    """

    deep: np.ndarray | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.deep is not None:
            check_shape("DeepFrame.deep", self.deep, self.image.shape, np.uint16)


class VideoReader:
    """Iterate the frames of a video as ``Frame(index, pts, image)``, in order.

    Args:
        path: the video.
        start: first frame index to yield (trim start), default 0.
        end: frame index to stop before (trim end, exclusive), default the frame count.
        queue_size: decoded frames buffered ahead of the consumer.
        high_bit_depth: for sources deeper than 8 bits, yield ``DeepFrame`` (image plus rgb48 ``deep``)
            so that ``VideoWriter`` can write 10-bit output; no effect on 8-bit sources.
        threads: decoder threads; 0 lets FFmpeg choose (one per core).

    Images are H×W×3 uint8 RGB with the display matrix applied (a phone clip tagged "rotate 90"
    yields portrait frames); ``pts`` is in ``info.time_base``. Use as a context manager so the
    decode thread stops when the consumer leaves early.

    Raises:
        InputNotFoundError, MediaDecodeError: from ``probe``; MediaDecodeError also during iteration
            when more than ``MAX_BAD_PACKETS`` consecutive packets fail to decode.
        UsageError: ``start``/``end`` out of order.
    """

    def __init__(
        self,
        path: PathLike,
        start: int | None = None,
        end: int | None = None,
        queue_size: int = 8,
        high_bit_depth: bool = True,
        threads: int = 0,
    ) -> None:
        self.info = probe(path)
        self.threads = threads
        if start is not None and start < 0:
            raise UsageError(f"trim start {start} must be 0 or more")
        if end is not None and start is not None and end <= start:
            raise UsageError(f"trim end {end} must be greater than trim start {start}")
        self.start = start or 0
        self.end = self.info.frame_count if end is None else min(end, self.info.frame_count)
        self._deep = high_bit_depth and self.info.bit_depth > 8
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, queue_size))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._finished = False
        self._skipped = 0

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def __enter__(self) -> VideoReader:
        self._launch()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        """Yield the frames; abandoning the iteration early stops the decode thread too."""
        self._launch()
        try:
            while not self._finished:
                item = self._queue.get()
                if item is _END:
                    self._finished = True
                elif isinstance(item, BaseException):
                    self._finished = True
                    raise item
                else:
                    yield item  # type: ignore[misc]
        finally:
            if not self._finished:
                self.close()

    def close(self) -> None:
        """Stop the decode thread and release the file; safe to call twice."""
        self._stop.set()
        while self._thread is not None and self._thread.is_alive():
            self._drain()
            self._thread.join(timeout=0.05)
        self._drain()
        self._finished = True

    def _launch(self) -> None:
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, name="steadyswap-decode", daemon=True)
            self._thread.start()

    def _drain(self) -> None:
        drain(self._queue)

    def _put(self, item: object) -> bool:
        """Queue ``item``, waiting while the queue is full; False if the reader was closed meanwhile."""
        return put_unless_stopped(self._queue, item, self._stop)

    def _run(self) -> None:
        index, delivered = self.start, 0
        try:
            with open_input(self.info.path) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                if self.threads:
                    stream.codec_context.thread_count = self.threads
                for index, frame in self._indexed(container, stream):
                    if index >= self.end or not self._put(self._convert(index, frame)):
                        break
                    delivered += 1
                else:
                    if delivered + self._skipped < len(self) - SHORT_TOLERANCE:
                        raise MediaDecodeError(
                            f"{self.info.path}: the video stops after frame {self.start + delivered}"
                            f" of {self.info.frame_count}; the file is truncated or corrupt"
                        )
        except SteadySwapError as e:
            self._put(e)
        except (av.error.FFmpegError, OSError) as e:
            self._put(MediaDecodeError(f"{self.info.path}: decoding stopped near frame {index} ({e})"))
        except Exception as e:  # a bug: hand it to the consumer rather than dying silently
            self._put(e)
        self._put(_END)

    def _indexed(
        self, container: av.container.InputContainer, stream: av.video.VideoStream
    ) -> Iterator[tuple[int, av.VideoFrame]]:
        """Yield (index, frame) from ``start`` on, seeking to the keyframe before a large ``start``."""
        target = self._start_pts(container, stream) if self.start >= SEEK_AFTER else None
        if target is not None:
            container.seek(target, stream=stream)
            frames = self._decoded(container, stream)
            for frame in frames:
                if frame.pts is None or frame.pts > target:
                    break  # the seek overshot (no usable index): decode from the start instead
                if frame.pts == target:
                    yield from enumerate(chain([frame], frames), self.start)
                    return
            container.seek(0)
        for index, frame in enumerate(self._decoded(container, stream)):
            if index >= self.start:
                yield index, frame

    def _start_pts(self, container: av.container.InputContainer, stream: av.video.VideoStream) -> int | None:
        """The pts of frame ``start``, found by sorting packet pts (demuxing only, no decoding)."""
        stamps: list[int] = []
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None:
                return None
            stamps.append(packet.pts)
            if len(stamps) >= self.start + _REORDER_MARGIN:
                break
        stamps.sort()
        return stamps[self.start] if len(stamps) > self.start else None

    def _decoded(self, container: av.container.InputContainer, stream: av.video.VideoStream) -> Iterator[av.VideoFrame]:
        """Decode ``stream``, skipping up to MAX_BAD_PACKETS consecutive packets that fail."""
        bad = 0
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError as e:
                bad += 1
                self._skipped += 1
                if bad > MAX_BAD_PACKETS:
                    raise MediaDecodeError(
                        f"{self.info.path}: {bad} consecutive video packets failed to decode"
                        f" near pts {packet.pts} ({e.strerror or e}); the file is corrupt"
                    ) from e
                continue
            if frames:
                bad = 0
            yield from frames

    def _convert(self, index: int, frame: av.VideoFrame) -> Frame:
        turns = -self.info.rotation // 90
        if self._deep:
            deep = np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb48le"), turns))
            return DeepFrame(index, frame.pts, (deep >> 8).astype(np.uint8), deep)
        image = np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24"), turns))
        return Frame(index, frame.pts, image)
