"""VideoWriter: encode Frames on its own thread and mux them with the source's audio.

Output rules (pure functions below, unit-tested; ``OutputSettings`` holds the choices):
- Container by extension: .mp4 .mov .mkv .webm. An encoder whose codec the container cannot hold
  (libx264 into .webm) is a UsageError, never silently swapped; ``default_encoder`` is the one to use
  when the user names none (libvpx-vp9 for .webm, else libx264).
- Pixel format (``output_pix_fmt``): the source's chroma layout (4:2:0, 4:2:2, 4:4:4) when the encoder
  takes it, else 4:2:0; 10-bit when the source is deeper than 8 bits and the encoder has a 10-bit
  format (libx264, libx265, libsvtav1 here; libvpx-vp9 in PyAV's wheel is 8-bit only). RGB and grey
  sources get 4:2:0. To keep 10-bit detail, pass the reader's ``DeepFrame`` objects through. The NVENC
  encoders write 8-bit 4:2:0 whatever the source (as FaceFusion asks of them): what every NVIDIA GPU's
  encoder takes for both codecs.
- Hardware encoders (h264_nvenc, hevc_nvenc): in PyAV's wheel, but they open only on a machine with an NVIDIA
  driver and a GPU that has NVENC; ``check_encoder_opens`` tries once per process and refuses in one line.
- Size (``even_padding``): H.264/HEVC cannot store odd sizes in subsampled chroma, so for them an odd
  width/height is padded by one replicated edge pixel; VP9/AV1 and 4:4:4 keep the exact size. A scaled
  output (``scaled_size``, FaceFusion's ``--output-video-scale``) has even sides and is resized bicubically.
- Timing: every frame keeps its pts in the source's time base (variable frame rate survives); a
  run trimmed at the start is shifted so it begins at 0. The stream rate is the source's average rate.
  Matroska/WebM store milliseconds, so there pts are rounded to 1 ms by the muxer. With an output
  frame rate, frames are dropped or repeated by timestamp instead (``steadyswap.io.retime``).
- Colour: primaries, transfer, matrix and range are tagged on the output stream, and RGB→YUV uses
  the source's matrix and range.
- Audio: see ``steadyswap.io.audio`` (stream copy, or a re-encode with a volume change).
- Same frames, same bytes: on AVX-512 CPUs libx264 runs its AVX2 code (``_has_avx512`` says why).
- Disclosure: container tags ``comment`` = "Face-swapped with steadyswap <version>; synthetic media",
  ``steadyswap`` = version and ``synthetic`` = "true"; the source's other tags (title...) are kept.
  MP4/MOV use ``movflags=use_metadata_tags`` so the custom keys survive.
"""

from __future__ import annotations

import functools
import io
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import EllipsisType
from typing import TYPE_CHECKING

import av
import numpy as np

from steadyswap.errors import OutputError, SteadySwapError, UsageError
from steadyswap.io import retime
from steadyswap.io.audio import AudioSettings, AudioTracks, encoder_codec
from steadyswap.io.image import IMAGE_EXTENSIONS
from steadyswap.io.probe import PathLike, open_input, packet_stamps
from steadyswap.threads import drain
from steadyswap.types import Frame, VideoInfo, check_shape

if TYPE_CHECKING:
    from steadyswap.provenance.watermark import Watermark

CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm"}


def check_output_extension(output: PathLike, kind: str) -> None:
    """Raise UsageError naming ``output`` (the user's path, before any temporary file) when its extension
    cannot hold a ``kind`` ("image" or "video") result."""
    extensions = IMAGE_EXTENSIONS if kind == "image" else tuple(CONTAINERS)
    if Path(output).suffix.lower() not in extensions:
        raise UsageError(f"{output}: {kind} extension must be one of {', '.join(extensions)}")

PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
_VP9_CPU_USED = dict(zip(PRESETS, (8, 7, 6, 5, 4, 3, 2, 1, 0)))
_SVT_AV1_PRESET = dict(zip(PRESETS, (12, 11, 10, 9, 8, 7, 5, 4, 2)))
NVENC_PRESETS = dict(zip(PRESETS, ("fast",) * 5 + ("medium",) + ("slow",) * 3))
"""FaceFusion 3.5's x264 preset → NVENC preset: FFmpeg's fast (one pass, speed), medium (one pass, quality) and
slow (two passes, quality)."""
# AVColorSpace (stream tag) → swscale matrix for the RGB→YUV conversion; others use BT.601.
_SWS_MATRIX = {1: 1, 4: 4, 5: 5, 6: 5, 7: 7, 9: 9, 10: 9}
_RGB_MATRIX = 0  # AVCOL_SPC_RGB: an RGB source's matrix tag, meaningless for the YUV output
_SOURCE_ONLY_TAGS = {
    "major_brand", "minor_version", "compatible_brands", "encoder", "creation_time", "duration", "comment",
}
_END = object()


@dataclass(frozen=True)
class EncoderSpec:
    """What the writer needs to know of an encoder."""

    codec: str
    max_crf: int
    even_chroma: bool
    """Subsampled chroma needs chroma-aligned (even) sizes."""
    formats: tuple[str, ...] | None = None
    """The pixel formats written; None: any the codec lists (``output_pix_fmt`` picks)."""
    hardware: str | None = None
    """What a hardware encoder needs of the machine (checked by ``check_encoder_opens``); None: a software encoder."""


_NVENC = "an NVIDIA GPU with a hardware video encoder (NVENC) and its driver"
ENCODERS = {
    "libx264": EncoderSpec("h264", 51, True),
    "libx265": EncoderSpec("hevc", 51, True),
    "libvpx-vp9": EncoderSpec("vp9", 63, False),
    "libsvtav1": EncoderSpec("av1", 63, False),
    "h264_nvenc": EncoderSpec("h264", 51, True, ("yuv420p",), _NVENC),
    "hevc_nvenc": EncoderSpec("hevc", 51, True, ("yuv420p",), _NVENC),
}
DEFAULT_ENCODERS = {"webm": "libvpx-vp9"}
"""The video encoder of a container when the user names none (else libx264), as FaceFusion picks for WebM."""


@dataclass(frozen=True)
class OutputSettings:
    """How a video output is encoded (``steadyswap.engine.output.output_settings`` makes them from a RunConfig).

    Attributes:
        encoder: a name of ``ENCODERS``.
        crf: constant quality (0..51 for H.264/HEVC, the NVENC encoders' cq; 0..63 for VP9/AV1).
        preset: x264 preset name (mapped to cpu-used for VP9, to SVT-AV1's numeric preset and to ``NVENC_PRESETS``).
        size: (width, height) the pictures are scaled to, both even; None: the source's size.
        fps: constant frame rate, frames dropped or repeated by timestamp; None: each frame keeps its timestamp.
        audio: what happens to the source's audio streams.
    """

    encoder: str = "libx264"
    crf: int = 10
    preset: str = "veryfast"
    size: tuple[int, int] | None = None
    fps: Fraction | None = None
    audio: AudioSettings = AudioSettings()


def default_encoder(path: PathLike) -> str:
    """The video encoder for ``path``'s container when the user names none.

    >>> default_encoder("out.webm"), default_encoder("out.MOV")
    ('libvpx-vp9', 'libx264')
    """
    return DEFAULT_ENCODERS.get(CONTAINERS.get(Path(path).suffix.lower(), ""), "libx264")


def scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """FaceFusion's output size for ``--output-video-scale``: each side times ``scale``, truncated, then rounded
    to an even number (so 4:2:0 chroma fits).

    >>> scaled_size(1920, 1080, 0.5), scaled_size(641, 359, 1.5), scaled_size(512, 512, 0.25)
    ((960, 540), (960, 538), (128, 128))
    """
    return round(int(width * scale) / 2) * 2, round(int(height * scale) / 2) * 2


@functools.cache
def container_codecs(container_format: str) -> frozenset[str]:
    """The codecs FFmpeg's ``container_format`` muxer can store."""
    with av.open(io.BytesIO(), "w", format=container_format) as probe_container:
        return frozenset(probe_container.supported_codecs)


def check_settings(path: PathLike, settings: OutputSettings) -> str:
    """The muxer for ``path``, after checking that its container, this PyAV build and ``settings`` fit together.

    Raises:
        UsageError: naming ``path``: an unknown extension, encoder or preset, crf out of range, an encoder
            missing from this build or a hardware encoder that does not open on this machine
            (``check_encoder_opens``), a codec the container cannot hold, or a scaled size too small or odd.
    """
    path = Path(path)
    container_format = CONTAINERS.get(path.suffix.lower())
    if container_format is None:
        raise UsageError(f"{path}: video extension must be one of {', '.join(CONTAINERS)}")
    encoder_options(settings.encoder, settings.crf, settings.preset)
    if encoder_codec(settings.encoder) is None:
        raise UsageError(f"encoder '{settings.encoder}' is not available in this PyAV build")
    codecs = container_codecs(container_format)
    codec = ENCODERS[settings.encoder].codec
    if codec not in codecs:
        fits = [n for n, s in ENCODERS.items() if s.codec in codecs]
        raise UsageError(f"{path}: {settings.encoder} ({codec}) cannot be stored in {path.suffix}; "
                         f"use {' or '.join(fits)}")
    audio = settings.audio.encoder
    if audio is not None:
        audio_codec = encoder_codec(audio)
        if audio_codec is None:
            raise UsageError(f"audio encoder '{audio}' is not available in this PyAV build")
        if audio_codec not in codecs:
            raise UsageError(f"{path}: {audio} ({audio_codec}) audio cannot be stored in {path.suffix}")
    if settings.size is not None and (min(settings.size) < 2 or settings.size[0] % 2 or settings.size[1] % 2):
        raise UsageError(f"{path}: output size {settings.size[0]}x{settings.size[1]} must be even and at least 2x2")
    check_encoder_opens(settings.encoder)
    return container_format


def check_encoder_opens(encoder: str) -> None:
    """Refuse a hardware encoder this machine cannot open, in one line with FFmpeg's reason and the software
    encoder of the same codec (software encoders always open).

    Raises:
        UsageError: e.g. "h264_nvenc needs an NVIDIA GPU with a hardware video encoder (NVENC) and its driver;
            it does not open here (FFmpeg: Cannot load libcuda.so.1); use libx264".
    """
    spec = ENCODERS[encoder]
    if spec.hardware is None:
        return
    reason = _open_failure(encoder)
    if reason is not None:
        software = next(name for name, other in ENCODERS.items() if other.codec == spec.codec and not other.hardware)
        raise UsageError(f"{encoder} needs {spec.hardware}; it does not open here (FFmpeg: {reason}); "
                         f"use {software}")


_LOG_LEVEL = threading.Lock()
"""Held while PyAV's process-wide log level is raised to read an encoder's reason (the web UI checks from threads)."""


@functools.cache
def _open_failure(encoder: str) -> str | None:
    """FFmpeg's reason why ``encoder`` does not open (at 256x256 yuv420p, a size every NVENC takes), or None when it
    opens; tried once per process. FFmpeg's error lines are captured for the reason, not logged."""
    context = av.CodecContext.create(encoder, "w")
    context.width = context.height = 256
    context.pix_fmt = "yuv420p"
    context.time_base = Fraction(1, 30)
    with _LOG_LEVEL:
        level = av.logging.get_level()
        av.logging.set_level(av.logging.ERROR)
        try:
            with av.logging.Capture() as logs:
                context.open()
        except av.error.FFmpegError as error:
            lines = [text.strip() for severity, _, text in logs if severity <= av.logging.ERROR and text.strip()]
            return "; ".join(dict.fromkeys(lines)) or error.strerror or str(error)
        finally:
            av.logging.set_level(level)
    return None


@functools.cache
def _has_avx512() -> bool:
    """Whether this (Linux) CPU has AVX-512, which x264 would use unless told otherwise.

    x264's AVX-512 code lets memory it did not write reach the bitstream: the same frames gave a different
    file for each byte glibc's ``MALLOC_PERTURB_`` filled fresh allocations with, and, in one process,
    depending on what it had encoded before (frames up to 13 levels apart; seen at 410x412 and 400x400, not
    at 512x512, and not with macroblock-tree rate control off), so a batch segment's bytes depended on the
    jobs run before it in its worker. Limited to AVX2 (``asm=AVX2``; every AVX-512 CPU has it) x264 gave
    one bitstream every time, 4-6% slower (best of four 1080p veryfast crf 10 encodes on the GPU host's 16
    cores: 99.1 against 102.9 frames/s; best of six 720p ones on a shared 2-core host: 16.9 against 18.0).
    """
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            return any(line.startswith("flags") and " avx512f" in line for line in info)
    except OSError:
        return False


def encoder_options(encoder: str, crf: int, preset: str) -> dict[str, str]:
    """FFmpeg options of ``encoder`` for a constant-quality ``crf`` at an x264-style ``preset``.

    The NVENC encoders take ``crf`` as their constant-quality target ``cq`` (FaceFusion's ``-cq``), with no
    average bit rate (``b`` 0: the quality target alone decides), at ``NVENC_PRESETS[preset]``; ``cq`` 0 would
    mean "automatic" to NVENC, so crf 0 (quality 100) asks for cq 1, its best.

    Raises:
        UsageError: unknown encoder or preset, or crf outside the encoder's range.

    >>> encoder_options("libx265", 18, "veryfast")
    {'crf': '18', 'preset': 'veryfast', 'x265-params': 'log-level=error'}
    >>> encoder_options("h264_nvenc", 10, "veryfast")
    {'cq': '10', 'b': '0', 'preset': 'fast'}
    """
    if encoder not in ENCODERS:
        raise UsageError(f"encoder '{encoder}' is not one of {', '.join(ENCODERS)}")
    if preset not in PRESETS:
        raise UsageError(f"preset '{preset}' is not one of {', '.join(PRESETS)}")
    top = ENCODERS[encoder].max_crf
    if not 0 <= crf <= top:
        raise UsageError(f"crf {crf} is outside 0..{top} for {encoder}")
    if encoder == "libx264":
        return {"crf": str(crf), "preset": preset, **({"x264-params": "asm=AVX2"} if _has_avx512() else {})}
    if encoder == "libx265":
        return {"crf": str(crf), "preset": preset, "x265-params": "log-level=error"}
    if encoder in ("h264_nvenc", "hevc_nvenc"):
        return {"cq": str(max(1, crf)), "b": "0", "preset": NVENC_PRESETS[preset]}
    if encoder == "libvpx-vp9":
        return {"crf": str(crf), "b": "0", "deadline": "good", "cpu-used": str(_VP9_CPU_USED[preset]), "row-mt": "1"}
    return {"crf": str(crf), "preset": str(_SVT_AV1_PRESET[preset])}


def output_pix_fmt(encoder: str, source_pix_fmt: str, bit_depth: int) -> str:
    """The encoder pixel format that best keeps the source's chroma layout and depth.

    >>> output_pix_fmt("libx264", "yuv420p10le", 10), output_pix_fmt("libvpx-vp9", "yuv420p10le", 10)
    ('yuv420p10le', 'yuv420p')
    >>> output_pix_fmt("hevc_nvenc", "yuv444p10le", 10)
    'yuv420p'
    """
    layout = "420"
    source = av.VideoFormat(source_pix_fmt, 2, 2)
    if not source.is_rgb and len(source.components) >= 3:
        chroma = source.components[1]
        layout = {(2, 2): "444", (1, 2): "422"}.get((chroma.width, chroma.height), "420")
    supported = set(ENCODERS[encoder].formats or (f.name for f in av.codec.Codec(encoder, "w").video_formats or ()))
    candidates = [f"yuv{layout}p", "yuv420p"]
    if bit_depth > 8:
        candidates = [f"yuv{layout}p10le", "yuv420p10le", *candidates]
    return next((c for c in candidates if c in supported), "yuv420p")


def even_padding(encoder: str, pix_fmt: str, width: int, height: int) -> tuple[int, int]:
    """Pixels to add (right, bottom) so ``encoder`` accepts the size in ``pix_fmt``.

    >>> even_padding("libx264", "yuv420p", 161, 97), even_padding("libx264", "yuv444p", 161, 97)
    ((1, 1), (0, 0))
    """
    if not ENCODERS[encoder].even_chroma:
        return 0, 0
    chroma = av.VideoFormat(pix_fmt, 2, 2).components[1]
    return (-width) % (2 // chroma.width), (-height) % (2 // chroma.height)


def yuv420p_output(settings: OutputSettings, info: VideoInfo) -> bool:
    """Whether ``settings`` write ``info``'s frames as 8-bit 4:2:0 taken at the source's size (then scaled, if
    asked), so that frames converted to yuv420p elsewhere (``write_yuv420p``) can go straight in.

    >>> from dataclasses import replace
    >>> info = VideoInfo("a.mp4", 1920, 1080, 1, Fraction(30), Fraction(1, 30), 1 / 30, "h264", "yuv420p")
    >>> yuv420p_output(OutputSettings(), info), yuv420p_output(OutputSettings(), replace(info, width=1919))
    (True, False)
    """
    if settings.encoder not in ENCODERS or info.width % 2 or info.height % 2:
        return False
    return output_pix_fmt(settings.encoder, info.pix_fmt, info.bit_depth) == "yuv420p"


def disclosure_tags() -> dict[str, str]:
    """Container tags that mark the output as edited, synthetic media."""
    try:
        ours = version("steadyswap")
    except PackageNotFoundError:
        ours = "unknown"
    return {"comment": f"Face-swapped with steadyswap {ours}; synthetic media", "steadyswap": ours, "synthetic": "true"}


class VideoWriter:
    """Encode frames to ``path`` on a background thread, with the source's audio and colour tags.

    Args:
        path: output file; .mp4, .mov, .mkv or .webm.
        info: the source's ``VideoInfo`` (size of the upright frames, time base, rate, colour, depth).
        settings: encoder, quality, preset, output size and frame rate, audio handling (default: libx264,
            crf 10, veryfast, the source's size and timestamps, audio copied).
        audio_source: file whose audio streams are carried; ``...`` (default) = ``info.path``; None = no audio.
        trim: the (start, end) frame range the frames come from; a trimmed run cuts the audio to the
            frames' time range and shifts everything to start at 0.
        queue_size: frames buffered ahead of the encoder.
        threads: encoder threads; 0 lets the encoder choose (all cores). Several writers running side by
            side (the GPU engine's segments) each take a share instead.
        watermark: added to every frame's luma just before encoding (``steadyswap.provenance``); None: none.

    ``write`` takes ownership of the frame: do not modify its arrays afterwards. Use as a context
    manager: leaving on an exception stops the encoder without flushing (``atomic_output`` then
    deletes the partial file). With ``settings.fps`` each frame is held until the next one arrives (its
    number of copies depends on the next frame's time); the last one is shown until the source's next
    frame starts, read from the file's packet timestamps, or for one frame at the average rate at its end.

    Raises:
        UsageError: as ``check_settings``.
        OutputError: the file cannot be created, or encoding/muxing fails (raised by ``write``/``close``).
    """

    def __init__(
        self,
        path: PathLike,
        info: VideoInfo,
        settings: OutputSettings = OutputSettings(),
        audio_source: PathLike | None | EllipsisType = ...,
        trim: tuple[int | None, int | None] = (None, None),
        queue_size: int = 8,
        threads: int = 0,
        watermark: Watermark | None = None,
    ) -> None:
        self.path = Path(path).expanduser()
        self.info = info
        self.threads = threads
        self.watermark = watermark
        self.settings = settings
        container_format = check_settings(self.path, settings)
        encoder = settings.encoder
        options = encoder_options(encoder, settings.crf, settings.preset)
        spec = ENCODERS[encoder]
        self.pix_fmt = output_pix_fmt(encoder, info.pix_fmt, info.bit_depth)
        self._pad = (0, 0) if settings.size else even_padding(encoder, self.pix_fmt, info.width, info.height)
        self._deep = self.pix_fmt.endswith("10le")
        self._rate = info.average_rate or Fraction(30)
        self._fps = settings.fps
        self._time_base, self._step = retime.time_base(settings.fps) if settings.fps else (info.time_base, 1)
        self._trim_start = bool(trim[0])
        self._trim_end = trim[1] is not None
        mux_options = {"movflags": "use_metadata_tags"} if container_format in ("mp4", "mov") else {}
        try:
            self._container = av.open(str(self.path), "w", format=container_format, options=mux_options)
        except (av.error.FFmpegError, OSError) as e:
            raise OutputError(f"{self.path}: cannot create the output ({getattr(e, 'strerror', None) or e})") from e
        try:
            self._stream = self._add_video_stream(encoder, options, spec.codec, container_format)
            source = info.path if audio_source is ... else audio_source
            self._audio = AudioTracks(self._container, source, settings.audio) if source is not None else None
            self._container.metadata.update(_kept_tags(info.path))
            self._container.metadata.update(disclosure_tags())
        except BaseException:
            self._container.close()
            self.path.unlink(missing_ok=True)
            raise
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(1, queue_size))
        self._abort = threading.Event()
        self._error: BaseException | None = None
        self._closed = False
        self._shift: int | None = None
        self._last_pts = 0
        self._last_index = 0
        self._held: av.VideoFrame | None = None
        self._next_slot = 0
        self._encoded = 0
        self._thread = threading.Thread(target=self._run, name="steadyswap-encode", daemon=True)
        self._thread.start()

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the encoded picture: the scaled size, else the source size plus any even-size padding."""
        return self.settings.size or (self.info.width + self._pad[0], self.info.height + self._pad[1])

    @property
    def takes_yuv420p(self) -> bool:
        """Whether ``write_yuv420p`` accepts frames (``yuv420p_output``)."""
        return yuv420p_output(self.settings, self.info)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def write(self, frame: Frame) -> None:
        """Queue one H×W×3 uint8 RGB frame (a ``DeepFrame`` keeps its 10-bit detail in 10-bit output)."""
        check_shape("frame.image", frame.image, (self.info.height, self.info.width, 3), np.uint8)
        self._submit(frame)

    def write_yuv420p(self, index: int, pts: int | None, data: np.ndarray) -> None:
        """Queue one frame already converted to planar yuv420p ((H*3/2)×W uint8, Y then U then V).

        Only for 8-bit 4:2:0 output (``takes_yuv420p``); conversion must follow the source matrix.
        """
        if not self.takes_yuv420p:
            raise UsageError(f"yuv420p frames need 8-bit 4:2:0 output of even size; this output is {self.pix_fmt}")
        check_shape("yuv420p data", data, (self.info.height * 3 // 2, self.info.width), np.uint8)
        self._submit((index, pts, data))

    def close(self) -> None:
        """Flush the encoder, finish the audio and close the file; raise OutputError if encoding failed."""
        if not self._closed:
            self._closed = True
            self._put_end()
            self._thread.join()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop encoding without flushing and close the file (the caller deletes it)."""
        if self._closed:
            return
        self._closed = True
        self._abort.set()
        self._put_end()
        self._thread.join()

    def _put_end(self) -> None:
        while self._thread.is_alive():
            try:
                self._queue.put(_END, timeout=0.1)
                return
            except queue.Full:
                if self._abort.is_set():
                    self._drain()

    def _drain(self) -> None:
        drain(self._queue)

    def _submit(self, item: object) -> None:
        if self._closed:
            raise UsageError(f"{self.path}: write after close")
        while True:
            if self._error is not None:
                raise self._error
            if not self._thread.is_alive():
                raise OutputError(f"{self.path}: the encoder thread has stopped")
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _add_video_stream(
        self, encoder: str, options: dict[str, str], codec: str, container_format: str
    ) -> av.video.VideoStream:
        info = self.info
        rate = self._fps or self._rate
        stream = self._container.add_stream(encoder, rate=rate, options=options)
        stream.width, stream.height = self.size
        stream.pix_fmt = self.pix_fmt
        stream.time_base = self._time_base
        context = stream.codec_context
        context.time_base = self._time_base
        context.framerate = rate
        if self.threads:
            context.thread_count = self.threads
        for name in ("color_primaries", "color_trc", "colorspace", "color_range"):
            value = getattr(info, name)
            if value is not None and not (name == "colorspace" and value == _RGB_MATRIX):
                setattr(context, name, value)
        if codec == "hevc" and container_format in ("mp4", "mov"):
            stream.codec_tag = "hvc1"  # the tag Apple players require for HEVC
        return stream

    def _run(self) -> None:
        count = 0
        try:
            while True:
                item = self._queue.get()
                if item is _END or self._abort.is_set():
                    break
                self._write(item)
                count += 1
            if not self._abort.is_set():
                self._finish()
        except SteadySwapError as e:
            self._abort.set()
            self._error = e
        except BaseException as e:
            self._abort.set()
            self._error = OutputError(f"{self.path}: encoding failed at frame {count} ({e})")
            self._error.__cause__ = e
        finally:
            if self._audio is not None:
                self._audio.close()
            try:
                self._container.close()
            except (av.error.FFmpegError, OSError) as e:
                if self._error is None:
                    self._error = OutputError(f"{self.path}: cannot finish the file ({e})")

    def _finish(self) -> None:
        if self._fps is not None and self._shift is not None:
            self._release(retime.slot(self._until(), self._fps))
        if self._encoded == 0:
            raise OutputError(f"{self.path}: no frames were written")
        self._mux_video(self._stream.encode(None))
        if self._audio:
            end = None
            if self._trim_end:
                end = float(self._last_pts * self.info.time_base + 1 / self._rate)
            self._audio.finish(end)

    def _encode(self, frame: av.VideoFrame) -> None:
        self._mux_video(self._stream.encode(frame))
        self._encoded += 1

    def _write(self, item: object) -> None:
        """Encode a queued Frame or yuv420p tuple with its output pts; with an output frame rate, hold it and
        encode the copies of the frame held before it instead (none when that one is dropped)."""
        if isinstance(item, Frame):
            index, pts = item.index, item.pts
            frame = self._rgb_to_yuv(item)
        else:
            index, pts, data = item  # type: ignore[misc]
            frame = self._picture(av.VideoFrame.from_ndarray(data, format="yuv420p"))
        if self.watermark is not None:
            self.watermark.embed_frame(frame)
        if pts is None:
            pts = round(index / self._rate / self.info.time_base)
        if self._shift is None:
            self._start(pts)
        self._last_pts, self._last_index = pts, index
        if self._fps is None:
            frame.pts = pts - self._shift  # type: ignore[operator]
            frame.time_base = self._time_base
            self._encode(frame)
            return
        self._release(retime.slot(pts * self.info.time_base, self._fps))
        self._held = frame

    def _release(self, until: int) -> None:
        """Encode the held frame once for every output slot before ``until`` not yet filled (the encoder keeps
        its own reference of each, so one picture serves every copy)."""
        while self._held is not None and self._next_slot < until:
            self._held.pts = self._next_slot * self._step - self._shift  # type: ignore[operator]
            self._held.time_base = self._time_base
            self._encode(self._held)
            self._next_slot += 1

    def _until(self) -> Fraction:
        """Source time at which the last written frame stops being shown: the next frame's start, else one frame
        at the average rate after its own."""
        stamps = packet_stamps(self.info.path) if self.info.path else []
        following = self._last_index + 1
        if following < len(stamps):
            return stamps[following][0] * self.info.time_base
        return self._last_pts * self.info.time_base + 1 / self._rate

    def _start(self, first_pts: int) -> None:
        """Fix the output's time shift at the first frame (a trimmed run starts at 0) and start the audio."""
        if self._fps is None:
            self._shift = first_pts if self._trim_start else 0
        else:
            self._next_slot = retime.slot(first_pts * self.info.time_base, self._fps)
            self._shift = self._next_slot * self._step if self._trim_start else 0
        if self._audio:
            start = float(first_pts * self.info.time_base) if self._trim_start else None
            self._audio.begin(start)

    def _rgb_to_yuv(self, frame: Frame) -> av.VideoFrame:
        deep = getattr(frame, "deep", None)
        if self._deep and deep is not None:
            array, fmt = merge_deep(frame.image, deep), "rgb48le"
        else:
            array, fmt = frame.image, "rgb24"
        if self._pad != (0, 0):
            array = np.pad(array, ((0, self._pad[1]), (0, self._pad[0]), (0, 0)), mode="edge")
        matrix = _SWS_MATRIX.get(self.info.colorspace or 0, 5)
        scale = {"width": self.size[0], "height": self.size[1], "interpolation": "BICUBIC"} if self.settings.size \
            else {}
        return av.VideoFrame.from_ndarray(array, format=fmt).reformat(
            format=self.pix_fmt, dst_colorspace=matrix, dst_color_range=self.info.color_range or 1, **scale
        )

    def _picture(self, frame: av.VideoFrame) -> av.VideoFrame:
        """A yuv420p frame at the source's size, scaled to the output size if one is set."""
        if not self.settings.size:
            return frame
        return frame.reformat(width=self.size[0], height=self.size[1], interpolation="BICUBIC")

    def _mux_video(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            dts = packet.dts  # in the codec's time base, as are the shift and the output pts
            shifted = None if dts is None else dts + self._shift  # type: ignore[operator]
            source_time = None if shifted is None else float(shifted * self._time_base)
            self._container.mux(packet)  # rebases packet to the stream's time base
            if self._audio and source_time is not None:
                self._audio.pump(source_time)


def merge_deep(image: np.ndarray, deep: np.ndarray) -> np.ndarray:
    """rgb48 picture: ``deep`` where ``image`` still equals ``deep >> 8``, ``image`` scaled up elsewhere.

    >>> deep = np.full((1, 2, 3), 0x1234, np.uint16); image = (deep >> 8).astype(np.uint8); image[0, 1] = 255
    >>> merge_deep(image, deep)[0, :, 0].tolist()
    [4660, 65535]
    """
    edited = (image != (deep >> 8)).any(axis=2)
    out = deep.copy()
    out[edited] = image[edited].astype(np.uint16) * 257
    return out


def _kept_tags(path: str) -> dict[str, str]:
    """The source's container tags that still describe the output (title, artist...)."""
    try:
        with open_input(path) as source:
            return {k: v for k, v in source.metadata.items() if k.lower() not in _SOURCE_ONLY_TAGS}
    except SteadySwapError:
        return {}
