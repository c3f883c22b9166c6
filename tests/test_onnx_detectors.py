"""ONNX detectors: REAL yunet on the test photos; stand-in graphs for scrfd/retinaface/yolo_face and 2dfan4."""

from __future__ import annotations

import shutil
import zlib

import cv2
import numpy as np
import pytest

from steadyswap import assembly
from steadyswap.analysis.landmarker_2dfan4 import Fan68Landmarker, crop_matrix, landmarks_68_to_5
from steadyswap.analysis.landmarker_68_5 import Fan68From5, face_angles
from steadyswap.analysis.onnx_detectors import OnnxDetector, anchor_centers, fit, nms
from steadyswap.blend.align import transform_points
from steadyswap.config import RunConfig
from steadyswap.errors import ModelError, UsageError
from steadyswap.models import runtime
from steadyswap.models.registry import get_model
from steadyswap.models.store import ModelStore
from tests import onnx_standins
from tests.conftest import YUNET, media_path


def rgb(relative: str) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(media_path(relative)))[:, :, ::-1])


@pytest.fixture(scope="module")
def yunet_session():
    return runtime.create_session(YUNET, threads=1)


# --- real yunet -----------------------------------------------------------------------------------------


def test_real_yunet_has_facefusion_yunet_io(yunet_session):
    assert [(i.name, i.shape) for i in yunet_session.get_inputs()] == [("input", [1, 3, 640, 640])]
    names = [o.name for o in yunet_session.get_outputs()]
    assert names == [f"{k}_{s}" for k in ("cls", "obj", "bbox", "kps") for s in (8, 16, 32)]


@pytest.mark.parametrize("image, count", [("image/fr_obama_512.jpg", 1), ("image/fr_two_people_640.jpg", 2),
                                          ("image/liveportrait_s33_dog_negative.jpg", 0)])
def test_yunet_finds_the_faces(yunet_session, image, count):
    detector = OnnxDetector(get_model("yunet"), yunet_session)
    faces = detector.analyze([rgb(image)])[0]
    assert len(faces) == count
    assert faces.landmarks.shape == (count, 5, 2) and faces.kps.dtype == np.float32
    for box, kps in zip(faces.boxes, faces.kps):
        inside = (kps >= box[:2]) & (kps <= box[2:])
        assert inside.all()
        assert kps[0, 0] < kps[1, 0] and kps[2, 1] < kps[3, 1]  # image-left eye first; mouth below nose
    assert np.all(np.diff(faces.scores) <= 0) and np.all(faces.scores >= 0.5)


def test_yunet_matches_opencv_face_detector_yn(yunet_session):
    """OpenCV's own YuNet decoder on the same letterboxed BGR canvas gives the same boxes and points."""
    image = rgb("image/fr_two_people_640.jpg")
    shrunk, ratio = fit(image[:, :, ::-1], 640, 640)
    canvas = np.zeros((640, 640, 3), np.uint8)
    canvas[: shrunk.shape[0], : shrunk.shape[1]] = shrunk
    reference = cv2.FaceDetectorYN.create(str(YUNET), "", (640, 640), 0.5, 0.4)
    _, rows = reference.detect(np.ascontiguousarray(canvas))
    rows = rows[np.argsort(-rows[:, -1])]
    faces = OnnxDetector(get_model("yunet"), yunet_session).detect(image)
    np.testing.assert_allclose(faces.boxes[:, :2], rows[:, :2] * ratio, atol=1.0)
    np.testing.assert_allclose(faces.boxes[:, 2:] - faces.boxes[:, :2], rows[:, 2:4] * ratio, atol=2.0)
    np.testing.assert_allclose(faces.kps, rows[:, 4:14].reshape(-1, 5, 2) * ratio, atol=1.0)
    np.testing.assert_allclose(faces.scores, rows[:, -1] ** 2, atol=1e-3)  # OpenCV reports sqrt(cls·obj)


def test_assembly_builds_yunet_from_a_models_folder(tmp_path, yunet_session):
    spec = get_model("yunet")
    shutil.copy(YUNET, tmp_path / spec.file_name)
    (tmp_path / spec.hash_name).write_text(format(zlib.crc32((tmp_path / spec.file_name).read_bytes()), "08x"))
    analyzer = assembly.build_analyzer(RunConfig(face_detector_model="yunet", face_landmarker_model="none",
                                                models_dir=str(tmp_path)))
    assert analyzer is not None and analyzer.landmark_count == 5
    assert len(analyzer.analyze([rgb("image/fr_obama_512.jpg")])[0]) == 1
    assert ModelStore(tmp_path).status(spec) == "verified"


# --- decoders on stand-in graphs ------------------------------------------------------------------------

# One face in the original 1280×960 image (the detector sees it at half size on the 640 canvas).
FACE_BOX = np.array([240.0, 300.0, 400.0, 520.0])
FACE_KPS = np.array([[280, 380], [360, 380], [320, 430], [290, 470], [350, 470.0]])


def _anchor_outputs(side: int = 640, per_cell: int = 2) -> list[tuple[str, np.ndarray]]:
    """scrfd/retinaface outputs encoding FACE_BOX (score 0.9), an overlapping weaker copy, and a sub-threshold box,
    for a detector input of ``side``² (the 1280×960 image shrunk to fit)."""
    outputs = []
    for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
        for s in (8, 16, 32):
            outputs.append((f"{kind}_{s}", np.zeros(((side // s) ** 2 * per_cell, width), np.float32)))
    arrays = dict(outputs)
    box, kps = FACE_BOX * side / 1280, FACE_KPS * side / 1280
    for s, anchor, score in ((8, 0, 0.9), (16, 1, 0.7)):
        centers = anchor_centers(s, side // s, side // s, per_cell)
        index = int(np.argmin(np.abs(centers - (box[:2] + box[2:]) / 2).sum(1))) + anchor
        center = centers[index]
        arrays[f"score_{s}"][index] = score
        arrays[f"bbox_{s}"][index] = np.concatenate([center - box[:2], box[2:] - center]) / s
        arrays[f"kps_{s}"][index] = ((kps - center) / s).ravel()
    arrays["score_32"][5] = 0.3
    return list(arrays.items())


@pytest.mark.parametrize("name", ["scrfd", "retinaface"])
def test_anchor_detectors_decode_to_original_pixels(tmp_path, name):
    path = onnx_standins.constant_outputs(tmp_path / f"{name}.onnx", [1, 3, 640, 640], _anchor_outputs())
    detector = OnnxDetector(get_model(name), runtime.create_session(path))
    faces = detector.detect(np.zeros((960, 1280, 3), np.uint8))
    assert len(faces) == 1  # the weaker overlapping copy is suppressed, the 0.3 one is below threshold
    np.testing.assert_allclose(faces.boxes[0], FACE_BOX, atol=1e-3)
    np.testing.assert_allclose(faces.kps[0], FACE_KPS, atol=1e-3)
    assert faces.scores[0] == pytest.approx(0.9)


@pytest.mark.parametrize("name", ["scrfd", "retinaface"])
def test_detector_size_is_the_input_size_on_both_paths(tmp_path, torch_device, name):
    """A graph of free input size (as the real retinaface and scrfd files are) answers for a 320² input: both
    paths find the face where it is only when they letterbox to ``--face-detector-size`` 320x320."""
    torch = pytest.importorskip("torch")
    from steadyswap.engine.gpu.onnx_module import TorchOnnx
    from steadyswap.engine.gpu.stages import GpuDetector

    path = onnx_standins.constant_outputs(tmp_path / f"{name}.onnx", [1, 3, "height", "width"], _anchor_outputs(320))
    size = assembly.detector_size("320x320", get_model(name))
    cpu = OnnxDetector(get_model(name), runtime.create_session(path), size=size)
    gpu = GpuDetector(get_model(name), TorchOnnx(path, torch_device), size=size)
    assert (cpu.height, cpu.width) == (gpu.height, gpu.width) == (320, 320)
    found = [cpu.detect(np.zeros((960, 1280, 3), np.uint8)),
             *gpu.detect(torch.zeros((2, 960, 1280, 3), dtype=torch.uint8, device=torch_device))]
    for faces in found:
        assert len(faces) == 1
        np.testing.assert_allclose(faces.boxes[0], FACE_BOX, atol=1e-3)
        np.testing.assert_allclose(faces.kps[0], FACE_KPS, atol=1e-3)
    fixed = onnx_standins.constant_outputs(tmp_path / "fixed.onnx", [1, 3, 640, 640], _anchor_outputs())
    with pytest.raises(UsageError, match="graph takes 640x640 only"):
        OnnxDetector(get_model(name), runtime.create_session(fixed), size=size)
    with pytest.raises(UsageError, match="graph takes 640x640 only"):
        GpuDetector(get_model(name), TorchOnnx(fixed, torch_device), size=size)


@pytest.mark.parametrize("changes, message", [
    ({"face_detector_model": "scrfd", "face_detector_size": "333x333"}, "333x333 is not one of 160x160, 320x320"),
    ({"face_detector_model": "yunet", "face_detector_size": "320x320"}, "not one of 640x640 for yunet"),
    ({"face_detector_model": "yolo_face", "face_detector_size": "640x480"}, "a square size"),
    ({"face_detector_size": "320x320"}, "the embedded mediapipe analyses frames at --analysis-size"),
    ({"face_detector_model": "yunet", "face_landmarker_score": 0.3}, "needs --face-landmarker-model 2dfan4"),
])
def test_detector_size_and_landmarker_score_are_refused_where_they_cannot_apply(tmp_path, changes, message):
    """Before any model file is read (the folder is empty), on both paths (the GPU engine asks the same checks)."""
    config = RunConfig(models_dir=str(tmp_path), **changes)
    with pytest.raises(UsageError, match=message):
        assembly.build_analyzer(config)
    torch = pytest.importorskip("torch")
    from steadyswap.engine.gpu.stages import build_detector

    with pytest.raises(UsageError, match=message):
        assembly.check_analysis(config)
        build_detector(config, assembly.model_store(config), torch.device("cpu"))


def test_yolo_face_decodes_to_original_pixels(tmp_path):
    path = _yolo_face_standin(tmp_path)
    detector = OnnxDetector(get_model("yolo_face"), runtime.create_session(path))
    faces = detector.detect(np.zeros((960, 1280, 3), np.uint8))
    assert len(faces) == 1
    np.testing.assert_allclose(faces.boxes[0], FACE_BOX, atol=1e-3)
    np.testing.assert_allclose(faces.kps[0], FACE_KPS, atol=1e-3)


def _standin(tmp_path, name: str, batch_first: bool):
    """A constant stand-in for ``name`` with FACE_BOX encoded: anchor outputs 2-D (A, k) as the real retinaface
    and scrfd files have them, or batch-first (1, A, k)."""
    if name == "yolo_face":
        return _yolo_face_standin(tmp_path)
    outputs = [(key, value[None] if batch_first else value) for key, value in _anchor_outputs()]
    return onnx_standins.constant_outputs(tmp_path / f"{name}.onnx", [1, 3, 640, 640], outputs)


def _yolo_face_standin(tmp_path):
    """yolo_face's (1, 20, 8400) output encoding FACE_BOX (score 0.8) and a sub-threshold candidate."""
    prediction = np.zeros((1, 20, 8400), np.float32)
    box, kps = FACE_BOX / 2, FACE_KPS / 2
    prediction[0, :4, 17] = [*(box[:2] + box[2:]) / 2, *(box[2:] - box[:2])]
    prediction[0, 4, 17] = 0.8
    prediction[0, 5:, 17] = np.concatenate([kps, np.ones((5, 1))], 1).ravel()
    prediction[0, 4, 99] = 0.4
    return onnx_standins.constant_outputs(tmp_path / "yoloface_8n.onnx", [1, 3, 640, 640], [("output", prediction)])


@pytest.mark.parametrize("name, batch_first", [("scrfd", False), ("retinaface", False), ("scrfd", True),
                                               ("retinaface", True), ("yolo_face", True)])
def test_gpu_detector_decodes_every_frame_of_a_batch(tmp_path, torch_device, name, batch_first):
    """The GPU engine's detector gives each frame of a step the faces the CPU detector finds (the stand-ins
    answer every frame with the same encoded face)."""
    torch = pytest.importorskip("torch")
    from steadyswap.engine.gpu.onnx_module import TorchOnnx
    from steadyswap.engine.gpu.stages import GpuDetector

    path = _standin(tmp_path, name, batch_first)
    frame = np.zeros((960, 1280, 3), np.uint8)
    expected = OnnxDetector(get_model(name), runtime.create_session(path)).detect(frame)
    detector = GpuDetector(get_model(name), TorchOnnx(path, torch_device))
    found = detector.detect(torch.zeros((3, 960, 1280, 3), dtype=torch.uint8, device=torch_device))
    assert len(found) == 3
    for faces in found:
        assert len(faces) == len(expected) == 1
        np.testing.assert_allclose(faces.boxes, expected.boxes, atol=1e-3)
        np.testing.assert_allclose(faces.kps, FACE_KPS[None], atol=1e-3)
        np.testing.assert_allclose(faces.scores, expected.scores, atol=1e-6)


def test_gpu_detector_finds_what_the_cpu_detector_finds(torch_device, yunet_session):
    """Real YuNet weights, a batch of two different photos: same faces per photo on both paths."""
    torch = pytest.importorskip("torch")
    from steadyswap.engine.gpu.onnx_module import TorchOnnx
    from steadyswap.engine.gpu.stages import GpuDetector
    images = [rgb("image/fr_two_people_640.jpg"), rgb("image/liveportrait_s33_dog_negative.jpg")]
    images[1] = cv2.resize(images[1], images[0].shape[1::-1])
    cpu = OnnxDetector(get_model("yunet"), yunet_session)
    gpu = GpuDetector(get_model("yunet"), TorchOnnx(YUNET, torch_device))
    found = gpu.detect(torch.from_numpy(np.stack(images)).to(torch_device))
    assert [len(faces) for faces in found] == [2, 0]
    expected = cpu.detect(images[0])
    np.testing.assert_allclose(found[0].boxes, expected.boxes, atol=1.5)
    np.testing.assert_allclose(found[0].kps, expected.kps, atol=1.5)


def test_fit_shrinks_but_never_enlarges():
    shrunk, ratio = fit(np.full((100, 50, 3), 7, np.uint8), 640, 640)
    assert shrunk.shape == (100, 50, 3)
    np.testing.assert_allclose(ratio, [1, 1])
    shrunk, ratio = fit(np.full((1280, 640, 3), 7, np.uint8), 640, 640)
    assert shrunk.shape == (640, 320, 3) and (shrunk == 7).all()
    np.testing.assert_allclose(ratio, [2, 2])


def test_nms_keeps_best_of_overlaps():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10.5], [50, 50, 60, 60.0]])
    assert nms(boxes, np.array([0.5, 0.9, 0.6, 0.1]), 0.4).tolist() == [1, 3]


# --- 2dfan4 ---------------------------------------------------------------------------------------------


def test_2dfan4_maps_heatmap_points_back_to_the_frame(tmp_path):
    points = onnx_standins.face_points_68()
    session = runtime.create_session(onnx_standins.landmarker(tmp_path / "2dfan4.onnx", points, peak=0.45))
    fan = Fan68Landmarker(get_model("2dfan4"), session)
    boxes = np.array([[100, 80, 260, 280], [300, 50, 380, 130.0]])
    frame = np.zeros((400, 500, 3), np.uint8)
    found, scores = fan.landmarks(frame, boxes)
    assert found.shape == (2, 68, 2) and scores == pytest.approx([0.5, 0.5])  # 0.45 / 0.9
    for box, face in zip(boxes, found):
        np.testing.assert_allclose(transform_points(face, crop_matrix(box)), points[:, :2] * 4, atol=1e-3)


@pytest.mark.parametrize("dark", [False, True])
def test_gpu_landmarker_matches_the_cpu_one(tmp_path, torch_device, dark):
    """The GPU engine's 2dfan4: crops cut on the device (the dark ones brightened with CLAHE on the host) and
    points mapped back as on the CPU. The stand-in moves its points with the crop's mean, so the crops count."""
    torch = pytest.importorskip("torch")
    from steadyswap.analysis.landmarker_2dfan4 import brighten_if_dark, crop_matrices
    from steadyswap.engine.gpu.onnx_module import TorchOnnx
    from steadyswap.engine.gpu.stages import GpuLandmarker

    path = onnx_standins.landmarker(tmp_path / "2dfan4.onnx", onnx_standins.face_points_68(), peak=0.6, gain=8.0)
    image = rgb("image/fr_two_people_640.jpg") // (6 if dark else 1)
    boxes = np.array([[100, 80, 260, 280], [300, 50, 380, 130.0]])
    angles = [0, 90]
    crop = cv2.warpAffine(np.ascontiguousarray(image[:, :, ::-1]), crop_matrices(boxes, angles)[0], (256, 256))
    assert (brighten_if_dark(crop) is crop) != dark  # the dark case takes the CLAHE path
    expected, expected_scores = Fan68Landmarker(get_model("2dfan4"), runtime.create_session(path)).landmarks(
        image, boxes, angles)
    gpu = GpuLandmarker(get_model("2dfan4"), TorchOnnx(path, torch_device))
    points, scores = gpu.landmarks(torch.from_numpy(image[None].copy()).to(torch_device), [0, 0], boxes, angles)
    np.testing.assert_allclose(points, expected, atol=0.05)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-6)
    moved = Fan68Landmarker(get_model("2dfan4"), runtime.create_session(path)).landmarks(image // 2, boxes, angles)[0]
    assert np.abs(moved - expected).max() > 1  # darker crops move the stand-in's points: the test can fail


def test_landmark_geometry_helpers():
    box = np.array([0, 0, 390, 195.0])
    np.testing.assert_allclose(crop_matrix(box), [[0.5, 0, 30.5], [0, 0.5, 79.25]])
    jaw = np.zeros((6, 68, 2))
    jaw[:, 16] = [[10, 0], [0, 10], [-10, 0], [0, -10], [10, 10], [-10, 10]]  # 45° and 135°: a tie, the smaller
    assert face_angles(jaw) == [0, 90, 180, 270, 0, 90]
    assert landmarks_68_to_5(onnx_standins.face_points_68()[None, :, :2]).shape == (1, 5, 2)


def test_yunet_with_2dfan4_replaces_kps_when_confident(tmp_path, yunet_session):
    points = onnx_standins.face_points_68()
    image = rgb("image/fr_obama_512.jpg")
    estimator = Fan68From5(get_model("fan_68_5"), runtime.create_session(onnx_standins.fan_68_5(tmp_path / "f.onnx")))
    for peak, expect_from_68 in ((0.9, True), (0.3, False)):
        session = runtime.create_session(onnx_standins.landmarker(tmp_path / f"fan{peak}.onnx", points, peak))
        fan = Fan68Landmarker(get_model("2dfan4"), session)
        detector = OnnxDetector(get_model("yunet"), yunet_session, landmarker=fan, estimator=estimator)
        plain = OnnxDetector(get_model("yunet"), yunet_session).detect(image)
        faces = detector.analyze([image])[0]
        assert detector.landmark_count == 68 and faces.landmarks.shape == (1, 68, 2)
        expected = landmarks_68_to_5(faces.landmarks) if expect_from_68 else plain.kps
        np.testing.assert_allclose(faces.kps, expected, atol=1e-4)
    empty = detector.analyze([rgb("image/liveportrait_s33_dog_negative.jpg")])[0]
    assert len(empty) == 0 and empty.landmarks.shape == (0, 68, 2)


@pytest.mark.parametrize("cut, from_68", [(0.5, True), (0.65, False), (0.0, False)])
def test_landmarker_score_picks_the_five_points_on_both_paths(tmp_path, torch_device, cut, from_68):
    """2dfan4 scores 0.6 here: its five points replace the detector's above ``--face-landmarker-score`` only (its
    68 stay, as in FaceFusion); at 0 it is not run and fan_68_5's estimate from the detector's five is the 68."""
    torch = pytest.importorskip("torch")
    from steadyswap.engine.gpu.stages import build_detector

    shutil.copy(YUNET, tmp_path / get_model("yunet").file_name)
    onnx_standins.landmarker(tmp_path / "2dfan4.onnx", onnx_standins.face_points_68(), peak=0.54)
    onnx_standins.fan_68_5(tmp_path / "fan_68_5.onnx")
    config = RunConfig(face_detector_model="yunet", face_landmarker_model="2dfan4", face_landmarker_score=cut,
                       models_dir=str(tmp_path))
    image = rgb("image/fr_obama_512.jpg")
    plain = OnnxDetector(get_model("yunet"), runtime.create_session(YUNET)).detect(image)
    cpu = assembly.build_analyzer(config)
    gpu = build_detector(config, assembly.model_store(config), torch.device(torch_device))
    assert (cpu.landmarker is None) == (gpu.landmarker is None) == (cut == 0)
    assert cpu.landmark_count == gpu.landmark_count == 68
    found = [cpu.analyze([image])[0], gpu.detect(torch.from_numpy(image[None].copy()).to(torch_device))[0]]
    for faces in found:
        assert len(faces) == 1 and faces.landmarks.shape == (1, 68, 2)
        estimate = onnx_standins.fan_68_5_weights() @ faces.kps
        if from_68:
            np.testing.assert_allclose(faces.kps, landmarks_68_to_5(faces.landmarks), atol=1e-4)
        else:
            np.testing.assert_allclose(faces.kps, plain.kps, atol=1.5)
        assert np.allclose(faces.landmarks, estimate, atol=1e-3) == (cut == 0)  # 2dfan4's 68 when it ran
    if from_68:
        assert np.abs(found[0].kps - plain.kps).max() > 5  # the stand-in's points are not the detector's


def test_fan_68_5_estimates_68_points_on_both_paths(tmp_path, torch_device):
    """FaceFusion's 5→68 contract: five points to unit ffhq_512 template units, the graph (a batch of 1), and back.
    The stand-in's affine mixtures commute with those similarities, so the frame answer is known; the second
    face lies on its side, and the jaw line of its estimate says so (the angle that turns 2dfan4's crop)."""
    pytest.importorskip("torch")
    from steadyswap.engine.gpu.onnx_module import TorchOnnx
    from steadyswap.engine.gpu.stages import GpuFan68From5

    path = onnx_standins.fan_68_5(tmp_path / "fan_68_5.onnx")
    upright = np.array([[280, 380], [360, 380], [320, 430], [290, 470], [350, 470.0]])
    on_its_side = (upright - 320) @ np.array([[0, 1], [-1, 0.0]]) * 0.5 + [100, 90]
    kps = np.stack([upright, on_its_side]).astype(np.float32)
    expected = onnx_standins.fan_68_5_weights() @ kps
    cpu = Fan68From5(get_model("fan_68_5"), runtime.create_session(path)).estimate(kps)
    gpu = GpuFan68From5(get_model("fan_68_5"), TorchOnnx(path, torch_device)).estimate(kps)
    for points in (cpu, gpu):
        assert points.shape == (2, 68, 2) and points.dtype == np.float32
        np.testing.assert_allclose(points, expected, atol=1e-3)
    assert face_angles(cpu) == [0, 90]
    with pytest.raises(ModelError, match="needs fan_68_5"):
        OnnxDetector(get_model("yunet"), runtime.create_session(YUNET),
                     landmarker=Fan68Landmarker(get_model("2dfan4"), runtime.create_session(path)))
