"""Where live frames go: a video file (atomic), a network stream (PyAV), a window (OpenCV) or a virtual camera.

Every output is opened on the first frame (a camera's size is known only then) and takes frames with their
presentation time in the capture's time base. ``send`` returns False when the viewer closed the window.
"""

from __future__ import annotations

import os
import sys
from abc import ABC, abstractmethod
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from steadyswap.errors import OutputError, UsageError
from steadyswap.io.atomic import Seal, atomic_output
from steadyswap.io.writer import OutputSettings, VideoWriter
from steadyswap.types import Frame, VideoInfo

STREAM_FORMATS = {"rtmp": "flv", "rtmps": "flv", "udp": "mpegts", "srt": "mpegts", "tcp": "mpegts"}
"""Network outputs by URL scheme, and the muxer each is sent in."""
WINDOW, VIRTUAL_CAMERA = "window", "virtual-camera"


class LiveOutput(ABC):
    """One destination of live frames."""

    @abstractmethod
    def send(self, image: np.ndarray, pts: int) -> bool:
        """Show or write one H×W×3 uint8 RGB frame; False when the viewer asked to stop."""

    @abstractmethod
    def close(self) -> None:
        """Finish: flush encoders, complete the file."""

    def abort(self) -> None:
        """Stop after an error, leaving no partial file (outputs with nothing to undo just close)."""
        self.close()


def live_info(width: int, height: int, fps: float, time_base: Fraction, source_name: str) -> VideoInfo:
    """The ``VideoInfo`` of a live picture of ``width``×``height`` at ``fps``, stamped in ``time_base``."""
    return VideoInfo(source_name, width, height, 0, Fraction(fps).limit_denominator(1001), time_base, 0.0, "live",
                     "yuv420p")


class FileOutput(LiveOutput):
    """A video file written through ``VideoWriter`` into ``atomic_output``: it appears when closed, complete, and
    an error removes it. Frames keep their capture timestamps, so dropped frames leave gaps and the file plays
    at the speed it was recorded. No audio."""

    def __init__(self, path: Path, inputs: list[Path], info: VideoInfo, settings: OutputSettings,
                 seal: Seal | None = None) -> None:
        self.path = path
        self._stack = ExitStack()
        temporary = self._stack.enter_context(atomic_output(path, inputs=inputs, seal=seal))
        try:
            self._writer = VideoWriter(temporary, info, settings, audio_source=None)
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise
        self._count = 0

    def send(self, image: np.ndarray, pts: int) -> bool:
        self._writer.write(Frame(self._count, pts, image))
        self._count += 1
        return True

    def close(self) -> None:
        try:
            self._writer.close()
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise
        self._stack.close()

    def abort(self) -> None:
        self._writer.abort()
        stopped = OutputError(f"{self.path}: live output stopped")
        self._stack.__exit__(OutputError, stopped, None)  # atomic_output removes the temporary file


class StreamOutput(LiveOutput):
    """H.264 for low latency (x264 ``zerolatency``: no B-frames, no lookahead) sent to ``url`` in ``fmt`` (flv for
    rtmp, mpegts for udp), one frame encoded and sent as it comes; odd sizes are padded by an edge pixel."""

    def __init__(self, url: str, fmt: str, width: int, height: int, fps: float, time_base: Fraction,
                 crf: int, preset: str) -> None:
        self.url = url
        try:
            self._container = av.open(url, "w", format=fmt, timeout=(10.0, 10.0))
        except (av.error.FFmpegError, OSError) as error:
            raise OutputError(f"{url}: cannot be opened for sending ({_reason(error)})") from None
        self._pad = (width % 2, height % 2)
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._container.add_stream("libx264", rate=rate, options={
            "preset": preset, "tune": "zerolatency", "crf": str(crf), "g": str(max(1, round(fps * 2)))})
        self._stream.width, self._stream.height = width + self._pad[0], height + self._pad[1]
        self._stream.pix_fmt = "yuv420p"
        self._stream.codec_context.time_base = time_base
        self._time_base = time_base
        self._last = -1

    def send(self, image: np.ndarray, pts: int) -> bool:
        if self._pad != (0, 0):
            image = np.pad(image, ((0, self._pad[1]), (0, self._pad[0]), (0, 0)), mode="edge")
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = max(pts, self._last + 1), self._time_base
        self._last = frame.pts
        self._mux(self._stream.encode(frame))
        return True

    def _mux(self, packets: list[av.Packet]) -> None:
        try:
            self._container.mux(packets)
        except (av.error.FFmpegError, OSError) as error:
            raise OutputError(f"{self.url}: sending failed ({_reason(error)})") from None

    def close(self) -> None:
        try:
            self._mux(self._stream.encode(None))
        finally:
            self._container.close()


class WindowOutput(LiveOutput):
    """An OpenCV window; q, Esc or closing the window ends the stream.

    Raises:
        OutputError: no display (``DISPLAY``/``WAYLAND_DISPLAY`` unset on Linux), or an OpenCV built without
            windows.
    """

    TITLE = "steadyswap live"

    def __init__(self) -> None:
        if sys.platform.startswith(("linux", "freebsd")) and not (os.environ.get("DISPLAY")
                                                                  or os.environ.get("WAYLAND_DISPLAY")):
            raise OutputError("--output window: no display here (DISPLAY is not set); "
                              "send to a file, a URL or virtual-camera instead")
        try:
            cv2.namedWindow(self.TITLE, cv2.WINDOW_NORMAL)
        except cv2.error as error:
            raise OutputError(f"--output window: OpenCV cannot open a window here ({_reason(error)})") from None

    def send(self, image: np.ndarray, pts: int) -> bool:
        cv2.imshow(self.TITLE, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27) and cv2.getWindowProperty(self.TITLE, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        cv2.destroyWindow(self.TITLE)
        cv2.waitKey(1)


class VirtualCameraOutput(LiveOutput):
    """A virtual camera that video-call and streaming apps can pick, through pyvirtualcam (the ``live`` extra;
    on Linux it needs the v4l2loopback module, on Windows and macOS OBS's virtual camera).

    Raises:
        UsageError: pyvirtualcam is not installed. OutputError: no virtual camera device is available.
    """

    def __init__(self, width: int, height: int, fps: float) -> None:
        try:
            import pyvirtualcam
        except ImportError:
            raise UsageError("--output virtual-camera needs pyvirtualcam: pip install 'steadyswap[live]'") from None
        try:
            self._camera = pyvirtualcam.Camera(width, height, fps, fmt=pyvirtualcam.PixelFormat.RGB)
        except Exception as error:  # pyvirtualcam reports a missing backend as RuntimeError
            raise OutputError(f"--output virtual-camera: {_reason(error)}") from None

    def send(self, image: np.ndarray, pts: int) -> bool:
        self._camera.send(image)
        return True

    def close(self) -> None:
        self._camera.close()


def output_kind(target: str) -> str:
    """What ``--output`` names: "window", "virtual-camera", "stream" (a URL) or "file".

    Raises:
        UsageError: a URL of a scheme we cannot send to.

    >>> [output_kind(t) for t in ("window", "virtual-camera", "udp://127.0.0.1:5000", "out.mp4")]
    ['window', 'virtual-camera', 'stream', 'file']
    """
    if target in (WINDOW, VIRTUAL_CAMERA):
        return target
    if "://" in target:
        scheme = target.split("://", 1)[0].lower()
        if scheme not in STREAM_FORMATS:
            raise UsageError(f"--output {target}: cannot send to {scheme}:// (use one of "
                             f"{', '.join(s + '://' for s in STREAM_FORMATS)})")
        return "stream"
    return "file"


def _reason(error: BaseException) -> str:
    return " ".join(str(getattr(error, "strerror", None) or error).split())
