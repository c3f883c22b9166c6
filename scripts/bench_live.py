"""Measure ``steadyswap live`` on a file played as a camera: frames/s, frames dropped, capture→output latency.

Usage:
    python scripts/bench_live.py [--size 640x480 --size 1280x720] [--output file|none] [--providers cpu]
                                 [--input-fps 60] [--loops serial pipelined] [--repeat 3]
                                 [--swapper classic] [--detector mediapipe] [--models-dir DIR] [--batch-frames 1]
                                 [--profile 60]

The input is media/video/liveportrait_s32_1280x720.mp4 (180 frames, 30 frames/s, one face) cropped to the wanted
aspect and scaled to each size (libx264 crf 18, made once per size in a temporary folder), then played at its
frame rate through the live loop (``run_live``): frames that arrive while a frame is being swapped replace the
one waiting, so the rate printed is what the machine keeps up with and the latency is what a viewer would see
added, from a frame's arrival to its hand-over to the output (``file``: encoded by libx264 with the run's
default settings; ``none``: dropped, to see the swap alone). Swapper warm-up is done before the clock starts.
Smoothing: live's defaults (``config.LIVE_SMOOTHING``), as ``steadyswap live``.

``--loops``: ``pipelined`` is ``run_live`` (decide, render and output overlapped on three threads); ``serial`` is
the loop as it was before that, kept here as the baseline: one thread takes the newest frames, swaps them
(``LiveSwapper.swap``: decide, render, watermark) and sends them, then takes the next. ``--repeat N`` runs each
size N times per loop, the loops taking turns, and prints the medians.

``--profile N`` then swaps the first N frames of each clip one at a time (no capture, no drops) and prints the
milliseconds per frame of the whole step, of the watermark and, on the GPU engine, of each of its phases
(upload, detect, decide, render, download); run it with ``CUDA_LAUNCH_BLOCKING=1`` so the device's work is
counted in the phase that queued it rather than in the next one that waits for it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
from pathlib import Path

import time
from fractions import Fraction

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from steadyswap.config import RunConfig, live_smoothing  # noqa: E402
from steadyswap.engine.live import LatestFrames, LiveResult, LiveStats, LiveSwapper, _capture, run_live  # noqa: E402
from steadyswap.io.capture import StreamCapture  # noqa: E402
from steadyswap.engine.output import output_settings  # noqa: E402
from steadyswap.io.live_outputs import FileOutput, LiveOutput, live_info  # noqa: E402
from bench_gpu import pingpong  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
CLIP = MEDIA / "video" / "liveportrait_s32_1280x720.mp4"
SOURCE = MEDIA / "image" / "liveportrait_s1.jpg"


class Discard(LiveOutput):
    """An output that takes frames and keeps nothing."""

    def send(self, image: np.ndarray, pts: int) -> bool:
        return True

    def close(self) -> None:
        pass


def make_clip(size: tuple[int, int], folder: Path, rate: int | None = None, seconds: float = 0.0) -> Path:
    """``CLIP`` centre-cropped to the aspect of ``size`` and scaled to it; ``rate``: frames/s to play it at
    (the same frames, retimed), else its own; played forwards and backwards until it lasts ``seconds``."""
    width, height = size
    path = folder / f"clip_{width}x{height}_{rate}_{seconds:g}.mp4"
    scaled: list[tuple[np.ndarray, int, Fraction]] = []  # each source frame cropped and scaled once, as yuv420p
    with av.open(str(CLIP)) as source:
        frame_rate = Fraction(rate) if rate else source.streams.video[0].average_rate
        for frame in source.decode(video=0):
            image = frame.to_ndarray(format="rgb24")
            h, w = image.shape[:2]
            crop_w, crop_h = min(w, round(h * width / height)), min(h, round(w * height / width))
            x0, y0 = (w - crop_w) // 2, (h - crop_h) // 2
            cropped = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[y0:y0 + crop_h, x0:x0 + crop_w]),
                                                 format="rgb24")
            planes = cropped.reformat(width=width, height=height, format="yuv420p", interpolation="AREA").to_ndarray()
            scaled.append((planes, frame.pts, frame.time_base))
    wanted = max(len(scaled), int(seconds * frame_rate))
    if wanted > len(scaled):  # a longer clip has no timestamps of its own: retimed at its rate
        rate = rate or frame_rate
        scaled = [scaled[i] for i in pingpong(len(scaled), wanted)]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=frame_rate, options={"crf": "18", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for number, (planes, pts, time_base) in enumerate(scaled):
            picture = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            if rate:
                picture.pts, picture.time_base = number, 1 / Fraction(rate)
            else:
                picture.pts, picture.time_base = pts, time_base
            out.mux(stream.encode(picture))
        out.mux(stream.encode(None))
    return path


def serial_loop(capture: StreamCapture, swapper: LiveSwapper, open_output, batch: int) -> LiveResult:
    """The live loop before its stages overlapped: take the newest frames, swap, send, repeat (the baseline)."""
    slot, stats, stop = LatestFrames(batch), LiveStats(), threading.Event()
    reader = threading.Thread(target=_capture, args=(capture, slot, stop), daemon=True)
    reader.start()
    output = None
    try:
        while (frames := slot.take(batch, timeout=0.1)) is not None:
            for frame, image in zip(frames, swapper.swap([frame.image for frame in frames]), strict=True):
                output = output or open_output(image.shape[1], image.shape[0])
                output.send(image, frame.pts)
                stats.record(frame.at, time.monotonic())
        stats.dropped = slot.dropped
        if output is not None:
            output.close()
        return stats.result("end of input")
    finally:
        stop.set()
        reader.join(timeout=2.0)
        capture.close()


def measure(clip: Path, config: RunConfig, output: str, batch: int, folder: Path, loop: str) -> dict:
    capture = StreamCapture(str(clip))
    swapper = LiveSwapper([SOURCE], config, capture.fps, frame_size=capture.size, batch=batch)

    def open_output(width: int, height: int) -> LiveOutput:
        if output == "none":
            return Discard()
        path = folder / f"live_{clip.name}"
        info = live_info(width, height, capture.fps, capture.time_base, str(clip))
        return FileOutput(path, [clip, SOURCE], info, output_settings(config, info, path))

    try:
        if loop == "serial":
            result = serial_loop(capture, swapper, open_output, batch)
        else:
            result = run_live(capture, swapper, open_output, batch=batch)
    finally:
        swapper.close()
    return {"loop": loop, "input_fps": round(capture.fps, 2), "frames_out": result.frames, "dropped": result.dropped,
            "fps": round(result.fps, 1), "latency_ms_mean": round(result.latency * 1000, 1),
            "latency_ms_p95": round(result.latency_p95 * 1000, 1), "device": swapper.device}


def medians(rows: list[dict]) -> dict:
    """The median of each figure over ``rows`` (runs of one loop at one size)."""
    keys = ("frames_out", "dropped", "fps", "latency_ms_mean", "latency_ms_p95")
    return {"loop": rows[0]["loop"], "runs": len(rows), **{k: statistics.median(r[k] for r in rows) for k in keys}}


def profile(clip: Path, config: RunConfig, count: int) -> dict:
    """Milliseconds per frame of one-frame steps over the clip's first ``count`` frames, by phase."""
    swapper = LiveSwapper([SOURCE], config, 30.0)
    images = []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            images.append(frame.to_ndarray(format="rgb24"))
            if len(images) == count:
                break
    engine = swapper._engine
    if engine is not None:
        engine.clock = type(engine.clock)()
    mark, swapper.watermark = swapper.watermark, None
    try:
        began = time.perf_counter()
        swapped = [swapper.swap([image])[0] for image in images]
        step = time.perf_counter() - began
        began = time.perf_counter()
        if mark is not None:
            for image in swapped:
                mark.embed_rgb(image)
        marking = time.perf_counter() - began
    finally:
        swapper.close()
    phases = engine.clock.totals() if engine is not None else {}
    per_frame = {name: round(seconds * 1000 / len(images), 2) for name, seconds in phases.items()}
    return {"frames": len(images), "step_ms": round(step * 1000 / len(images), 2),
            "watermark_ms": round(marking * 1000 / len(images), 2), "phases_ms": per_frame}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", action="append", help="WxH (repeatable; default 640x480 and 1280x720)")
    parser.add_argument("--output", choices=("file", "none"), default="file")
    parser.add_argument("--providers", nargs="+", default=["cpu"])
    parser.add_argument("--swapper", default="classic")
    parser.add_argument("--detector", default="mediapipe")
    parser.add_argument("--models-dir")
    parser.add_argument("--batch-frames", type=int, default=1)
    parser.add_argument("--hand-occluder", choices=("on", "off"), default="on",
                        help="off where MediaPipe is missing (the GPU machine)")
    parser.add_argument("--gpu-device", help="GpuOptions.device (e.g. cpu to run the engine's code on torch-CPU)")
    parser.add_argument("--gpu-compile", choices=("default", "reduce-overhead"),
                        help="GpuOptions.compile: torch.compile the swapper graph in this mode")
    parser.add_argument("--input-fps", type=int, help="play the clip at this rate (same frames), else its 30")
    parser.add_argument("--seconds", type=float, default=0.0,
                        help="play the clip forwards and backwards until it lasts this long (default: once)")
    parser.add_argument("--loops", nargs="+", choices=("serial", "pipelined"), default=["pipelined"],
                        help="the live loop(s) to time (see above)")
    parser.add_argument("--repeat", type=int, default=1, metavar="N", help="runs per size and loop (medians)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="then time N one-frame steps per clip by phase (see above)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in (args.size or ["640x480", "1280x720"])]
    gpu: dict = {"device": args.gpu_device, "half": False} if args.gpu_device else {}
    if args.gpu_compile:
        gpu["compile"] = True if args.gpu_compile == "default" else args.gpu_compile
    extra = {"gpu": gpu} if gpu else {}
    config = live_smoothing(RunConfig(face_swapper_model=args.swapper, face_detector_model=args.detector,
                                      face_landmarker_model="mediapipe" if args.detector == "mediapipe" else "none",
                                      models_dir=args.models_dir, execution_providers=tuple(args.providers),
                                      hand_occluder=args.hand_occluder, extra=extra), ())
    figures = {"machine": f"{platform.node()} {os.cpu_count()} cores", "load": os.getloadavg(),
               "output": args.output, "batch_frames": args.batch_frames,
               "compile": args.gpu_compile, "swapper": args.swapper, "detector": args.detector,
               "providers": args.providers, "runs": {}}
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for size in sizes:
            name = f"{size[0]}x{size[1]}"
            clip = make_clip(size, folder, args.input_fps, args.seconds)
            runs: dict[str, list[dict]] = {loop: [] for loop in args.loops}
            for _ in range(args.repeat):
                for loop in args.loops:
                    row = measure(clip, config, args.output, args.batch_frames, folder, loop)
                    runs[loop].append(row)
                    print(f"{name} {loop}: {row['fps']} frames/s of {row['input_fps']} ({row['frames_out']} out, "
                          f"{row['dropped']} dropped), latency {row['latency_ms_mean']} ms mean, "
                          f"{row['latency_ms_p95']} ms p95 [{row['device']}]", flush=True)
            figures["runs"][name] = found = {"runs": runs, "medians": [medians(rows) for rows in runs.values()]}
            for middle in found["medians"]:
                print(f"{name} {middle['loop']}, median of {middle['runs']}: {middle['fps']} frames/s, "
                      f"{middle['dropped']} dropped, latency {middle['latency_ms_mean']} ms mean, "
                      f"{middle['latency_ms_p95']} ms p95", flush=True)
            if args.profile:
                found["profile"] = timed = profile(clip, config, args.profile)
                print(f"{name} profile: {timed}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
