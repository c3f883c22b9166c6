"""Live frame sources: a camera (OpenCV), or a file, URL or capture device (PyAV), each frame stamped on arrival.

A capture yields ``Captured`` frames one by one, blocking until the next arrives, as a camera does. A local
file is played at its own frame rate (``realtime``), so it stands in for a camera: a consumer slower than the
file then drops frames exactly as it would drop a camera's.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from steadyswap.errors import InputError, InputNotFoundError, MediaDecodeError
from steadyswap.io.probe import check_input, upright_rotation

MILLISECONDS = Fraction(1, 1000)


@dataclass
class Captured:
    """One frame as it arrived: its place in the capture (dropped frames count too), its presentation time in
    the capture's ``time_base``, the H×W×3 uint8 RGB picture and the ``time.monotonic()`` of its arrival."""

    index: int
    pts: int
    image: np.ndarray
    at: float


class Capture(ABC):
    """A live source of frames. ``read`` blocks until the next frame and returns None at the end of the stream."""

    name: str
    """What to call the source in messages (a path, a URL, ``camera 0``)."""
    time_base: Fraction
    fps: float
    """The nominal frame rate (30 when the source does not say)."""
    size: tuple[int, int] | None = None
    """(width, height) of the frames to come, where the source says before the first one; else None."""

    @abstractmethod
    def read(self) -> Captured | None:
        """The next frame, or None when the source has ended."""

    @abstractmethod
    def close(self) -> None:
        """Release the device or file (safe to call twice)."""

    def __enter__(self) -> Capture:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CameraCapture(Capture):
    """A camera by number through OpenCV's ``VideoCapture`` (V4L2, AVFoundation, DirectShow/MSMF as the platform
    has), with its driver buffer cut to one frame so that what arrives is what the camera sees now.

    Raises:
        InputError: the camera cannot be opened (absent, busy, no permission).
    """

    def __init__(self, number: int, size: tuple[int, int] | None = None, fps: float | None = None) -> None:
        self.name = f"camera {number}"
        self.time_base = MILLISECONDS
        level = cv2.utils.logging.getLogLevel()
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # each backend tried would log why not
        try:
            self._device = cv2.VideoCapture(number)
        finally:
            cv2.utils.logging.setLogLevel(level)
        if not self._device.isOpened():
            self._device.release()
            raise InputError(f"{self.name}: cannot be opened (no such camera, or it is busy or not permitted)")
        self._device.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        if size is not None:
            self._device.set(cv2.CAP_PROP_FRAME_WIDTH, size[0])
            self._device.set(cv2.CAP_PROP_FRAME_HEIGHT, size[1])
        if fps is not None:
            self._device.set(cv2.CAP_PROP_FPS, fps)
        self.fps = fps or self._device.get(cv2.CAP_PROP_FPS) or 30.0
        width, height = (int(self._device.get(prop)) for prop in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT))
        self.size = (width, height) if width > 0 and height > 0 else None
        self._index = 0
        self._start: float | None = None

    def read(self) -> Captured | None:
        ok, bgr = self._device.read()
        if not ok:
            return None
        now = time.monotonic()
        if self._start is None:
            self._start = now
        captured = Captured(self._index, round((now - self._start) * 1000), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), now)
        self._index += 1
        return captured

    def close(self) -> None:
        self._device.release()


class StreamCapture(Capture):
    """A file, a URL (rtsp, rtmp, udp, http...) or a capture device through PyAV (``input_format`` v4l2,
    avfoundation, dshow...; ``size`` and ``fps`` go to the device as ``video_size`` and ``framerate``).

    Args:
        realtime: release frames at their timestamps, as a camera would (a local file only; a network
            stream or a device already arrives at its own pace).

    Raises:
        InputNotFoundError: a local file that does not exist. MediaDecodeError: not a video, or the stream
            cannot be opened.
    """

    def __init__(self, location: str, input_format: str | None = None, size: tuple[int, int] | None = None,
                 fps: float | None = None, realtime: bool = True) -> None:
        self.name = location
        local = input_format is None and "://" not in location
        if local:
            check_input(location)
        options = {"fflags": "nobuffer"} if not local else {}
        if size is not None:
            options["video_size"] = f"{size[0]}x{size[1]}"
        if fps is not None:
            options["framerate"] = f"{fps:g}"
        try:
            self._container = av.open(location, format=input_format, options=options, timeout=(10.0, 10.0))
        except FileNotFoundError:
            raise InputNotFoundError(f"{location}: no such file or device") from None
        except (av.error.FFmpegError, OSError) as error:
            raise MediaDecodeError(f"{location}: cannot be opened ({_reason(error)})") from None
        if not self._container.streams.video:
            self._container.close()
            raise MediaDecodeError(f"{location}: no video stream")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self.time_base = self._stream.time_base or MILLISECONDS
        rate = self._stream.average_rate or self._stream.guessed_rate
        self.fps = float(rate) if rate else 30.0
        context = self._stream.codec_context
        self.size = (context.width, context.height) if context.width and context.height else None
        self._frames = self._container.decode(self._stream)
        self._realtime = realtime and local
        self._clock: tuple[float, int] | None = None
        self._index = 0
        self._last_pts = -1

    def read(self) -> Captured | None:
        try:
            frame = next(self._frames, None)
        except (av.error.FFmpegError, OSError) as error:
            raise MediaDecodeError(f"{self.name}: decoding stopped at frame {self._index} ({_reason(error)})") from None
        if frame is None:
            return None
        pts = frame.pts if frame.pts is not None and frame.pts > self._last_pts else self._last_pts + 1
        self._last_pts = pts
        if self._realtime:
            self._wait_until(pts)
        image = frame.to_ndarray(format="rgb24")
        turns = -upright_rotation(frame) // 90
        if turns:
            image = np.ascontiguousarray(np.rot90(image, turns))
        captured = Captured(self._index, pts, image, time.monotonic())
        self._index += 1
        return captured

    def _wait_until(self, pts: int) -> None:
        """Sleep until the frame of ``pts`` is due on the clock started by the first frame."""
        now = time.monotonic()
        if self._clock is None:
            self._clock = (now, pts)
            return
        due = self._clock[0] + float((pts - self._clock[1]) * self.time_base)
        if due > now:
            time.sleep(due - now)

    def close(self) -> None:
        self._container.close()


def open_capture(camera: int | None = None, location: str | None = None, input_format: str | None = None,
                 size: tuple[int, int] | None = None, fps: float | None = None, realtime: bool = True) -> Capture:
    """A camera by number, else the file, URL or device at ``location`` (``input_format``: a PyAV demuxer)."""
    if location is None:
        return CameraCapture(camera or 0, size, fps)
    if input_format is None and "://" not in location:
        location = str(Path(location).expanduser())
    return StreamCapture(location, input_format, size, fps, realtime)


def _reason(error: BaseException) -> str:
    return " ".join(str(getattr(error, "strerror", None) or error).split())
