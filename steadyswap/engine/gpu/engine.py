"""GpuEngine: the per-face pipeline on the GPU, batched across frames, with parallel segment encoders.

Selected by ``--execution-providers cuda`` (``engine.decision``). The engine is four parts, one role each:
``assembly`` loads the models onto the device, ``plan`` probes the memory plan (faces per model call, frames per
step) once, ``steps`` runs the step loop (frames of every segment on the device a step at a time: detection,
each stream's ``FaceSwapper`` decisions, then swap, masks, colour and paste on the whole step) and
``orchestrate`` runs videos as segments side by side (decoders and encoders in child processes, the files joined
without re-encoding), in this process or in engine worker processes (``workers``). ``GpuEngine`` puts them
together and is what callers use.

Each stream's ``FaceSwapper`` is the CPU path's own object, given each frame's device detections (the detection
cadence picks those it uses), a ``DetectionFeed`` (stills) and a ``DeferredSwapper`` (no pixel work): so both
paths decide the same, and only the pixel work moves. The embedded MediaPipe analyser has no device form: with
it, analysis runs on the CPU, one thread per segment. The embedded ``classic`` swapper runs its pixel work on
the device too (``classic``), its geometry on the host.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import torch

from steadyswap.analysis.face_map import run_inputs
from steadyswap.config import RunConfig
from steadyswap.engine.decision import Entry, decide
from steadyswap.engine.gpu.assembly import DeviceModels, assemble
from steadyswap.engine.gpu.options import GpuOptions, check_run_config, cuda_device
from steadyswap.engine.gpu.orchestrate import Orchestrator, plan_run
from steadyswap.engine.gpu.plan import plan_memory
from steadyswap.engine.gpu.steps import FramesStep, StepLoop
from steadyswap.engine.phases import PhaseClock
from steadyswap.engine.pipeline import Progress, RunResult, save_photo
from steadyswap.io import check_output_extension, read_image
from steadyswap.io.segments import Segment
from steadyswap.provenance import Watermark
from steadyswap.types import VideoInfo

__all__ = ["GpuEngine", "GpuOptions", "run_file"]

log = logging.getLogger(__name__)


class GpuEngine:
    """Swaps the source identity into videos and images with the face pipeline on the GPU.

    Args:
        sources: source photos (paths or H×W×3 uint8 RGB arrays).
        config: run options; ``execution_providers`` normally starts with "cuda".
        options: engine tunables (default: ``GpuOptions.from_config(config)``).

    Each run may pass its own ``config`` and ``options`` (defaults: the engine's): they may differ from the
    engine's only where a run reads them (``options.RUN_CONFIG_FIELDS``: output, trim, selection, smoothing, colour,
    degrade, hold, hands; every ``GpuOptions`` field but ``BUILD_FIELDS``), since the models and the memory plan
    are built once; anything else is refused in one line.

    Raises:
        ModelError: no CUDA device, or a model file missing or not convertible.
        NoFaceError: no face in any source photo.
        UsageError: a model or an option the GPU engine does not support.
    """

    def __init__(self, sources: list[str | Path | np.ndarray], config: RunConfig,
                 options: GpuOptions | None = None) -> None:
        self.config = config.validate()
        self.options = options or GpuOptions.from_config(self.config)
        self.device = cuda_device(self.options.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self.inputs = run_inputs(sources, None, self.config.face_map)
        """The files this engine reads (source photos, face map and its photos): never an output."""
        decide(self.config, Entry.ENGINE)  # refuses what the engine cannot honour
        probed = assemble(sources, self.config, self.options, self.device)
        self.plan = plan_memory(probed, self.options, self.device)
        self.models: DeviceModels = probed.planned(self.plan.faces_per_call, self.plan.enhancer_faces_per_call)
        self.sources = self.models.sources
        """The source photos that have a face: checked once here, so each segment's FaceSwapper does not warn again."""
        log.debug("GPU engine on %s: detector %s, swapper %s, %d faces per swapper call (%s)", self.device,
                  self.models.detector.name if self.models.detector else config.face_detector_model,
                  self.models.swapper.name, self.plan.faces_per_call,
                  "memory probe" if self.plan.budget_bytes else "no probe")
        self.steps = StepLoop(self.models, self.plan, self.device, self.config, self.options.release_every)
        self.runs = Orchestrator(self.steps, self.sources, self.inputs, self.config, self.options)
        self.clock = PhaseClock()
        """Seconds per phase of the last video run (in this process), or of every ``swap_frames`` call so far."""
        self._closed = False

    def _for_run(self, config: RunConfig | None, options: GpuOptions | None) -> tuple[RunConfig, GpuOptions]:
        """A run's options: the engine's, or the caller's where they change only what a run reads."""
        config = self.config if config is None else config.validate()
        check_run_config(config, self.config)
        options = self.options if options is None else options
        options.check_run(self.options)
        return config, options

    # --- frames and images --------------------------------------------------------------------------

    def swap_frames(self, images: list[np.ndarray], fps: float = 30.0) -> list[np.ndarray]:
        """Consecutive same-size RGB frames of one video, each answered causally, as ``FaceSwapper.swap_frames``,
        but detected, swapped and pasted as one step on the device; tracking state carries over between calls."""
        return self.render_frames(self.decide_frames(images, fps))

    def decide_frames(self, images: list[np.ndarray], fps: float = 30.0) -> FramesStep:
        """The first half of ``swap_frames``: upload, detect and decide, on a CUDA stream of its own. One thread
        may decide the next frames while another renders these (``render_frames``): the halves share no state
        but the step."""
        return self.steps.decide_frames(images, fps, self.clock)

    def render_frames(self, step: FramesStep, mark: Watermark | None = None) -> list[np.ndarray]:
        """The second half of ``swap_frames``: swap, paste, mark with ``mark`` (on the device) and download the
        decided frames."""
        return self.steps.render_frames(step, self.clock, mark)

    def reset_tracking(self) -> None:
        """Forget the tracks and smoothing state ``swap_frames`` kept (after a seek, or for another video)."""
        self.steps.reset_tracking()

    def swap_image(self, image: np.ndarray) -> np.ndarray:
        """One still photo (no temporal state); returned unchanged when no face is selected."""
        return self.steps.swap_image(image, self.clock)

    # --- videos and segments ------------------------------------------------------------------------

    def segments(self, info: VideoInfo, start: int, end: int, config: RunConfig | None = None,
                 options: GpuOptions | None = None) -> list[Segment]:
        """The segments a run of frames ``[start, end)`` of ``info``'s video runs side by side (``plan_run``)."""
        config, options = self._for_run(config, options)
        return plan_run(info, start, end, config, options)

    def run_video(self, target: str | Path, output: str | Path, progress: Progress | None = None,
                  cancel: threading.Event | None = None, *, config: RunConfig | None = None,
                  options: GpuOptions | None = None) -> RunResult:
        """Swap every frame of ``target`` (or the trimmed range) into ``output``.

        Raises:
            Interrupted: ``cancel`` was set; no output is left.
            MediaDecodeError: the target yields fewer frames than a segment needs.
            UsageError: ``config`` or ``options`` change what the engine was built from.
        """
        config, options = self._for_run(config, options)
        self.clock = PhaseClock()
        return self.runs.run_video(target, output, config, options, self.clock, progress, cancel)

    def run_segment(self, segment: Segment, output: str | Path, progress: Progress | None = None,
                    cancel: threading.Event | None = None) -> int:
        """One segment into its own file for ``io.segments.join``, as ``segment_runner.run_segment`` writes it
        on the CPU: frames ``[start, end)`` with the source's timestamps, no audio. Returns the frames written.

        Raises:
            MediaDecodeError: the target yields fewer frames than the segment needs.
        """
        self.clock = PhaseClock()
        return self.runs.run_segment(segment, output, self.config, self.options, self.clock, progress, cancel)

    def run_job(self, plan: list[Segment], files: list[Path], info: VideoInfo, progress: Progress | None = None, *,
                config: RunConfig | None = None, options: GpuOptions | None = None) -> int:
        """Segments of ``info``'s video side by side into files for ``join`` (an ``EngineWorkers`` job), under the
        run's ``config`` and ``options`` (defaults: the engine's)."""
        config, options = self._for_run(config, options)
        self.clock = PhaseClock()
        return self.runs.run_segments(plan, files, info, config, options, self.clock, progress, None, whole=False)

    def close(self) -> None:
        """Stop the engine workers, drop the models and, unless the strategy is tolerant, the cached device memory;
        the engine cannot run after this. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.steps.reset_tracking()
        self.runs.close()
        del self.models, self.steps, self.runs
        if self.device.type == "cuda" and self.options.strategy != "tolerant":
            torch.cuda.empty_cache()

    def __enter__(self) -> GpuEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_file(sources: list[Path], target: Path, output: Path, config: RunConfig, kind: str,
             progress: Progress | None = None, cancel: threading.Event | None = None) -> RunResult:
    """``api.swap_file``'s GPU branch: an image or a video through a ``GpuEngine``."""
    check_output_extension(output, kind)
    with GpuEngine(list(sources), config) as engine:
        if kind == "image":
            began = time.perf_counter()
            save_photo(output, engine.swap_image(read_image(target)), target, engine.inputs, config)
            seconds = time.perf_counter() - began
            return RunResult(output, 1, seconds, 1 / seconds if seconds else 0.0)
        return engine.run_video(target, output, progress, cancel)
