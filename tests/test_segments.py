"""Segments: planning at keyframes, running one segment with warm-up, joining by packet copy.

Runs on a generated clip with known keyframes, audio and an odd time base starting after 0; no models.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from steadyswap.config import RunConfig
from steadyswap.engine.segment_runner import run_segment
from steadyswap.io.probe import file_sha256
from steadyswap.errors import MediaDecodeError, OutputError, UsageError
from steadyswap.io import VideoReader, VideoWriter, probe
from steadyswap.io.segments import Segment, join, keyframe_indices, plan_segments
from steadyswap.io.writer import OutputSettings

FRAMES, GOP, START_PTS = 96, 24, 10214
LOSSLESS = OutputSettings(crf=0)
TIME_BASE, RATE = Fraction(1, 11988), Fraction(2997, 100)


def make_clip(path: Path) -> Path:
    """A 96-frame 64×48 H.264 clip, keyframe every 24 frames, pts from 10214 in 1/11988, AAC sine audio."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=RATE, options={"g": str(GOP), "keyint_min": str(GOP),
                                                             "sc_threshold": "0", "crf": "20"})
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        video.time_base = video.codec_context.time_base = TIME_BASE
        audio = out.add_stream("aac", rate=44100)
        audio.layout = "mono"
        step = round(1 / RATE / TIME_BASE)
        for i in range(FRAMES):
            image = np.zeros((48, 64, 3), np.uint8)
            image[:, :, 0] = (i * 5) % 256
            image[8:40, (i % 48):(i % 48) + 16] = 255
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = START_PTS + i * step, TIME_BASE
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        seconds = 4.0
        t = np.arange(int(44100 * seconds)) / 44100
        samples = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for offset in range(0, len(samples), 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, offset:offset + 1024], format="flt", layout="mono")
            frame.sample_rate, frame.pts = 44100, offset
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


def stream_facts(path: Path) -> tuple[list[int], list[tuple[int, bytes]]]:
    """Sorted video pts, and the audio packets (pts, bytes) in order."""
    with av.open(str(path)) as container:
        video = sorted(p.pts for p in container.demux(video=0) if p.size)
    with av.open(str(path)) as container:
        audio = [(p.pts, bytes(p)) for p in container.demux(audio=0) if p.size] if container.streams.audio else []
    return video, audio


def pictures(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@dataclass
class _Result:
    image: np.ndarray


class CountingSwapper:
    """Stands in for FaceSwapper: inverts frames, answering two frames late as a lookahead smoother does."""

    needs_references = False
    inputs: list[Path] = []

    def __init__(self) -> None:
        self.seen: list[np.ndarray] = []
        self.resets = 0
        self._answered = 0

    def reset_tracking(self) -> None:
        self.resets += 1

    def analyse(self, image: np.ndarray, index: int | None = None) -> list[np.ndarray]:
        return [image]

    def finish_analysis(self) -> list[np.ndarray]:
        return []

    def accept(self, image: np.ndarray) -> list[_Result]:
        return self.push(image)

    def push(self, image: np.ndarray, index: int | None = None) -> list[_Result]:
        self.seen.append(image)
        return self._answer(len(self.seen) - 2)

    def flush(self) -> list[_Result]:
        return self._answer(len(self.seen))

    def _answer(self, upto: int) -> list[_Result]:
        results = [_Result(255 - image) for image in self.seen[self._answered:upto]]
        self._answered = max(self._answered, upto)
        return results


CONFIG = RunConfig(output_video_quality=100, watermark=False)


def test_keyframes_are_found_in_display_order(clip: Path) -> None:
    assert keyframe_indices(clip) == [0, 24, 48, 72]


def test_plan_covers_the_range_once_and_warms_up_from_keyframes(clip: Path) -> None:
    segments = plan_segments(clip, 4, warmup_frames=6)
    assert segments[0] == Segment(str(clip), 0, segments[0].end, 0)
    assert [s.start for s in segments[1:]] == [s.end for s in segments[:-1]]
    assert segments[-1].end == FRAMES and len(segments) == 4
    assert [(s.warmup, s.start) for s in segments[1:]] == [(24, 30), (48, 54), (72, 78)]
    ahead = plan_segments(clip, 4, warmup_frames=6, lookahead_frames=5)
    assert [s.decode_end - s.end for s in ahead] == [5, 5, 5, 0]


def test_plan_without_nearby_keyframes_warms_up_just_before() -> None:
    segments = plan_segments("x.mp4", frames_per_segment=100, warmup_frames=10, end=300, keyframes=[0])
    assert [(s.warmup, s.start, s.end) for s in segments] == [(0, 0, 100), (90, 100, 200), (190, 200, 300)]


def test_plan_of_a_trimmed_range_and_bad_arguments() -> None:
    segments = plan_segments("x.mp4", 2, warmup_frames=30, start=50, end=90, keyframes=[])
    assert [(s.warmup, s.start, s.end) for s in segments] == [(50, 50, 70), (50, 70, 90)]
    assert len(plan_segments("x.mp4", 50, end=3, keyframes=[])) == 3
    with pytest.raises(UsageError):
        plan_segments("x.mp4", 2, 10, end=100)
    with pytest.raises(UsageError):
        plan_segments("x.mp4", 2, end=0, keyframes=[])


def test_run_segment_warms_up_then_writes_only_its_frames(clip: Path, tmp_path: Path) -> None:
    swapper = CountingSwapper()
    segment = Segment(str(clip), 30, 50, 24, lookahead_end=53)
    result = run_segment(swapper, segment, tmp_path / "seg.mp4", CONFIG)  # type: ignore[arg-type]
    assert swapper.resets == 1 and len(swapper.seen) == 53 - 24
    assert result.frames == 20 and result.warmup_frames == 6 and result.sha256 == file_sha256(result.path)
    reds = [int(picture[0, 0, 0]) for picture in pictures(result.path)]
    assert np.abs(np.array(reds) - [255 - i * 5 % 256 for i in range(30, 50)]).max() <= 3
    with av.open(str(result.path)) as container:
        assert not container.streams.audio


def test_run_segment_of_a_truncated_video_fails_clearly(clip: Path, tmp_path: Path) -> None:
    segment = Segment(str(clip), 90, 120, 90)
    with pytest.raises(MediaDecodeError, match="truncated or corrupt"):
        run_segment(CountingSwapper(), segment, tmp_path / "seg.mp4", CONFIG)  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir())


def _write_segments(clip: Path, folder: Path, segments: list[Segment]) -> list[Path]:
    """Encode each segment's frames untouched, as a segment task would (source timestamps, no audio)."""
    info = probe(clip)
    files = []
    for s in segments:
        path = folder / f"{s.name}.mp4"
        with VideoReader(clip, s.start, s.end) as reader, VideoWriter(path, info, LOSSLESS, audio_source=None) as w:
            for frame in reader:
                w.write(frame)
        files.append(path)
    return files


@pytest.mark.parametrize("trim", [(None, None), (10, 80)])
def test_join_equals_one_writer_run(clip: Path, tmp_path: Path, trim: tuple[int | None, int | None]) -> None:
    info = probe(clip)
    whole = tmp_path / "whole.mp4"
    with VideoReader(clip, *trim) as reader, VideoWriter(whole, info, LOSSLESS, trim=trim) as writer:
        for frame in reader:
            writer.write(frame)
    segments = plan_segments(info, 3, warmup_frames=4, start=trim[0] or 0, end=trim[1])
    files = _write_segments(clip, tmp_path, segments)
    joined = join(files, tmp_path / "joined.mp4", clip, info, trim)
    video, audio = stream_facts(joined)
    whole_video, whole_audio = stream_facts(whole)
    assert video == whole_video and [a for _, a in audio] == [a for _, a in whole_audio]
    # VideoWriter's MP4 rounds a stream's start offset to the 1 ms movie timescale; join keeps it exact
    assert max(abs(p - q) for (p, _), (q, _) in zip(audio, whole_audio)) <= 44
    if trim == (None, None):
        assert (video, audio) == stream_facts(clip)
    assert all(np.array_equal(a, b) for a, b in zip(pictures(joined), pictures(whole), strict=True))


def test_join_refuses_segments_with_a_gap(clip: Path, tmp_path: Path) -> None:
    info = probe(clip)
    segments = plan_segments(info, 3, warmup_frames=0)
    files = _write_segments(clip, tmp_path, segments)
    with pytest.raises(OutputError, match="segments end after"):
        join([files[0], files[2]], tmp_path / "joined.mp4", clip, info)
    assert not (tmp_path / "joined.mp4").exists()


def test_join_puts_segments_starting_at_zero_on_the_source_timestamps(clip: Path, tmp_path: Path) -> None:
    info = probe(clip)
    files = []
    for s in plan_segments(info, 3, warmup_frames=0):
        path = tmp_path / f"{s.name}.mp4"
        with VideoReader(clip, s.start, s.end) as reader, \
                VideoWriter(path, info, LOSSLESS, audio_source=None, trim=(s.start, s.end)) as writer:
            for frame in reader:
                writer.write(frame)
        assert s.start == 0 or stream_facts(path)[0][0] == 0
        files.append(path)
    assert stream_facts(join(files, tmp_path / "joined.mp4", clip, info)) == stream_facts(clip)


def test_a_segment_does_not_depend_on_what_its_swapper_ran_before(tmp_path: Path) -> None:
    """A batch worker's pooled FaceSwapper runs other jobs' segments in between: each segment starts afresh."""
    from steadyswap.engine.frame_swapper import FaceSwapper
    from steadyswap.engine.stream import swap_stream
    from tests.conftest import media_path

    source, config = str(media_path("image/liveportrait_s1_512.jpg")), RunConfig()
    target = str(media_path("video/tpsmm_driving_78f.mp4"))
    other = str(media_path("video/liveportrait_d0_crf20.mp4"))
    segment = Segment(target, 50, 70, 30, 74)

    def outcome(swapper: FaceSwapper, name: str) -> tuple[bytes, list[list[int]]]:
        run_segment(swapper, segment, tmp_path / name, config)
        swapper.reset_tracking()
        with VideoReader(target, 30, 36) as reader:
            ids = [result.faces.track_ids.tolist() for _, result in swap_stream(swapper, reader)]
        return (tmp_path / name).read_bytes(), ids

    with FaceSwapper([source], config, 25.0) as fresh:
        alone = outcome(fresh, "alone.mp4")
    with FaceSwapper([source], config, 25.0) as pooled:
        run_segment(pooled, Segment(other, 0, 30, 0), tmp_path / "other.mp4", config)
        after_other = outcome(pooled, "after.mp4")
    assert after_other[1] == alone[1] == [[0]] * 6  # tracks numbered afresh
    assert after_other[0] == alone[0]
