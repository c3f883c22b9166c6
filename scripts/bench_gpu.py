"""Benchmark the GPU engine (stages alone, end to end, memory, correctness) and the CPU path against a naive loop.

On the GPU machine (through scripts/bench_gpu.sh, which installs the carried wheels and runs ``pytest -m gpu``):
    python scripts/bench_gpu.py --out DIR [--frames 1000] [--quick]
On the CPU machine:
    python scripts/bench_gpu.py --sections prepare_classic   # once: .bench/classic_faces.npz (MediaPipe landmarks)
    python scripts/bench_gpu.py --sections cpu_path --out DIR
    python scripts/bench_gpu.py --sections cpu_enhancer --out DIR   # the face enhancer's cost per face on the CPU
The face enhancer alone (GPU machine, after ``prepare``):
    python scripts/bench_gpu.py --sections prepare,enhancer --out DIR [--enhancer-batches 1,8,32] \
        [--enhancer-frames 300]
and its smoke run on torch's CPU: --device cpu --size 640x360 --frames 6 --enhancer-batches 1 --enhancer-frames 2.
Every number goes to DIR/bench.json (rewritten after each section); a summary is printed last.

Inputs: a 1080p30 clip made on the spot by upscaling media/video/liveportrait_s32_1280x720.mp4 (bicubic) and
playing it forwards and backwards to the wanted length, with a synthetic AAC track and a keyframe every 60
frames; stand-in models with the real architectures' shapes and cost but random weights
(steadyswap.testing.standins), and the shared YuNet detector (real weights). The classic swapper needs the
MediaPipe face mesh, which the GPU machine lacks: there its landmarks come precomputed from this machine
(.bench/classic_faces.npz), so classic figures there exclude analysis.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import shutil
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ENGINE_ROOT = os.environ.get("BENCH_ENGINE_ROOT", str(ROOT))
"""Where ``steadyswap`` is imported from: another checkout's package gives a baseline measured beside this one."""
sys.path.insert(0, ENGINE_ROOT)
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [ENGINE_ROOT, os.environ.get("PYTHONPATH")]))  # children

from steadyswap.analysis.base import FaceAnalyzer  # noqa: E402
from steadyswap.config import RunConfig, crf_from_quality  # noqa: E402
from steadyswap.io import VideoReader, VideoWriter, probe, read_image  # noqa: E402
from steadyswap.io.segments import Segment  # noqa: E402
from steadyswap.io.writer import OutputSettings  # noqa: E402
from steadyswap.types import Faces  # noqa: E402

SHARED = ROOT.parent / "shared"
CARRIED = ROOT / ".bench" / "shared"
CLASSIC_FACES = ROOT / ".bench" / "classic_faces.npz"
SOURCE_IMAGE = "media/image/liveportrait_s1.jpg"
CLIP_720 = "media/video/liveportrait_s32_1280x720.mp4"
CLIP_512 = "media/video/liveportrait_d3.mp4"
GPU_SECTIONS = ("env", "prepare", "correctness", "models", "stages", "decoders", "encoders", "e2e", "classic",
                "compile", "enhancer")
DEVICE = "cuda"
STANDIN_SUBSET = ["hyperswap_1a_256", "inswapper_128", "2dfan4", "arcface_w600k_r50", "yoloface_8n"]
"""Stand-ins the correctness and models sections cover (``--standins``)."""
"""Where the engine runs; ``--device cpu`` runs the GPU sections on the CPU (a slow smoke test of this script)."""


def shared(relative: str) -> Path:
    """A shared media/model file: ../shared here, the carried copy on the GPU machine."""
    for root in (SHARED, CARRIED):
        if (root / relative).exists():
            return root / relative
    raise FileNotFoundError(f"{relative} not in {SHARED} or {CARRIED}")


class Results:
    """Nested dict of figures, written to JSON after every section."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict = json.loads(path.read_text()) if path.exists() else {}

    def section(self, name: str) -> dict:
        """A fresh dict for section ``name`` (a rerun replaces the old figures)."""
        self.data[name] = {}
        return self.data[name]

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=1, default=_plain))


def _plain(value: object) -> object:
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


class Sampler:
    """Samples GPU utilisation and memory (NVML), the RSS of this process (alone, and with every process it
    started: codec and engine workers) and the host's CPU use every ``interval`` s."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.util: list[float] = []
        self.gpu_used: list[float] = []
        self.rss: list[float] = []
        self.rss_tree: list[float] = []
        self.cpu_seconds: dict[int, tuple[str, float]] = {}
        """Per descendant process: its role and the CPU seconds it had used when last seen."""
        self.cpu: list[float] = []
        self._stop = threading.Event()
        self._handle = None
        with contextlib.suppress(Exception):
            import pynvml

            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self._nvml = pynvml

    def _run(self) -> None:
        import psutil

        process = psutil.Process()
        psutil.cpu_percent()
        while not self._stop.is_set():
            self.rss.append(process.memory_info().rss / 2**20)
            tree = 0
            for child in process.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    tree += child.memory_info().rss
                    times = child.cpu_times()
                    role = self.cpu_seconds[child.pid][0] if child.pid in self.cpu_seconds else _role(child)
                    self.cpu_seconds[child.pid] = (role, times.user + times.system)
            self.rss_tree.append(self.rss[-1] + tree / 2**20)
            self.cpu.append(psutil.cpu_percent())
            if self._handle is not None:
                self.util.append(self._nvml.nvmlDeviceGetUtilizationRates(self._handle).gpu)
                self.gpu_used.append(self._nvml.nvmlDeviceGetMemoryInfo(self._handle).used / 2**20)
            time.sleep(self.interval)

    def __enter__(self) -> Sampler:
        torch = _torch()
        if torch is not None and torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        import psutil

        self._began = time.perf_counter()
        self._own = psutil.Process().cpu_times()
        self._before: dict[int, float] = {}  # children alive before the run (engine workers): their earlier time
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                times = child.cpu_times()
                self._before[child.pid] = times.user + times.system
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        import psutil

        self._stop.set()
        self._thread.join()
        seconds = time.perf_counter() - self._began
        own = psutil.Process().cpu_times()
        cores = {"this process": (own.user + own.system - self._own.user - self._own.system) / seconds}
        for pid, (role, used) in self.cpu_seconds.items():
            cores[role] = cores.get(role, 0.0) + (used - self._before.get(pid, 0.0)) / seconds
        self.cores = cores

    def figures(self) -> dict:
        torch = _torch()
        out = {"rss_peak_mib": max(self.rss, default=0.0), "rss_with_children_peak_mib": max(self.rss_tree, default=0.0),
               "cores_busy_by_process_role": getattr(self, "cores", None),
               "host_cpu_percent_mean": statistics.fmean(self.cpu[1:]) if len(self.cpu) > 1 else None}
        if self.util:
            out |= {"gpu_util_mean": statistics.fmean(self.util), "gpu_util_max": max(self.util),
                    "gpu_used_peak_mib": max(self.gpu_used)}
        if torch is not None and torch.cuda.is_available():
            out |= {"vram_allocated_peak_mib": torch.cuda.max_memory_allocated() / 2**20,
                    "vram_reserved_peak_mib": torch.cuda.max_memory_reserved() / 2**20}
        return out


def _role(process) -> str:
    """What a child process of a run does, from its command line: decode, encode, engine worker, other."""
    line = " ".join(process.cmdline())
    for module, role in (("codec_processes decode", "decoders"), ("codec_processes encode", "encoders"),
                         ("workers serve", "engine workers")):
        if module in line:
            return role
    return "other"


def _torch():
    try:
        import torch

        return torch
    except ImportError:
        return None


def sync() -> None:
    torch = _torch()
    if torch is not None and torch.cuda.is_available():
        torch.cuda.synchronize()


def rate(count: int, run: Callable[[], object]) -> float:
    """count / seconds that ``run()`` took (device work included)."""
    sync()
    began = time.perf_counter()
    run()
    sync()
    return count / (time.perf_counter() - began)


# ---------------------------------------------------------------------------------------------------------
# inputs


def pingpong(length: int, frames: int) -> list[int]:
    """Source frame of each output frame when a clip of ``length`` plays forwards, backwards, forwards…"""
    period = 2 * (length - 1)
    return [j if (j := i % period) < length else period - j for i in range(frames)]


def make_clip(source: Path, target: Path, frames: int, size: tuple[int, int] = (1920, 1080)) -> dict:
    """Upscale ``source`` to ``size`` and ping-pong it to ``frames`` frames at 30 fps, GOP 60, with AAC audio."""
    with av.open(str(source)) as container:
        images = [cv2.resize(f.to_ndarray(format="rgb24"), size, interpolation=cv2.INTER_CUBIC)
                  for f in container.decode(video=0)]
    order = pingpong(len(images), frames)
    fps = 30
    rate_hz = 48000
    with av.open(str(target), "w") as out:
        video = out.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "veryfast"})
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.codec_context.gop_size = 60
        video.codec_context.thread_count = 0
        audio = out.add_stream("aac", rate=rate_hz, layout="stereo")
        per_frame = rate_hz // fps
        t = np.arange(per_frame) / rate_hz
        for index, k in enumerate(order):
            frame = av.VideoFrame.from_ndarray(images[k], format="rgb24")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            out.mux(video.encode(frame))
            beep = 0.3 * np.sin(2 * np.pi * 1000 * (t + index / fps)) * (index % fps < 3)
            samples = np.stack([beep, beep]).astype(np.float32)
            sound = av.AudioFrame.from_ndarray(samples, format="fltp", layout="stereo")
            sound.sample_rate, sound.pts, sound.time_base = rate_hz, index * per_frame, Fraction(1, rate_hz)
            out.mux(audio.encode(sound))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return {"path": str(target), "frames": frames, "size": list(size), "order": "ping-pong of the 180 frames",
            "encoding": "libx264 veryfast crf 18, GOP 60, AAC stereo 48 kHz",
            "mbit_per_s": target.stat().st_size * 8 / (frames / fps) / 1e6}


def export_models(root: Path) -> dict:
    """Stand-in ONNX files under the registry's names, and the shared YuNet as yunet_2023_mar.onnx."""

    from steadyswap.testing import standins

    root.mkdir(parents=True, exist_ok=True)
    timings = {}
    for name in ("hyperswap_1a_256", "arcface_w600k_r50"):
        began = time.perf_counter()
        model = standins.build(name, device=DEVICE)
        standins.export_onnx(name, root / f"{name}.onnx", model)
        del model
        timings[name] = time.perf_counter() - began
    shutil.copy(shared("models/yunet/yunet_n_640_640.onnx"), root / "yunet_2023_mar.onnx")
    gc.collect()
    return {"export_seconds": timings, "files_mib": {p.name: p.stat().st_size / 2**20 for p in root.glob("*.onnx")}}


NEURAL_OPTIONS = {"face_swapper_model": "hyperswap_1a_256", "face_detector_model": "yunet",
                  "face_landmarker_model": "none", "hand_occluder": "off"}
"""The models ``export_models`` provides, as run options (also ``bench_distributed.py --standin-models``). The
hand occluder is off: it runs MediaPipe, which the GPU machine lacks (its CPU cost: scripts/bench_cpu.py)."""


def neural_config(models: Path, **changes) -> RunConfig:
    return RunConfig(**NEURAL_OPTIONS, models_dir=str(models), execution_providers=("cuda",), **changes)


def first_frames(path: Path, count: int) -> list[np.ndarray]:
    frames = []
    with VideoReader(path, 0, count) as reader:
        frames = [f.image for f in reader]
    return frames


# ---------------------------------------------------------------------------------------------------------
# GPU sections


def section_env(out: dict) -> None:
    import torch

    out["python"] = platform.python_version()
    out["torch"] = torch.__version__
    out["cuda"] = torch.version.cuda
    out["cpu_count"] = os.cpu_count()
    if DEVICE != "cpu":
        out["device"] = torch.cuda.get_device_name(0)
        out["capability"] = list(torch.cuda.get_device_capability(0))
        free, total = torch.cuda.mem_get_info()
        out["vram_free_mib"], out["vram_total_mib"] = free / 2**20, total / 2**20
    out["av"] = av.__version__
    out["date"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    for name, path in (("cgroup_cpu_max", "/sys/fs/cgroup/cpu.max"), ("cpu_model", "/proc/cpuinfo")):
        with contextlib.suppress(OSError):
            text = Path(path).read_text()
            out[name] = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                              if line.startswith("model name")), text.strip())


def section_correctness(out: dict, models: Path, clip: Path) -> None:
    """GPU engine vs the CPU path (onnxruntime) on the same frames and models; fp16 vs fp32."""
    import torch

    from steadyswap.engine.frame_swapper import FaceSwapper
    from steadyswap.engine.gpu.engine import GpuEngine, GpuOptions
    from steadyswap.testing import standins

    frames = first_frames(clip, 3)
    source = read_image(shared(SOURCE_IMAGE))
    config = neural_config(models)
    began = time.perf_counter()
    with FaceSwapper([source], replace(config, execution_providers=("cpu",))) as cpu:
        expected = np.stack([cpu.swap_frame(f) for f in frames]).astype(np.int16)
    out["cpu_path_seconds"] = time.perf_counter() - began
    outputs = {}
    for half in (False, True):
        with GpuEngine([source], config, GpuOptions(device=DEVICE, half=half)) as engine:
            outputs[half] = np.stack(engine.swap_frames(frames)).astype(np.int16)
        gc.collect()
        torch.cuda.empty_cache()
    changed = expected != np.stack(frames)
    for label, got, reference in (("gpu_fp32_vs_cpu", outputs[False], expected),
                                  ("gpu_fp16_vs_gpu_fp32", outputs[True], outputs[False])):
        diff = np.abs(got - reference)
        out[label] = {"mean_all": diff.mean(), "mean_face": diff[changed].mean(), "max": int(diff.max()),
                      "p99_9_face": float(np.percentile(diff[changed], 99.9)),
                      "share_over_2": float((diff[changed] > 2).mean())}
    out["changed_share"] = changed.mean()
    errors = {}
    for name in STANDIN_SUBSET:
        model = standins.build(name, device=DEVICE)
        inputs = standins.example_inputs(name, batch=4, device=DEVICE, seed=11)
        with torch.inference_mode():
            reference = model(*inputs)
            low = model.half()(*(x.half() for x in inputs))
        pairs = zip(_as_tuple(reference), _as_tuple(low))
        errors[name] = [float((low_out.float() - r).norm() / r.norm()) for r, low_out in pairs]
        model = None
    out["fp16_relative_l2_error"] = errors
    torch.cuda.empty_cache()


def _as_tuple(value: object) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def time_call(run: Callable[[], object], seconds: float = 0.6) -> float:
    """Median milliseconds of ``run()`` over repeats filling about ``seconds`` (CUDA events, after warm-up)."""
    import torch

    for _ in range(3):
        run()
    sync()
    times: list[float] = []
    spent = 0.0
    while spent < seconds * 1000 or len(times) < 5:
        if DEVICE == "cpu":
            began = time.perf_counter()
            run()
            times.append((time.perf_counter() - began) * 1000)
        else:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            run()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        spent += times[-1]
    return statistics.median(times)


def time_once(run: Callable[[], object]) -> float:
    """Milliseconds of one ``run()`` after one warm-up: for smoke runs where a call takes seconds."""
    run()
    began = time.perf_counter()
    run()
    return (time.perf_counter() - began) * 1000


def profile_hyperswap(batch: int) -> dict:
    """Where the time of one fp16 hyperswap call goes: CUDA time per op type (top 15), and the layout's effect."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from steadyswap.testing import standins

    result = {}
    for layout in ("channels_last", "contiguous"):
        model = standins.build("hyperswap_1a_256", device=DEVICE).half()
        memory_format = torch.channels_last if layout == "channels_last" else torch.contiguous_format
        model = model.to(memory_format=memory_format)
        inputs = tuple(x.contiguous(memory_format=memory_format) if x.dim() == 4 else x
                       for x in standins.example_inputs("hyperswap_1a_256", batch, DEVICE, torch.float16))
        with torch.inference_mode():
            result[f"{layout}_ms"] = time_call(lambda: model(*inputs))
            if layout == "channels_last":
                with profile(activities=[ProfilerActivity.CUDA]) as prof:
                    model(*inputs)
                    torch.cuda.synchronize()
                rows = sorted(prof.key_averages(), key=lambda e: -e.device_time_total)[:15]
                result["top_ops"] = [{"op": e.key[:90], "cuda_ms": e.device_time_total / 1000, "calls": e.count}
                                     for e in rows]
        model = None
        torch.cuda.empty_cache()
    return result


MODEL_BATCHES = {"hyperswap_1a_256": (1, 8, 16, 32, 64, 128), "inswapper_128": (1, 8, 32, 64),
                 "2dfan4": (1, 32, 64), "arcface_w600k_r50": (1, 32, 128), "yoloface_8n": (1, 16, 32)}


def section_models(out: dict, models: Path, quick: bool) -> None:
    """Each stand-in alone at several batch sizes, fp32 and fp16 (channels-last); faces/s and achieved TFLOP/s."""
    import torch

    from steadyswap.engine.gpu.onnx_module import TorchOnnx
    from steadyswap.testing import standins

    for name in STANDIN_SUBSET:
        model = standins.build(name, device=DEVICE)
        macs = standins.PUBLISHED[name][1]
        rows = []
        for precision in ("fp32", "fp16"):
            if precision == "fp16":
                model = model.half().to(memory_format=torch.channels_last)
            dtype = torch.float16 if precision == "fp16" else torch.float32
            for batch in MODEL_BATCHES[name][: 3 if quick else None]:
                sets = [tuple(x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 and precision == "fp16"
                              else x for x in standins.example_inputs(name, batch, DEVICE, dtype, seed=s))
                        for s in (1, 2)]
                turn = iter(range(10**9))
                if DEVICE != "cpu":
                    torch.cuda.reset_peak_memory_stats()
                with torch.inference_mode():
                    ms = time_call(lambda: model(*sets[next(turn) % 2]))
                rows.append({"precision": precision, "batch": batch, "ms": ms, "faces_per_s": batch / ms * 1000,
                             "tflops": 2 * macs * batch / ms / 1e9,
                             "peak_mib": torch.cuda.max_memory_allocated() / 2**20 if DEVICE != "cpu" else 0.0})
        out[name] = rows
        model = None
        torch.cuda.empty_cache()
    if DEVICE != "cpu":
        out["hyperswap_1a_256_fp16_b32_profile"] = profile_hyperswap(32)
    converted = TorchOnnx(models / "hyperswap_1a_256.onnx", DEVICE, half=True, channels_last=True)
    rows = []
    for batch in (32, 64):
        feeds = {"source": standins.example_inputs("hyperswap_1a_256", batch, DEVICE, seed=3)[0],
                 "target": standins.example_inputs("hyperswap_1a_256", batch, DEVICE, seed=3)[1]}
        ms = time_call(lambda: converted(feeds))
        rows.append({"batch": batch, "ms": ms, "faces_per_s": batch / ms * 1000})
    out["hyperswap_1a_256_via_onnx2torch_fp16"] = rows
    converted = None
    torch.cuda.empty_cache()


def section_stages(out: dict, models: Path, clip: Path, scratch: Path, quick: bool) -> None:
    """Each stage alone at 1080p: decode, detection, decisions, swap, blend + yuv, transfers, encode."""
    import torch

    from steadyswap.blend import torch_ops
    from steadyswap.engine.gpu.engine import GpuEngine, GpuOptions
    from steadyswap.engine.gpu.steps import Item, thumbnail
    from steadyswap.io.codec_processes import ProcessReader
    from steadyswap.io.segments import plan_segments

    info = probe(clip)
    count = 120 if quick else 600
    with VideoReader(clip, 0, count) as reader:
        out["decode_1_stream_fps"] = rate(count, lambda: sum(1 for _ in reader))
    readers = {"streams": lambda s: VideoReader(clip, s.warmup, s.end),
               "processes_planar": lambda s: ProcessReader(clip, s.warmup, s.end, planar=True)}
    for streams in (4, 8):
        plan = plan_segments(info, count=streams, warmup_frames=0, end=count)
        for kind, open_reader in readers.items():
            def read_all() -> None:
                def one(segment) -> None:
                    with open_reader(segment) as r:
                        for _ in r:
                            pass
                threads = [threading.Thread(target=one, args=(s,)) for s in plan]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()

            out[f"decode_{streams}_{kind}_fps"] = rate(count, read_all)

    frames_np = first_frames(clip, 96 if not quick else 32)
    source = read_image(shared(SOURCE_IMAGE))
    engine = GpuEngine([source], neural_config(models), GpuOptions(device=DEVICE))
    out["plan"] = asdict(engine.plan)
    step = engine.plan.frames_for(info.height, info.width)
    device = engine.device
    batches = [torch.from_numpy(np.stack(frames_np[i:i + step])).to(device) for i in range(0, len(frames_np), step)]
    assert engine.models.detector is not None and engine.models.swapper is not None
    detections = [engine.models.detector.detect(b) for b in batches]
    out["faces_per_frame"] = statistics.fmean(len(f) for d in detections for f in d)
    n = len(frames_np)
    pinned = DEVICE != "cpu"
    staging = torch.empty((step, *frames_np[0].shape), dtype=torch.uint8, pin_memory=pinned)

    def upload() -> None:
        for _ in range(3):
            for i in range(0, n, step):
                chunk = frames_np[i:i + step]
                for row, image in enumerate(chunk):
                    staging[row].numpy()[...] = image
                staging[: len(chunk)].to(device, non_blocking=True)
                sync()

    out["upload_pinned_fps"] = rate(n * 3, upload)
    out["detect_fps"] = rate(n * 3, lambda: [engine.models.detector.detect(b) for _ in range(3) for b in batches])
    out["detector_batchable"] = engine.models.detector.model.batchable
    canvases = [engine.models.detector.letterbox(b)[0] for b in batches]
    name = engine.models.detector.model.input_names[0]
    out["detect_model_only_fps"] = rate(n * 3, lambda: [engine.models.detector.model({name: c}) for _ in range(3)
                                                        for c in canvases])
    thumbs = [thumbnail(b).cpu().numpy() for b in batches]
    out["thumbnail_fps"] = rate(n * 3, lambda: [thumbnail(b).cpu() for _ in range(3) for b in batches])
    stream = engine.steps.stream(0, Segment(str(clip), 0, 10**6, 0), 30.0, engine.config)
    finals: list = []

    def decide() -> None:
        index = 0
        for b, found, small in zip(batches, detections, thumbs):
            for row, faces in enumerate(found):
                finals.extend(stream.push(Item(0, index, None, True), b[row], faces, small[row]))
                index += 1
        finals.extend(stream.flush())

    out["decide_fps"] = rate(n, decide)
    requests = [[r for _, _, r, *_ in finals[i:i + step]] for i in range(0, n, step)]
    patches = [engine.models.swapper.swap(b, r) for b, r in zip(batches, requests)]  # cuDNN tunes this batch shape first
    out["swap_fps"] = rate(n * 3, lambda: [engine.models.swapper.swap(b, r) for _ in range(3)
                                           for b, r in zip(batches, requests)])
    crops = torch.rand((32, 3, 256, 256), device=device) * 255
    identity = torch.nn.functional.normalize(torch.randn(32, 512, device=device), dim=1)
    out["swapper_model_only_b32_faces_per_s"] = rate(32 * 5, lambda: [engine.models.swapper.run(crops, identity)
                                                                       for _ in range(5)])
    work = [b.clone() for b in batches]

    def blend() -> None:
        for _ in range(3):
            for b, p in zip(work, patches):
                if p is not None:
                    p.paste(b)
                torch_ops.rgb_to_yuv420p(b, info.colorspace, info.color_range)

    out["paste_yuv_fps"] = rate(n * 3, blend)
    yuv = [torch_ops.rgb_to_yuv420p(b, info.colorspace, info.color_range) for b in batches]
    host = torch.empty((step, *yuv[0].shape[1:]), dtype=torch.uint8, pin_memory=pinned)
    out["download_yuv_pinned_fps"] = rate(n * 3, lambda: [host[: len(y)].copy_(y) for _ in range(3) for y in yuv])
    stream.swapper.close()
    engine.close()
    gc.collect()
    if DEVICE != "cpu":
        torch.cuda.empty_cache()

    planes = [plane for batch in yuv for plane in batch.cpu().numpy()]
    encode_frames = 90 if quick else 240
    planes = (planes * math.ceil(encode_frames / len(planes)))[:encode_frames]
    for preset in ("veryfast", "ultrafast"):
        for encoders in (1, 4, 8):
            for processes in (False, True):
                kind = "_processes" if processes else ""
                out[f"encode_{preset}_q80_{encoders}{kind}_fps"] = encode_rate(planes, info, preset, encoders,
                                                                             scratch, processes)


def section_encoders(out: dict, clip: Path, scratch: Path, frames: int) -> None:
    """The encoders alone in child processes, as the engine runs them, on ``frames`` decoded yuv420p frames:
    the ceiling the end-to-end runs of the same call can be held against."""
    from steadyswap.io.codec_processes import ProcessReader

    info = probe(clip)
    with ProcessReader(clip, 0, frames, planar=True) as reader:
        planes = [image.copy() for _, _, image in reader]
    for preset, encoders in (("veryfast", 1), ("veryfast", 2), ("veryfast", 4), ("ultrafast", 4)):
        with Sampler() as sampler:
            fps = encode_rate(planes, info, preset, encoders, scratch, processes=True)
        out[f"{preset}_{encoders}"] = {"fps": fps} | sampler.figures()
        print(f"  encoders {preset} x{encoders}: {fps:.1f} frames/s", flush=True)


def section_decoders(out: dict, clip: Path, frames: int) -> None:
    """Decoding alone, to yuv420p planes as the engine's readers deliver them: FFmpeg's software decoder (one
    per core) against NVDEC (PyAV's CUDA hwaccel, frames copied back to the host), one decoder and four side by
    side (as four segments decode), with the CPU time each costs: NVDEC is worth having where it frees cores
    for x264."""
    from av.codec.hwaccel import HWAccel, hwdevices_available

    out["hwdevices"] = list(hwdevices_available())

    def one(hardware: bool, count: int, threads: int) -> int:
        accel = HWAccel(device_type="cuda", allow_software_fallback=False) if hardware else None
        done = 0
        with av.open(str(clip), hwaccel=accel) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = threads
            for frame in container.decode(stream):
                frame.to_ndarray(format="yuv420p")
                done += 1
                if done >= count:
                    break
        return done

    for label, hardware, decoders in (("software_1", False, 1), ("nvdec_1", True, 1),
                                      ("software_4", False, 4), ("nvdec_4", True, 4)):
        share = frames // decoders
        threads = 0 if decoders == 1 else max(2, (os.cpu_count() or 2) // decoders)
        counts: list[int] = []

        def run() -> None:
            with ThreadPoolExecutor(decoders) as pool:  # a decoder's failure is raised here
                counts.extend(pool.map(lambda _: one(hardware, share, threads), range(decoders)))
        try:
            cpu = time.process_time()
            began = time.perf_counter()
            run()
            seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
            if sum(counts) != share * decoders:
                raise RuntimeError(f"decoded {counts}, expected {share} each")
            out[label] = {"fps": sum(counts) / seconds, "cpu_ms_per_frame": 1000 * cpu / sum(counts)}
            print(f"  decoders {label}: {out[label]['fps']:.1f} frames/s, "
                  f"{out[label]['cpu_ms_per_frame']:.1f} CPU ms a frame", flush=True)
        except Exception as error:  # no NVDEC here, or PyAV without CUDA: recorded, the other rows go on
            out[label] = {"error": f"{type(error).__name__}: {error}"}
            print(f"  decoders {label}: {out[label]['error']}", flush=True)


def encode_rate(planes: list[np.ndarray], info, preset: str, encoders: int, scratch: Path,
                processes: bool = False) -> float:
    """Frames/s of ``encoders`` VideoWriters (threads) or ProcessWriters, each encoding an equal share of the
    yuv420p frames, with the engine's thread share per encoder."""
    from steadyswap.io.codec_processes import ProcessWriter

    share = len(planes) // encoders
    crf = crf_from_quality(80, "libx264")
    threads = 0 if encoders == 1 else max(2, (os.cpu_count() or 2) // encoders)

    def one(k: int) -> None:
        path = scratch / f"encode-{k}.mp4"
        kind = ProcessWriter if processes else VideoWriter
        with kind(path, info, settings=OutputSettings("libx264", crf, preset), audio_source=None,
                  threads=threads) as writer:
            for i in range(share):
                writer.write_yuv420p(k * share + i, k * share + i, planes[k * share + i])
        path.unlink()

    def run() -> None:
        threads = [threading.Thread(target=one, args=(k,)) for k in range(encoders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    return rate(share * encoders, run)


def verify_output(output: Path, source: Path, segments: list) -> dict:
    """Frame count, video pts and audio packets against the source; frame-to-frame change at the segment joins."""
    def packets(path: Path, kind: str) -> list[tuple[int, bytes]]:
        with av.open(str(path)) as c:
            stream = c.streams.video[0] if kind == "video" else c.streams.audio[0]
            return [(p.pts, bytes(p)) for p in c.demux(stream) if p.size]

    video_out = sorted(p for p, _ in packets(output, "video"))
    video_in = sorted(p for p, _ in packets(source, "video"))
    audio_out, audio_in = packets(output, "audio"), packets(source, "audio")
    with av.open(str(output)) as c:
        frames = [f.to_ndarray(format="gray").astype(np.int16) for f in c.decode(video=0)]
    change = np.array([np.abs(b - a).mean() for a, b in zip(frames, frames[1:])])
    joins = [s.start for s in segments[1:]]
    at_joins = [float(change[j - 1]) for j in joins if 0 < j <= len(change)]
    return {"frames": len(frames), "source_frames": len(video_in), "video_pts_equal": video_out == video_in,
            "audio_packets_equal": audio_out == audio_in, "audio_packets": len(audio_out),
            "change_at_joins": at_joins, "change_median": float(np.median(change)),
            "change_p95": float(np.percentile(change, 95)), "joins": joins}


def section_profile(out: dict, models: Path, clip: Path, scratch: Path, total: int) -> None:
    """One default engine run (one process, one segment) under torch's profiler, after an untimed run: where
    the time of a step goes, by render stage (each wrapped in a profiler label here) and by operator, on the
    host and on the device. Tables in ``out`` as text (top 30 by device time and by host time)."""
    from unittest import mock

    from torch.profiler import ProfilerActivity, profile, record_function

    from steadyswap.engine.gpu import stages
    from steadyswap.engine.gpu.engine import GpuEngine, GpuOptions

    def labelled(owner: type, name: str) -> Callable:
        method = getattr(owner, name)

        def run(self, *args, **kwargs):
            with record_function(f"stage {owner.__name__}.{name}"):
                return method(self, *args, **kwargs)
        return run

    labels = [(stages.GpuPatches, name) for name in ("correct_colour", "measure_degrade", "degrade", "hold", "paste",
                                                  "occlude")]
    labels += [(stages.GpuSwapper, "swap"), (stages.GpuSwapper, "run"), (stages.GpuDetector, "detect")]
    source = read_image(shared(SOURCE_IMAGE))
    frames = min(total, 400)
    config = neural_config(models, trim_frame_end=frames)
    with contextlib.ExitStack() as labelling:  # the stages' methods are restored after this section
        for owner, name in labels:
            labelling.enter_context(mock.patch.object(owner, name, labelled(owner, name)))
        with GpuEngine([source], config, GpuOptions(device=DEVICE, workers=1, segments=1)) as engine:
            engine.run_video(clip, scratch / "profile.mp4")
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as profiler:
                result = engine.run_video(clip, scratch / "profile.mp4")
            out["fps"] = result.fps
            out["phases_seconds"] = engine.clock.totals()
    (scratch / "profile.mp4").unlink(missing_ok=True)
    averages = profiler.key_averages()
    out["by_device_time"] = averages.table(sort_by="self_cuda_time_total", row_limit=30, max_name_column_width=60)
    out["by_host_time"] = averages.table(sort_by="self_cpu_time_total", row_limit=30, max_name_column_width=60)
    out["stages"] = {event.key: {"host_ms": event.cpu_time_total / 1e3, "device_ms": event.device_time_total / 1e3,
                                 "calls": event.count}
                     for event in averages if event.key.startswith("stage ")}
    print(f"  profile: {result.fps:.1f} fps (profiled)", flush=True)
    for key, row in sorted(out["stages"].items()):
        print(f"  {key}: host {row['host_ms']:.0f} ms, device {row['device_ms']:.0f} ms, {row['calls']} calls")
    print(out["by_device_time"], flush=True)
    print(out["by_host_time"], flush=True)


def section_compile(out: dict, models: Path, clip: Path, scratch: Path, total: int) -> None:
    """torch.compile of the converted swapper graph: the model stage alone, then end to end."""
    import torch

    from steadyswap.engine.gpu.engine import GpuEngine, GpuOptions
    from steadyswap.engine.gpu.onnx_module import TorchOnnx
    from steadyswap.testing import standins

    began = time.perf_counter()
    compiled = TorchOnnx(models / "hyperswap_1a_256.onnx", DEVICE, half=True, channels_last=True, compile=True)
    rows = []
    for batch in (32,):
        source, target = standins.example_inputs("hyperswap_1a_256", batch, DEVICE, seed=3)
        feeds = {"source": source, "target": target}
        compiled(feeds)  # compiles for this batch
        ms = time_call(lambda: compiled(feeds))
        rows.append({"batch": batch, "ms": ms, "faces_per_s": batch / ms * 1000})
    out["model_stage"] = rows
    out["compile_and_time_seconds"] = time.perf_counter() - began
    compiled = None
    torch.cuda.empty_cache()
    if time.perf_counter() - STARTED > 420:
        out["end_to_end"] = "skipped: no time left in this call"
        return
    source_image = read_image(shared(SOURCE_IMAGE))
    engine = GpuEngine([source_image], neural_config(models), GpuOptions(device=DEVICE, compile=True))
    for label, preset, frames in (("warm_up", "veryfast", min(total, 400)), ("default_auto", "veryfast", total),
                                  ("ultrafast_auto", "ultrafast", total)):
        config = replace(neural_config(models), output_video_preset=preset,
                         trim_frame_end=frames if frames < total else None)
        try:
            with Sampler() as sampler:
                result = engine.run_video(clip, scratch / "compiled.mp4", config=config)
            out[label] = {"frames": result.frames, "seconds": result.seconds, "fps": result.fps} | sampler.figures()
        except Exception:
            out[label] = {"error": traceback.format_exc()}
        (scratch / "compiled.mp4").unlink(missing_ok=True)
        print(f"  compiled {label}: {out[label].get('fps', 'error')}", flush=True)
    engine.close()


STARTED = time.perf_counter()
CLAIM_RUNS = True
E2E_RUNS: set[str] | None = None
"""Labels of the e2e runs to make (``--e2e-runs``; None: all)."""
"""Whether e2e repeats the empty_cache comparison (``--no-claim`` once it has been measured)."""


def memory_mark(marks: dict, done: int, total: int) -> None:
    """Peak VRAM so far and current RSS / NVML use when the 100th and the last frame are written."""
    if done not in (100, total):
        return
    import psutil
    import torch

    row = {"rss_mib": psutil.Process().memory_info().rss / 2**20}
    if torch.cuda.is_available():
        row |= {"vram_allocated_peak_mib": torch.cuda.max_memory_allocated() / 2**20,
                "vram_reserved_peak_mib": torch.cuda.max_memory_reserved() / 2**20,
                "vram_reserved_mib": torch.cuda.memory_reserved() / 2**20}
    marks[str(done)] = row


def section_e2e(out: dict, models: Path, clip: Path, scratch: Path, total: int, quick: bool) -> None:
    """GpuEngine.run_video on the 1080p clip: presets, encoder counts, the empty_cache claim, long-run memory."""
    import torch

    from steadyswap.engine.gpu.engine import GpuEngine, GpuOptions
    from steadyswap.engine.gpu.options import BUILD_FIELDS

    source = read_image(shared(SOURCE_IMAGE))
    base = neural_config(models)
    engine = GpuEngine([source], base, GpuOptions(device=DEVICE))
    out["plan"] = asdict(engine.plan)
    claim = 120 if quick else 300
    runs = [
        ("warm_up", {}, {}, total),  # the default run untimed: builds the engine's kernels and buffers
        ("default_auto", {}, {}, total),
        ("ultrafast_auto", {"output_video_preset": "ultrafast"}, {}, total),
        ("default_workers", {}, {"workers": 4}, total),
        ("ultrafast_workers", {"output_video_preset": "ultrafast"}, {"workers": 4}, total),
        ("default_workers_ffmpeg_decoders", {}, {"workers": 4, "decoder_threads": 0}, total),
        ("ultrafast_workers_ffmpeg_decoders", {"output_video_preset": "ultrafast"},
         {"workers": 4, "decoder_threads": 0}, total),
        ("default_workers_8_segments", {}, {"workers": 4, "segments": 8}, total),
        ("default_threads", {}, {"processes": False}, total),
        ("ultrafast_threads", {"output_video_preset": "ultrafast"}, {"processes": False}, total),
        ("default_1_segment", {}, {"segments": 1}, total),
        ("default_2_segments", {}, {"segments": 2}, total),
        ("default_8_segments", {}, {"segments": 8}, total),
        ("ultrafast_2_segments", {"output_video_preset": "ultrafast"}, {"segments": 2}, total),
        ("memory_1_segment", {}, {"segments": 1}, total),
        # the default run with one stage or setting changed: which of them costs what (issue 19)
        ("default_no_degrade", {"face_degrade": "none"}, {}, total),
        ("default_no_hold", {"face_hold": "none"}, {}, total),
        ("default_no_colour", {"color_strength": 0.0}, {}, total),
        ("default_no_watermark", {"watermark": False}, {}, total),
        ("default_fp32", {}, {"half": False}, total),
        ("default_one_worker", {}, {"workers": 1}, total),
        ("default_again", {}, {}, total),  # the first default run again, last: how much the order moved figures
    ]
    if CLAIM_RUNS:
        runs += [("empty_cache_off", {}, {"release_every": 0}, claim),
                 ("empty_cache_on", {}, {"release_every": 10}, claim),
                 ("empty_cache_off_again", {}, {"release_every": 0}, claim),
                 ("empty_cache_on_again", {}, {"release_every": 10}, claim)]
    runs = [run for run in runs if E2E_RUNS is None or run[0] in E2E_RUNS or run[0] == "warm_up"]
    workers = next((row for row, (_, _, changes, _) in enumerate(runs)
                    if changes.get("workers", 1) > 1 and not BUILD_FIELDS & set(changes)), None)
    if workers is not None:  # the engine's workers start (and build their models) at their first run: untimed
        runs.insert(workers, ("warm_up_workers", {}, {"workers": 4}, total))
    for label, config_changes, option_changes, frames in runs:
        config = replace(base, trim_frame_end=frames if frames < total else None, **config_changes)
        options = replace(GpuOptions(device=DEVICE), **option_changes)
        output = scratch / f"{label}.mp4"
        marks: dict = {}
        # a change to what the models are built from (fp32) needs an engine of its own, built outside the timing
        # (its engine workers, where the run has any, start inside it: "own_engine" in the row says so)
        runner = GpuEngine([source], config, options) if BUILD_FIELDS & set(option_changes) else engine
        try:
            with Sampler() as sampler:
                result = runner.run_video(clip, output, progress=lambda done, _: memory_mark(marks, done, frames),
                                          config=config, options=options)
            segments = runner.segments(probe(clip), 0, frames, config, options)
            row = {"frames": result.frames, "seconds": result.seconds, "fps": result.fps,
                   "segments": len(segments), "own_engine": runner is not engine} | sampler.figures()
            row["phases_seconds"] = runner.clock.totals()
            if label in ("default_auto", "default_workers"):
                row["verify"] = verify_output(output, clip, segments)
            if label == "memory_1_segment":
                row["memory_marks"] = marks
            out[label] = row
        except Exception:
            out[label] = {"error": traceback.format_exc()}
        finally:
            if runner is not engine:
                runner.close()
        output.unlink(missing_ok=True)
        phases = {k: round(v, 1) for k, v in out[label].get("phases_seconds", {}).items()}
        print(f"  e2e {label}: {out[label].get('fps', 'error')} {phases}", flush=True)
    engine.close()
    del engine
    gc.collect()
    torch.cuda.empty_cache()


class PrecomputedAnalyzer(FaceAnalyzer):
    """MediaPipe landmarks computed on the CPU machine, looked up by frame content (no MediaPipe on the GPU machine)."""

    name = "precomputed-mediapipe"
    landmark_count = 478

    def __init__(self, by_frame: dict[bytes, np.ndarray], source: np.ndarray) -> None:
        self.by_frame, self.source = by_frame, source

    def analyze(self, images: list[np.ndarray], video: bool = False) -> list[Faces]:
        from steadyswap.analysis.mediapipe_mesh import faces_from_mesh

        found = []
        for image in images:
            points = self.by_frame[frame_key(image)] if video else self.source
            found.append(faces_from_mesh(points) if len(points) else Faces.empty(478))
        return found


def frame_key(image: np.ndarray) -> bytes:
    return image[::97, ::89].tobytes()


def load_classic_faces(clip: Path, scale: float) -> tuple[dict[bytes, np.ndarray], np.ndarray]:
    """Landmarks of each decoded frame of ``clip`` (by content) and of the source, scaled to the upscaled clip."""
    data = np.load(CLASSIC_FACES)
    counts, points = data["counts"], data["points"]
    per_source = [(p + 0.5) * scale - 0.5 for p in np.split(points, np.cumsum(counts)[:-1])]
    order = pingpong(len(per_source), probe(clip).frame_count)
    by_frame = {}
    with VideoReader(clip) as reader:
        for frame in reader:
            by_frame[frame_key(frame.image)] = per_source[order[frame.index]]
    return by_frame, data["source"]


def section_classic(out: dict, clip: Path, scratch: Path, frames: int) -> None:
    """The classic swapper at 1080p from precomputed landmarks: the GPU engine (warp, masks, colour and paste on
    the device, segments side by side) and the plain CPU path."""
    import steadyswap.engine.frame_swapper as frame_swapper
    import steadyswap.engine.gpu.assembly as gpu_assembly
    from steadyswap.analysis import mesh_topology
    from steadyswap.engine.gpu.engine import GpuEngine, GpuOptions
    from steadyswap.engine.pipeline import run_video

    by_frame, source_points = load_classic_faces(clip, probe(clip).width / 1280)
    with np.load(CLASSIC_FACES) as data:  # read now: NpzFile reads lazily and is not thread-safe
        topology = {"triangles": data["triangles"], "oval": data["oval"]}
    source = read_image(shared(SOURCE_IMAGE))
    config = RunConfig(execution_providers=("cuda",), trim_frame_end=frames, hand_occluder="off")  # no MediaPipe
    original = frame_swapper.build_analyzer, mesh_topology.triangles, mesh_topology.face_oval
    frame_swapper.build_analyzer = lambda cfg: PrecomputedAnalyzer(by_frame, source_points)
    gpu_assembly.build_analyzer = frame_swapper.build_analyzer  # its own name for it, bound at import
    mesh_topology.triangles = lambda: topology["triangles"]  # the mesh's topology without MediaPipe installed
    mesh_topology.face_oval = lambda: topology["oval"]
    try:
        engine = GpuEngine([source], config, GpuOptions(device=DEVICE))
        with Sampler() as sampler:
            result = engine.run_video(clip, scratch / "classic_segments.mp4")
        out["gpu_engine"] = {"frames": result.frames, "fps": result.fps,
                             "segments": len(engine.segments(probe(clip), 0, frames))} | sampler.figures()
        engine.close()
        cpu_config = replace(config, execution_providers=("cpu",))
        with Sampler() as sampler:
            result = run_video(lambda fps: frame_swapper.FaceSwapper([source], cpu_config, fps), clip,
                               scratch / "classic_cpu.mp4", cpu_config)
        out["cpu_path"] = {"frames": result.frames, "fps": result.fps} | sampler.figures()
    finally:
        frame_swapper.build_analyzer, mesh_topology.triangles, mesh_topology.face_oval = original
        gpu_assembly.build_analyzer = original[0]
    for name in ("classic_segments.mp4", "classic_cpu.mp4"):
        (scratch / name).unlink(missing_ok=True)


def export_enhancer(models: Path) -> Path:
    """The gfpgan_1.4 stand-in (GFPGANv1Clean's layers, random weights) as gfpgan_1.4.onnx, once."""
    from steadyswap.testing import standins

    path = models / "gfpgan_1.4.onnx"
    if not path.exists():
        models.mkdir(parents=True, exist_ok=True)
        standins.export_onnx("gfpgan_1.4", path, standins.build("gfpgan_1.4"))
    return path


def enhancer_patches(count: int, device: str) -> tuple[object, list, np.ndarray, list]:
    """``count`` synthetic 256² swapped faces spread over one 1080p frame, as the swapper hands them on."""
    import torch

    from steadyswap.blend.align import estimate_matrix, template_points
    from steadyswap.blend.box_mask import box_mask
    from steadyswap.blend.torch_ops import invert_affine
    from steadyswap.engine.gpu.stages import GpuPatches
    from steadyswap.enhance.tone import ToneSmoother

    frames = torch.randint(0, 256, (1, 1080, 1920, 3), dtype=torch.uint8, device=device)
    kps = np.stack([template_points("arcface_128", 200) + (100 + 170 * (i % 10), 100 + 300 * (i // 10 % 3))
                    for i in range(count)]).astype(np.float32)
    to_crop = np.stack([estimate_matrix(points, "arcface_128", 256) for points in kps])
    crops = torch.rand((count, 3, 256, 256), device=device) * 255
    masks = torch.from_numpy(box_mask(256)).to(device).expand(count, -1, -1)
    group = GpuPatches([0] * count, list(range(count)), crops, crops.clone(), masks, invert_affine(to_crop))
    return frames, [group], kps, [ToneSmoother()]


def section_enhancer(out: dict, models: Path, clip: Path, scratch: Path, batches: list[int], frames: int) -> None:
    """The face enhancer (gfpgan_1.4 stand-in) in the GPU engine: the model alone and the whole stage (canvas
    warps, tone smoothing, blend) per face at several batch sizes, fp16 as the engine runs it on CUDA; then the
    engine on the 1080p clip without and with the enhancer: one engine each, each run once untimed (the models'
    first calls, the workers' start), then timed twice, alternating; the faster of each pair is reported."""
    import torch

    from steadyswap.engine.gpu.engine import GpuEngine, GpuOptions
    from steadyswap.engine.gpu.enhancer import GpuEnhancer
    from steadyswap.engine.gpu.onnx_module import TorchOnnx
    from steadyswap.models.registry import get_model

    spec = get_model("gfpgan_1.4")
    half = DEVICE == "cuda"
    timed = time_call if DEVICE != "cpu" else time_once  # torch's CPU: a smoke run of this section
    model = TorchOnnx(export_enhancer(models), DEVICE, half=half, channels_last=half)
    rows = []
    for batch in batches:
        enhancer = GpuEnhancer(spec, model, faces_per_call=batch)
        crops = torch.rand((batch, 3, 512, 512), device=DEVICE) * 255
        if DEVICE != "cpu":
            torch.cuda.reset_peak_memory_stats()
        model_ms = timed(lambda: enhancer.run(crops))
        frames_in, groups, kps, tones = enhancer_patches(batch, DEVICE)
        stage_ms = timed(lambda: enhancer.enhance(frames_in, groups, kps, tones))
        rows.append({"precision": "fp16" if half else "fp32", "batch": batch, "model_ms": model_ms,
                     "model_ms_per_face": model_ms / batch, "stage_ms": stage_ms, "stage_ms_per_face": stage_ms / batch,
                     "peak_mib": torch.cuda.max_memory_allocated() / 2**20 if DEVICE != "cpu" else 0.0})
        print(f"  enhancer batch {batch}: {rows[-1]['stage_ms_per_face']:.2f} ms/face", flush=True)
    out["gfpgan_1.4_per_face"] = rows
    model = None
    source = read_image(shared(SOURCE_IMAGE))
    engines = {label: GpuEngine([source], neural_config(models, trim_frame_end=frames, **changes),
                                GpuOptions(device=DEVICE))
               for label, changes in (("without_enhancer", {}),
                                      ("with_enhancer", {"processors": ("face_swapper", "face_enhancer")}))}
    for run in range(3):  # run 0 of each engine untimed (models' first calls, workers); then alternate
        for label, engine in engines.items():
            output = scratch / f"enhancer_{label}.mp4"
            with Sampler() as sampler:
                result = engine.run_video(clip, output)
            output.unlink(missing_ok=True)
            print(f"  e2e {label} run {run}: {result.fps:.1f} fps", flush=True)
            if run:
                out.setdefault(f"{label}_runs", []).append(
                    {"frames": result.frames, "seconds": result.seconds, "fps": result.fps,
                     "phases_seconds": engine.clock.totals()} | sampler.figures())
    for label, engine in engines.items():
        engine.close()
        out[label] = max(out[f"{label}_runs"], key=lambda row: row["fps"])
    out["enhancer_fps_share"] = out["with_enhancer"]["fps"] / out["without_enhancer"]["fps"]
    gc.collect()
    if DEVICE == "cuda":
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------------------
# CPU-machine sections


def section_cpu_enhancer(out: dict, scratch: Path, repeats: int = 3) -> None:
    """The face enhancer on the CPU path (onnxruntime, this machine's threads): the gfpgan_1.4 stand-in's model
    call and the whole stage per face at 512, on the swapped face of a real photo."""
    from steadyswap.engine.frame_swapper import FaceSwapper
    from steadyswap.enhance.tone import ToneSmoother
    from tests import onnx_standins

    models = scratch / "cpu-models"
    export_enhancer(models)
    onnx_standins.gpu_engine_models(models, shared("models/yunet/yunet_n_640_640.onnx"))
    image = read_image(shared("media/image/liveportrait_s12.jpg"))
    config = RunConfig(face_swapper_model="hyperswap_1a_256", face_detector_model="yunet", models_dir=str(models),
                       processors=("face_swapper", "face_enhancer"))
    with FaceSwapper([read_image(shared(SOURCE_IMAGE))], config) as swapper:
        faces = swapper.analyzer.analyze([image])[0][:1]
        patches = swapper.swapper.swap(swapper.source, [image], [faces])[0]  # type: ignore[arg-type]
        enhancer = swapper.enhancer
        assert enhancer is not None
        crop = np.zeros((1, 512, 512, 3), np.uint8)
        enhancer._run(crop)  # warm-up
        model_s, stage_s = [], []
        for _ in range(repeats):
            began = time.perf_counter()
            enhancer._run(crop)
            model_s.append(time.perf_counter() - began)
            began = time.perf_counter()
            enhancer.enhance(image, faces.kps, patches, ToneSmoother())
            stage_s.append(time.perf_counter() - began)
    out["gfpgan_1.4_standin_512"] = {"model_ms_per_face": statistics.median(model_s) * 1000,
                                     "stage_ms_per_face": statistics.median(stage_s) * 1000,
                                     "cpu_threads": os.cpu_count(), "repeats": repeats}


def section_prepare_classic(out: dict) -> None:
    """MediaPipe landmarks of every frame of the 720p clip and of the source photo → .bench/classic_faces.npz."""
    from steadyswap.analysis.mediapipe_mesh import MediaPipeAnalyzer

    analyzer = MediaPipeAnalyzer(max_faces=4)
    counts, points = [], []
    with VideoReader(shared(CLIP_720)) as reader:
        for frame in reader:
            found = analyzer.analyze([frame.image], video=True)[0]
            counts.append(len(found))
            points.append(found.landmarks)
    source = MediaPipeAnalyzer(max_faces=4).analyze([read_image(shared(SOURCE_IMAGE))])[0]
    CLASSIC_FACES.parent.mkdir(exist_ok=True)
    from steadyswap.analysis import mesh_topology

    np.savez_compressed(CLASSIC_FACES, counts=np.array(counts), points=np.concatenate(points).astype(np.float32),
                        source=source.landmarks.astype(np.float32), triangles=mesh_topology.triangles(),
                        oval=mesh_topology.face_oval())
    out["frames"], out["faces"] = len(counts), int(sum(counts))


def section_cpu_path(out: dict, scratch: Path) -> None:
    """The CPU path (decode/encode threads around FaceSwapper) against a naive one-thread loop, same work."""
    from steadyswap.engine.frame_swapper import FaceSwapper
    from steadyswap.engine.pipeline import run_video

    clip = shared(CLIP_512)
    source = read_image(shared(SOURCE_IMAGE))
    config = RunConfig(output_video_preset="veryfast", output_video_quality=80)
    info = probe(clip)
    with Sampler() as sampler:
        result = run_video(lambda fps: FaceSwapper([source], config, fps), clip, scratch / "pipelined.mp4", config)
    out["pipelined"] = {"frames": result.frames, "fps": result.fps} | sampler.figures()

    def naive() -> int:
        swapper = FaceSwapper([source], config, info.fps)
        count = 0
        with av.open(str(clip)) as source_file, av.open(str(scratch / "naive.mp4"), "w") as target:
            stream = target.add_stream("libx264", rate=info.average_rate,
                                       options={"crf": str(crf_from_quality(80, "libx264")), "preset": "veryfast"})
            stream.width, stream.height, stream.pix_fmt = info.width, info.height, "yuv420p"
            for frame in source_file.decode(video=0):
                image = swapper.process(frame.to_ndarray(format="rgb24")).image
                out_frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                out_frame.pts, out_frame.time_base = frame.pts, frame.time_base
                target.mux(stream.encode(out_frame))
                count += 1
            target.mux(stream.encode(None))
        swapper.close()
        return count

    began = time.perf_counter()
    count = naive()
    out["naive_loop"] = {"frames": count, "fps": count / (time.perf_counter() - began)}
    out["speedup"] = out["pipelined"]["fps"] / out["naive_loop"]["fps"]
    for name in ("pipelined.mp4", "naive.mp4"):
        (scratch / name).unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------------------


def summary(data: dict) -> str:
    """A short table of the headline figures."""
    lines = []
    e2e = data.get("e2e", {})
    stages = data.get("stages", {})
    for key, row in list(e2e.items()) + [(f"compiled {k}", v) for k, v in data.get("compile", {}).items()]:
        if isinstance(row, dict) and "fps" in row:
            lines.append(f"e2e {key:20s} {row['fps']:7.1f} fps  util {row.get('gpu_util_mean', 0):5.1f}%  "
                         f"vram {row.get('vram_reserved_peak_mib', 0):7.0f} MiB  rss {row['rss_peak_mib']:7.0f} MiB")
    for key, value in stages.items():
        if key.endswith("_fps"):
            lines.append(f"stage {key:32s} {value:8.1f}")
    for name, rows in data.get("models", {}).items():
        for row in rows if isinstance(rows, list) else []:
            if "precision" in row:
                lines.append(f"model {name:18s} {row['precision']} b{row['batch']:<4d} "
                             f"{row['faces_per_s']:9.1f} faces/s "
                             f"{row['tflops']:6.1f} TFLOP/s")
    enhancer = data.get("enhancer", {})
    for row in enhancer.get("gfpgan_1.4_per_face", []):
        lines.append(f"enhancer gfpgan_1.4 {row['precision']} b{row['batch']:<3d} model {row['model_ms_per_face']:7.2f} "
                     f"ms/face, stage {row['stage_ms_per_face']:7.2f} ms/face")
    for key in ("without_enhancer", "with_enhancer"):
        if "fps" in enhancer.get(key, {}):
            lines.append(f"e2e {key:20s} {enhancer[key]['fps']:7.1f} fps")
    cpu = data.get("cpu_path", {})
    if "speedup" in cpu:
        lines.append(f"cpu path {cpu['pipelined']['fps']:.1f} fps vs naive {cpu['naive_loop']['fps']:.1f} fps: "
                     f"x{cpu['speedup']:.2f}")
    return "\n".join(lines)


def tables(data: dict) -> str:
    """Markdown tables of a bench.json (for docs/benchmarks.md)."""
    out: list[str] = []

    def table(header: list[str], rows: list[list[object]]) -> None:
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "---|" * len(header))
        for row in rows:
            out.append("| " + " | ".join(f"{v:,.1f}" if isinstance(v, float) else str(v) for v in row) + " |")
        out.append("")

    models = data.get("models", {})
    if models:
        out.append("### Model stage alone (stand-ins, random weights, real shapes)\n")
        rows = [[name, r["precision"], r["batch"], r["faces_per_s"], r["tflops"], r["peak_mib"]]
                for name, rs in models.items() if isinstance(rs, list) for r in rs if "precision" in r]
        table(["model", "precision", "batch", "faces/s", "TFLOP/s", "peak MiB"], rows)
        converted = models.get("hyperswap_1a_256_via_onnx2torch_fp16", [])
        if converted:
            table(["hyperswap_1a_256 via ONNX + onnx2torch, fp16", "batch", "faces/s"],
                  [["", r["batch"], r["faces_per_s"]] for r in converted])
    stages = data.get("stages", {})
    if stages:
        out.append("### Stages alone, 1080p\n")
        table(["stage", "frames/s"], [[k.removesuffix("_fps"), v] for k, v in stages.items() if k.endswith("_fps")])
    e2e = data.get("e2e", {})
    if e2e:
        out.append("### End to end, 1080p (GpuEngine.run_video)\n")
        rows = []
        for key, r in e2e.items():
            if isinstance(r, dict) and "fps" in r:
                rows.append([key, r["frames"], r.get("segments", ""), r["fps"], r.get("gpu_util_mean", ""),
                             r.get("vram_reserved_peak_mib", ""), r.get("gpu_used_peak_mib", ""), r["rss_peak_mib"]])
        table(["run", "frames", "segments", "frames/s", "GPU util %", "VRAM reserved peak MiB",
               "GPU memory used peak MiB (NVML)", "host RSS peak MiB"], rows)
    enhancer = data.get("enhancer", {})
    if enhancer.get("gfpgan_1.4_per_face"):
        out.append("### Face enhancer (gfpgan_1.4 stand-in), per face\n")
        table(["precision", "faces per call", "model ms/face", "stage ms/face", "peak MiB"],
              [[r["precision"], r["batch"], r["model_ms_per_face"], r["stage_ms_per_face"], r["peak_mib"]]
               for r in enhancer["gfpgan_1.4_per_face"]])
        table(["1080p run", "frames", "frames/s"], [[key, enhancer[key]["frames"], enhancer[key]["fps"]]
                                                    for key in ("without_enhancer", "with_enhancer")
                                                    if "fps" in enhancer.get(key, {})])
    classic = data.get("classic", {})
    if classic:
        out.append("### Classic swapper, 1080p (landmarks precomputed)\n")
        table(["path", "frames", "frames/s", "host RSS peak MiB"],
              [[k, r["frames"], r["fps"], r["rss_peak_mib"]] for k, r in classic.items() if isinstance(r, dict)])
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "out"))
    parser.add_argument("--sections", default=",".join(GPU_SECTIONS))
    parser.add_argument("--frames", type=int, default=1000, help="length of the 1080p clip")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", default="1920x1080", help="size of the upscaled clip")
    parser.add_argument("--standins", default=",".join(STANDIN_SUBSET))
    parser.add_argument("--tables", metavar="JSON", help="print markdown tables of a bench.json and stop")
    parser.add_argument("--no-claim", action="store_true", help="skip the empty_cache comparison runs")
    parser.add_argument("--e2e-runs", help="comma-separated labels of the e2e runs to make (default: all)")
    parser.add_argument("--enhancer-batches", default="1,8,32", help="faces per enhancer call to time")
    parser.add_argument("--enhancer-frames", type=int, default=300,
                        help="frames of the 1080p clip the engine runs without and with the enhancer")
    args = parser.parse_args()
    global CLAIM_RUNS, E2E_RUNS
    CLAIM_RUNS = not args.no_claim
    E2E_RUNS = set(args.e2e_runs.split(",")) if args.e2e_runs else None
    if args.tables:
        print(tables(json.loads(Path(args.tables).read_text())))
        return
    global DEVICE
    DEVICE = args.device
    STANDIN_SUBSET[:] = args.standins.split(",")
    size = tuple(int(v) for v in args.size.split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = Results(out / "bench.json")
    scratch = Path(os.environ.get("BENCH_SCRATCH", "/tmp/steadyswap-bench"))
    scratch.mkdir(parents=True, exist_ok=True)
    clip, models = scratch / "clip_1080p.mp4", scratch / "models"
    sections = args.sections.split(",")
    for name in sections:
        began = time.perf_counter()
        print(f"== {name}", flush=True)
        section = results.section(name)
        try:
            if name == "env":
                section_env(section)
            elif name == "prepare":
                section["clip"] = make_clip(shared(CLIP_720), clip, args.frames, size)  # type: ignore[arg-type]
                section["models"] = export_models(models)
            elif name == "correctness":
                section_correctness(section, models, clip)
            elif name == "models":
                section_models(section, models, args.quick)
            elif name == "stages":
                section_stages(section, models, clip, scratch, args.quick)
            elif name == "decoders":
                section_decoders(section, clip, min(args.frames, 600))
            elif name == "encoders":
                section_encoders(section, clip, scratch, min(args.frames, 600))
            elif name == "e2e":
                section_e2e(section, models, clip, scratch, args.frames, args.quick)
            elif name == "compile":
                section_compile(section, models, clip, scratch, args.frames)
            elif name == "classic":
                section_classic(section, clip, scratch, 120 if args.quick else 360)
            elif name == "prepare_classic":
                section_prepare_classic(section)
            elif name == "cpu_path":
                section_cpu_path(section, scratch)
            elif name == "profile":
                section_profile(section, models, clip, scratch, args.frames)
            elif name == "enhancer":
                section_enhancer(section, models, clip, scratch, [int(b) for b in args.enhancer_batches.split(",")],
                                 min(args.enhancer_frames, args.frames))
            elif name == "cpu_enhancer":
                section_cpu_enhancer(section, scratch)
            else:
                raise SystemExit(f"unknown section {name}")
        except Exception:
            section["error"] = traceback.format_exc()
            print(section["error"], flush=True)
        section["section_seconds"] = time.perf_counter() - began
        results.save()
    print(summary(results.data))


if __name__ == "__main__":
    main()
