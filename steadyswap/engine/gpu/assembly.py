"""The GPU engine's model set: the detector, swapper, mask models and enhancer on the device, and the source
photos that have a face, built once from the run's options (the device twin of ``steadyswap.assembly``, whose
model choices and checks it reads).

The memory plan (``plan``) is probed on this set; ``DeviceModels.planned`` then gives the set at the plan's
batch sizes, so the objects the probe ran are never changed under their holders.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from steadyswap.config import RunConfig
from steadyswap.engine.frame_swapper import build_analyzer
from steadyswap.engine.gpu import memory, precision
from steadyswap.engine.gpu.enhancer import GpuEnhancer
from steadyswap.engine.gpu.masks import GpuFaceMasker
from steadyswap.engine.gpu.onnx_module import TorchOnnx
from steadyswap.engine.gpu.options import GpuOptions
from steadyswap.engine.gpu.stages import DeviceSwapper, GpuDetector, GpuRecognizer, GpuSwapper, build_detector
from steadyswap.io import read_image
from steadyswap.assembly import (
    DEFAULT_RECOGNIZER,
    check_analysis,
    mask_models,
    mask_options,
    model_store,
    parse_pixel_boost,
    require_models,
)
from steadyswap.models.registry import EMBEDDED, get_model
from steadyswap.models.store import ModelStore
from steadyswap.swap.sources import check_faces, source_names


@dataclass(frozen=True)
class DeviceModels:
    """The models of one engine on its device.

    Attributes:
        detector: the ONNX detector (and landmarker) on the device; None: the embedded MediaPipe mesh, which
            each stream runs on the CPU.
        swapper: the swapper's pixel work on the device (a FaceFusion model, or the classic warp).
        masker: the ``--face-mask-types`` masks beyond box; None: box only.
        enhancer: the face enhancer of ``--processors ... face_enhancer``; None: none.
        sources: the source photos that have a face (checked once, so no stream warns again).
    """

    detector: GpuDetector | None
    swapper: DeviceSwapper
    masker: GpuFaceMasker | None
    enhancer: GpuEnhancer | None
    sources: list[np.ndarray]

    def planned(self, faces_per_call: int, enhancer_faces_per_call: int | None) -> DeviceModels:
        """This set at the memory plan's batch sizes (the swapper's only where it is a FaceFusion model; the
        enhancer's where its own probe ran)."""
        swapper = self.swapper.planned(faces_per_call) if isinstance(self.swapper, GpuSwapper) else self.swapper
        enhancer = self.enhancer
        if enhancer is not None and enhancer_faces_per_call is not None:
            enhancer = enhancer.planned(enhancer_faces_per_call)
        return replace(self, swapper=swapper, enhancer=enhancer)


def assemble(sources: list[str | Path | np.ndarray], config: RunConfig, options: GpuOptions,
             device: torch.device) -> DeviceModels:
    """Load the models ``config`` names onto ``device`` and find the sources' faces.

    Raises:
        ModelError: a model file missing or not convertible.
        NoFaceError: no face in any source photo.
        UsageError: a model or an option the engine does not support.
    """
    images = [s if isinstance(s, np.ndarray) else read_image(s) for s in sources]
    check_analysis(config)
    store = model_store(config)
    masker = _masker(config, store, device)
    detector = build_detector(config, store, device, replay=bool(options.compile))
    enhancer = _enhancer(config, options, store, device)
    swapper = _swapper(config, options, store, device)
    return DeviceModels(detector, swapper, masker, enhancer,
                        _with_faces(config, detector, source_names(sources), images))


def _half(options: GpuOptions, device: torch.device) -> bool:
    return options.half and device.type == "cuda"


def _enhancer(config: RunConfig, options: GpuOptions, store: ModelStore, device: torch.device) -> GpuEnhancer | None:
    if not config.enhances:
        return None
    spec = get_model(config.face_enhancer_model, "enhancer")
    path = store.require(spec)
    return GpuEnhancer(spec, precision.load(spec, path, device, _half(options, device),
                                            channels_last=options.channels_last),
                       blend=config.face_enhancer_blend, weight=config.face_enhancer_weight,
                       mask_blur=config.face_mask_blur,
                       faces_per_call=options.faces_per_call or memory.UNPROBED_FACES_PER_CALL)


def _swapper(config: RunConfig, options: GpuOptions, store: ModelStore, device: torch.device) -> DeviceSwapper:
    if config.face_swapper_model == EMBEDDED["swapper"]:
        from steadyswap.engine.gpu.classic import GpuClassicSwapper

        return GpuClassicSwapper(config.face_mask_blur, config.face_mask_padding, config.face_mask_forehead, device)
    spec = get_model(config.face_swapper_model, "swapper")
    recognizer_name = config.face_recognizer_model
    recognizer_spec = get_model(DEFAULT_RECOGNIZER if recognizer_name == EMBEDDED["recognizer"] else
                                recognizer_name, "recognizer")
    recognizer = GpuRecognizer(recognizer_spec, TorchOnnx(store.require(recognizer_spec), device))
    converter = None
    if spec.converter:
        converter = TorchOnnx(store.require(get_model(spec.converter)), device)
    path = store.require(spec)
    model = precision.load(spec, path, device, _half(options, device), channels_last=options.channels_last,
                           compile=options.compile)
    return GpuSwapper(spec, model, recognizer, path, converter,
                      pixel_boost=parse_pixel_boost(config.face_swapper_pixel_boost),
                      weight=config.face_swapper_weight, mask_blur=config.face_mask_blur,
                      mask_padding=config.face_mask_padding,
                      faces_per_call=options.faces_per_call or memory.UNPROBED_FACES_PER_CALL,
                      box="box" in config.face_mask_types)


def _masker(config: RunConfig, store: ModelStore, device: torch.device) -> GpuFaceMasker | None:
    """The masks of ``--face-mask-types`` beyond box on the device, as ``steadyswap.assembly.build_masker``."""
    options = mask_options(config)
    if not options.any:
        return None
    occluders, parser = mask_models(config)
    require_models(store, occluders + ([parser] if parser else []))
    return GpuFaceMasker(options, [(spec, TorchOnnx(store.path(spec), device)) for spec in occluders],
                         (parser, TorchOnnx(store.path(parser), device)) if parser else None)


def _with_faces(config: RunConfig, detector: GpuDetector | None, names: list[str],
                images: list[np.ndarray]) -> list[np.ndarray]:
    analyzer = detector or build_analyzer(config)
    try:
        faces = analyzer.analyze(images, video=False)
    finally:
        if analyzer is not detector:
            analyzer.close()
    return [images[i] for i in check_faces(names, faces)]
