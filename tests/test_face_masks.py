"""FaceFusion's mask types: area masks from real landmarks of every layout, occlusion and region masks through
stand-in models (tests/onnx_standins.py) on the CPU path and in the GPU engine, and the flags end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from steadyswap.analysis import mesh_topology
from steadyswap.assembly import build_masker, mask_models
from steadyswap.blend.align import warp_face
from steadyswap.blend.areas import AREAS, MESH_68, area_mask, area_points
from steadyswap.blend.face_masks import REGION_CLASSES, MaskOptions, soften
from steadyswap.config import FACE_MASK_AREAS, FACE_MASK_REGIONS, RunConfig
from steadyswap.engine.frame_swapper import FaceSwapper
from steadyswap.errors import ModelError
from steadyswap.models import runtime
from steadyswap.models.registry import get_model
from tests import onnx_standins
from tests.conftest import YUNET, media_path
from tests.helpers import photo, still_analyzer

PORTRAIT = "image/fr_obama_512.jpg"
SOURCE = "image/liveportrait_s1_512.jpg"


@pytest.fixture(scope="module")
def mask_models_dir(tmp_path_factory) -> Path:
    return onnx_standins.every_family_models(tmp_path_factory.mktemp("mask-models"), YUNET)


@pytest.fixture(scope="module")
def portrait_faces():
    """The portrait, its MediaPipe mesh face and the real YuNet's five points of the same face."""
    pytest.importorskip("mediapipe")
    from steadyswap.analysis.onnx_detectors import OnnxDetector

    image = photo(media_path(PORTRAIT))
    mesh = still_analyzer().analyze([image])[0]
    yunet = OnnxDetector(get_model("yunet"), runtime.create_session(YUNET)).analyze([image])[0]
    assert len(mesh) == len(yunet) == 1
    return image, mesh, yunet


def test_tables_name_facefusions_areas_and_regions() -> None:
    assert tuple(AREAS) == FACE_MASK_AREAS and tuple(REGION_CLASSES) == FACE_MASK_REGIONS
    assert set(MESH_68) == {i for points in AREAS.values() for i in points}


@pytest.mark.parametrize("layout", ["mesh", "68 from the mesh", "5 from the mesh", "5 from YuNet"])
def test_area_masks_of_real_landmarks_cover_their_part_of_the_face(layout: str, portrait_faces) -> None:
    image, mesh, yunet = portrait_faces
    points = mesh.landmarks[0]
    landmarks = {"mesh": points, "68 from the mesh": _as_68(points), "5 from the mesh": mesh.kps[0],
                 "5 from YuNet": yunet.kps[0]}[layout]
    mouth = points[[mesh_topology.INNER_LIP_UPPER, mesh_topology.INNER_LIP_LOWER]].mean(axis=0)
    eyes = [points[list(mesh_topology.LEFT_EYE_IMAGE)].mean(axis=0),
            points[list(mesh_topology.RIGHT_EYE_IMAGE)].mean(axis=0)]
    chin, forehead = points[mesh_topology.CHIN], points[mesh_topology.FOREHEAD_TOP]

    def covers(areas: tuple[str, ...], point: np.ndarray) -> bool:
        mask = area_mask(area_points(landmarks, areas), image.shape[:2])
        return bool(mask[int(point[1]), int(point[0])] == 1)

    assert covers(("mouth",), mouth) and not any(covers(("mouth",), eye) for eye in eyes)
    assert all(covers(("upper-face",), eye) for eye in eyes)
    assert not covers(("upper-face",), mouth) and not covers(("upper-face",), chin)
    assert covers(("lower-face",), mouth) and not any(covers(("lower-face",), eye) for eye in eyes)
    assert not covers(("upper-face", "lower-face", "mouth"), forehead)  # the brows bound the face from above


def test_five_point_areas_overlap_the_mesh_areas(portrait_faces) -> None:
    image, mesh, yunet = portrait_faces
    for area in AREAS:
        exact = area_mask(area_points(mesh.landmarks[0], (area,)), image.shape[:2]) > 0
        for kps in (mesh.kps[0], yunet.kps[0]):
            estimated = area_mask(area_points(kps, (area,)), image.shape[:2]) > 0
            overlap = (exact & estimated).sum() / (exact | estimated).sum()
            assert overlap > (0.4 if area == "mouth" else 0.6), f"{area}: intersection over union {overlap:.2f}"


def test_soften_keeps_the_region_and_fades_inside_it() -> None:
    mask = np.zeros((128, 128), np.float32)
    mask[32:96, 32:96] = 1
    soft = soften(mask)
    assert soft[64, 64] == 1 and soft[:32].max() == 0 and soft[:, :32].max() == 0
    assert soft[31, 64] == 0 and 0 < soft[34, 64] < soft[40, 64] < 1  # the edge fades inwards


def test_occlusion_mask_is_the_occluders_answer_on_the_aligned_crop(portrait_faces, mask_models_dir: Path) -> None:
    """The stand-in occluder calls a pixel face where its blue channel passes 0.5: the mask follows the
    crop's blue (so the BGR order and the [0, 1] scale reach the model), then FaceFusion's softening."""
    image, _, yunet = portrait_faces
    crop, _ = warp_face(image, yunet.kps[0], "arcface_128", 256)
    masker = build_masker(RunConfig(face_mask_types=("occlusion",), models_dir=str(mask_models_dir)))
    assert masker is not None
    mask = masker.occlusion(crop[None])[0]
    expected = soften(np.clip(3 * crop[..., 2].astype(np.float32) / 255 - 0.5, 0, 1))
    assert np.abs(mask - expected).max() < 0.02
    assert (mask > 0.5).mean() > 0.05 and (mask == 0).mean() > 0.05  # a real face gives both answers


def test_region_mask_keeps_the_regions_asked_for(portrait_faces, mask_models_dir: Path) -> None:
    image, _, yunet = portrait_faces
    crop, _ = warp_face(image, yunet.kps[0], "arcface_128", 256)
    wide = build_masker(RunConfig(face_mask_types=("region",), models_dir=str(mask_models_dir)))
    skin = build_masker(RunConfig(face_mask_types=("region",), face_mask_regions=("skin",),
                                  models_dir=str(mask_models_dir)))
    assert wide is not None and skin is not None
    every, only_skin = wide.region(crop[None])[0], skin.region(crop[None])[0]
    assert (only_skin <= every + 1e-6).all() and (every == 1).sum() > (only_skin == 1).sum() > 0


def test_cpu_and_gpu_maskers_agree_on_real_patches(portrait_faces, mask_models_dir: Path) -> None:
    """The same patches (an aligned crop and the classic swapper's box) masked by ``FaceMasker`` and by
    ``GpuFaceMasker`` on torch's CPU: every mask type at once, combined with the patch's own mask."""
    torch = pytest.importorskip("torch")
    from steadyswap.engine.gpu.masks import GpuFaceMasker
    from steadyswap.engine.gpu.onnx_module import TorchOnnx
    from steadyswap.engine.gpu.stages import GpuPatches
    from steadyswap.swap.base import SourceFace
    from steadyswap.types import SwapPatch

    image, mesh, yunet = portrait_faces
    config = RunConfig(face_mask_types=("box", "occlusion", "area", "region"), face_occluder_model="many",
                       face_mask_regions=("skin", "nose", "mouth"), models_dir=str(mask_models_dir))
    cpu = build_masker(config)
    assert cpu is not None
    occluders, parser = mask_models(config)
    gpu = GpuFaceMasker(cpu.options, [(s, TorchOnnx(mask_models_dir / s.file_name, "cpu")) for s in occluders],
                        (parser, TorchOnnx(mask_models_dir / parser.file_name, "cpu")) if parser else None)
    frames = torch.from_numpy(image[None].copy())
    aligned, to_frame = warp_face(image, yunet.kps[0], "arcface_128", 256)
    x0, y0, x1, y1 = (int(v) for v in mesh.boxes[0])
    box = image[y0:y1, x0:x1]
    for patch, face in ((SwapPatch(255 - aligned, np.ones((256, 256), np.float32), to_frame, 0, aligned), yunet),
                        (SwapPatch.at(255 - box, np.ones(box.shape[:2], np.float32), x0, y0, 0, box.copy()), mesh)):
        (on_cpu,) = cpu.apply(image, [patch], face)
        planar = [torch.from_numpy(a).permute(2, 0, 1)[None].float() for a in (patch.crop, patch.target)]
        patches = GpuPatches([0], [0], planar[0], planar[1], torch.from_numpy(patch.mask)[None], patch.matrix[None])
        gpu.apply(frames, [patches], [[(SourceFace(image, face), face)]])
        on_gpu = patches.masks[0].numpy()
        assert 0.05 < (on_cpu.mask > 0.5).mean() < 0.9
        assert np.abs(on_cpu.mask - on_gpu).mean() < 0.01 and np.percentile(np.abs(on_cpu.mask - on_gpu), 99) < 0.1


def test_face_mask_types_change_the_swap_where_facefusion_would(mask_models_dir: Path) -> None:
    """``--face-mask-types box occlusion region --face-mask-regions skin nose mouth`` on a real photo: the swap
    shrinks to where every mask passes, and outside it the target's pixels stay exactly."""
    pytest.importorskip("mediapipe")
    image = photo(media_path(PORTRAIT))
    runs = {}
    for types in (("box",), ("box", "occlusion", "region")):
        config = RunConfig(face_swapper_model="hyperswap_1a_256", face_detector_model="yunet",
                           face_landmarker_model="none", face_mask_types=types, color_strength=0.0,
                           face_mask_regions=("skin", "nose", "mouth"), models_dir=str(mask_models_dir),
                           watermark=False)
        with FaceSwapper([photo(media_path(SOURCE))], config) as swapper:
            runs[types] = swapper.swap_image(image).image
    box_only = np.any(runs["box",] != image, axis=-1)
    masked = np.any(runs["box", "occlusion", "region"] != image, axis=-1)
    assert masked.sum() < 0.8 * box_only.sum() and not (masked & ~box_only).any()


def test_without_box_the_neural_swappers_mask_is_the_whole_crop(mask_models_dir: Path) -> None:
    """FaceFusion combines only the mask types asked for: without box, nothing cuts the aligned crop's edges."""
    from steadyswap.assembly import build_swapper

    edges = {}
    for types in (("box",), ("region",)):
        swapper = build_swapper(RunConfig(face_swapper_model="inswapper_128", face_mask_types=types,
                                          models_dir=str(mask_models_dir)))
        assert swapper is not None
        edges[types] = float(swapper.mask[0, 64])  # type: ignore[attr-defined]
    assert edges == {("box",): pytest.approx(0.073, abs=0.01), ("region",): 1.0}


def test_a_missing_mask_model_is_one_line_naming_the_download(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"xseg_1\.onnx \(missing\), bisenet_resnet_34\.onnx \(missing\).*"
                                         r"steadyswap models download xseg_1 bisenet_resnet_34"):
        build_masker(RunConfig(face_mask_types=("box", "occlusion", "region"), models_dir=str(tmp_path)))
    output = tmp_path / "out.jpg"
    proc = subprocess.run([sys.executable, "-m", "steadyswap", "run", "-s", str(media_path(SOURCE)), "-t",
                           str(media_path(PORTRAIT)), "-o", str(output), "--models-dir", str(tmp_path),
                           "--face-mask-types", "box", "occlusion", "region", "--face-mask-regions", "skin", "nose",
                           "mouth"], capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 6 and len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "steadyswap models download xseg_1 bisenet_resnet_34" in lines[0] and not output.exists()


def test_masks_need_a_known_landmark_layout() -> None:
    with pytest.raises(ValueError, match="no face areas for a layout of 12 landmarks"):
        area_points(np.zeros((12, 2)), ("mouth",))


def test_mask_options_from_the_config() -> None:
    options = MaskOptions.from_types(("box", "region"), FACE_MASK_AREAS, ("nose", "mouth"))
    assert not options.occlusion and options.region and options.classes == [10, 11]
    assert not MaskOptions.from_types(("box",), FACE_MASK_AREAS, FACE_MASK_REGIONS).any


def _as_68(mesh: np.ndarray) -> np.ndarray:
    """A 68-point layout whose area points are the mesh's (the rest zero, unused by the areas)."""
    points = np.zeros((68, 2), np.float32)
    for index, mesh_index in MESH_68.items():
        points[index] = mesh[mesh_index]
    return points

