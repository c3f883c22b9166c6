"""The GPU engine's step loop: frames on the device a step at a time, decided on the host, rendered on the device.

Each stream (one segment of a video, or the frames of ``swap_frames``) has the CPU path's own ``FaceSwapper``,
given each frame's device detections with the frame and a ``DeferredSwapper`` (no pixel work): it makes every
decision (scene cuts, which detections to use and which faces to carry, tracks, lookahead smoothing, selection,
which source for whom) and each frame's
``FrameResult.requests`` says what to swap. ``decide`` detects on the whole step and lets each stream decide;
``render`` swaps, masks, cuts hands out, enhances, colour-matches, degrades, holds and pastes every final frame of
a step at once; ``pump`` runs whole streams through both with uploads, downloads and encoders overlapped.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import torch

from steadyswap.analysis.hands import hand_size
from steadyswap.blend import torch_ops
from steadyswap.config import RunConfig
from steadyswap.engine.frame_swapper import FaceSwapper, FrameResult
from steadyswap.engine.gpu import memory
from steadyswap.engine.gpu.assembly import DeviceModels
from steadyswap.engine.gpu.options import GpuOptions
from steadyswap.engine.gpu.stages import DeferredSwapper, DegradeMeasures, DetectionFeed, GpuPatches
from steadyswap.engine.gpu.transfer import Downloader, Uploader, on, side_stream
from steadyswap.engine.phases import PhaseClock
from steadyswap.engine.pipeline import Progress
from steadyswap.errors import Interrupted, UsageError
from steadyswap.io import VideoReader, VideoWriter
from steadyswap.io.codec_processes import ProcessReader, ProcessWriter, yuv420p_shape
from steadyswap.io.segments import Segment
from steadyswap.provenance import Watermark
from steadyswap.swap.base import SourceFace
from steadyswap.types import Faces, Frame, VideoInfo

log = logging.getLogger(__name__)

CUT_THUMBNAIL = (48, 27)
"""(width, height) of ``analysis.cuts.frame_signature``'s thumbnail."""


@dataclass
class Item:
    """One decoded frame travelling through the engine; ``frame``: its host picture, where one is kept
    (a stream that analyses full frames on the CPU, or RGB output that keeps 10-bit detail)."""

    stream: int
    index: int
    pts: int | None
    write: bool
    frame: Frame | None = None


Final = tuple[Item, torch.Tensor, list[tuple[SourceFace, Faces]], FaceSwapper, np.ndarray | None]
"""A frame whose decisions are final: its item, its (H, W, 3) picture on the device, what to swap in it, its
stream's ``FaceSwapper`` (whose enhancer tone, colour, degrade and hold stages keep the per-track state) and its
hands (``FrameResult.hands``)."""


@dataclass
class Rendering:
    """A step whose render has begun (``StepLoop.begin_render``): its finals, (n, H, W, 3) frames, patch groups
    and their degrade measures on the way to the host; ``done``: the CUDA event after the first half (None on the
    CPU)."""

    finals: list[Final]
    frames: torch.Tensor
    groups: list[GpuPatches]
    measures: list[DegradeMeasures | None]
    done: torch.cuda.Event | None

    def keep_for_current_stream(self) -> None:
        """Tell the caching allocator that the current stream uses this step's tensors too."""
        stream = torch.cuda.current_stream(self.frames.device)
        self.frames.record_stream(stream)
        for patches in self.groups:
            patches.record_stream(stream)


@dataclass
class FramesStep:
    """Frames ``StepLoop.decide_frames`` decided for ``render_frames``: the (n, H, W, 3) uint8 frames on the device
    (None for no frames), what to swap in each, and the CUDA event after their upload and detection (None on the
    CPU)."""

    frames: torch.Tensor | None
    finals: list[Final]
    ready: torch.cuda.Event | None = None


class Stream:
    """One segment: its reader, writer, and the ``FaceSwapper`` that makes its decisions.

    The swapper sees each frame as a 48×27 thumbnail made on the device: all it needs for scene cuts
    (``analysis.cuts`` works at that size), as detections come from the feed and pixels are not its job.
    Reference selection compares the faces' pixels, so in reference mode it sees the full frame.
    """

    def __init__(self, index: int, segment: Segment, swapper: FaceSwapper, feed: DetectionFeed | None) -> None:
        self.index, self.segment, self.swapper, self.feed = index, segment, swapper, feed
        self.full_frames = feed is None or swapper.needs_references
        self.pending: deque[tuple[Item, torch.Tensor]] = deque()
        self.reader: VideoReader | ProcessReader | None = None
        self.writer: VideoWriter | ProcessWriter | None = None
        self.written = 0
        self.flushed = False

    def frames(self, clock: PhaseClock) -> Iterator[tuple[Item, np.ndarray]]:
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
                yield Item(self.index, got.index, got.pts, start <= got.index < end, got), got.image
            else:
                index, pts, image = got
                kept = Frame(index, pts, image.copy()) if self.full_frames else None
                yield Item(self.index, index, pts, start <= index < end, kept), image

    def push(self, item: Item, picture: torch.Tensor, found: Faces | None, thumbnail: np.ndarray,
             hand_picture: np.ndarray | None = None) -> list[Final]:
        """Analyse one frame (its detections given, or by the swapper's own analyser); return the frames now final.
        ``hand_picture``: the frame at the hand occluder's size, for streams that see only thumbnails."""
        assert self.feed is None or found is not None
        full = self.full_frames and item.frame is not None
        seen = item.frame.image if full else thumbnail
        self.pending.append((item, picture))
        finals = self._pair(self.swapper.push(seen, item.index if item.write else None,
                                              None if full else hand_picture, found))
        if item.index == self.segment.decode_end - 1:
            finals += self.flush()
        return finals

    def flush(self) -> list[Final]:
        """The frames still waiting for lookahead, at the end of the stream."""
        if self.flushed:
            return []
        self.flushed = True
        return self._pair(self.swapper.flush())

    def _pair(self, results: list[FrameResult]) -> list[Final]:
        finals = []
        for result in results:
            item, picture = self.pending.popleft()
            finals.append((item, picture, result.requests, self.swapper, result.hands))
        return finals


def thumbnail(frames: torch.Tensor, size: tuple[int, int] = CUT_THUMBNAIL) -> torch.Tensor:
    """(B, h, w, 3) uint8 area-averaged thumbnails of (B, H, W, 3) frames: ``analysis.cuts``' own reduction
    (exact where the sides divide evenly, as 1920×1080 → 48×27 does)."""
    small = torch.nn.functional.interpolate(frames.permute(0, 3, 1, 2).float(), size=(size[1], size[0]), mode="area")
    return small.round_().to(torch.uint8).permute(0, 2, 3, 1)


class StepLoop:
    """The per-step work of one engine on its models and memory plan.

    Args:
        models: the engine's models at the plan's batch sizes.
        plan: the memory plan (frames per step).
        device: where the models are.
        config: the engine's options, for ``swap_frames`` and ``swap_image`` (a run's streams get the run's).
        release_every: the cache release of ``swap_frames`` and ``swap_image`` (``GpuOptions.release_every``).
    """

    def __init__(self, models: DeviceModels, plan: memory.MemoryPlan, device: torch.device, config: RunConfig,
                 release_every: int) -> None:
        self.models, self.plan, self.device, self.config = models, plan, device, config
        self._release = memory.CacheRelease(release_every, device)
        self._frames_stream: Stream | None = None
        self._frames_cuda: tuple[torch.cuda.Stream | None, torch.cuda.Stream | None] = (None, None)
        """The CUDA streams of ``decide_frames`` and ``render_frames`` (None on the CPU)."""

    def stream(self, index: int, segment: Segment, fps: float, config: RunConfig) -> Stream:
        """A stream for ``segment`` with a fresh ``FaceSwapper`` deciding under ``config``."""
        feed = DetectionFeed(self.models.detector) if self.models.detector is not None else None
        swapper = FaceSwapper(self.models.sources, config, fps, analyzer=feed,
                              swapper=DeferredSwapper(self.models.swapper), enhance=False)
        return Stream(index, segment, swapper, feed)

    def decide(self, frames: torch.Tensor, items: list[Item], streams: list[Stream], pool: ThreadPoolExecutor | None,
               clock: PhaseClock, hands: bool) -> list[Final]:
        """Detect on the whole step, then let each stream's FaceSwapper decide; the frames now final, in order.
        ``hands``: the hand occluder is on (streams that see thumbnails get a picture at its size)."""
        detector = self.models.detector
        with clock.measure("detect"):
            detections: list[Faces | None] = list(detector.detect(frames)) if detector else [None] * len(items)
            thumbnails = thumbnail(frames).cpu().numpy()
            hand_pictures: list[np.ndarray | None] = [None] * len(items)
            if hands and not all(stream.full_frames for stream in streams):
                hand_pictures = list(thumbnail(frames, hand_size(frames.shape[2], frames.shape[1])).cpu().numpy())
        rows_of: dict[int, list[int]] = {}
        for row, item in enumerate(items):
            rows_of.setdefault(item.stream, []).append(row)

        def run_stream(rows: list[int]) -> list[Final]:
            stream = streams[items[rows[0]].stream]
            return [final for row in rows for final in
                    stream.push(items[row], frames[row], detections[row], thumbnails[row], hand_pictures[row])]

        groups = list(rows_of.values())
        with clock.measure("decide"):
            if pool is not None and len(groups) > 1:
                return [final for finals in pool.map(run_stream, groups) for final in finals]
            return [final for rows in groups for final in run_stream(rows)]

    def render(self, finals: list[Final], clock: PhaseClock, release: memory.CacheRelease) -> torch.Tensor:
        """(n, H, W, 3) uint8 on the device: the final frames with their faces swapped and pasted."""
        return self.finish_render(self.begin_render(finals, clock), clock, release)

    def begin_render(self, finals: list[Final], clock: PhaseClock) -> Rendering:
        """The render's first half, queued on the current CUDA stream without waiting for the device: swap, mask,
        cut hands out, enhance, colour-match, and the degrade stage's measures on their way to the host."""
        models = self.models
        frames = torch.stack([picture for _, picture, _, _, _ in finals])
        deciders = [decider for _, _, _, decider, _ in finals]
        requests = [requests for _, _, requests, _, _ in finals]
        hands = [found for _, _, _, _, found in finals]
        with clock.measure("swap (part of render)"):
            groups = models.swapper.swap(frames, requests)
        if models.masker is not None:
            models.masker.apply(frames, groups, requests)
        for patches in groups:
            patches.occlude(hands, (frames.shape[2], frames.shape[1]))
        if models.enhancer is not None and groups:
            # the device swappers give their patches in request order: frame by frame, pair by pair, face by face
            kps = np.concatenate([faces.kps for pairs in requests for _, faces in pairs])
            with clock.measure("enhance (part of render)"):
                groups = [models.enhancer.enhance(frames, groups, kps, [decider.tone for decider in deciders])]
        for patches in groups:
            patches.correct_colour([decider.colour for decider in deciders])
        measures = [patches.measure_degrade([decider.degrade for decider in deciders]) for patches in groups]
        done = torch.cuda.Event() if frames.is_cuda else None
        if done is not None:
            done.record()
        return Rendering(finals, frames, groups, measures, done)

    def finish_render(self, rendering: Rendering, clock: PhaseClock, release: memory.CacheRelease) -> torch.Tensor:
        """The render's second half, on the current CUDA stream (after ``rendering.done``: the first half may have
        run on another): degrade (the first wait for the device: the measures), hold and paste."""
        if rendering.done is not None:
            torch.cuda.current_stream(rendering.frames.device).wait_event(rendering.done)
            rendering.keep_for_current_stream()
        finals, frames = rendering.finals, rendering.frames
        deciders = [decider for _, _, _, decider, _ in finals]
        with clock.measure("degrade, hold, paste (part of render)"):
            for patches, measured in zip(rendering.groups, rendering.measures):
                patches.degrade([decider.degrade for decider in deciders], [item.index for item, *_ in finals],
                                measured)
                patches.hold([decider.hold for decider in deciders], frames)  # reads the frames: before any paste
            for patches in rendering.groups:
                patches.paste(frames)
        release.tick(len(finals))
        return frames

    def pump(self, streams: list[Stream], info: VideoInfo, config: RunConfig, options: GpuOptions,
             clock: PhaseClock, progress: Progress | None, cancel: threading.Event | None, total: int,
             planar: bool, mark: Watermark | None = None) -> int:
        """Run every stream to its end: upload, decide, render, download, encode, overlapped; ``planar``:
        the readers deliver yuv420p planes; ``mark``: added to the yuv420p frames' luma before the download
        (the writers then add none). Returns the frames written; the time by phase goes to ``clock``.

        Analysis (colour conversion, detection, thumbnails) runs on a high-priority CUDA stream and the
        render on another, and nothing in the render waits for the device: so while the device renders one
        step, this thread already detects and decides the next, and the device's queue never runs dry
        while the host works (nor the host while the device does).
        """
        writer = streams[0].writer
        assert writer is not None
        yuv = writer.takes_yuv420p
        assert mark is None or yuv, "the device marks yuv420p frames only; others are the writer's to mark"
        rgb_shape = (info.height, info.width, 3)
        release = memory.CacheRelease(options.release_every, self.device)
        hands = config.hand_occluder == "on"
        written = 0

        def consume(item: Item, data: np.ndarray) -> None:
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

        def finish(chunks: list[Rendering]) -> None:
            """Finish ``chunks`` on the finishing stream and hand them over."""
            with on(finishing):
                for rendering in chunks:
                    with clock.measure("render"):
                        frames = self.finish_render(rendering, clock, release)
                        out = torch_ops.rgb_to_yuv420p(frames, info.colorspace, info.color_range) if yuv else frames
                        if mark is not None:
                            out[:, :info.height] = torch_ops.watermark_luma(out[:, :info.height], mark)
                    with clock.measure("wait for downloads"):
                        downloader.submit([final[0] for final in rendering.finals], out)

        begun: list[Rendering] = []

        def emit(finals: list[Final], fresh: torch.Tensor | None = None) -> None:
            """Begin rendering ``finals`` on the render stream, after the analysis so far, then finish the step
            begun before on the finishing stream (``fresh``: the step just analysed, whose frames the render
            stream now uses too). A step's degrade measures are read back a step later, so that wait finds
            them ready, and the next step's swap is already queued behind them."""
            with on(compute):
                if compute is not None:
                    compute.wait_stream(analysis)  # type: ignore[arg-type]
                    if fresh is not None:
                        fresh.record_stream(compute)
                kept = [final for final in finals if final[0].write]
                started = []
                for first in range(0, len(kept), size):  # flushes can finish more frames than a step holds
                    with clock.measure("render"):
                        started.append(self.begin_render(kept[first:first + size], clock))
            finish(begun)
            begun[:] = started

        size = self.plan.frames_for(info.height, info.width)
        analysis, compute = side_stream(self.device, priority=-1), side_stream(self.device)
        finishing = side_stream(self.device)
        uploader: Uploader[Item] = Uploader([s.frames(clock) for s in streams], size,
                                            yuv420p_shape(info) if planar else rgb_shape, self.device)
        downloader: Downloader[Item] = Downloader(consume, yuv420p_shape(info) if yuv else rgb_shape, size,
                                                  self.device, copies=not isinstance(writer, ProcessWriter))
        # decisions are pure Python: threads only pay where the analyser itself runs on the CPU (and lets go of
        # the GIL while it does); otherwise they just take turns on it (docs/benchmarks.md, calls 8-9)
        pool = ThreadPoolExecutor(max_workers=len(streams), thread_name_prefix="steadyswap-decide") \
            if self.models.detector is None else None
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
                    emit(self.decide(frames, step.items, streams, pool, clock, hands), frames)
                emit([final for stream in streams for final in stream.flush()])
                finish(begun)
            downloader.close()
        except BaseException:
            uploader.close()
            downloader.abort()
            raise
        finally:
            if pool is not None:
                pool.shutdown()
            if options.strategy == "strict" and self.device.type == "cuda":
                torch.cuda.empty_cache()
        log.debug("GPU engine, time by phase: %s", clock.summary())
        return written

    def decide_frames(self, images: list[np.ndarray], fps: float, clock: PhaseClock) -> FramesStep:
        """The first half of ``GpuEngine.swap_frames``: upload, detect and decide, on a CUDA stream of its own. One
        thread may decide the next frames while another renders these (``render_frames``): the halves share no
        state but the step."""
        if self._frames_stream is None:
            self._frames_stream = self.stream(0, Segment("frames", 0, 1, 0), fps, self.config)
            self._frames_cuda = (side_stream(self.device, priority=-1), side_stream(self.device))
        stream, detector = self._frames_stream, self.models.detector
        finals: list[Final] = []
        if not images:
            return FramesStep(None, finals)
        with on(self._frames_cuda[0]):
            with clock.measure("upload"):
                frames = torch.from_numpy(np.stack(images)).to(self.device)
            with clock.measure("detect"):
                detections = detector.detect(frames) if detector else [None] * len(images)
            ready = torch.cuda.Event() if self.device.type == "cuda" else None
            if ready is not None:
                ready.record()
        with clock.measure("decide"):
            for row, image in enumerate(images):
                item = Item(0, row, None, True)
                result = stream.swapper.process(image, detections[row])
                finals.append((item, frames[row], result.requests, stream.swapper, result.hands))
        return FramesStep(frames, finals, ready)

    def render_frames(self, step: FramesStep, clock: PhaseClock, mark: Watermark | None = None) -> list[np.ndarray]:
        """The second half of ``GpuEngine.swap_frames``: swap, paste, mark (``mark``: before the download) and
        download the decided frames, on the render stream (after the upload and detection, which ran on the
        decide stream)."""
        if step.frames is None:
            return []
        compute = self._frames_cuda[1]
        with on(compute):
            if compute is not None and step.ready is not None:
                compute.wait_event(step.ready)
                step.frames.record_stream(compute)
            with clock.measure("render"):
                rendered = self.render(step.finals, clock, self._release)
                if mark is not None:
                    rendered = torch_ops.watermark_rgb(rendered, mark)
            with clock.measure("download"):
                return list(rendered.cpu().numpy())

    def reset_tracking(self) -> None:
        """Forget the tracks and smoothing state ``swap_frames`` kept (after a seek, or for another video)."""
        if self._frames_stream is not None:
            self._frames_stream.swapper.close()
            self._frames_stream = None

    def swap_image(self, image: np.ndarray, clock: PhaseClock) -> np.ndarray:
        """One still photo (no temporal state); returned unchanged when no face is selected."""
        swapper = self.stream(0, Segment("image", 0, 1, 0), 30.0, self.config).swapper
        try:  # the photo's own stream: closed with it (its analyser and hand finder), as a video's streams are
            if swapper.needs_references:
                if any(index != 0 for index in swapper.reference_frames):
                    raise UsageError("a photo target has only frame 0: reference frames must be 0")
                swapper.set_references([image] * len(swapper.reference_frames))
            result = swapper.swap_image(image)
            if not result.requests:
                return image
            frames = torch.from_numpy(image[None].copy()).to(self.device)
            final = (Item(0, 0, None, True), frames[0], result.requests, swapper, result.hands)
            return self.render([final], clock, self._release)[0].cpu().numpy()
        finally:
            swapper.close()
