"""Split a video into segments that are swapped and encoded apart, and join the encoded segments.

One implementation for the two users: the GPU engine's parallel encoders and the distributed batch.
A segment decodes from ``warmup`` so that tracking, smoothing and colour statistics are settled at
``start``, writes only ``[start, end)``, and may decode on to ``decode_end`` so that a smoother that
looks ahead sees the same future frames as a single run. Cuts are placed so that warm-up begins on a source
keyframe when one lies near the ideal cut (nothing decoded in vain); elsewhere the reader seeks to
the keyframe before ``warmup`` and decodes forward.

``join`` copies the segments' packets (no re-encode) into one file, shifting each segment onto the
source's timestamps, or the output frame rate's (and the whole like a trimmed ``VideoWriter`` run), and
carries the audio as ``VideoWriter`` does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from steadyswap.errors import OutputError, UsageError
from steadyswap.io.atomic import Seal, atomic_output
from steadyswap.io.audio import AudioTracks
from steadyswap.io.probe import PathLike, open_input, packet_stamps, probe
from steadyswap.io import retime
from steadyswap.io.writer import CONTAINERS, OutputSettings
from steadyswap.types import VideoInfo

MUXER_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder"})
"""Container tags the muxer writes itself; ``join`` does not copy them from a segment file."""


@dataclass(frozen=True)
class Segment:
    """Frames ``[start, end)`` of ``target``, swapped after warming up on ``[warmup, start)``.

    Attributes:
        target: the source video.
        start: first frame written (display order index).
        end: frame index the segment stops writing before.
        warmup: first frame decoded and run through the swapper (``warmup <= start``).
        lookahead_end: frame the decoder stops before when frames after ``end`` feed a lookahead
            smoother (``>= end``); None = ``end``.
    """

    target: str
    start: int
    end: int
    warmup: int
    lookahead_end: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.warmup <= self.start < self.end <= self.decode_end:
            raise UsageError(f"segment needs 0 <= warmup <= start < end <= lookahead end, got "
                             f"{self.warmup}, {self.start}, {self.end}, {self.decode_end}")

    @property
    def decode_end(self) -> int:
        """Frame the decoder stops before."""
        return self.end if self.lookahead_end is None else self.lookahead_end

    @property
    def frames(self) -> int:
        """Frames written."""
        return self.end - self.start

    @property
    def name(self) -> str:
        """A file-name stem that orders segments by position: ``seg-000120-000240``."""
        return f"seg-{self.start:06d}-{self.end:06d}"


def keyframe_indices(path: PathLike) -> list[int]:
    """Display-order indices of the keyframes of the first video stream (demuxing only, no decoding).

    Raises:
        InputNotFoundError, MediaDecodeError: the file cannot be read.
    """
    return [index for index, (_, key) in enumerate(packet_stamps(path)) if key]


def plan_segments(
    source: VideoInfo | PathLike,
    count: int | None = None,
    frames_per_segment: int | None = None,
    warmup_frames: int = 30,
    start: int = 0,
    end: int | None = None,
    keyframes: Sequence[int] | None = None,
    lookahead_frames: int = 0,
) -> list[Segment]:
    """Split frames ``[start, end)`` of a video into about equal segments.

    Args:
        source: the video, or its ``VideoInfo``.
        count: number of segments wanted; or give ``frames_per_segment`` instead.
        frames_per_segment: segment length wanted (the count is rounded up).
        warmup_frames: frames each segment but the first swaps before its first written frame.
        start, end: the frame range to cover (a trimmed run); default the whole video.
        keyframes: display-order keyframe indices; default read from the file with ``keyframe_indices``.
        lookahead_frames: frames after its end each segment but the last decodes for a lookahead smoother.

    Returns:
        Segments in order, covering ``[start, end)`` exactly once. A cut moves to ``K + warmup_frames``
        for the source keyframe ``K`` nearest the ideal cut when that is within a quarter segment.

    Raises:
        UsageError: neither or both of ``count``/``frames_per_segment``, or a value below 1, or an empty range.

    >>> [(s.warmup, s.start, s.end) for s in plan_segments("x", 2, warmup_frames=5, end=100, keyframes=[0, 40])]
    [(0, 0, 45), (40, 45, 100)]
    """
    if (count is None) == (frames_per_segment is None):
        raise UsageError("give either a segment count or a segment length")
    if (count or frames_per_segment or 0) < 1 or warmup_frames < 0 or lookahead_frames < 0:
        raise UsageError("segment count and length must be 1 or more, warm-up and lookahead 0 or more")
    path = source.path if isinstance(source, VideoInfo) else str(source)
    if end is None:
        end = (source if isinstance(source, VideoInfo) else probe(source)).frame_count
    total = end - start
    if total < 1:
        raise UsageError(f"no frames to split in {path} between {start} and {end}")
    wanted = count if count is not None else math.ceil(total / frames_per_segment)  # type: ignore[operator]
    wanted = max(1, min(wanted, total))
    if keyframes is None:
        keyframes = keyframe_indices(path) if wanted > 1 else []
    reach = max(1, total // wanted // 4)
    cuts = [(start, start)]  # (warmup, start) of each segment
    for i in range(1, wanted):
        ideal = start + round(i * total / wanted)
        near = [k for k in keyframes if k >= start and abs(k + warmup_frames - ideal) <= reach]
        if near:
            key = min(near, key=lambda k: abs(k + warmup_frames - ideal))
            warmup, cut = key, key + warmup_frames
        else:
            warmup, cut = max(start, ideal - warmup_frames), ideal
        if cuts[-1][1] < cut < end:
            cuts.append((warmup, cut))
    bounds = [c for _, c in cuts] + [end]
    return [
        Segment(path, bounds[i], bounds[i + 1], cuts[i][0],
                min(bounds[i + 1] + lookahead_frames, end) if lookahead_frames and bounds[i + 1] < end else None)
        for i in range(len(cuts))
    ]


def join(
    segment_files: Sequence[PathLike],
    output: PathLike,
    audio_source: PathLike | None,
    info: VideoInfo,
    trim: tuple[int | None, int | None] = (None, None),
    settings: OutputSettings = OutputSettings(),
    seal: Seal | None = None,
) -> Path:
    """Concatenate encoded segments into ``output`` by copying packets, and add the source's audio.

    Args:
        segment_files: one file per segment, in order, encoded with the same settings and no audio;
            each may start at any timestamp (the source's, or 0): it is shifted so that its first
            frame gets the pts of the frame it stands for.
        output: the joined file, written to a temporary file and renamed when complete.
        audio_source: file whose audio streams are carried (usually ``info.path``); None for none.
        info: the source's ``VideoInfo``.
        trim: the frame range the segments cover, as given to ``VideoWriter``: a range starting after
            frame 0 is shifted to begin at 0 and its audio is cut to the frames' time span.
        settings: the segments' ``VideoWriter`` settings: with an output frame rate the segments hold
            the frames of that rate (``io.retime``) rather than the source's; the audio settings apply here.
        seal: signs the joined file before it is renamed (``atomic_output``); None: left as joined.

    Returns:
        ``output``: same frame count, timestamps and audio as a single ``VideoWriter`` run.

    Raises:
        UsageError: no segment files. OutputError: segments with different codec settings,
            timestamps that do not follow on, or the output cannot be written.
    """
    if not segment_files:
        raise UsageError("join needs at least one segment file")
    output = Path(output).expanduser()
    container_format = CONTAINERS.get(output.suffix.lower())
    if container_format is None:
        raise UsageError(f"{output}: video extension must be one of {', '.join(CONTAINERS)}")
    inputs = [info.path, *segment_files] + ([audio_source] if audio_source is not None else [])
    with atomic_output(output, inputs=inputs, seal=seal) as temporary, open_input(segment_files[0]) as first:
        template = first.streams.video[0]
        options: dict[str, str] = {}
        if container_format in ("mp4", "mov"):
            timescale = _movie_timescale(template.time_base, audio_source)
            options = {"movflags": "use_metadata_tags", "movie_timescale": str(timescale)}
        with av.open(str(temporary), "w", format=container_format, options=options) as out:
            stream = out.add_stream_from_template(template)
            stream.time_base = template.time_base
            audio = AudioTracks(out, audio_source, settings.audio) if audio_source is not None else None
            out.metadata.update({k: v for k, v in first.metadata.items() if k not in MUXER_TAGS})
            try:
                _copy_video(segment_files, template, stream, out, audio, info, trim, settings.fps)
            finally:
                if audio is not None:
                    audio.close()
    return output


def _output_times(source: list[Fraction], first: int, end: int, fps: Fraction | None, rate: Fraction) -> list[Fraction]:
    """Time in seconds of each frame a run over source frames ``[first, end)`` (starting at the times ``source``)
    writes: theirs, or with an output frame rate its slots up to where the last frame stops being shown."""
    if fps is None:
        return source[first:end]
    until = source[end] if end < len(source) else source[end - 1] + 1 / rate
    return [Fraction(n) / fps for n in range(retime.slot(source[first], fps), retime.slot(until, fps))]


def _copy_video(
    files: Sequence[PathLike],
    template: av.video.VideoStream,
    stream: av.video.VideoStream,
    out: av.container.OutputContainer,
    audio: AudioTracks | None,
    info: VideoInfo,
    trim: tuple[int | None, int | None],
    fps: Fraction | None,
) -> None:
    """Mux every video packet of ``files`` in order, pumping audio alongside as ``VideoWriter`` does.

    Each frame gets the time of the frame it stands for, rounded once in the output's time base as a single
    run rounds it (segment files may start at 0, lose a few ticks to an MP4 edit list, or hold milliseconds in
    Matroska). Decode timestamps are made anew, as an encoder makes them: the k-th packet's is the k-th
    frame time in display order less the segment's reordering delay (Matroska stores none for some packets).
    """
    time_base, rate = template.time_base, info.average_rate or Fraction(30)
    source = [pts * info.time_base for pts, _ in packet_stamps(info.path)]
    first = trim[0] or 0
    end = len(source) if trim[1] is None else min(trim[1], len(source))
    times = _output_times(source, first, end, fps, rate)
    shift = times[0] if trim[0] else Fraction(0)
    if audio:
        audio.begin(float(source[first]) if trim[0] else None)
    position, last_dts = 0, None
    for path in files:
        decoded = _decode_order(path)
        stamps = sorted(decoded)
        if not stamps or position + len(stamps) > len(times):
            raise OutputError(f"{path}: segments hold other frames than the {len(times)} of the range")
        ticks = {pts: round((times[position + k] - shift) / time_base) for k, pts in enumerate(stamps)}
        shown = [ticks[pts] for pts in stamps]
        delay = max(shown[k] - ticks[pts] for k, pts in enumerate(decoded))
        position += len(stamps)
        with open_input(path) as segment:
            video = segment.streams.video[0]
            _check_same(template, video, path)
            packets = (packet for packet in segment.demux(video) if packet.size and packet.pts is not None)
            for k, packet in enumerate(packets):
                pts, dts = ticks[packet.pts], shown[k] - delay
                if last_dts is not None and dts <= last_dts:
                    if last_dts + 1 > pts:
                        raise OutputError(f"{path}: timestamps do not follow the previous segment (dts {dts})")
                    dts = last_dts + 1
                last_dts = dts
                packet.pts, packet.dts = pts, dts
                packet.stream = stream
                out.mux(packet)
                if audio:
                    audio.pump(float(dts * time_base + shift))
    if position != len(times):
        raise OutputError(f"{files[-1]}: segments end after {position} of the {len(times)} frames of the range")
    if audio:
        stop = float(source[end - 1] + 1 / rate) if trim[1] is not None else None
        audio.finish(stop)


def _decode_order(path: PathLike) -> list[int]:
    """The pts of the video packets of ``path`` in the order they are stored (decoding order)."""
    with open_input(path) as container:
        return [p.pts for p in container.demux(container.streams.video[0]) if p.size and p.pts is not None]


def _movie_timescale(video_time_base: Fraction, audio_source: PathLike | None) -> int:
    """An MP4 movie timescale in which every stream's start offset (an edit list) is exact, when one fits."""
    scales = [video_time_base.denominator]
    if audio_source is not None:
        with open_input(audio_source) as container:
            scales += [s.time_base.denominator for s in container.streams.audio if s.time_base]
    scale = math.lcm(*scales)
    return scale if scale < 2**31 else video_time_base.denominator


def _check_same(template: av.video.VideoStream, other: av.video.VideoStream, path: PathLike) -> None:
    a, b = template.codec_context, other.codec_context
    same = (a.name, a.width, a.height, a.pix_fmt, bytes(a.extradata or b""), template.time_base) == (
        b.name, b.width, b.height, b.pix_fmt, bytes(b.extradata or b""), other.time_base)
    if not same:
        raise OutputError(f"{path}: segment was encoded with other settings than the first; re-run it")
