"""RunConfig: every option of a swap run, shared by the CLI, the Python API, batch jobs and the UI.

Field names follow FaceFusion's flags with dashes turned into underscores where a flag maps.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from steadyswap.errors import UnsupportedOptionError, UsageError
from steadyswap.models.registry import get_model

FACE_MASK_FOREHEAD = 0.2
"""Default share of the forehead (brows to the face mesh's top) the classic swapper pastes."""

SelectorMode = Literal["one", "many", "reference"]
Smoothing = Literal["one-euro", "ema", "off"]

SELECTOR_MODES = ("one", "many", "reference")
SMOOTHING_MODES = ("one-euro", "ema", "off")
DEGRADE_MODES = ("match", "none")
HOLD_MODES = ("still", "none")
VIDEO_ENCODERS = ("libx264", "libx265", "libvpx-vp9", "libsvtav1", "h264_nvenc", "hevc_nvenc")
"""FaceFusion 3.5's video encoders that steadyswap writes (the NVENC ones where an NVIDIA GPU has NVENC: checked at a
run's start by ``io.writer.check_encoder_opens``)."""
AUDIO_ENCODERS = ("flac", "aac", "libmp3lame", "libopus", "libvorbis", "pcm_s16le", "pcm_s32le")
"""FaceFusion 3.5's audio encoders; a run refuses one this PyAV build lacks (libvorbis in the wheel)."""
VIDEO_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
)
EXECUTION_PROVIDERS = ("cpu", "cuda", "tensorrt")
MEMORY_STRATEGIES = ("strict", "moderate", "tolerant")
"""``--video-memory-strategy``: how much free GPU memory the engine plans to use (``engine/gpu/memory.STRATEGY_SHARE``)
and whether it frees models and caches early (strict) or keeps them (tolerant)."""
FACE_MASK_TYPES = ("box", "occlusion", "area", "region")
FACE_MASK_AREAS = ("upper-face", "lower-face", "mouth")
FACE_MASK_REGIONS = ("skin", "left-eyebrow", "right-eyebrow", "left-eye", "right-eye", "glasses", "nose", "mouth",
                     "upper-lip", "lower-lip")
FACE_OCCLUDER_MODELS = ("many", "xseg_1", "xseg_2", "xseg_3")
"""'many': every occluder, their masks combined by minimum."""
FACE_PARSER_MODELS = ("bisenet_resnet_18", "bisenet_resnet_34")
SWITCHES = ("on", "off")
DETECTOR_INTERVAL = 3
"""``--face-detector-interval auto`` with an ONNX detector: faces detected on every third frame, carried between
(chosen by measurement: docs/benchmarks.md, "Detection cadence")."""
MAX_DETECTOR_INTERVAL = 12
PROCESSORS = ("face_swapper", "face_enhancer")
"""FaceFusion's processors that steadyswap runs, in the only order it runs them (swap, then enhance)."""


@dataclass
class RunConfig:
    """Options of one swap run. Validate with ``validate()`` before use."""

    face_swapper_model: str = "classic"
    face_detector_model: str = "mediapipe"
    face_landmarker_model: str = "mediapipe"
    face_recognizer_model: str = "none"
    face_selector_mode: SelectorMode = "one"
    face_map: str | None = None
    reference_face_position: int = 0
    reference_frame_number: int = 0
    reference_face_distance: float = 0.3
    face_detector_score: float = 0.5
    face_detector_size: str = "640x640"
    face_detector_interval: int | Literal["auto"] = "auto"
    face_landmarker_score: float = 0.5
    face_mask_blur: float = 0.3
    face_mask_padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    face_mask_types: tuple[str, ...] = ("box",)
    face_mask_areas: tuple[str, ...] = FACE_MASK_AREAS
    face_mask_regions: tuple[str, ...] = FACE_MASK_REGIONS
    face_occluder_model: str = "xseg_1"
    face_parser_model: str = "bisenet_resnet_34"
    hand_occluder: Literal["on", "off"] = "on"
    face_mask_forehead: float = FACE_MASK_FOREHEAD
    face_swapper_pixel_boost: str | None = None
    face_swapper_weight: float = 0.5
    processors: tuple[str, ...] = ("face_swapper",)
    face_enhancer_model: str = "gfpgan_1.4"
    face_enhancer_blend: int = 80
    face_enhancer_weight: float = 0.5
    color_strength: float = 0.7
    face_degrade: str = "match"
    face_hold: str = "still"
    face_smoothing: Smoothing = "one-euro"
    smoothing_min_cutoff: float = 1.0
    smoothing_beta: float = 2.0
    smoothing_d_cutoff: float = 1.0
    smoothing_lookahead: int = 10
    smoothing_ema_alpha: float = 0.25
    trim_frame_start: int | None = None
    trim_frame_end: int | None = None
    output_video_encoder: str | None = None
    output_video_quality: int = 80
    output_video_preset: str = "veryfast"
    output_video_scale: float = 1.0
    output_video_fps: float | None = None
    output_audio_encoder: str | None = None
    output_audio_quality: int | None = None
    output_audio_volume: int = 100
    output_image_quality: int = 95
    execution_providers: tuple[str, ...] = ("cpu",)
    execution_batch_size: int | None = None
    video_memory_strategy: str = "strict"
    models_dir: str | None = None
    analysis_size: int = 640
    quality_report: str | None = None
    watermark: bool = True
    c2pa_cert: str | None = None
    c2pa_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> RunConfig:
        """Raise UsageError naming the first option whose value cannot work."""
        _choice("--face-selector-mode", self.face_selector_mode, SELECTOR_MODES)
        _choice("--face-smoothing", self.face_smoothing, SMOOTHING_MODES)
        _choice("--hand-occluder", self.hand_occluder, SWITCHES)
        _choice("--face-degrade", self.face_degrade, DEGRADE_MODES)
        _choice("--face-hold", self.face_hold, HOLD_MODES)
        _choice("--output-video-preset", self.output_video_preset, VIDEO_PRESETS)
        for flag, values, allowed in (("--face-mask-types", self.face_mask_types, FACE_MASK_TYPES),
                                      ("--face-mask-areas", self.face_mask_areas, FACE_MASK_AREAS),
                                      ("--face-mask-regions", self.face_mask_regions, FACE_MASK_REGIONS)):
            if not values:
                raise UsageError(f"{flag}: expected at least one of {', '.join(allowed)}")
            for value in values:
                _choice(flag, value, allowed)
        _choice("--face-occluder-model", self.face_occluder_model, FACE_OCCLUDER_MODELS)
        _choice("--face-parser-model", self.face_parser_model, FACE_PARSER_MODELS)
        if self.output_video_encoder is not None:
            _choice("--output-video-encoder", self.output_video_encoder, VIDEO_ENCODERS)
        if self.output_audio_encoder is not None:
            _choice("--output-audio-encoder", self.output_audio_encoder, AUDIO_ENCODERS)
        for provider in self.execution_providers:
            _choice("--execution-providers", provider, EXECUTION_PROVIDERS)
        _choice("--video-memory-strategy", self.video_memory_strategy, MEMORY_STRATEGIES)
        _between("--output-video-quality", self.output_video_quality, 0, 100)
        _between("--output-image-quality", self.output_image_quality, 0, 100)
        _between("--output-video-scale", self.output_video_scale, 0.25, 8.0)
        if self.output_video_fps is not None:
            _between("--output-video-fps", self.output_video_fps, 1.0, 60.0)
        if self.output_audio_quality is not None:
            _between("--output-audio-quality", self.output_audio_quality, 0, 100)
        _between("--output-audio-volume", self.output_audio_volume, 0, 400)
        _between("--face-mask-blur", self.face_mask_blur, 0.0, 1.0)
        _between("--face-mask-forehead", self.face_mask_forehead, 0.0, 1.0)
        if self.face_mask_forehead != FACE_MASK_FOREHEAD and self.face_swapper_model != "classic":
            raise UsageError("--face-mask-forehead: only the classic swapper pastes a mesh region with a forehead "
                             f"to cut (not {self.face_swapper_model}); use --face-mask-padding")
        _between("--face-swapper-weight", self.face_swapper_weight, 0.0, 1.0)
        _between("--color-strength", self.color_strength, 0.0, 1.0)
        _check_processors(self.processors)
        get_model(self.face_enhancer_model, "enhancer")
        _between("--face-enhancer-blend", self.face_enhancer_blend, 0, 100)
        _between("--face-enhancer-weight", self.face_enhancer_weight, 0.0, 1.0)
        _between("--reference-face-distance", self.reference_face_distance, 0.0, 2.0)
        _between("--face-detector-score", self.face_detector_score, 0.0, 1.0)
        _between("--face-landmarker-score", self.face_landmarker_score, 0.0, 1.0)
        if self.face_detector_interval != "auto":
            if isinstance(self.face_detector_interval, bool) or not isinstance(self.face_detector_interval, int):
                raise UsageError(f"--face-detector-interval: 'auto' or a number of frames, not "
                                 f"{self.face_detector_interval!r}")
            _between("--face-detector-interval", self.face_detector_interval, 1, MAX_DETECTOR_INTERVAL)
            if self.face_detector_interval > 1 and self.face_detector_model == "mediapipe":
                raise UsageError("--face-detector-interval: the embedded mediapipe mesh follows its faces itself, "
                                 "frame by frame; the interval is for the ONNX detectors (--face-detector-model)")
        if len(self.face_mask_padding) != 4 or any(not 0 <= p <= 100 for p in self.face_mask_padding):
            raise UsageError("--face-mask-padding: expected 1 to 4 percentages between 0 and 100")
        if self.trim_frame_start is not None and self.trim_frame_start < 0:
            raise UsageError("--trim-frame-start: must be 0 or more")
        if (
            self.trim_frame_start is not None
            and self.trim_frame_end is not None
            and self.trim_frame_end <= self.trim_frame_start
        ):
            raise UsageError("--trim-frame-end: must be greater than --trim-frame-start")
        if self.execution_batch_size is not None and self.execution_batch_size < 1:
            raise UsageError("--execution-batch-size: must be 1 or more")
        if (self.c2pa_cert is None) != (self.c2pa_key is None):
            raise UsageError("--c2pa-cert and --c2pa-key go together: give both, or neither to sign with this "
                             "install's own certificate")
        if self.analysis_size < 128:
            raise UsageError("--analysis-size: must be at least 128 pixels")
        _between("--smoothing-ema-alpha", self.smoothing_ema_alpha, 0.0, 1.0)
        _between("--smoothing-lookahead", self.smoothing_lookahead, 0, 60)
        for flag, value in (("--smoothing-min-cutoff", self.smoothing_min_cutoff), ("--smoothing-beta", self.smoothing_beta),
                            ("--smoothing-d-cutoff", self.smoothing_d_cutoff)):
            if value < 0 or (value == 0 and flag != "--smoothing-beta"):
                raise UsageError(f"{flag}: {value} must be positive")
        return self

    @property
    def detection_interval(self) -> int:
        """Frames per face detection (``tracking.cadence``): ``--face-detector-interval``, where 'auto' is
        ``DETECTOR_INTERVAL`` for the ONNX detectors and 1 for the embedded mesh (which tracks by itself)."""
        if self.face_detector_interval != "auto":
            return int(self.face_detector_interval)
        return 1 if self.face_detector_model == "mediapipe" else DETECTOR_INTERVAL

    @property
    def enhances(self) -> bool:
        """Whether the face enhancer runs after the swap (``--processors face_swapper face_enhancer``)."""
        return "face_enhancer" in self.processors

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Build from a mapping (a job file's options); unknown keys are an error, dashes accepted.

        ``gpu``, a mapping of GPU engine tunables (``GpuOptions``: ``device``, ``half``, ``segments``...), goes to
        ``extra['gpu']``; the engine checks its keys when it starts.
        """
        names = {f.name for f in fields(cls)}
        clean: dict[str, Any] = {}
        gpu = None
        for key, value in values.items():
            name = key.lstrip("-").replace("-", "_")
            if name == "gpu":
                gpu = value
                continue
            if name not in names:
                raise UsageError(f"unknown option '{key}'")
            if isinstance(value, list):
                value = tuple(value)
            if name == "hand_occluder" and isinstance(value, bool):  # YAML 1.1 reads on/off as booleans
                value = SWITCHES[not value]
            clean[name] = value
        if gpu is not None:
            if not isinstance(gpu, dict):
                raise UsageError(f"option 'gpu': expected a mapping of GPU engine options, got {gpu!r}")
            clean["extra"] = {**clean.get("extra", {}), "gpu": dict(gpu)}
        return cls(**clean).validate()


LIVE_SMOOTHING = {"smoothing_min_cutoff": 0.8, "smoothing_beta": 1.0, "smoothing_d_cutoff": 4.0}
"""The One-Euro parameters of live runs unless set: the causal filter's best trade on the shared clips
(``scripts/tune_smoothing.py``), 48.5% of the unsmoothed landmark jitter at up to 1.8 frames of lag, where the file
defaults, chosen for the zero-phase filter, leave 52% (docs/live.md). Applied by ``live_smoothing``."""


def live_smoothing(config: RunConfig, given: Collection[str]) -> RunConfig:
    """``config`` with ``LIVE_SMOOTHING`` for each One-Euro parameter not in ``given`` (the fields the user set)."""
    return replace(config, **{field: value for field, value in LIVE_SMOOTHING.items() if field not in given})


def crf_from_quality(quality: int, encoder: str) -> int:
    """Map FaceFusion's 0-100 video quality to the encoder's CRF, as FaceFusion 3.5 does: 51..0 for H.264 and HEVC
    (the NVENC encoders' constant-quality target ``cq`` too), 63..0 for VP9 and AV1.

    >>> crf_from_quality(80, "libx264"), crf_from_quality(80, "h264_nvenc"), crf_from_quality(80, "libvpx-vp9")
    (10, 10, 13)
    """
    top = 63 if encoder in ("libvpx-vp9", "libsvtav1") else 51
    return round(top - quality / 100 * top)


def _choice(flag: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UsageError(f"{flag}: '{value}' is not one of {', '.join(allowed)}")


def _check_processors(processors: tuple[str, ...]) -> None:
    """UsageError unless ``processors`` is face_swapper, optionally followed by face_enhancer."""
    other = [name for name in processors if name not in PROCESSORS]
    if other:
        raise UnsupportedOptionError(f"--processors {' '.join(other)} is not supported yet (steadyswap runs "
                                     f"face_swapper and face_enhancer)")
    if tuple(processors) not in (PROCESSORS[:1], PROCESSORS):
        raise UsageError(f"--processors {' '.join(processors)}: steadyswap runs face_swapper, optionally followed by "
                         f"face_enhancer (it always swaps, and enhances the swapped face)")


def _between(flag: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise UsageError(f"{flag}: {value} is outside {low}..{high}")


def resolve_path(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()
