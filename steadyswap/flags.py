"""The flag table of ``steadyswap run``: steadyswap's flags and every FaceFusion 3.5 headless-run flag.

``FLAGS`` lists the flags that work; their ``dest`` is a RunConfig field (or a CLI-only setting such as
``sources``). ``FACEFUSION_FLAGS`` lists the FaceFusion flags that do not map: accepted without effect (one
warning line each) or not supported yet (a usage error), sometimes depending on the value given.

The table is read by every front end: the CLI wires it into argparse (``cli/``), the web UI builds its options
panel from it (``ui/``). Neither restates a flag's name, help or choices.
"""

from __future__ import annotations

import argparse
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from steadyswap.config import (
    AUDIO_ENCODERS,
    DEGRADE_MODES,
    DETECTOR_INTERVAL,
    EXECUTION_PROVIDERS,
    FACE_MASK_AREAS,
    FACE_MASK_REGIONS,
    FACE_MASK_TYPES,
    FACE_OCCLUDER_MODELS,
    FACE_PARSER_MODELS,
    HOLD_MODES,
    MEMORY_STRATEGIES,
    SELECTOR_MODES,
    SMOOTHING_MODES,
    SWITCHES,
    VIDEO_ENCODERS,
    VIDEO_PRESETS,
)
from steadyswap.errors import UnsupportedOptionError, UsageError

LOG_LEVELS = {
    "debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "warn": logging.WARNING,
    "error": logging.ERROR,
}

GROUPS = (
    "paths",
    "face detection & selection",
    "face swapper",
    "face enhancer",
    "mask",
    "smoothing & colour",
    "output video/image",
    "execution",
    "misc",
)


def pixel_size(text: str) -> str:
    """Argparse type of ``--face-swapper-pixel-boost``: 'WIDTHxHEIGHT', e.g. '512x512'.

    >>> pixel_size("512x512")
    '512x512'
    """
    if not re.fullmatch(r"[1-9]\d*x[1-9]\d*", text):
        raise argparse.ArgumentTypeError(f"'{text}' is not a size like 512x512")
    return text


def interval(text: str) -> int | str:
    """Argparse type of ``--face-detector-interval``: 'auto' or a whole number of frames.

    >>> interval("auto"), interval("3")
    ('auto', 3)
    """
    if text == "auto":
        return text
    if not re.fullmatch(r"[1-9]\d*", text):
        raise argparse.ArgumentTypeError(f"'{text}' is not 'auto' or a number of frames")
    return int(text)


@dataclass(frozen=True)
class Flag:
    """One working flag of ``steadyswap run``.

    ``help`` may show ``{default}``: RunConfig's default for a config field, else ``default`` (CLI-only flags).
    """

    names: tuple[str, ...]
    dest: str
    group: str
    help: str
    type: Callable[[str], Any] | None = None
    nargs: str | None = None
    choices: Sequence[str] | None = None
    metavar: str | None = None
    action: str | None = None
    required: bool = False
    default: Any = None


FLAGS: tuple[Flag, ...] = (
    # paths
    Flag(("-s", "--source-paths", "--source"), "sources", "paths",
         "source face photo(s); several (paths, or the flag repeated) combine into one identity",
         nargs="+", action="extend",
         metavar="PATH", required=True),
    Flag(("-t", "--target-path", "--target"), "target", "paths", "target video or image", metavar="PATH",
         required=True),
    Flag(("-o", "--output-path", "--output"), "output", "paths",
         "output file, or an existing folder (then named like FaceFusion: 8 hex digits of a hash of the "
         "run plus the target's extension)", metavar="PATH", required=True),
    Flag(("--models-dir",), "models_dir", "paths",
         "folder holding model files (default: the user cache folder)", metavar="DIR"),
    Flag(("--quality-report",), "quality_report", "paths",
         "write a quality report (JSON) of the run here and print its summary", metavar="PATH"),
    # face detection & selection
    Flag(("--face-detector-model",), "face_detector_model", "face detection & selection",
         "face detector (default: {default})", metavar="NAME"),
    Flag(("--face-detector-score",), "face_detector_score", "face detection & selection",
         "minimum detection score, 0-1 (default: {default})", type=float, metavar="SCORE"),
    Flag(("--face-detector-size",), "face_detector_size", "face detection & selection",
         "input size of an ONNX detector: retinaface and scrfd 160x160, 320x320, 480x480, 512x512 or 640x640; "
         "yolo_face and yunet 640x640 (default: {default})", type=pixel_size, metavar="WxH"),
    Flag(("--face-detector-interval",), "face_detector_interval", "face detection & selection",
         "an ONNX detector runs on every N-th frame at most; between two detections each face is carried "
         "(interpolated from both), and detected after all where they disagree (a face came, left or moved far, a "
         f"low score) and at scene cuts; auto: {DETECTOR_INTERVAL} for the ONNX detectors, 1 for the embedded mesh, "
         "which follows its faces itself (default: {default})", type=interval, metavar="N"),
    Flag(("--face-landmarker-model",), "face_landmarker_model", "face detection & selection",
         "face landmarker (default: {default})", metavar="NAME"),
    Flag(("--face-landmarker-score",), "face_landmarker_score", "face detection & selection",
         "2dfan4's points replace the detector's five points where its score is above this, 0-1; "
         "0 skips 2dfan4, as FaceFusion does (default: {default})", type=float, metavar="SCORE"),
    Flag(("--face-recognizer-model",), "face_recognizer_model", "face detection & selection",
         "ArcFace model that tells people apart for reference selection and face maps; 'none' compares "
         "their appearance (a colour histogram of the face box). Neural swappers embed the sources with it "
         "(arcface_w600k_r50 when 'none') (default: {default})",
         metavar="NAME"),
    Flag(("--analysis-size",), "analysis_size", "face detection & selection",
         "longest side, in pixels, of the frame copy faces are analysed on (default: {default})",
         type=int, metavar="PIXELS"),
    Flag(("--face-selector-mode",), "face_selector_mode", "face detection & selection",
         "which target faces to swap: one (one face, followed while its track lives: the largest when it "
         "is picked; the embedded analyser finds only the face its detector is most confident of), many "
         "(all), reference (those like the reference face) (default: {default})", choices=SELECTOR_MODES),
    Flag(("--face-map",), "face_map", "face detection & selection",
         "JSON file mapping people of the target (frame + box) to source photos or to none; "
         "see docs/face-map.md (overrides --face-selector-mode)", metavar="FILE"),
    Flag(("--reference-face-position",), "reference_face_position", "face detection & selection",
         "index of the reference face in the reference frame, largest first (default: {default})",
         type=int, metavar="INDEX"),
    Flag(("--reference-face-distance",), "reference_face_distance", "face detection & selection",
         "how far a face may be from the reference face and still be swapped (default: {default})",
         type=float, metavar="DISTANCE"),
    Flag(("--reference-frame-number",), "reference_frame_number", "face detection & selection",
         "frame the reference face is taken from (default: {default})", type=int, metavar="FRAME"),
    # face swapper
    Flag(("--face-swapper-model",), "face_swapper_model", "face swapper",
         "swapper model: classic (built in, needs no weights) or a FaceFusion model such as "
         "hyperswap_1a_256 (default: {default})", metavar="NAME"),
    Flag(("--face-swapper-pixel-boost",), "face_swapper_pixel_boost", "face swapper",
         "swap at this crop size, e.g. 512x512 (default: the model's own size)", type=pixel_size,
         metavar="WxH"),
    Flag(("--face-swapper-weight",), "face_swapper_weight", "face swapper",
         "strength of the source identity, 0-1 (default: {default})", type=float, metavar="WEIGHT"),
    # face enhancer
    Flag(("--processors",), "processors", "face enhancer",
         "FaceFusion's processors: face_swapper, then optionally face_enhancer, which re-renders each swapped face "
         "with --face-enhancer-model (default: {default})", nargs="+", metavar="NAME"),
    Flag(("--face-enhancer-model",), "face_enhancer_model", "face enhancer",
         "face enhancer model with --processors face_swapper face_enhancer: codeformer, gfpgan_1.2, gfpgan_1.3, "
         "gfpgan_1.4, gpen_bfr_256, gpen_bfr_512, gpen_bfr_1024, gpen_bfr_2048, restoreformer_plus_plus "
         "(default: {default})", metavar="NAME"),
    Flag(("--face-enhancer-blend",), "face_enhancer_blend", "face enhancer",
         "how much of the enhanced face replaces the swapped one, 0-100 (default: {default})", type=int,
         metavar="PERCENT"),
    Flag(("--face-enhancer-weight",), "face_enhancer_weight", "face enhancer",
         "codeformer's fidelity weight, 0-1; other models have no weight input (default: {default})", type=float,
         metavar="WEIGHT"),
    # mask
    Flag(("--face-mask-types",), "face_mask_types", "mask",
         "masks combined by minimum, of box, occlusion, area, region: box (the swapper's own: the crop's box, or the classic swapper's mesh outline), "
         "occlusion (--face-occluder-model: what covers the face stays the target's), area (--face-mask-areas, "
         "from the landmarks), region (--face-parser-model: only --face-mask-regions are swapped) "
         "(default: {default})", nargs="+", choices=FACE_MASK_TYPES, metavar="TYPE"),
    Flag(("--face-mask-areas",), "face_mask_areas", "mask",
         f"face areas of the area mask: {', '.join(FACE_MASK_AREAS)} (default: {{default}})", nargs="+",
         choices=FACE_MASK_AREAS, metavar="AREA"),
    Flag(("--face-mask-regions",), "face_mask_regions", "mask",
         f"face regions of the region mask: {', '.join(FACE_MASK_REGIONS)} (default: all)", nargs="+",
         choices=FACE_MASK_REGIONS, metavar="REGION"),
    Flag(("--face-occluder-model",), "face_occluder_model", "mask",
         "occlusion mask model; many: all of them, combined by minimum (default: {default})",
         choices=FACE_OCCLUDER_MODELS),
    Flag(("--face-parser-model",), "face_parser_model", "mask",
         "region mask model (default: {default})", choices=FACE_PARSER_MODELS),
    Flag(("--face-mask-blur",), "face_mask_blur", "mask",
         "feathering of the mask edge relative to face size, 0-1 (default: {default})", type=float,
         metavar="BLUR"),
    Flag(("--face-mask-padding",), "face_mask_padding", "mask",
         "shrink the mask by percentages like CSS: 1 value all sides, 2 top/bottom right/left, "
         "3 top right/left bottom, 4 top right bottom left (default: {default})", type=int, nargs="+",
         metavar="PERCENT"),
    Flag(("--hand-occluder",), "hand_occluder", "mask",
         "keep hands in front of a face visible: MediaPipe's hand landmarks (inside the wheel) cut the hands "
         "out of every swapped face's mask; off pastes the face over them (default: {default})",
         choices=SWITCHES),
    Flag(("--face-mask-forehead",), "face_mask_forehead", "mask",
         "classic swapper: share of the forehead pasted above the brows, 0 (none) to 1 (up to the hairline, "
         "with the source's hair); the source's hair and frames above the eyes are left out either way "
         "(default: {default})", type=float, metavar="SHARE"),
    # smoothing & colour
    Flag(("--face-smoothing",), "face_smoothing", "smoothing & colour",
         "landmark smoothing per tracked face (default: {default})", choices=SMOOTHING_MODES),
    Flag(("--smoothing-min-cutoff",), "smoothing_min_cutoff", "smoothing & colour",
         "One-Euro minimum cutoff frequency in Hz; lower removes more jitter (default: {default})",
         type=float, metavar="HZ"),
    Flag(("--smoothing-beta",), "smoothing_beta", "smoothing & colour",
         "One-Euro speed coefficient; higher follows fast motion with less lag (default: {default})",
         type=float, metavar="BETA"),
    Flag(("--smoothing-d-cutoff",), "smoothing_d_cutoff", "smoothing & colour",
         "One-Euro cutoff for the speed estimate in Hz (default: {default})", type=float, metavar="HZ"),
    Flag(("--smoothing-lookahead",), "smoothing_lookahead", "smoothing & colour",
         "future frames One-Euro may use in file runs: it then smooths zero-phase, without lag; "
         "0 makes it causal (default: {default})", type=int, metavar="FRAMES"),
    Flag(("--smoothing-ema-alpha",), "smoothing_ema_alpha", "smoothing & colour",
         "weight of the current frame with --face-smoothing ema, 0-1 (default: {default})", type=float,
         metavar="ALPHA"),
    Flag(("--color-strength",), "color_strength", "smoothing & colour",
         "LAB colour matching of the swapped face to the target's, then the target's low-frequency colour inside "
         "the face (blush, make-up, light), every swapper, 0 (off) to 1 (default: {default})",
         type=float, metavar="STRENGTH"),
    Flag(("--face-degrade",), "face_degrade", "smoothing & colour",
         "blur and grain the swapped face to the target's own sharpness and noise (match), every swapper, "
         "or leave it as the swapper made it (none) (default: {default})", choices=DEGRADE_MODES),
    Flag(("--face-hold",), "face_hold", "smoothing & colour",
         "where the target's face does not change between frames, paste the previous swapped face again, "
         "and where it changes a little, that face plus the target's change (still), or swap every frame "
         "anew (none) (default: {default})", choices=HOLD_MODES),
    # output video/image
    Flag(("--trim-frame-start",), "trim_frame_start", "output video/image",
         "first frame to process (default: the first)", type=int, metavar="FRAME"),
    Flag(("--trim-frame-end",), "trim_frame_end", "output video/image",
         "frame to stop at, not included, as in FaceFusion (default: the end)", type=int, metavar="FRAME"),
    Flag(("--output-video-encoder",), "output_video_encoder", "output video/image",
         "video encoder (default: from the output's extension: libvpx-vp9 for .webm, else libx264); h264_nvenc and "
         "hevc_nvenc need an NVIDIA GPU with NVENC, checked when the run starts",
         choices=VIDEO_ENCODERS),
    Flag(("--output-video-quality",), "output_video_quality", "output video/image",
         "video quality 0-100, mapped to the encoder's CRF (NVENC: its cq) as FaceFusion maps it (default: {default})",
         type=int, metavar="QUALITY"),
    Flag(("--output-video-preset",), "output_video_preset", "output video/image",
         "encoder speed preset; NVENC: fast up to fast, then medium, slow from slow on, as FaceFusion (default: "
         "{default})", choices=VIDEO_PRESETS),
    Flag(("--output-video-scale",), "output_video_scale", "output video/image",
         "scale factor of the output video's size, 0.25-8; sides rounded to even numbers (default: {default})",
         type=float, metavar="SCALE"),
    Flag(("--output-video-fps",), "output_video_fps", "output video/image",
         "frame rate of the output video, 1-60: frames dropped or repeated by timestamp as FFmpeg's fps filter "
         "does, duration and audio unchanged (default: the target's timestamps)", type=float, metavar="FPS"),
    Flag(("--output-audio-encoder",), "output_audio_encoder", "output video/image",
         "re-encode the audio with this encoder (default: copy the target's audio)", choices=AUDIO_ENCODERS),
    Flag(("--output-audio-quality",), "output_audio_quality", "output video/image",
         "audio quality 0-100, mapped to 64-256 kbit/s for lossy encoders; re-encodes the audio "
         "(default: copy; 80 when re-encoding)", type=int, metavar="QUALITY"),
    Flag(("--output-audio-volume",), "output_audio_volume", "output video/image",
         "audio volume in percent, 0-400; other than 100 re-encodes the audio (default: {default})", type=int,
         metavar="PERCENT"),
    Flag(("--output-image-quality",), "output_image_quality", "output video/image",
         "image quality 0-100 for lossy formats (default: {default})", type=int, metavar="QUALITY"),
    Flag(("--no-watermark",), "watermark", "output video/image",
         "leave the invisible watermark out of the pixels: a re-encoded, resized, cropped or screenshotted copy "
         "then carries no mark of being synthetic (the C2PA manifest and container tags stay)", action="store_false"),
    Flag(("--c2pa-cert",), "c2pa_cert", "output video/image",
         "PEM certificate chain that signs the output's C2PA manifest, with --c2pa-key (default: "
         "$STEADYSWAP_C2PA_CERT, else this install's own untrusted certificate)", metavar="PEM"),
    Flag(("--c2pa-key",), "c2pa_key", "output video/image",
         "PEM private key of --c2pa-cert (default: $STEADYSWAP_C2PA_KEY)", metavar="PEM"),
    # execution
    Flag(("--execution-providers",), "execution_providers", "execution",
         "where models run, in order of preference (default: {default})", nargs="+",
         choices=EXECUTION_PROVIDERS),
    Flag(("--execution-batch-size",), "execution_batch_size", "execution",
         "faces per model call on the GPU (default: sized from free GPU memory)", type=int, metavar="N"),
    Flag(("--video-memory-strategy",), "video_memory_strategy", "execution",
         "GPU memory use: strict frees models and buffers early, tolerant keeps them cached "
         "(default: {default})", choices=MEMORY_STRATEGIES),
    # misc
    Flag(("--log-level",), "log_level", "misc",
         "messages to show; warn is FaceFusion's spelling of warning (default: {default})",
         choices=tuple(LOG_LEVELS), default="info"),
    Flag(("-q", "--quiet",), "quiet", "misc", "no progress bar and no info lines (warnings and errors still show)",
         action="store_true"),
)


LIVE_FIELDS = (
    "models_dir", "face_detector_model", "face_detector_score", "face_landmarker_model", "analysis_size",
    "face_selector_mode", "face_swapper_model", "face_swapper_pixel_boost", "face_swapper_weight", "face_mask_types",
    "face_mask_areas", "face_mask_regions", "face_occluder_model", "face_parser_model", "face_mask_blur",
    "face_mask_padding", "face_mask_forehead", "hand_occluder", "processors", "face_enhancer_model",
    "face_enhancer_blend", "face_enhancer_weight", "face_smoothing", "smoothing_min_cutoff", "smoothing_beta",
    "smoothing_d_cutoff", "smoothing_ema_alpha", "color_strength", "face_degrade", "face_hold",
    "output_video_encoder", "output_video_quality", "output_video_preset", "execution_providers",
    "execution_batch_size", "watermark", "c2pa_cert", "c2pa_key",
)
"""The RunConfig fields that mean something live, as in a file run. Not here: the target, trims and reference or
face-map selection (they need a file's frames) and the smoothing lookahead (live has no future frames)."""
LIVE_OPTIONS = ("sources", *LIVE_FIELDS, "log_level", "quiet")
"""The ``run`` flags of ``live``: same names, same meaning."""


def help_default(value: object) -> str:
    """A RunConfig default as help text shows it (the CLI's ``--help`` and the web UI's options panel).

    >>> help_default((0, 0, 0, 0)), help_default(None)
    ('0 0 0 0', 'none')
    """
    if isinstance(value, tuple):
        return " ".join(str(item) for item in value)
    return "none" if value is None else str(value)


def css_sides(values: Sequence[int]) -> tuple[int, int, int, int]:
    """``--face-mask-padding``'s 1-4 values as (top, right, bottom, left), as CSS and FaceFusion expand them.

    >>> css_sides([5]), css_sides([5, 10]), css_sides([5, 10, 15])
    ((5, 5, 5, 5), (5, 10, 5, 10), (5, 10, 15, 10))
    """
    if not 1 <= len(values) <= 4:
        raise UsageError(f"--face-mask-padding: expected 1 to 4 values, got {len(values)}")
    top = values[0]
    right = values[1] if len(values) > 1 else top
    bottom = values[2] if len(values) > 2 else top
    left = values[3] if len(values) > 3 else right
    return top, right, bottom, left


@dataclass(frozen=True)
class FaceFusionFlag:
    """A FaceFusion flag that does not map onto a RunConfig field.

    ``effect`` "none": accepted, one warning line. "unsupported": a usage error, except for the values in
    ``honoured`` (what steadyswap does anyway), which are accepted quietly, or with ``honoured_note``.
    ``family`` names the flag's group in the help's summary, e.g. ``--face-editor-*``.
    """

    name: str
    effect: Literal["none", "unsupported"]
    reason: str
    honoured: tuple[str, ...] = ()
    honoured_note: str | None = None
    family: str | None = None


def _none(name: str, reason: str) -> FaceFusionFlag:
    return FaceFusionFlag(name, "none", reason)


def _unsupported(name: str, reason: str, honoured: tuple[str, ...] = (), note: str | None = None) -> FaceFusionFlag:
    return FaceFusionFlag(name, "unsupported", reason, honoured, note)


def _processor(processor: str, *options: str) -> tuple[FaceFusionFlag, ...]:
    prefix = f"--{processor.replace('_', '-')}-"
    reason = f"the {processor} processor"
    return tuple(FaceFusionFlag(prefix + option, "unsupported", reason, family=prefix + "*") for option in options)


_OLDER = "a FaceFusion 3.0-3.3 flag"

FACEFUSION_FLAGS: tuple[FaceFusionFlag, ...] = (
    # paths
    _unsupported("--config-path", "steadyswap reads no facefusion.ini; pass its settings as flags"),
    _none("--temp-path", "steadyswap writes no temporary frames; its unfinished output lies beside the output"),
    _none("--jobs-path", "steadyswap runs without a job store"),
    # face detector, landmarker, selector
    _unsupported("--face-detector-margin", "padding the frame before detection", honoured=("0",)),
    _unsupported("--face-detector-angles", "detecting rotated faces", honoured=("0",)),
    _unsupported("--face-selector-order", "steadyswap orders faces largest first", honoured=("large-small",)),
    _unsupported("--face-selector-gender", "needs a gender classifier"),
    _unsupported("--face-selector-race", "needs a race classifier"),
    _unsupported("--face-selector-age-start", "needs an age classifier"),
    _unsupported("--face-selector-age-end", "needs an age classifier"),
    # face masker
    _none("--voice-extractor-model", "only FaceFusion's lip_syncer processor uses it"),
    # frame extraction
    _none("--temp-frame-format", "steadyswap writes no temporary frames"),
    _none("--keep-temp", "steadyswap writes no temporary frames"),
    # output creation
    _unsupported("--output-image-scale", "the output keeps the target's size", honoured=("1",)),
    # processors (face_swapper and face_enhancer are flags of their own)
    *_processor("age_modifier", "model", "direction"),
    *_processor("background_remover", "model", "color"),
    *_processor("deep_swapper", "model", "morph"),
    *_processor("expression_restorer", "model", "factor", "areas"),
    *_processor("face_debugger", "items"),
    *_processor(
        "face_editor", "model", "eyebrow-direction", "eye-gaze-horizontal", "eye-gaze-vertical",
        "eye-open-ratio", "lip-open-ratio", "mouth-grim", "mouth-pout", "mouth-purse", "mouth-smile",
        "mouth-position-horizontal", "mouth-position-vertical", "head-pitch", "head-yaw", "head-roll",
    ),
    *_processor("frame_colorizer", "model", "size", "blend"),
    *_processor("frame_enhancer", "model", "blend"),
    *_processor("lip_syncer", "model", "weight"),
    # execution, memory, download
    _unsupported("--execution-device-ids", "steadyswap uses the first GPU; choose it with CUDA_VISIBLE_DEVICES",
                 honoured=("0",)),
    _none("--execution-thread-count", "steadyswap sizes its decode, compute and encode threads itself"),
    _none("--system-memory-limit", "steadyswap's frame queues are bounded, so memory does not grow with the video"),
    _none("--download-providers", "steadyswap downloads models from the addresses in its model registry"),
    # facefusion run (the UI) and benchmark
    *(_unsupported(name, "an option of FaceFusion's UI and benchmark commands; steadyswap run is headless")
      for name in ("--open-browser", "--ui-layouts", "--ui-workflow",
                   "--benchmark-mode", "--benchmark-resolutions", "--benchmark-cycle-count")),
    # older FaceFusion 3.x
    _none("--execution-queue-count", f"{_OLDER}; steadyswap sizes its queues itself"),
    _unsupported("--execution-device-id", f"{_OLDER}; steadyswap uses the first GPU", honoured=("0",)),
    _unsupported("--output-video-resolution", f"{_OLDER}; the output keeps the target's size"),
    _unsupported("--output-image-resolution", f"{_OLDER}; the output keeps the target's size"),
    _unsupported("--skip-audio", f"{_OLDER}; the target's audio is always kept"),
)

FACEFUSION_BY_NAME = {flag.name: flag for flag in FACEFUSION_FLAGS}


def check_facefusion_flag(name: str, values: Sequence[str]) -> str | None:
    """Judge one FaceFusion flag as given: the warning line to print, or None when there is nothing to say.

    Raises:
        UnsupportedOptionError: the flag (or one of its values) is not supported yet.
        UsageError: a flag that needs a value came without one.

    >>> check_facefusion_flag("--temp-frame-format", ["png"])
    '--temp-frame-format has no effect (steadyswap writes no temporary frames)'
    >>> check_facefusion_flag("--face-selector-order", ["large-small"]) is None
    True
    """
    flag = FACEFUSION_BY_NAME[name]
    if flag.effect == "none":
        return f"{name} has no effect ({flag.reason})"
    if not flag.honoured:
        raise UnsupportedOptionError(f"{name} is not supported yet ({flag.reason})")
    if not values:
        raise UsageError(f"{name}: expected at least one value")
    refused = [value for value in values if not any(_same(value, ok) for ok in flag.honoured)]
    if refused:
        raise UnsupportedOptionError(f"{name} {' '.join(refused)} is not supported yet ({flag.reason})")
    return f"{name} {' '.join(values)}: {flag.honoured_note}" if flag.honoured_note else None


def unsupported_summary() -> list[str]:
    """One line per reason, listing the FaceFusion flags that are not supported yet (for the help epilog)."""
    by_reason: dict[str, list[str]] = {}
    for flag in FACEFUSION_FLAGS:
        if flag.effect == "unsupported":
            label = flag.family or flag.name
            if flag.honoured:
                label += f" other than {' '.join(flag.honoured)}"
            labels = by_reason.setdefault(flag.reason, [])
            if label not in labels:
                labels.append(label)
    return [f"{', '.join(names)}: {reason}" for reason, names in by_reason.items()]


def _same(given: str, honoured: str) -> bool:
    """Compare a value as FaceFusion would: numerically when both are numbers ('1.0' equals '1')."""
    try:
        return float(given) == float(honoured)
    except ValueError:
        return given == honoured
