"""GpuEngine: the per-face pipeline on the GPU, batched across frames, with parallel segment encoders.

Selected by ``--execution-providers cuda``. The video is cut into segments (``io.segments``) that run side
by side: one decoder and one encoder per segment, each segment with its own ``FaceSwapper`` for the
temporal decisions (scene cuts, tracks, lookahead smoothing, selection, which source for whom), warmed up
on the frames before it. Steps of frames taken in turn from every segment go to the device once; detection
(ONNX detectors), alignment warps, the swapper, masks and paste-back run there on the faces of the whole
step; frames are converted to yuv420p on the device and only those come back, for the encoders. Decoding,
device work and encoding overlap (``transfer``), every queue is bounded, and the segment files are joined
without re-encoding. Decoders and encoders run in child processes (``io.codec_processes``), off this
process's GIL, and frames travel to the device as the decoder's own yuv420p planes, converted to RGB there
(half the bytes, no CPU colour conversion, and untouched pixels come back as they were decoded).

Each stream's ``FaceSwapper`` is the CPU path's own object, given a ``DetectionFeed`` (the step's device
detections) and a ``DeferredSwapper`` (records the faces to swap): so both paths decide the same, and
only the pixel work moves. The embedded MediaPipe analyser has no device form: with it, analysis runs on
the CPU, one thread per segment. The embedded ``classic`` swapper runs its pixel work on the device too
(``classic``), its geometry on the host. Every swapper's patches then go through the same colour stage
and paste-back on the device.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from steadyswap.analysis.face_map import run_inputs
from steadyswap.analysis.hands import hand_size
from steadyswap.blend import torch_ops
from steadyswap.config import RunConfig
from steadyswap.engine.frame_swapper import FaceSwapper, build_analyzer
from steadyswap.engine.gpu import memory, precision
from steadyswap.engine.gpu.masks import GpuFaceMasker
from steadyswap.engine.gpu.enhancer import GpuEnhancer
from steadyswap.engine.gpu.onnx_module import TorchOnnx
from steadyswap.engine.gpu.stages import (
    DeferredSwapper,
    DetectionFeed,
    DeviceSwapper,
    GpuDetector,
    GpuRecognizer,
    GpuSwapper,
    build_detector,
)
from steadyswap.engine.gpu.transfer import Downloader, Uploader, on, side_stream
from steadyswap.engine.gpu.workers import EngineWorkers, Job
from steadyswap.engine.output import output_settings
from steadyswap.engine.phases import PhaseClock
from steadyswap.engine.pipeline import Progress, RunResult, save_photo
from steadyswap.engine.stream import prepare_references
from steadyswap.errors import Interrupted, MediaDecodeError, ModelError, UsageError
from steadyswap.io import (VideoReader, VideoWriter, atomic_output, check_output_extension, probe, read_image,
                           scratch_folder)
from steadyswap.io.codec_processes import ProcessReader, ProcessWriter, planar_decoding, yuv420p_shape
from steadyswap.io.segments import Segment, join, plan_segments
from steadyswap.io.writer import yuv420p_output
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
from steadyswap.provenance import seal_for, watermark_for
from steadyswap.swap.base import SourceFace
from steadyswap.swap.sources import check_faces, source_names
from steadyswap.types import Faces, Frame, VideoInfo

log = logging.getLogger(__name__)

MIN_SEGMENT_FRAMES = 90
"""Segments shorter than this are not worth their warm-up and join."""
MAX_SEGMENTS = 4
"""More segments side by side than this ran slower on the H100 machine's 16 cores (docs/benchmarks.md)."""
QUEUE_FRAMES = 24
"""Frames each segment's decoder and encoder may run ahead: enough that one busy encoder (or decoder) does
not stall the others while the engine waits on it in turn."""
WORKER_MIN_FRAMES = 9000
"""Runs this long (5 minutes at 30 fps) start engine workers by default. On the H100 machine (docs/benchmarks.md,
call 10) 4 workers ran 1080p at 78.6 frames/s against 56.4 in one process (5 ms less per frame) and took
about 40 s to start: they pay for themselves after about 8,000 frames."""
CUT_THUMBNAIL = (48, 27)
"""(width, height) of ``analysis.cuts.frame_signature``'s thumbnail."""


@dataclass
class GpuOptions:
    """Tunables of the GPU engine (``RunConfig`` gives the defaults; ``config.extra['gpu']`` overrides).

    Attributes:
        device: a torch device with CUDA ("cuda", "cuda:1"); "cpu" runs the same code, for tests.
        half: let the swapper and the enhancer run in fp16 where ``precision`` finds it safe (else fp32); False:
            fp32 always.
        channels_last: NHWC layout for the swapper's convolutions.
        faces_per_call: faces per swapper call; None: from the memory probe (``--execution-batch-size``).
        frames_per_step: frames on the device per step; None: from the memory probe.
        segments: parallel decoder/encoder pairs; None: one per four CPU cores (at most ``MAX_SEGMENTS``),
            fewer for short videos.
        warmup_frames: frames each later segment runs before its first written frame.
        release_every: ``torch.cuda.empty_cache`` every N frames (0: never; docs/benchmarks.md).
        strategy: ``--video-memory-strategy``, the share of free memory batches may plan on.
        compile: ``torch.compile`` the swapper graph (fuses its elementwise work; compiling takes a while).
        workers: engine processes sharing the device, each running its share of the segments with its own
            step loop and GIL (``workers``); each builds its models at its first run, then serves later runs.
            1: the segments run in this process. None: one per segment on CUDA for runs of at least
            ``WORKER_MIN_FRAMES`` frames, as many as the strategy's share of free device memory holds; else 1.
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
    compile: bool = False
    workers: int | None = None
    encoder_threads: int | None = None
    decoder_threads: int = 0
    processes: bool = True
    planar: bool = True

    @classmethod
    def from_config(cls, config: RunConfig) -> GpuOptions:
        extra = dict(config.extra.get("gpu", {}))
        unknown = set(extra) - set(cls.__dataclass_fields__)
        if unknown:
            raise UsageError(f"unknown GPU engine option(s): {', '.join(sorted(unknown))}")
        extra.setdefault("faces_per_call", config.execution_batch_size)
        extra.setdefault("strategy", config.video_memory_strategy)
        return cls(**extra)


def cuda_device(name: str) -> torch.device:
    """The torch device ``name``; ModelError when it needs CUDA and torch has none."""
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"--execution-providers cuda: PyTorch {torch.__version__} sees no CUDA GPU "
                         f"(install the CUDA build of torch, or pass --execution-providers cpu)")
    return device


@dataclass
class _Item:
    """One decoded frame travelling through the engine; ``frame``: its host picture, where one is kept
    (a stream that analyses full frames on the CPU, or RGB output that keeps 10-bit detail)."""

    stream: int
    index: int
    pts: int | None
    write: bool
    frame: Frame | None = None


Final = tuple[_Item, torch.Tensor, list[tuple[SourceFace, Faces]], FaceSwapper, np.ndarray | None]
"""A frame whose decisions are final: its item, its (H, W, 3) picture on the device, what to swap in it, its
stream's ``FaceSwapper`` (whose enhancer tone, colour, degrade and hold stages keep the per-track state) and its
hands (``FrameResult.hands``)."""


@dataclass
class FramesStep:
    """Frames ``GpuEngine.decide_frames`` decided for ``render_frames``: the (n, H, W, 3) uint8 frames on the device
    (None for no frames), what to swap in each, and the CUDA event after their upload and detection (None on the
    CPU)."""

    frames: torch.Tensor | None
    finals: list[Final]
    ready: torch.cuda.Event | None = None


class _Stream:
    """One segment: its reader, writer, and the ``FaceSwapper`` that makes its decisions.

    The swapper sees each frame as a 48×27 thumbnail made on the device: all it needs for scene cuts
    (``analysis.cuts`` works at that size), as detections come from the feed and pixels are not its job.
    Reference selection compares the faces' pixels, so in reference mode it sees the full frame.
    """

    def __init__(self, index: int, segment: Segment, swapper: FaceSwapper, feed: DetectionFeed | None,
                 deferred: DeferredSwapper) -> None:
        self.index, self.segment, self.swapper, self.feed, self.deferred = index, segment, swapper, feed, deferred
        self.full_frames = feed is None or swapper.needs_references
        self.pending: deque[tuple[_Item, torch.Tensor, np.ndarray]] = deque()
        self.reader: VideoReader | ProcessReader | None = None
        self.writer: VideoWriter | ProcessWriter | None = None
        self.written = 0
        self.flushed = False

    def frames(self, clock: PhaseClock) -> Iterator[tuple[_Item, np.ndarray]]:
        """(item, picture) per decoded frame; the picture may be a buffer the reader reuses. The time spent
        waiting on the decoder goes to ``clock``."""
        assert self.reader is not None
        start, end = self.segment.start, self.segment.end
        decoded = iter(self.reader)
        while True:
            with clock.measure("wait for decoders"):
                got = next(decoded, None)
            if got is None:
                return
            if isinstance(got, Frame):
                yield _Item(self.index, got.index, got.pts, start <= got.index < end, got), got.image
            else:
                index, pts, image = got
                kept = Frame(index, pts, image.copy()) if self.full_frames else None
                yield _Item(self.index, index, pts, start <= index < end, kept), image

    def push(self, item: _Item, picture: torch.Tensor, found: Faces | None, thumbnail: np.ndarray,
             hand_picture: np.ndarray | None = None) -> list[Final]:
        """Analyse one frame (its detections given, or by the swapper's own analyser); return the frames now final.
        ``hand_picture``: the frame at the hand occluder's size, for streams that see only thumbnails."""
        if self.feed is not None:
            assert found is not None
            self.feed.give(found)
        full = self.full_frames and item.frame is not None
        seen = item.frame.image if full else thumbnail
        self.pending.append((item, picture, seen))
        finals = self._pair(self.swapper.push(seen, item.index if item.write else None,
                                              None if full else hand_picture))
        if item.index == self.segment.decode_end - 1:
            finals += self.flush()
        return finals

    def flush(self) -> list[Final]:
        """The frames still waiting for lookahead, at the end of the stream."""
        if self.flushed:
            return []
        self.flushed = True
        return self._pair(self.swapper.flush())

    def _pair(self, results: list) -> list[Final]:
        finals = []
        for result in results:
            item, picture, seen = self.pending.popleft()
            finals.append((item, picture, self.deferred.take(seen), self.swapper, result.hands))
        return finals


class GpuEngine:
    """Swaps the source identity into videos and images with the face pipeline on the GPU.

    Args:
        sources: source photos (paths or H×W×3 uint8 RGB arrays).
        config: run options; ``execution_providers`` normally starts with "cuda".
        options: engine tunables (default: ``GpuOptions.from_config(config)``).

    Raises:
        ModelError: no CUDA device, or a model file missing or not convertible.
        NoFaceError: no face in any source photo.
        UsageError: a model the GPU engine does not support.
    """

    def __init__(self, sources: list[str | Path | np.ndarray], config: RunConfig,
                 options: GpuOptions | None = None) -> None:
        self.config = config.validate()
        self.options = options or GpuOptions.from_config(self.config)
        self.device = cuda_device(self.options.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        images = [s if isinstance(s, np.ndarray) else read_image(s) for s in sources]
        self.inputs = run_inputs(sources, None, self.config.face_map)
        """The files this engine reads (source photos, face map and its photos): never an output."""
        self.detector: GpuDetector | None = None
        self.swapper: DeviceSwapper | None = None
        self.masker: GpuFaceMasker | None = None
        self.enhancer: GpuEnhancer | None = None
        self._load_models()
        self.sources = self._with_faces(source_names(sources), images)
        """The source photos that have a face: checked once here, so each segment's FaceSwapper does not warn again."""
        self._frames_stream: _Stream | None = None
        self._frames_cuda: tuple[torch.cuda.Stream | None, torch.cuda.Stream | None] = (None, None)
        """The CUDA streams of ``decide_frames`` and ``render_frames`` (None on the CPU)."""
        self.plan = self._plan_memory()
        log.debug("GPU engine on %s: detector %s, swapper %s, %d faces per swapper call (%s)", self.device,
                  self.detector.name if self.detector else config.face_detector_model,
                  self.swapper.name if self.swapper else config.face_swapper_model, self.plan.faces_per_call,
                  "memory probe" if self.plan.budget_bytes else "no probe")
        self.clock = PhaseClock()
        """Seconds per phase of the last video run (in this process), or of every ``swap_frames`` call so far."""
        self._workers: EngineWorkers | None = None
        self.release = memory.CacheRelease(self.options.release_every, self.device)

    # --- set-up -------------------------------------------------------------------------------------

    def _load_models(self) -> None:
        config = self.config
        if config.quality_report:
            raise UsageError("--quality-report is measured on the CPU path only; pass --execution-providers cpu")
        check_analysis(config)
        store = model_store(config)
        self.masker = self._load_masker(store)
        self.detector = build_detector(config, store, self.device)
        if config.enhances:
            enhancer = get_model(config.face_enhancer_model, "enhancer")
            path = store.require(enhancer)
            self.enhancer = GpuEnhancer(
                enhancer, precision.load(enhancer, path, self.device, self.options.half and self.device.type == "cuda",
                                         channels_last=self.options.channels_last),
                blend=config.face_enhancer_blend, weight=config.face_enhancer_weight, mask_blur=config.face_mask_blur,
                faces_per_call=self.options.faces_per_call or memory.UNPROBED_FACES_PER_CALL)
        if config.face_swapper_model == EMBEDDED["swapper"]:
            from steadyswap.engine.gpu.classic import GpuClassicSwapper

            self.swapper = GpuClassicSwapper(config.face_mask_blur, config.face_mask_padding,
                                             config.face_mask_forehead, self.device)
            return
        spec = get_model(config.face_swapper_model, "swapper")
        recognizer_name = config.face_recognizer_model
        recognizer_spec = get_model(DEFAULT_RECOGNIZER if recognizer_name == EMBEDDED["recognizer"] else
                                    recognizer_name, "recognizer")
        recognizer = GpuRecognizer(recognizer_spec, TorchOnnx(store.require(recognizer_spec), self.device))
        converter = None
        if spec.converter:
            converter = TorchOnnx(store.require(get_model(spec.converter)), self.device)
        path = store.require(spec)
        model = precision.load(spec, path, self.device, self.options.half and self.device.type == "cuda",
                               channels_last=self.options.channels_last, compile=self.options.compile)
        self.swapper = GpuSwapper(spec, model, recognizer, path, converter,
                                  pixel_boost=parse_pixel_boost(config.face_swapper_pixel_boost),
                                  weight=config.face_swapper_weight, mask_blur=config.face_mask_blur,
                                  mask_padding=config.face_mask_padding,
                                  faces_per_call=self.options.faces_per_call or memory.UNPROBED_FACES_PER_CALL,
                                  box="box" in config.face_mask_types)

    def _load_masker(self, store: ModelStore) -> GpuFaceMasker | None:
        """The masks of ``--face-mask-types`` beyond box on the device, as ``models.factory.build_masker``."""
        config = self.config
        options = mask_options(config)
        if not options.any:
            return None
        occluders, parser = mask_models(config)
        require_models(store, occluders + ([parser] if parser else []))
        return GpuFaceMasker(options, [(spec, TorchOnnx(store.path(spec), self.device)) for spec in occluders],
                             (parser, TorchOnnx(store.path(parser), self.device)) if parser else None)

    def _with_faces(self, names: list[str], images: list[np.ndarray]) -> list[np.ndarray]:
        analyzer = self.detector or build_analyzer(self.config)
        try:
            faces = analyzer.analyze(images, video=False)
        finally:
            if analyzer is not self.detector:
                analyzer.close()
        return [images[i] for i in check_faces(names, faces)]

    def _plan_memory(self) -> memory.MemoryPlan:
        self._plan_enhancer()
        options = self.options
        if self.device.type != "cuda" or not isinstance(self.swapper, GpuSwapper):
            faces = options.faces_per_call or memory.UNPROBED_FACES_PER_CALL
            return memory.MemoryPlan(faces, 0, 0, options.frames_per_step)
        swapper = self.swapper
        side = swapper.crop_size
        swapper.batch_size = 1 << 16
        identity = torch.nn.functional.normalize(torch.randn(1, 512, device=self.device), dim=1)

        def run(n: int) -> None:
            crops = torch.rand((n, 3, side, side), device=self.device) * 255
            if swapper.spec.source == "image":
                size = swapper.spec.source_size or side
                sources = torch.rand((n, 3, size, size), device=self.device)
            else:
                sources = identity.expand(n, 512)
            swapper.run(crops, sources, probe=True)

        chosen = memory.plan(memory.face_bytes(run, self.device), options.strategy, self.device,
                             options.faces_per_call, options.frames_per_step)
        swapper.batch_size = chosen.faces_per_call * swapper.boost ** 2
        if options.strategy == "strict":
            torch.cuda.empty_cache()
        return chosen

    def _plan_enhancer(self) -> None:
        """The enhancer's faces per call from its own memory probe on CUDA (a 512 or 2048 face costs far more
        than a swapper's crop); ``--execution-batch-size`` wins, as for the swapper."""
        enhancer = self.enhancer
        if enhancer is None or self.device.type != "cuda" or self.options.faces_per_call:
            return
        side = enhancer.spec.size
        enhancer.faces_per_call = 1 << 16

        def run(n: int) -> None:
            enhancer.run(torch.rand((n, 3, side, side), device=self.device) * 255, probe=True)

        enhancer.faces_per_call = memory.plan(memory.face_bytes(run, self.device), self.options.strategy,
                                              self.device).faces_per_call
        log.debug("enhancer %s: %d faces per call", enhancer.name, enhancer.faces_per_call)

    def _stream(self, index: int, segment: Segment, fps: float) -> _Stream:
        assert self.swapper is not None
        feed = DetectionFeed(self.detector) if self.detector is not None else None
        deferred = DeferredSwapper(self.swapper)
        swapper = FaceSwapper(self.sources, self.config, fps, analyzer=feed, swapper=deferred, enhance=False)
        return _Stream(index, segment, swapper, feed, deferred)

    # --- the per-step work --------------------------------------------------------------------------

    def decide(self, frames: torch.Tensor, items: list[_Item], streams: list[_Stream],
               pool: ThreadPoolExecutor | None) -> list[Final]:
        """Detect on the whole step, then let each stream's FaceSwapper decide; the frames now final, in order."""
        with self.clock.measure("detect"):
            detections: list[Faces | None] = list(self.detector.detect(frames)) if self.detector \
                else [None] * len(items)
            thumbnails = thumbnail(frames).cpu().numpy()
            hand_pictures: list[np.ndarray | None] = [None] * len(items)
            if self.config.hand_occluder == "on" and not all(stream.full_frames for stream in streams):
                hand_pictures = list(thumbnail(frames, hand_size(frames.shape[2], frames.shape[1])).cpu().numpy())
        rows_of: dict[int, list[int]] = {}
        for row, item in enumerate(items):
            rows_of.setdefault(item.stream, []).append(row)

        def run_stream(rows: list[int]) -> list[Final]:
            stream = streams[items[rows[0]].stream]
            return [final for row in rows for final in
                    stream.push(items[row], frames[row], detections[row], thumbnails[row], hand_pictures[row])]

        groups = list(rows_of.values())
        with self.clock.measure("decide"):
            if pool is not None and len(groups) > 1:
                return [final for finals in pool.map(run_stream, groups) for final in finals]
            return [final for rows in groups for final in run_stream(rows)]

    def render(self, finals: list[Final]) -> torch.Tensor:
        """(n, H, W, 3) uint8 on the device: the final frames with their faces swapped and pasted."""
        assert self.swapper is not None
        frames = torch.stack([picture for _, picture, _, _, _ in finals])
        deciders = [decider for _, _, _, decider, _ in finals]
        requests = [requests for _, _, requests, _, _ in finals]
        hands = [found for _, _, _, _, found in finals]
        groups = self.swapper.swap(frames, requests)
        if self.masker is not None:
            self.masker.apply(frames, groups, requests)
        for patches in groups:
            patches.occlude(hands, (frames.shape[2], frames.shape[1]))
        if self.enhancer is not None and groups:
            # the device swappers give their patches in request order: frame by frame, pair by pair, face by face
            kps = np.concatenate([faces.kps for pairs in requests for _, faces in pairs])
            with self.clock.measure("enhance (part of render)"):
                groups = [self.enhancer.enhance(frames, groups, kps, [decider.tone for decider in deciders])]
        for patches in groups:
            patches.correct_colour([decider.colour for decider in deciders])
            patches.degrade([decider.degrade for decider in deciders], [item.index for item, *_ in finals])
            patches.hold([decider.hold for decider in deciders], frames)  # reads the frames: before any paste
        for patches in groups:
            patches.paste(frames)
        self.release.tick(len(finals))
        return frames

    # --- frames, images, whole files ----------------------------------------------------------------

    def swap_frames(self, images: list[np.ndarray], fps: float = 30.0) -> list[np.ndarray]:
        """Consecutive same-size RGB frames of one video, each answered causally, as ``FaceSwapper.swap_frames``,
        but detected, swapped and pasted as one step on the device; tracking state carries over between calls."""
        return self.render_frames(self.decide_frames(images, fps))

    def decide_frames(self, images: list[np.ndarray], fps: float = 30.0) -> FramesStep:
        """The first half of ``swap_frames``: upload, detect and decide, on a CUDA stream of its own. One thread
        may decide the next frames while another renders these (``render_frames``): the halves share no state
        but the step."""
        if self._frames_stream is None:
            self._frames_stream = self._stream(0, Segment("frames", 0, 1, 0), fps)
            self._frames_cuda = (side_stream(self.device, priority=-1), side_stream(self.device))
        stream, clock = self._frames_stream, self.clock
        finals: list[Final] = []
        if not images:
            return FramesStep(None, finals)
        with on(self._frames_cuda[0]):
            with clock.measure("upload"):
                frames = torch.from_numpy(np.stack(images)).to(self.device)
            with clock.measure("detect"):
                detections = self.detector.detect(frames) if self.detector else [None] * len(images)
            ready = torch.cuda.Event() if self.device.type == "cuda" else None
            if ready is not None:
                ready.record()
        with clock.measure("decide"):
            for row, image in enumerate(images):
                item = _Item(0, row, None, True)
                if stream.feed is not None:
                    stream.feed.give(detections[row])  # type: ignore[arg-type]
                result = stream.swapper.process(image)
                finals.append((item, frames[row], stream.deferred.take(image), stream.swapper, result.hands))
        return FramesStep(frames, finals, ready)

    def render_frames(self, step: FramesStep) -> list[np.ndarray]:
        """The second half of ``swap_frames``: swap, paste and download the decided frames, on the render stream
        (after the upload and detection, which ran on the decide stream)."""
        if step.frames is None:
            return []
        compute = self._frames_cuda[1]
        with on(compute):
            if compute is not None and step.ready is not None:
                compute.wait_event(step.ready)
                step.frames.record_stream(compute)
            with self.clock.measure("render"):
                rendered = self.render(step.finals)
            with self.clock.measure("download"):
                return list(rendered.cpu().numpy())

    def reset_tracking(self) -> None:
        """Forget the tracks and smoothing state ``swap_frames`` kept (after a seek, or for another video)."""
        if self._frames_stream is not None:
            self._frames_stream.swapper.close()
            self._frames_stream = None

    def swap_image(self, image: np.ndarray) -> np.ndarray:
        """One still photo (no temporal state); returned unchanged when no face is selected."""
        stream = self._stream(0, Segment("image", 0, 1, 0), 30.0)
        swapper = stream.swapper
        if swapper.needs_references:
            if any(index != 0 for index in swapper.reference_frames):
                raise UsageError("a photo target has only frame 0: reference frames must be 0")
            swapper.set_references([image] * len(swapper.reference_frames))
        hands = swapper.swap_image(image).hands
        requests = stream.deferred.take(image)
        if not requests:
            return image
        frames = torch.from_numpy(image[None].copy()).to(self.device)
        return self.render([(_Item(0, 0, None, True), frames[0], requests, swapper, hands)])[0].cpu().numpy()

    def segments(self, info: VideoInfo, start: int, end: int) -> list[Segment]:
        """Segments to run side by side: one per four CPU cores, at most MAX_SEGMENTS, none shorter than
        MIN_SEGMENT_FRAMES (docs/benchmarks.md: on 16 cores 4 segments ran 1.5x faster than 8)."""
        wanted = self.options.segments
        if wanted is None:
            wanted = max(1, min(MAX_SEGMENTS, (os.cpu_count() or 2) // 4, (end - start) // MIN_SEGMENT_FRAMES))
        lookahead = self.config.smoothing_lookahead if self.config.face_smoothing == "one-euro" else 0
        if wanted == 1:
            return [Segment(info.path, start, end, start)]
        return plan_segments(info, count=wanted, warmup_frames=self.options.warmup_frames, start=start, end=end,
                             lookahead_frames=lookahead)

    def run_video(self, target: str | Path, output: str | Path, progress: Progress | None = None,
                  cancel: threading.Event | None = None) -> RunResult:
        """Swap every frame of ``target`` (or the trimmed range) into ``output``.

        Raises:
            Interrupted: ``cancel`` was set; no output is left.
            MediaDecodeError: the target yields fewer frames than a segment needs.
        """
        check_output_extension(output, "video")
        began = time.perf_counter()
        config = self.config
        target, output = Path(target), Path(output)
        whole = VideoReader(target, config.trim_frame_start, config.trim_frame_end)
        info, start, end = whole.info, whole.start, whole.end
        settings = output_settings(config, info, output)
        plan = self.segments(info, start, end)
        log.debug("%s: %d segment(s) %s, %d frames per step", target, len(plan),
                  ", ".join(f"{s.start}-{s.end} (warm-up from {s.warmup})" for s in plan),
                  self.plan.frames_for(info.height, info.width))
        trim = (config.trim_frame_start, config.trim_frame_end)
        seal = seal_for(output, target, self.inputs, config)
        with atomic_output(output, inputs=[target, *self.inputs], seal=seal) as temporary, \
                scratch_folder(output) as scratch:
            files = [temporary] if len(plan) == 1 else [Path(scratch) / f"{s.name}{output.suffix}" for s in plan]
            if (workers := self._worker_count(len(plan), end - start, info)) > 1:
                done = self._run_in_workers(plan, files, info, workers, progress, cancel)
            else:
                done = self._run_gpu_segments(plan, files, info, progress, cancel)
            if len(plan) > 1:
                join(files, temporary, target, info, trim, settings)
        seconds = time.perf_counter() - began
        return RunResult(output, done, seconds, done / seconds if seconds else 0.0)

    def run_segment(self, segment: Segment, output: str | Path, progress: Progress | None = None,
                    cancel: threading.Event | None = None) -> int:
        """One segment into its own file for ``io.segments.join``, as ``segment_runner.run_segment`` writes it
        on the CPU: frames ``[start, end)`` with the source's timestamps, no audio. Returns the frames written.

        Raises:
            MediaDecodeError: the target yields fewer frames than the segment needs.
        """
        output = Path(output)
        info = probe(segment.target)
        with atomic_output(output, inputs=[segment.target, *self.inputs]) as temporary:
            return self._run_gpu_segments([segment], [temporary], info, progress, cancel, whole=False)

    def run_job(self, plan: list[Segment], files: list[Path], info: VideoInfo,
                progress: Progress | None = None) -> int:
        """Segments of ``info``'s video side by side into files for ``join`` (an ``EngineWorkers`` job)."""
        return self._run_gpu_segments(plan, files, info, progress, None, whole=False)

    def _encoder_threads(self, segments: int) -> int:
        """Threads of each encoder in a run of ``segments``: the option, else a share of the cores
        (docs/benchmarks.md, call 9: workers whose encoders each took every core ran no faster than one
        process)."""
        return self.options.encoder_threads or max(2, (os.cpu_count() or 2) // segments)

    def _worker_count(self, segments: int, frames: int, info: VideoInfo) -> int:
        wanted = self.options.workers
        if wanted is None:
            wanted = segments if self.device.type == "cuda" and frames >= WORKER_MIN_FRAMES else 1
            if wanted > 1:
                wanted = min(wanted, self._engines_that_fit(info))
        return max(1, min(wanted, segments))

    def _engines_that_fit(self, info: VideoInfo) -> int:
        """How many engines like this one the strategy's share of the free device memory holds: each worker
        loads the models again and runs steps of its own."""
        free, _ = torch.cuda.mem_get_info(self.device)
        share = memory.STRATEGY_SHARE.get(self.options.strategy, memory.STRATEGY_SHARE["strict"])
        each = torch.cuda.memory_allocated(self.device) + self.plan.run_bytes(info.height, info.width)
        return int(free * share // max(1, each))

    def _run_in_workers(self, plan: list[Segment], files: list[Path], info: VideoInfo, count: int,
                        progress: Progress | None, cancel: threading.Event | None) -> int:
        """``plan`` shared out in order among ``count`` engine processes (started on first use, then kept)."""
        if self._workers is None or len(self._workers.children) < count:
            if self._workers is not None:
                self._workers.close()
            self._workers = EngineWorkers(self.sources, self.config, replace(self.options, workers=1), count)
        cuts = [round(k * len(plan) / count) for k in range(count + 1)]
        jobs = [Job(plan[a:b], files[a:b]) for a, b in zip(cuts, cuts[1:])]
        try:
            self.clock = PhaseClock()
            options = replace(self.options, workers=1, encoder_threads=self._encoder_threads(len(plan)))
            done = self._workers.run(jobs, info, self.config, options, self.clock, progress, cancel)
            log.debug("GPU engine workers, time by phase (all workers): %s", self.clock.summary())
            return done
        except BaseException:
            self._workers = None  # stopped by run(); the next run starts new ones
            raise

    def _run_gpu_segments(self, plan: list[Segment], files: list[Path], info: VideoInfo, progress: Progress | None,
                          cancel: threading.Event | None, whole: bool = True) -> int:
        """Run ``plan`` side by side into ``files``; ``whole``: one segment that is the whole output (audio,
        trim shift), else files for ``join`` (source timestamps, no audio)."""
        config = self.config
        single = whole and len(plan) == 1
        streams = [self._stream(i, segment, info.fps or 30.0) for i, segment in enumerate(plan)]
        settings = output_settings(config, info, files[0])
        processes = self.options.processes and yuv420p_output(settings, info)
        planar = processes and self.options.planar and planar_decoding(info) and not any(
            s.full_frames for s in streams)
        writer_options = dict(
            settings=settings, audio_source=... if single else None,
            trim=(config.trim_frame_start, config.trim_frame_end) if single else (None, None),
            threads=0 if single else self._encoder_threads(len(plan)), watermark=watermark_for(info.path, config))
        try:
            for stream, path in zip(streams, files):
                prepare_references(stream.swapper, Path(info.path))
                segment = stream.segment
                if processes:
                    stream.reader = ProcessReader(info.path, segment.warmup, segment.decode_end, planar=planar,
                                                  threads=self.options.decoder_threads,
                                                  slots=QUEUE_FRAMES)
                    stream.writer = ProcessWriter(path, info, slots=QUEUE_FRAMES, **writer_options)
                else:
                    stream.reader = VideoReader(info.path, segment.warmup, segment.decode_end,
                                                queue_size=QUEUE_FRAMES, threads=self.options.decoder_threads)
                    stream.writer = VideoWriter(path, info, queue_size=QUEUE_FRAMES, **writer_options)
            done = self._pump(streams, info, progress, cancel, sum(s.frames for s in plan), planar)
            for stream in streams:
                assert stream.writer is not None
                stream.writer.close()
                if not single and stream.written != stream.segment.frames:
                    raise MediaDecodeError(
                        f"{info.path}: decoding stopped after frame {stream.segment.start + stream.written - 1}; "
                        f"frames {stream.segment.start}-{stream.segment.end - 1} are needed (truncated or corrupt)")
            return done
        except BaseException:
            for stream in streams:
                if stream.writer is not None:
                    stream.writer.abort()
            raise
        finally:
            for stream in streams:
                if stream.reader is not None:
                    stream.reader.close()
                stream.swapper.close()

    def _pump(self, streams: list[_Stream], info: VideoInfo, progress: Progress | None,
              cancel: threading.Event | None, total: int, planar: bool) -> int:
        """Run every stream to its end: upload, decide, render, download, encode, overlapped; ``planar``:
        the readers deliver yuv420p planes.

        Analysis (colour conversion, detection, thumbnails) runs on a high-priority CUDA stream and the
        render on another, and nothing in the render waits for the device: so while the device renders one
        step, this thread already detects and decides the next, and the device's queue never runs dry
        while the host works (nor the host while the device does).
        """
        writer = streams[0].writer
        assert writer is not None
        yuv = writer.takes_yuv420p
        rgb_shape = (info.height, info.width, 3)
        clock = self.clock = PhaseClock()
        self.release = memory.CacheRelease(self.options.release_every, self.device)
        written = 0

        def consume(item: _Item, data: np.ndarray) -> None:
            nonlocal written
            stream = streams[item.stream]
            assert stream.writer is not None
            with clock.measure("wait for encoders"):
                if yuv:
                    stream.writer.write_yuv420p(item.index, item.pts, data)
                else:
                    assert isinstance(stream.writer, VideoWriter) and item.frame is not None
                    stream.writer.write(replace(item.frame, image=data))
            stream.written += 1
            written += 1
            if progress is not None:
                progress(written, total)

        def emit(finals: list[Final], fresh: torch.Tensor | None = None) -> None:
            """Render and hand over ``finals`` on the render stream, after the analysis so far; ``fresh``: the
            step just analysed, whose frames the render stream now uses too."""
            with on(compute):
                if compute is not None:
                    compute.wait_stream(analysis)  # type: ignore[arg-type]
                    if fresh is not None:
                        fresh.record_stream(compute)
                kept = [final for final in finals if final[0].write]
                for first in range(0, len(kept), size):  # flushes can finish more frames than a step holds
                    chunk = kept[first:first + size]
                    with clock.measure("render"):
                        frames = self.render(chunk)
                        out = torch_ops.rgb_to_yuv420p(frames, info.colorspace, info.color_range) if yuv else frames
                    with clock.measure("wait for downloads"):
                        downloader.submit([final[0] for final in chunk], out)

        size = self.plan.frames_for(info.height, info.width)
        analysis, compute = side_stream(self.device, priority=-1), side_stream(self.device)
        uploader: Uploader[_Item] = Uploader([s.frames(clock) for s in streams], size,
                                             yuv420p_shape(info) if planar else rgb_shape, self.device)
        downloader: Downloader[_Item] = Downloader(consume, yuv420p_shape(info) if yuv else rgb_shape, size,
                                                   self.device, copies=not isinstance(writer, ProcessWriter))
        # decisions are pure Python: threads only pay where the analyser itself runs on the CPU (and lets go of
        # the GIL while it does); otherwise they just take turns on it (docs/benchmarks.md, calls 8-9)
        pool = ThreadPoolExecutor(max_workers=len(streams), thread_name_prefix="steadyswap-decide") \
            if self.detector is None else None
        try:
            with on(analysis):
                steps = iter(uploader)
                while True:
                    with clock.measure("wait for uploads"):
                        step = next(steps, None)
                    if step is None:
                        break
                    if cancel is not None and cancel.is_set():
                        raise Interrupted("run cancelled")
                    frames = torch_ops.yuv420p_to_rgb(step.frames, info.colorspace, info.color_range) if planar \
                        else step.frames
                    emit(self.decide(frames, step.items, streams, pool), frames)
                emit([final for stream in streams for final in stream.flush()])
            downloader.close()
        except BaseException:
            uploader.close()
            downloader.abort()
            raise
        finally:
            if pool is not None:
                pool.shutdown()
            if self.options.strategy == "strict" and self.device.type == "cuda":
                torch.cuda.empty_cache()
        log.debug("GPU engine, time by phase: %s", clock.summary())
        return written

    def close(self) -> None:
        """Drop the models and, unless the strategy is tolerant, the cached device memory."""
        if self._frames_stream is not None:
            self._frames_stream.swapper.close()
        if self._workers is not None:
            self._workers.close()
            self._workers = None
        self.detector = None
        self.swapper = None
        self._frames_stream = None
        if self.device.type == "cuda" and self.options.strategy != "tolerant":
            torch.cuda.empty_cache()

    def __enter__(self) -> GpuEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def thumbnail(frames: torch.Tensor, size: tuple[int, int] = CUT_THUMBNAIL) -> torch.Tensor:
    """(B, h, w, 3) uint8 area-averaged thumbnails of (B, H, W, 3) frames: ``analysis.cuts``' own reduction
    (exact where the sides divide evenly, as 1920×1080 → 48×27 does)."""
    small = torch.nn.functional.interpolate(frames.permute(0, 3, 1, 2).float(), size=(size[1], size[0]), mode="area")
    return small.round_().to(torch.uint8).permute(0, 2, 3, 1)


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
