"""The parity matrix: every run option × every swapper family, through the CPU path and the GPU engine.

Both paths run the same file (two real faces side by side, from the LivePortrait clips in tests/data) with the
same options; the GPU engine runs on torch's CPU here (``torch_device`` "cpu") and again on CUDA under ``-m gpu``.
Each case asserts:

- the same faces are selected in every frame (the boxes and five points of the faces each path's
  ``FaceSwapper`` swapped, within 2 px: the models run in onnxruntime on one path and in torch on the other);
- the same pictures within a stated tolerance: mean absolute difference at most 0.5 levels over the frames,
  and 99.5% of the pixels either path changed within 6 levels. What differs is rounding: OpenCV's
  fixed-point warps and 8-bit LAB against float maths on the device, and the yuv420p conversion before the
  encoder (swscale against ``torch_ops``), which the lossless output keeps;
- frames, in number and in order, as the run's trim asks;
- or, for an option a family cannot take, the same one-line refusal on both paths.

Swappers are stand-in graphs (tests/onnx_standins.py: the target plus a colour shift, or the source's mean
colour), and so are 2dfan4 and the face enhancers (more contrast, brighter); detection is the real YuNet, classic
runs on the embedded MediaPipe mesh.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from steadyswap.config import RunConfig  # noqa: E402
from steadyswap.engine.frame_swapper import FaceSwapper  # noqa: E402
from steadyswap.engine.gpu.engine import GpuEngine, GpuOptions  # noqa: E402
from steadyswap.engine.pipeline import run_video  # noqa: E402
from steadyswap.errors import UsageError  # noqa: E402
from tests import onnx_standins  # noqa: E402
from tests.conftest import HAND_OCCLUDER, YUNET, media_path  # noqa: E402
from tests.helpers import decode, photo  # noqa: E402

FRAMES = 5
SIDE = 192
"""Each face's half of the clip: SIDE × SIDE, so frames are 2·SIDE × SIDE."""
FAMILIES = ("classic", *onnx_standins.FAMILY_MODELS)
ENHANCE = ("face_swapper", "face_enhancer")

OPTIONS: dict[str, dict] = {
    "defaults": {},
    "color-strength 0": {"color_strength": 0.0},
    "degrade and hold off": {"face_degrade": "none", "face_hold": "none"},
    "mask blur and padding": {"face_mask_blur": 0.8, "face_mask_padding": (10, 5, 20, 0)},
    "smoothing ema": {"face_smoothing": "ema"},
    "smoothing off": {"face_smoothing": "off"},
    "selector many": {"face_selector_mode": "many"},
    "selector reference": {"face_selector_mode": "reference", "reference_face_position": 1,
                           "reference_frame_number": 2},
    "face map": {"face_map": "FACE_MAP"},
    "trim": {"trim_frame_start": 1, "trim_frame_end": 4},
    "batch size 1": {"face_selector_mode": "many", "execution_batch_size": 1},
    "landmarker 2dfan4": {"face_landmarker_model": "2dfan4"},
    "mask occlusion region": {"face_mask_types": ("box", "occlusion", "region"),
                              "face_mask_regions": ("skin", "nose", "mouth")},
    "mask area": {"face_mask_types": ("box", "area"), "face_mask_areas": ("lower-face", "mouth")},
    "mask area 2dfan4": {"face_mask_types": ("area",), "face_landmarker_model": "2dfan4"},
    "mask occluders many": {"face_mask_types": ("occlusion",), "face_occluder_model": "many"},
    "enhancer gfpgan_1.4": {"processors": ENHANCE},
    "enhancer codeformer": {"processors": ENHANCE, "face_enhancer_model": "codeformer", "face_enhancer_blend": 60,
                            "face_enhancer_weight": 0.3},
    "enhancer gpen_bfr_256 many": {"processors": ENHANCE, "face_enhancer_model": "gpen_bfr_256",
                                   "face_selector_mode": "many"},
    "enhancer after occlusion mask": {"processors": ENHANCE, "face_mask_types": ("box", "occlusion")},
    "landmarker score 0": {"face_landmarker_model": "2dfan4", "face_landmarker_score": 0.0},
    "detector interval 1": {"face_detector_interval": 1},
    "detector interval 2 2dfan4": {"face_detector_interval": 2, "face_landmarker_model": "2dfan4"},
}
REFUSED = {("classic", "landmarker 2dfan4"): "needs an ONNX --face-detector-model",
           ("classic", "mask area 2dfan4"): "needs an ONNX --face-detector-model",
           ("classic", "landmarker score 0"): "needs an ONNX --face-detector-model",
           ("classic", "detector interval 2 2dfan4"): "the interval is for the ONNX detectors"}
"""Cases both paths refuse in one line (the MediaPipe mesh brings its own landmarks)."""


@pytest.fixture(scope="module", autouse=True)
def work_done_once():
    """Keeps the matrix fast: each ONNX graph is converted to torch once, and each detector answers a given
    batch of frames once per path (later cases replay its faces; the first case of each clip compares the two
    detectors' own answers). Everything after detection runs in full in every case."""
    from steadyswap.analysis.onnx_detectors import OnnxDetector
    from steadyswap.engine.gpu import assembly as assembly_module
    from steadyswap.engine.gpu import stages as stages_module
    from steadyswap.engine.gpu.stages import GpuDetector

    converted: dict = {}
    answers: dict = {}
    torch_onnx = assembly_module.TorchOnnx

    def convert(*args, **kwargs):
        key = (tuple(str(a) for a in args), tuple(sorted(kwargs.items())))
        if key not in converted:
            converted[key] = torch_onnx(*args, **kwargs)
        return converted[key]

    def replay(method, pixels):
        def detect(detector, images):
            key = (type(detector).__name__, detector.spec.name, detector.score_threshold, detector.landmark_count,
                   detector.landmarker is None, detector.landmarker_score, hash(pixels(images)))
            if key not in answers:
                answers[key] = method(detector, images)
            return copy.deepcopy(answers[key])
        return detect

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(assembly_module, "TorchOnnx", convert, raising=True)
        patch.setattr(stages_module, "TorchOnnx", convert, raising=True)
        patch.setattr(OnnxDetector, "detect", replay(OnnxDetector.detect, lambda image: image.tobytes()))
        patch.setattr(GpuDetector, "detect", replay(GpuDetector.detect, lambda frames: frames.cpu().numpy().tobytes()))
        yield


@pytest.fixture(scope="session")
def parity_models(tmp_path_factory) -> Path:
    return onnx_standins.every_family_models(tmp_path_factory.mktemp("parity-models"), YUNET)


@pytest.fixture(scope="session")
def two_faces(tmp_path_factory) -> Path:
    """A lossless clip of FRAMES frames: d3's face on the left, d0's on the right, both moving."""
    left = decode(media_path("video/liveportrait_d3_93f.mp4"), limit=FRAMES)
    right = decode(media_path("video/liveportrait_d0_crf20.mp4"), limit=FRAMES)
    path = tmp_path_factory.mktemp("parity-clip") / "two_faces.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25, options={"crf": "0", "preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = 2 * SIDE, SIDE, "yuv420p"
        for a, b in zip(left, right):
            picture = np.hstack([cv2.resize(a, (SIDE, SIDE), interpolation=cv2.INTER_AREA),
                                 cv2.resize(b, (SIDE, SIDE), interpolation=cv2.INTER_AREA)])
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode())
    return path


def config_for(family: str, models: Path, tmp_path: Path, **options) -> RunConfig:
    """Run options selecting ``family``'s stand-in (YuNet's five points) or classic (the MediaPipe mesh)."""
    if options.get("face_map") == "FACE_MAP":
        options["face_map"] = str(_face_map(tmp_path))
    lossless = {"output_video_quality": 100, "models_dir": str(models)}
    if family == "classic":
        return RunConfig(**lossless, **options)
    return RunConfig(face_swapper_model=onnx_standins.FAMILY_MODELS[family], face_detector_model="yunet",
                     **{"face_landmarker_model": "none", "hand_occluder": HAND_OCCLUDER, **lossless, **options})


def _face_map(folder: Path) -> Path:
    """The right-hand person gets a second source photo, the left one the run's source."""
    path = folder / "face_map.json"
    path.write_text(json.dumps({
        "sources": {"other": str(media_path("image/liveportrait_s12.jpg"))},
        "people": [{"frame": 1, "box": [30, 30, SIDE - 30, SIDE - 15], "source": "default"},
                   {"frame": 3, "box": [SIDE + 30, 30, 2 * SIDE - 30, SIDE - 15], "source": "other"}]}))
    return path


class Decisions:
    """Records the faces each ``FaceSwapper`` swaps, frame by frame (both paths decide through it): per face,
    left to right, its box and five points as 14 numbers."""

    def __init__(self, monkeypatch) -> None:
        self.boxes: list[np.ndarray] = []
        original = FaceSwapper._swap

        def swap(swapper, *args):
            result = original(swapper, *args)
            faces = result.faces
            order = np.argsort(faces.boxes[:, 0])
            self.boxes.append(np.concatenate([faces.boxes, faces.kps.reshape(len(faces), 10)], axis=1)[order])
            return result

        monkeypatch.setattr(FaceSwapper, "_swap", swap)

    def take(self) -> list[np.ndarray]:
        taken, self.boxes = self.boxes, []
        return taken


def run_both(config: RunConfig, target: Path, tmp_path: Path, device: str,
             monkeypatch) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """(CPU frames, GPU engine frames, boxes swapped per frame on each path) of one run of ``target``."""
    source = media_path("image/liveportrait_s1_512.jpg")
    decisions = Decisions(monkeypatch)
    run_video(lambda fps: FaceSwapper([source], config, fps), target, tmp_path / "cpu.mp4", config)
    cpu_boxes = decisions.take()
    options = GpuOptions(device=device, half=False, segments=1, processes=False, planar=False)
    with GpuEngine([source], config, options) as engine:
        engine.run_video(target, tmp_path / "gpu.mp4")
    gpu_boxes = decisions.take()
    return (np.stack(decode(tmp_path / "cpu.mp4")), np.stack(decode(tmp_path / "gpu.mp4")), cpu_boxes, gpu_boxes)


def assert_same_faces(cpu_boxes: list[np.ndarray], gpu_boxes: list[np.ndarray]) -> None:
    assert len(cpu_boxes) == len(gpu_boxes)
    for frame, (a, b) in enumerate(zip(cpu_boxes, gpu_boxes)):
        assert a.shape == b.shape, f"frame {frame}: {len(a)} faces swapped on the CPU, {len(b)} on the GPU engine"
        assert np.abs(a - b).max(initial=0) <= 2, f"frame {frame}: faces {a.tolist()} vs {b.tolist()}"


def assert_same_pictures(cpu: np.ndarray, gpu: np.ndarray, target: np.ndarray) -> None:
    assert cpu.shape == gpu.shape == target.shape
    diff = np.abs(cpu.astype(np.int16) - gpu)
    changed = (cpu != target) | (gpu != target)
    assert diff.mean() <= 0.75, f"mean difference {diff.mean():.3f} levels"  # CUDA: up to 0.69 (H100, session 5)
    assert np.percentile(diff[changed], 99.5) <= 6, f"99.5th percentile {np.percentile(diff[changed], 99.5)}"


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("family", FAMILIES)
def test_cpu_path_and_gpu_engine_agree(family: str, option: str, parity_models: Path, two_faces: Path,
                                       torch_device: str, tmp_path: Path, monkeypatch) -> None:
    if family == "classic":
        pytest.importorskip("mediapipe", reason="the classic swapper needs the MediaPipe mesh")
    config = config_for(family, parity_models, tmp_path, **OPTIONS[option])
    if (family, option) in REFUSED:
        source = media_path("image/liveportrait_s1_512.jpg")
        with pytest.raises(UsageError, match=REFUSED[family, option]):
            FaceSwapper([source], config)
        with pytest.raises(UsageError, match=REFUSED[family, option]):
            GpuEngine([source], config, GpuOptions(device=torch_device))
        return
    cpu, gpu, cpu_boxes, gpu_boxes = run_both(config, two_faces, tmp_path, torch_device, monkeypatch)
    start, end = config.trim_frame_start or 0, config.trim_frame_end or FRAMES
    target = np.stack(decode(two_faces))[start:end]
    assert len(cpu) == end - start
    assert_same_faces(cpu_boxes, gpu_boxes)
    swapped = [len(boxes) for boxes in cpu_boxes]
    assert min(swapped) >= 1 and max(swapped) == (2 if config.face_selector_mode == "many" or config.face_map else 1)
    assert_same_pictures(cpu, gpu, target)


@pytest.mark.parametrize("family", ["hyperswap", "inswapper"])
def test_color_strength_changes_neural_swaps_on_both_paths(family: str, parity_models: Path, two_faces: Path,
                                                           torch_device: str, tmp_path: Path, monkeypatch) -> None:
    runs = {}
    for strength in (0.0, 0.7):
        folder = tmp_path / str(strength)
        folder.mkdir()
        config = config_for(family, parity_models, folder, color_strength=strength)
        runs[strength] = run_both(config, two_faces, folder, torch_device, monkeypatch)[:2]
    for path in (0, 1):
        plain, corrected = runs[0.0][path].astype(np.int16), runs[0.7][path]
        moved = np.abs(corrected - plain)
        assert (moved > 3).mean() > 0.01, f"path {path}: --color-strength 0.7 changed {np.mean(moved > 3):.4f}"


def test_options_a_path_cannot_honour_are_refused(parity_models: Path, tmp_path: Path) -> None:
    config = config_for("hyperswap", parity_models, tmp_path, quality_report=str(tmp_path / "q.json"))
    with pytest.raises(UsageError, match="--quality-report"):
        GpuEngine([photo(media_path("image/liveportrait_s1_512.jpg"))], config, GpuOptions(device="cpu"))


@pytest.mark.parametrize("family", ["hyperswap", "classic"])
def test_enhancer_changes_swaps_on_both_paths(family: str, parity_models: Path, two_faces: Path, torch_device: str,
                                              tmp_path: Path, monkeypatch) -> None:
    if family == "classic":
        pytest.importorskip("mediapipe", reason="the classic swapper needs the MediaPipe mesh")
    runs = {}
    for processors in (ENHANCE[:1], ENHANCE):
        folder = tmp_path / str(len(processors))
        folder.mkdir()
        config = config_for(family, parity_models, folder, processors=processors, face_enhancer_blend=100,
                            watermark=False)
        runs[processors] = run_both(config, two_faces, folder, torch_device, monkeypatch)[:2]
    for path in (0, 1):
        plain, enhanced = runs[ENHANCE[:1]][path].astype(np.int16), runs[ENHANCE][path]
        moved = np.abs(enhanced - plain).max(axis=3) > 3
        halves = sorted([moved[:, :, :SIDE].mean(), moved[:, :, SIDE:].mean()])  # one person swapped, one not
        assert halves[0] == 0, f"path {path}: the enhancer changed the person who was not swapped"
        assert halves[1] > 0.1, f"path {path}: the enhancer changed {halves[1]:.3f} of the swapped person's half"


def test_tone_smoothing_keeps_a_wandering_enhancer_steady_on_both_paths(parity_models: Path, two_faces: Path,
                                                                       torch_device: str, tmp_path: Path,
                                                                       monkeypatch) -> None:
    """An enhancer whose brightness jumps by up to ±13 levels with every small change of its input (stand-in
    ``flicker``): each face's brightness moves from frame to frame much less with the per-track tone smoothing
    than without it (momentum 0)."""
    from steadyswap.enhance.tone import ToneSmoother

    models = tmp_path / "models"
    models.mkdir()
    for path in parity_models.glob("*.onnx"):
        if path.name != "gfpgan_1.4.onnx":
            (models / path.name).symlink_to(path)
    onnx_standins.enhancer(models / "gfpgan_1.4.onnx", 512, flicker=0.1)
    wander = {}
    for momentum in (0.0, ToneSmoother().momentum):
        monkeypatch.setattr("steadyswap.engine.frame_swapper.ToneSmoother", lambda m=momentum: ToneSmoother(m))
        folder = tmp_path / str(momentum)
        folder.mkdir()
        config = config_for("hyperswap", models, folder, processors=ENHANCE, face_enhancer_blend=100,
                            color_strength=0.0, face_selector_mode="many",
                            face_detector_interval=1)  # every frame detected: the enhancer's input moves as measured
        cpu, gpu, _, _ = run_both(config, two_faces, folder, torch_device, monkeypatch)
        for path, frames in (("cpu", cpu), ("gpu", gpu)):
            faces = frames[:, 50:150].reshape(len(frames), 100, 2, SIDE, 3)[:, :, :, 50:SIDE - 50]  # their middles
            wander[momentum, path] = np.abs(np.diff(faces.astype(np.float64).mean(axis=(1, 3, 4)), axis=0)).mean()
    for path in ("cpu", "gpu"):  # measured: 7.3 levels a frame without, 2.0 with
        assert wander[0.8, path] < 0.45 * wander[0.0, path], wander
