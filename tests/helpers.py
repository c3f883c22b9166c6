"""Small shared helpers for tests: decode a few frames of a clip, load a photo, one analyser per session, a
truncated clip, a long clip."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import av
import cv2
import numpy as np

from tests.conftest import media_path


def decode(path: Path, limit: int | None = None) -> list[np.ndarray]:
    """RGB frames of a clip (the first ``limit`` of them)."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if limit is not None and len(frames) >= limit:
                break
    return frames


def photo(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@lru_cache(maxsize=1)
def still_analyzer():
    from steadyswap.analysis.mediapipe_mesh import MediaPipeAnalyzer

    return MediaPipeAnalyzer(max_faces=8)


def faststart_truncated(tmp: Path) -> Path:
    """d0 remuxed with its index first, then cut to 60%: it opens, but its frames stop at 31 of 78."""
    whole = tmp / "faststart.mp4"
    with av.open(str(media_path("video/liveportrait_d0_crf20.mp4"))) as src, \
            av.open(str(whole), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    data = whole.read_bytes()
    cut = tmp / "truncated.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    return cut


def looped_clip(output: Path, relative: str, times: int) -> Path:
    """The video of a test clip played ``times`` times in a row, packets copied (no audio): a long target
    made in a moment, for runs that must still be going when the test acts."""
    with av.open(str(media_path(relative))) as src, av.open(str(output), "w") as out:
        video = src.streams.video[0]
        stream = out.add_stream_from_template(video)
        packets = [p for p in src.demux(video) if p.size]
        stamps = sorted(p.pts for p in packets)
        span = stamps[-1] + stamps[1] - 2 * stamps[0]  # one frame more than first to last
        for turn in range(times):
            for packet in packets:
                copy = av.Packet(bytes(packet))
                copy.pts, copy.dts = packet.pts + turn * span, packet.dts + turn * span
                copy.is_keyframe, copy.time_base, copy.stream = packet.is_keyframe, packet.time_base, stream
                out.mux(copy)
    return output


def repeated_frames_clip(output: Path, relative: str = "video/liveportrait_d3_93f.mp4", count: int = 24,
                         repeat_at: int = 10, repeats: int = 8) -> tuple[Path, list[int]]:
    """The first ``count`` frames of a clip with frame ``repeat_at`` shown ``repeats`` more times, encoded with
    libx264 (crf 18): a held shot as real videos have it, the repeats equal up to codec noise.

    Returns:
        the clip and the indices (in it) of the repeated frames.
    """
    frames = decode(media_path(relative), count)
    order = list(range(repeat_at + 1)) + [repeat_at] * repeats + list(range(repeat_at + 1, count))
    with av.open(str(output), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "18"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for index in order:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frames[index], format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return output, list(range(repeat_at + 1, repeat_at + 1 + repeats))
