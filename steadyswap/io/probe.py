"""What a media file is: image or video, and the stream facts of a video (``VideoInfo``).

Everything is decided from the content with PyAV/OpenCV, never from the file extension alone.
"""

from __future__ import annotations

import hashlib
import os
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import cv2

from steadyswap.errors import InputNotFoundError, MediaDecodeError
from steadyswap.types import AudioStreamInfo, VideoInfo

MediaKind = Literal["image", "video"]
PathLike = str | os.PathLike[str]

# FFmpeg's "unspecified" codes: colour fields holding them are reported as None.
_UNSPECIFIED = {"color_primaries": 2, "color_trc": 2, "colorspace": 2, "color_range": 0}
# Demuxers that read a single still picture rather than a video.
_IMAGE_DEMUXERS = ("image2", "image2pipe")


def check_input(path: PathLike) -> Path:
    """Return ``path`` as a Path; raise InputNotFoundError if missing, MediaDecodeError if a folder or empty."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputNotFoundError(f"{p}: no such file")
    if not p.is_file():
        raise MediaDecodeError(f"{p}: not a file")
    if p.stat().st_size == 0:
        raise MediaDecodeError(f"{p}: empty file (0 bytes)")
    return p


def open_input(path: PathLike) -> av.container.InputContainer:
    """Open ``path`` with PyAV, turning FFmpeg errors into MediaDecodeError with a one-line message."""
    p = check_input(path)
    try:
        return av.open(str(p), metadata_errors="replace")
    except av.error.FFmpegError as e:
        raise MediaDecodeError(f"{p}: not a readable image or video ({_reason(e)})") from e


def media_kind(path: PathLike) -> MediaKind:
    """Tell an image from a video by its content.

    Raises:
        InputNotFoundError: the path does not exist.
        MediaDecodeError: not an image or video, empty, or truncated with no decodable frame.
    """
    p = check_input(path)
    if cv2.haveImageReader(str(p)):
        if cv2.imread(str(p), cv2.IMREAD_REDUCED_COLOR_8) is None:
            raise MediaDecodeError(f"{p}: image is truncated or corrupt")
        return "image"
    with open_input(p) as container:
        if not container.streams.video:
            raise MediaDecodeError(f"{p}: no video stream")
        stream = container.streams.video[0]
        first_frame(container, stream, p)
        return "image" if is_still_image(container) else "video"


def is_still_image(container: av.container.InputContainer) -> bool:
    """Whether PyAV opened ``container`` with a single-picture demuxer (png_pipe, image2...)."""
    name = container.format.name
    return name in _IMAGE_DEMUXERS or name.endswith("_pipe")


def first_frame(container: av.container.InputContainer, stream: av.video.VideoStream, path: Path) -> av.VideoFrame:
    """Decode the first frame of ``stream`` (raising MediaDecodeError when there is none)."""
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as e:
        raise MediaDecodeError(f"{path}: no decodable video frame ({_reason(e)})") from e
    raise MediaDecodeError(f"{path}: no decodable video frame (truncated or empty stream)")


def upright_rotation(frame: av.VideoFrame) -> int:
    """Clockwise degrees (0, 90, 180, 270) that turn ``frame`` upright, from its display matrix."""
    return round(-frame.rotation / 90) % 4 * 90


def bit_depth(pix_fmt: str) -> int:
    """Bits per sample of a pixel format (8 for yuv420p, 10 for yuv420p10le)."""
    return max(c.bits for c in av.VideoFormat(pix_fmt).components)


def probe(path: PathLike) -> VideoInfo:
    """Read every stream-level fact of a video.

    ``width``/``height`` are those of the upright picture (swapped when the display matrix
    rotates by 90 or 270 degrees); ``rotation`` is the clockwise angle the reader applies.
    ``frame_count`` is the container's count, or the number of video packets when it has none.

    Raises:
        InputNotFoundError: the path does not exist.
        MediaDecodeError: no video stream or no decodable frame.
    """
    p = check_input(path)
    with open_input(p) as container:
        if not container.streams.video:
            raise MediaDecodeError(f"{p}: no video stream")
        stream = container.streams.video[0]
        frame = first_frame(container, stream, p)
        time_base = stream.time_base or Fraction(1, 90000)
        frame_count = stream.frames
        duration = float(stream.duration * time_base) if stream.duration else 0.0
        if frame_count <= 0 or duration <= 0:
            counted, span = _scan_packets(container, stream, p)
            frame_count = frame_count if frame_count > 0 else counted
            duration = duration if duration > 0 else float(span * time_base)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate and duration > 0:
            rate = Fraction(frame_count / duration).limit_denominator(1001)
        if duration <= 0 and rate:
            duration = float(frame_count / rate)
        rotation = upright_rotation(frame)
        width, height = (frame.height, frame.width) if rotation in (90, 270) else (frame.width, frame.height)
        pix_fmt = frame.format.name
        return VideoInfo(
            path=str(p),
            width=width,
            height=height,
            frame_count=frame_count,
            average_rate=Fraction(rate or 0),
            time_base=Fraction(time_base),
            duration=duration,
            codec=stream.codec_context.name,
            pix_fmt=pix_fmt,
            bit_depth=bit_depth(pix_fmt),
            rotation=rotation,
            color_primaries=_colour(frame, "color_primaries"),
            color_trc=_colour(frame, "color_trc"),
            colorspace=_colour(frame, "colorspace"),
            color_range=_colour(frame, "color_range"),
            audio=[
                AudioStreamInfo(
                    index=a.index,
                    codec=a.codec_context.name,
                    sample_rate=a.codec_context.sample_rate,
                    channels=a.codec_context.channels,
                    language=a.language,
                )
                for a in container.streams.audio
            ],
        )


def packet_stamps(path: PathLike) -> list[tuple[int, bool]]:
    """(pts, is keyframe) of every video packet of the first video stream, in display order (demuxing only).

    Raises:
        InputNotFoundError, MediaDecodeError: the file cannot be read.
    """
    stamps: list[tuple[int, bool]] = []
    with open_input(path) as container:
        try:
            for packet in container.demux(container.streams.video[0]):
                if packet.size and packet.pts is not None:
                    stamps.append((packet.pts, bool(packet.is_keyframe)))
        except av.error.FFmpegError as e:
            raise MediaDecodeError(f"{path}: cannot read video packets ({_reason(e)})") from e
    return sorted(stamps)


def _scan_packets(container: av.container.InputContainer, stream: av.video.VideoStream, path: Path) -> tuple[int, int]:
    """Count the video packets and measure their pts span (for containers without a frame count)."""
    container.seek(0)
    count, low, high = 0, None, None
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None:
                continue
            count += 1
            end = packet.pts + (packet.duration or 0)
            low = packet.pts if low is None else min(low, packet.pts)
            high = end if high is None else max(high, end)
    except av.error.FFmpegError as e:
        raise MediaDecodeError(f"{path}: cannot read video packets ({_reason(e)})") from e
    return count, (high - low) if count else 0


def _colour(frame: av.VideoFrame, name: str) -> int | None:
    value = int(getattr(frame, name))
    return None if value == _UNSPECIFIED[name] else value


def _reason(error: av.error.FFmpegError) -> str:
    """FFmpeg's message without the file name PyAV appends."""
    return error.strerror or str(error)


def file_sha256(path: PathLike) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
