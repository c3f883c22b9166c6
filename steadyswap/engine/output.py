"""A RunConfig's output options as a video writer's settings, made in one place so that every path (the CPU run,
the GPU engine, segments and the batch's join) encodes, scales, retimes and treats audio the same."""

from __future__ import annotations

from steadyswap.config import RunConfig, crf_from_quality
from steadyswap.io.audio import AudioSettings
from steadyswap.io.probe import PathLike
from steadyswap.io.retime import output_rate
from steadyswap.io.writer import OutputSettings, check_settings, default_encoder, scaled_size
from steadyswap.types import VideoInfo

AUDIO_KBITS = (64, 256)
"""kbit/s of audio quality 0 and 100: FaceFusion's range for Opus, used here for every lossy audio encoder."""
DEFAULT_AUDIO_QUALITY = 80
"""FaceFusion's default ``--output-audio-quality``: the quality of a re-encode asked for by another option."""


def audio_bit_rate(quality: int) -> int:
    """Bits per second of ``--output-audio-quality``, linear between ``AUDIO_KBITS``.

    >>> audio_bit_rate(0), audio_bit_rate(80), audio_bit_rate(100)
    (64000, 218000, 256000)
    """
    low, high = AUDIO_KBITS
    return round(low + quality / 100 * (high - low)) * 1000


def output_settings(config: RunConfig, info: VideoInfo, output: PathLike) -> OutputSettings:
    """The ``VideoWriter`` settings of ``config`` for a video of ``info`` written to ``output``.

    The encoder is the one named, else the container's (``default_encoder``); audio is copied unless an
    audio encoder or quality is given or the volume is not 100.

    Raises:
        UsageError: naming ``output``, when the container, this PyAV build and the options do not fit together.
    """
    encoder = config.output_video_encoder or default_encoder(output)
    scale = config.output_video_scale
    quality = config.output_audio_quality
    settings = OutputSettings(
        encoder=encoder,
        crf=crf_from_quality(config.output_video_quality, encoder),
        preset=config.output_video_preset,
        size=scaled_size(info.width, info.height, scale) if scale != 1 else None,
        fps=output_rate(config.output_video_fps) if config.output_video_fps is not None else None,
        audio=AudioSettings(
            encoder=config.output_audio_encoder,
            bit_rate=audio_bit_rate(DEFAULT_AUDIO_QUALITY if quality is None else quality),
            volume=config.output_audio_volume / 100,
            reencode=quality is not None,
        ),
    )
    check_settings(output, settings)
    return settings
