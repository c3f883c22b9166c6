"""Carry every audio stream of a source into an output container, interleaved with the video.

Streams are copied packet by packet (no re-encode) when the output container can hold their codec and
``AudioSettings`` asks for no change; otherwise they are decoded, scaled by the volume, and encoded with
the encoder asked for, else their own codec where this build encodes it and the container holds it, else
the container's fallback (AAC for MP4/MOV, Opus for WebM/MKV). A trimmed run keeps only the packets that
start inside the kept time range and shifts them by the same offset as the video.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from steadyswap.io.probe import PathLike, open_input

FALLBACK_AUDIO = {"mp4": "aac", "mov": "aac", "matroska": "libopus", "webm": "libopus"}
"""Codec an audio stream is re-encoded to when the output container cannot hold its own codec."""
AUDIO_ENCODERS = ("flac", "aac", "libmp3lame", "libopus", "libvorbis", "pcm_s16le", "pcm_s32le")
"""FaceFusion 3.5's audio encoders (``--output-audio-encoder``); ``encoder_codec`` tells which this build has."""
_STREAM_TAGS = ("language", "title", "handler_name")


@dataclass(frozen=True)
class AudioSettings:
    """What happens to the source's audio streams.

    Attributes:
        encoder: re-encode every stream with this encoder; None: copy it where the container holds its codec.
        bit_rate: bits per second of a lossy re-encode; None: the encoder's default.
        volume: factor the samples are multiplied by (1.0 keeps them).
        reencode: re-encode even when nothing else asks for it (a bit rate given without an encoder).
    """

    encoder: str | None = None
    bit_rate: int | None = None
    volume: float = 1.0
    reencode: bool = False

    @property
    def copies(self) -> bool:
        """Whether streams are copied as they are (where the container can hold them)."""
        return self.encoder is None and self.volume == 1.0 and not self.reencode


def encoder_codec(encoder: str) -> str | None:
    """The codec ``encoder`` writes (``libmp3lame`` → ``mp3``), or None when this PyAV build lacks it.

    >>> encoder_codec("libopus"), encoder_codec("pcm_s16le")
    ('opus', 'pcm_s16le')
    """
    try:
        codec = av.codec.Codec(encoder, "w")
    except (av.error.FFmpegError, av.codec.codec.UnknownCodecError):
        return None
    return None if codec.experimental else codec.canonical_name


def scale_volume(frame: av.AudioFrame, volume: float) -> av.AudioFrame:
    """``frame`` with every sample multiplied by ``volume`` in its own sample format (integers rounded and
    clipped to their range, as FFmpeg's volume filter does); 1.0 returns ``frame`` itself."""
    if volume == 1.0:
        return frame
    samples = frame.to_ndarray()
    middle = 128 if samples.dtype == np.uint8 else 0
    scaled = (samples.astype(np.float64) - middle) * volume + middle
    if np.issubdtype(samples.dtype, np.integer):
        limits = np.iinfo(samples.dtype)
        scaled = np.clip(np.rint(scaled), limits.min, limits.max)
    out = av.AudioFrame.from_ndarray(scaled.astype(samples.dtype), format=frame.format.name, layout=frame.layout.name)
    out.sample_rate, out.pts = frame.sample_rate, frame.pts
    if frame.time_base is not None:
        out.time_base = frame.time_base
    return out


@dataclass
class _Track:
    source: av.audio.AudioStream
    output: av.audio.AudioStream
    copy: bool


def _encoder_rate(codec: str, rate: int) -> int:
    """``rate`` if the encoder takes it, else the nearest rate it does take."""
    rates = av.codec.Codec(codec, "w").audio_rates
    if not rates or rate in rates:
        return rate
    return min(rates, key=lambda r: abs(r - rate))


class AudioTracks:
    """All audio streams of ``source``, added to ``output`` at construction and muxed on demand.

    Call ``begin`` once before the first ``pump`` (with the source time of the first video frame
    to cut a trimmed run, or None to keep everything), ``pump(t)`` as the video advances, and
    ``finish`` at the end.
    """

    def __init__(self, output: av.container.OutputContainer, source: PathLike,
                 settings: AudioSettings = AudioSettings()) -> None:
        self._input = open_input(source)
        self._out = output
        self._volume = settings.volume
        self._tracks: dict[int, _Track] = {}
        fallback = FALLBACK_AUDIO.get(output.format.name.split(",")[0], "aac")
        for stream in self._input.streams.audio:
            own = stream.codec_context.name
            if settings.copies and own in output.supported_codecs:
                out = output.add_stream_from_template(stream)
                copy = True
            else:
                encoder = settings.encoder or (own if encoder_codec(own) in output.supported_codecs else fallback)
                rate = _encoder_rate(encoder, stream.codec_context.sample_rate)
                out = output.add_stream(encoder, rate=rate)
                out.layout = stream.codec_context.layout
                if settings.bit_rate and not out.codec_context.codec.lossless:
                    out.bit_rate = settings.bit_rate
                copy = False
            for key in _STREAM_TAGS:
                if key in stream.metadata:
                    out.metadata[key] = stream.metadata[key]
            self._tracks[stream.index] = _Track(stream, out, copy)
        self._packets = None
        self._pending: av.Packet | None = None
        self._start: float | None = None
        self._end: float | None = None

    def __bool__(self) -> bool:
        return bool(self._tracks)

    def begin(self, start: float | None, end: float | None = None) -> None:
        """Start reading; keep packets starting in [start, end) seconds, shifted back by ``start``."""
        self._start, self._end = start, end
        if start:
            self._input.seek(int(start * av.time_base))
        streams = [t.source for t in self._tracks.values()]
        self._packets = self._input.demux(*streams) if streams else iter(())

    def pump(self, until: float | None) -> None:
        """Mux the source packets that start before ``until`` seconds (source time; None = all)."""
        assert self._packets is not None, "call begin() first"
        while True:
            if self._pending is None:
                self._pending = next(self._packets, None)
                if self._pending is None:
                    return
            packet = self._pending
            if packet.size == 0 or (packet.pts is None and packet.dts is None):
                self._pending = None
                continue
            time = float((packet.pts if packet.pts is not None else packet.dts) * packet.time_base)
            if until is not None and time >= until:
                return
            self._pending = None
            if (self._start is None or time >= self._start) and (self._end is None or time < self._end):
                self._mux(packet)

    def finish(self, end: float | None) -> None:
        """Mux what is left up to ``end`` seconds (None = to the end of the source), flush encoders, close."""
        if self._end is None:
            self._end = end
        self.pump(None)
        for track in self._tracks.values():
            if not track.copy:
                self._out.mux(track.output.encode(None))
        self.close()

    def close(self) -> None:
        self._input.close()

    def _mux(self, packet: av.Packet) -> None:
        track = self._tracks[packet.stream.index]
        shift = Fraction(self._start or 0)
        if track.copy:
            offset = round(shift / packet.time_base)
            if packet.pts is not None:
                packet.pts -= offset
            if packet.dts is not None:
                packet.dts -= offset
            packet.stream = track.output
            self._out.mux(packet)
            return
        for frame in track.source.codec_context.decode(packet):
            if frame.pts is not None:
                frame.pts -= round(shift / frame.time_base)
            self._out.mux(track.output.encode(scale_volume(frame, self._volume)))
