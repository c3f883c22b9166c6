"""GpuOptions: the GPU engine's tunables, and the torch device they name."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from steadyswap.config import RunConfig
from steadyswap.engine.swapper_pool import OUTPUT_ONLY_FIELDS
from steadyswap.errors import ModelError, UsageError

MAX_SEGMENTS = 4
"""More segments side by side than this ran slower on the H100 machine's 16 cores (docs/benchmarks.md)."""
BUILD_FIELDS = frozenset({"device", "half", "channels_last", "faces_per_call", "frames_per_step", "strategy",
                          "compile"})
"""The options an engine's models and memory plan are built from: fixed for the engine's life. The others
(segments, workers, threads, codec processes, cache release) may differ from one run to the next."""
RUN_CONFIG_FIELDS = OUTPUT_ONLY_FIELDS | frozenset({
    "watermark", "c2pa_cert", "c2pa_key", "face_selector_mode", "reference_face_position", "reference_frame_number",
    "reference_face_distance", "face_smoothing", "smoothing_min_cutoff", "smoothing_beta", "smoothing_d_cutoff",
    "smoothing_lookahead", "smoothing_ema_alpha", "color_strength", "face_degrade", "face_hold", "hand_occluder",
    "face_detector_interval",
})
"""The ``RunConfig`` fields a run of a built engine may change: its output, and the decisions each run's streams
make with their own ``FaceSwapper`` (selection, smoothing, detection cadence, colour, degrade, hold, the hand
occluder). The others
choose and shape the models, the sources and the memory plan, built once."""


@dataclass(frozen=True)
class GpuOptions:
    """Tunables of the GPU engine (``RunConfig`` gives the defaults; ``config.extra['gpu']`` overrides).

    Attributes:
        device: a torch device with CUDA ("cuda", "cuda:1"); "cpu" runs the same code, for tests.
        half: let the swapper and the enhancer run in fp16 where ``precision`` finds it safe (else fp32); False:
            fp32 always.
        channels_last: NHWC layout for the swapper's convolutions.
        faces_per_call: faces per swapper call; None: from the memory probe (``--execution-batch-size``).
        frames_per_step: frames on the device per step; None: from the memory probe.
        segments: parallel decoder/encoder pairs; None: one per four CPU cores (at most ``MAX_SEGMENTS``; with
            a hardware encoder at most ``orchestrate.HARDWARE_SEGMENTS``), fewer for short videos.
        warmup_frames: frames each later segment runs before its first written frame.
        release_every: ``torch.cuda.empty_cache`` every N frames (0: never; docs/benchmarks.md).
        strategy: ``--video-memory-strategy``, the share of free memory batches may plan on.
        compile: ``torch.compile`` the swapper graph (fuses its elementwise work; compiling takes a while; it
            runs at one batch shape): True in torch's default mode, or a mode's name ("reduce-overhead" also
            replays it as a CUDA graph, for the one-frame calls of live steps, which kernel launches bound). The
            detector is not compiled but replayed as CUDA graphs of its graph as it is (``onnx_module.REPLAY``;
            compiled, it broke the swapper's compilation: docs/live.md).
        workers: engine processes sharing the device, each running its share of the segments with its own
            step loop and GIL (``workers``); each builds its models at its first run, then serves later runs.
            1: the segments run in this process. None: ``engine.decision`` decides (one per segment on CUDA for
            long runs, as many as the strategy's share of free device memory holds).
        encoder_threads: threads of each segment's encoder; None: the cores shared out among the segments
            (a run of one segment leaves it to x264).
        decoder_threads: threads of each segment's decoder; 0: FFmpeg's choice, one per core, which ran
            faster than a share of the cores (docs/benchmarks.md, call 11).
        processes: decoders and encoders in child processes when the output is 8-bit 4:2:0 at the source
            size (else, and when False, threads of this process).
        planar: with processes, frames reach the device as yuv420p planes where the source allows it and no
            stream needs host RGB (the CPU face mesh, reference faces).
    """

    device: str = "cuda"
    half: bool = True
    channels_last: bool = True
    faces_per_call: int | None = None
    frames_per_step: int | None = None
    segments: int | None = None
    warmup_frames: int = 30
    release_every: int = 0
    strategy: str = "strict"
    compile: bool | str = False
    workers: int | None = None
    encoder_threads: int | None = None
    decoder_threads: int = 0
    processes: bool = True
    planar: bool = True

    @classmethod
    def from_config(cls, config: RunConfig) -> GpuOptions:
        extra = dict(config.extra.get("gpu", {}))
        unknown = set(extra) - {f.name for f in fields(cls)}
        if unknown:
            raise UsageError(f"unknown GPU engine option(s): {', '.join(sorted(unknown))}")
        extra.setdefault("faces_per_call", config.execution_batch_size)
        extra.setdefault("strategy", config.video_memory_strategy)
        return cls(**extra)

    def check_run(self, built: GpuOptions) -> None:
        """Refuse these options for a run of an engine built with ``built`` where they change what it was built
        from (``BUILD_FIELDS``): its models and memory plan stay as built."""
        changed = sorted(name for name in BUILD_FIELDS if getattr(self, name) != getattr(built, name))
        if changed:
            raise UsageError(f"GPU engine option(s) {', '.join(changed)} are fixed when the engine is built; "
                             f"build another GpuEngine to change them")


def check_run_config(config: RunConfig, built: RunConfig) -> None:
    """Refuse ``config`` for a run of an engine built with ``built`` where it differs outside ``RUN_CONFIG_FIELDS``."""
    changed = sorted(f.name for f in fields(RunConfig)
                     if f.name not in RUN_CONFIG_FIELDS and getattr(config, f.name) != getattr(built, f.name))
    if changed:
        raise UsageError(f"option(s) {', '.join(changed)} differ from this GPU engine's, whose models are built "
                         f"from them; build another GpuEngine to change them")


def cuda_device(name: str) -> torch.device:
    """The torch device ``name``; ModelError when it needs CUDA and torch has none."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"--execution-providers cuda: PyTorch {torch.__version__} sees no CUDA GPU "
                         f"(install the CUDA build of torch, or pass --execution-providers cpu)")
    return device
