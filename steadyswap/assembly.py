"""Build the ONNX analyser, recognizer, swapper, face masker and enhancer a ``RunConfig`` asks for.

Each builder returns None for the embedded choice ('mediapipe', 'classic', 'none') so the engine falls
back to it. Every file needed is checked first (all missing ones named in one ModelError).

Assembly sits above the stages it joins: it reads ``models/`` (registry, store, runtime) and builds the
stage objects of ``analysis/``, ``swap/``, ``blend/`` and ``enhance/``, so ``models/`` itself depends on none of
them. The CPU path (``engine/frame_swapper``), the GPU engine and the web UI's file check all ask here.
"""

from __future__ import annotations

import logging
import re

import onnxruntime as ort

from steadyswap.analysis.base import FaceAnalyzer
from steadyswap.analysis.landmarker_2dfan4 import Fan68Landmarker
from steadyswap.analysis.landmarker_68_5 import Fan68From5
from steadyswap.analysis.onnx_detectors import OnnxDetector
from steadyswap.blend.face_masks import FaceMasker, MaskOptions
from steadyswap.config import RunConfig
from steadyswap.enhance.onnx_enhancer import FaceEnhancer
from steadyswap.errors import ModelError, UsageError
from steadyswap.models import runtime
from steadyswap.models.registry import EMBEDDED, ModelSpec, get_model, models_for, requirements
from steadyswap.models.store import ModelStore, open_store
from steadyswap.swap.base import Swapper
from steadyswap.swap.onnx_swapper import OnnxSwapper, load_emap
from steadyswap.swap.recognizer import ArcFaceRecognizer

log = logging.getLogger(__name__)
DEFAULT_RECOGNIZER = "arcface_w600k_r50"
NO_LANDMARKER = ("mediapipe", "none")


def model_store(config: RunConfig) -> ModelStore:
    """The models of ``config``: ``--models-dir``, the env var or the user cache dir (with FaceFusion installs)."""
    return open_store(config.models_dir)


def build_analyzer(config: RunConfig, store: ModelStore | None = None) -> FaceAnalyzer | None:
    """An ``OnnxDetector`` (plus 2dfan4 when chosen), or None for the embedded MediaPipe analyser.

    With an ONNX detector, ``--face-landmarker-model mediapipe`` (or ``none``) means no 68-point
    landmarker: ``landmarks`` are the detector's five points.
    """
    check_analysis(config)
    if config.face_detector_model == EMBEDDED["detector"]:
        return None
    store = store or model_store(config)
    detector = get_model(config.face_detector_model, "detector")
    size = detector_size(config.face_detector_size, detector)
    landmarker, estimator = landmarker_specs(config)
    require_models(store, [detector] + ([landmarker] if landmarker else []) + ([estimator] if estimator else []))
    fan = None
    if landmarker:
        fan = Fan68Landmarker(landmarker, _session(store, landmarker, config), config.execution_batch_size)
    fan_68_5 = Fan68From5(estimator, _session(store, estimator, config)) if estimator else None
    return OnnxDetector(detector, _session(store, detector, config), score_threshold=config.face_detector_score,
                        landmarker=fan, landmarker_score=config.face_landmarker_score, size=size,
                        estimator=fan_68_5)


def check_analysis(config: RunConfig) -> None:
    """UsageError for detector and landmarker options the chosen analyser cannot honour (both paths ask here):
    a landmarker model or a detector size beside the embedded MediaPipe mesh, a landmarker score without 2dfan4."""
    embedded = config.face_detector_model == EMBEDDED["detector"]
    if embedded and config.face_landmarker_model not in NO_LANDMARKER:
        raise UsageError(f"--face-landmarker-model {config.face_landmarker_model} needs an ONNX "
                         f"--face-detector-model (retinaface, scrfd, yolo_face, yunet); mediapipe brings its own "
                         f"landmarks")
    if embedded and detector_size(config.face_detector_size) != detector_size(RunConfig.face_detector_size):
        raise UsageError("--face-detector-size sizes an ONNX --face-detector-model's input; the embedded mediapipe "
                         "analyses frames at --analysis-size")
    default_score = RunConfig.face_landmarker_score
    if config.face_landmarker_model in NO_LANDMARKER and config.face_landmarker_score != default_score:
        raise UsageError("--face-landmarker-score is the 2dfan4 score above which its points are used; "
                         "it needs --face-landmarker-model 2dfan4")


def landmarker_specs(config: RunConfig) -> tuple[ModelSpec | None, ModelSpec | None]:
    """The 68-point landmarker to run beside an ONNX detector and the 5→68 estimator it needs (fan_68_5).

    Neither for 'mediapipe' and 'none'; the estimator alone at ``--face-landmarker-score 0``, where
    FaceFusion does not run 2dfan4 (its points could never be used) and takes the estimate for the 68 points.
    """
    if config.face_landmarker_model in NO_LANDMARKER:
        return None, None
    landmarker = get_model(config.face_landmarker_model, "landmarker")
    estimator = get_model(landmarker.converter, "converter") if landmarker.converter else None
    return (landmarker if config.face_landmarker_score > 0 else None), estimator


def detector_size(value: str, spec: ModelSpec | None = None) -> int:
    """``--face-detector-size`` ('640x640', FaceFusion's form, or '640') as a side in pixels; with ``spec``, one of
    the sizes FaceFusion offers for that detector.

    >>> detector_size("320x320", get_model("scrfd"))
    320
    """
    match = re.fullmatch(r"\s*(\d+)\s*(?:x\s*(\d+)\s*)?", str(value))
    if not match or (match.group(2) and match.group(1) != match.group(2)):
        raise UsageError(f"--face-detector-size: expected a square size such as 640x640, got '{value}'")
    side = int(match.group(1))
    if spec is not None and side not in spec.sizes:
        raise UsageError(f"--face-detector-size: {side}x{side} is not one of "
                         f"{', '.join(f'{s}x{s}' for s in spec.sizes)} for {spec.name}")
    return side


def build_recognizer(config: RunConfig, store: ModelStore | None = None,
                     required: bool = False) -> ArcFaceRecognizer | None:
    """ArcFace as ``--face-recognizer-model`` names it; with 'none', None, or the default when ``required``."""
    name = config.face_recognizer_model
    if name == EMBEDDED["recognizer"]:
        if not required:
            return None
        name = DEFAULT_RECOGNIZER
    spec = get_model(name, "recognizer")
    store = store or model_store(config)
    require_models(store, [spec])
    return ArcFaceRecognizer(spec, _session(store, spec, config), config.execution_batch_size)


def build_swapper(config: RunConfig, store: ModelStore | None = None) -> Swapper | None:
    """An ``OnnxSwapper`` with its recognizer (and converter), or None for the embedded 'classic' swapper."""
    if config.face_swapper_model == EMBEDDED["swapper"]:
        return None
    store = store or model_store(config)
    spec = get_model(config.face_swapper_model, "swapper")
    require_models(store, swapper_models(config))
    recognizer = build_recognizer(config, store, required=True)
    assert recognizer is not None
    converter = _session(store, get_model(spec.converter), config) if spec.converter else None
    emap = load_emap(store.path(spec)) if spec.source == "emap" else None
    swapper = OnnxSwapper(spec, _session(store, spec, config), recognizer, converter=converter, emap=emap,
                          pixel_boost=parse_pixel_boost(config.face_swapper_pixel_boost),
                          weight=config.face_swapper_weight, mask_blur=config.face_mask_blur,
                          mask_padding=config.face_mask_padding, batch_size=config.execution_batch_size,
                          box="box" in config.face_mask_types)
    log.debug("swapper %s: %d-px crops in %d tile(s), source from %s (%s), %s tiles per call", spec.name,
              swapper.crop_size, swapper.boost ** 2, recognizer.name, spec.source,
              config.execution_batch_size or "as many as the graph takes")
    return swapper


def swapper_models(config: RunConfig) -> list[ModelSpec]:
    """The files an ONNX swapper needs (its own, its converter, the ArcFace that embeds the sources); none for
    the embedded classic swapper."""
    if config.face_swapper_model == EMBEDDED["swapper"]:
        return []
    recognizer = config.face_recognizer_model
    return requirements(get_model(config.face_swapper_model, "swapper")) + [
        get_model(DEFAULT_RECOGNIZER if recognizer == EMBEDDED["recognizer"] else recognizer, "recognizer")]


def mask_options(config: RunConfig) -> MaskOptions:
    """The mask types of ``config`` beyond box, with their areas and regions."""
    return MaskOptions.from_types(config.face_mask_types, config.face_mask_areas, config.face_mask_regions)


def mask_models(config: RunConfig) -> tuple[list[ModelSpec], ModelSpec | None]:
    """The occluders (``--face-occluder-model``; 'many': all three) and the parser the asked masks need."""
    options = mask_options(config)
    occluders: list[ModelSpec] = []
    if options.occlusion:
        names = [s.name for s in models_for("occluder")] if config.face_occluder_model == "many" \
            else [config.face_occluder_model]
        occluders = [get_model(name, "occluder") for name in names]
    parser = get_model(config.face_parser_model, "parser") if options.region else None
    return occluders, parser


def build_masker(config: RunConfig, store: ModelStore | None = None) -> FaceMasker | None:
    """The ``FaceMasker`` of ``--face-mask-types``, or None when only box is asked for.

    Raises:
        ModelError: an occluder or parser file missing (one line naming the download command).
    """
    options = mask_options(config)
    if not options.any:
        return None
    occluders, parser = mask_models(config)
    store = store or model_store(config)
    require_models(store, occluders + ([parser] if parser else []))
    return FaceMasker(options, [(spec, _session(store, spec, config)) for spec in occluders],
                      (parser, _session(store, parser, config)) if parser else None)


def build_enhancer(config: RunConfig, store: ModelStore | None = None) -> FaceEnhancer | None:
    """The ``--face-enhancer-model`` enhancer when ``--processors`` names face_enhancer, else None."""
    if not config.enhances:
        return None
    store = store or model_store(config)
    (spec,) = enhancer_models(config)
    require_models(store, [spec])
    log.debug("enhancer %s: %d-px %s crops, blend %d%%", spec.name, spec.size, spec.template,
              config.face_enhancer_blend)
    return FaceEnhancer(spec, _session(store, spec, config), blend=config.face_enhancer_blend,
                        weight=config.face_enhancer_weight, mask_blur=config.face_mask_blur,
                        batch_size=config.execution_batch_size)


def enhancer_models(config: RunConfig) -> list[ModelSpec]:
    """The ``--face-enhancer-model`` file when ``--processors`` names face_enhancer, else none."""
    return [get_model(config.face_enhancer_model, "enhancer")] if config.enhances else []


def model_problems(config: RunConfig, store: ModelStore | None = None) -> dict[str, str]:
    """Why a run of ``config`` would stop for a model file, by the RunConfig field that chose the file: each
    stage's one-line ModelError (swapper, masks, enhancer, as their builders raise it), under every field
    whose file it names as missing or corrupt. Empty when every file the options need is usable; checks
    files only (no session is made), so the web UI can say it as an option is chosen."""
    store = store or model_store(config)
    occluders, parser = mask_models(config)
    stages = ([(spec, "face_swapper_model") for spec in swapper_models(config)],
              [(spec, "face_occluder_model") for spec in occluders] + ([(parser, "face_parser_model")] if parser else []),
              [(spec, "face_enhancer_model") for spec in enhancer_models(config)])
    problems: dict[str, str] = {}
    for stage in stages:
        try:
            require_models(store, [spec for spec, _ in stage])
        except ModelError as error:
            for spec, field in stage:
                if store.status(spec) in ("missing", "corrupt"):
                    problems.setdefault(field, str(error))
    return problems


def parse_pixel_boost(value: str | None) -> int | None:
    """'512x512' (FaceFusion's form) or '512' → 512; None stays None.

    >>> parse_pixel_boost("768x768")
    768
    """
    if value is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*(?:x\s*(\d+)\s*)?", str(value))
    if not match or (match.group(2) and match.group(1) != match.group(2)):
        raise UsageError(f"--face-swapper-pixel-boost: expected a square size such as 512x512, got '{value}'")
    return int(match.group(1))


def require_models(store: ModelStore, specs: list[ModelSpec]) -> None:
    """ModelError naming every missing or corrupt file at once."""
    problems = [(spec, store.status(spec)) for spec in specs]
    bad = [(spec, status) for spec, status in problems if status in ("missing", "corrupt")]
    if bad:
        listed = ", ".join(f"{spec.file_name} ({status})" for spec, status in bad)
        names = " ".join(dict.fromkeys(spec.name for spec, _ in bad))
        raise ModelError(f"model files not usable in {store.root}: {listed}; "
                         f"run `steadyswap models download {names}` or pass --models-dir")


def _session(store: ModelStore, spec: ModelSpec, config: RunConfig) -> ort.InferenceSession:
    return runtime.create_session(store.path(spec), config.execution_providers)
