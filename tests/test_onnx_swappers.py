"""ONNX swappers and the recognizer, end to end on STAND-IN graphs (tests/onnx_standins.py).

The stand-ins have FaceFusion's input/output names, shapes and dtypes and known outputs (e.g. target plus
the first three source values), so normalisation, the source conversions (emap, L2, converter, image),
weight mixing, pixel boost, batching, masks and the crop→frame matrix are checked exactly. Real-model
output is not verified here.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto

from steadyswap import assembly
from steadyswap.blend.align import template_points, transform_points, warp_face
from steadyswap.blend.box_mask import box_mask
from steadyswap.config import RunConfig
from steadyswap.errors import ModelError, NoFaceError, UsageError
from steadyswap.models import runtime
from steadyswap.models.registry import IMAGENET_MEAN, IMAGENET_STD, get_model
from steadyswap.swap.onnx_swapper import OnnxSwapper, explode, implode, load_emap, swapper_weight
from steadyswap.swap.recognizer import ArcFaceRecognizer, l2_normalise
from steadyswap.types import Faces
from tests import onnx_standins

SOURCE_RGB = np.array([200, 100, 50])
GRAY = 100
RNG = np.random.default_rng(7)
WEIGHTS = RNG.normal(0, 0.5, (3, 512)).astype(np.float32)


def faces_at(origins: list[tuple[float, float]], side: float = 110, embeddings: np.ndarray | None = None) -> Faces:
    """Faces whose five points are the arcface_128 template scaled to ``side`` px at each origin."""
    kps = np.stack([template_points("arcface_128", 1) * side + origin for origin in origins]).astype(np.float32)
    boxes = np.concatenate([kps.min(1) - 20, kps.max(1) + 20], 1)
    n = len(origins)
    return Faces(boxes=boxes, scores=np.ones(n, np.float32), landmarks=kps.copy(), kps=kps,
                 track_ids=np.arange(10, 10 + n), embeddings=embeddings)


def flat(rgb, shape=(300, 300)) -> np.ndarray:
    return np.broadcast_to(np.asarray(rgb, np.uint8), (*shape, 3)).copy()


def raw_embedding(rgb) -> np.ndarray:
    """What the recognizer stand-in returns for a flat-colour face: normalised colour @ WEIGHTS."""
    return (np.asarray(rgb) / 127.5 - 1) @ WEIGHTS


@pytest.fixture
def recognizer(tmp_path) -> ArcFaceRecognizer:
    path = onnx_standins.recognizer(tmp_path / "arcface_w600k_r50.onnx", WEIGHTS)
    return ArcFaceRecognizer(get_model("arcface_w600k_r50"), runtime.create_session(path))


def swapper_for(name: str, tmp_path: Path, recognizer, *, mode="add_source", batch="N", mask=False,
                dtype=TensorProto.FLOAT, **options) -> tuple[OnnxSwapper, Path]:
    spec = get_model(name)
    source_shape = (3, spec.source_size, spec.source_size) if spec.source == "image" else (512,)
    emap = RNG.normal(0, 0.05, (512, 512)) if spec.source == "emap" else None
    path = onnx_standins.swapper(tmp_path / f"{name}-{mode}-{batch}-{dtype}.onnx", spec.size, mode=mode,
                                 source_shape=source_shape, batch=batch, mask=mask, emap=emap, dtype=dtype)
    converter = None
    if spec.converter:
        converter = runtime.create_session(onnx_standins.converter(tmp_path / f"{spec.converter}.onnx"))
    swapper = OnnxSwapper(spec, runtime.create_session(path), recognizer, converter=converter,
                          emap=load_emap(path) if emap is not None else None, **options)
    return swapper, path


class CountingSession:
    """Wraps a session and records the batch size of every run."""

    def __init__(self, session) -> None:
        self.session = session
        self.batches: list[int] = []

    def get_inputs(self):
        return self.session.get_inputs()

    def get_outputs(self):
        return self.session.get_outputs()

    def run(self, names, feeds):
        self.batches.append(len(next(iter(feeds.values()))))
        return self.session.run(names, feeds)


def expected_uniform(crop_value: np.ndarray) -> np.ndarray:
    return (np.clip(crop_value, 0, 1) * 255).round()


# --- pure helpers ---------------------------------------------------------------------------------------


def test_implode_takes_interleaved_tiles_and_explode_inverts_it():
    crop = np.arange(6 * 6 * 3).reshape(6, 6, 3)
    tiles = implode(crop, 3)
    assert tiles.shape == (9, 2, 2, 3)
    np.testing.assert_array_equal(tiles[1 * 3 + 2], crop[1::3, 2::3])
    np.testing.assert_array_equal(explode(tiles, 3), crop)


def test_weight_mapping_matches_facefusion():
    assert [swapper_weight(w) for w in (0.0, 0.5, 1.0)] == pytest.approx([0.35, 0.0, -0.35])


# --- recognizer -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", ["N", 1])
def test_recognizer_normalises_rgb_and_batches(tmp_path, batch):
    path = onnx_standins.recognizer(tmp_path / "r.onnx", WEIGHTS, batch=batch)
    rec = ArcFaceRecognizer(get_model("arcface_w600k_r50"), runtime.create_session(path))
    crops = np.stack([flat(c, (112, 112)) for c in ([200, 100, 50], [0, 255, 128], [10, 20, 30])])
    np.testing.assert_allclose(rec.embed_crops(crops), [raw_embedding(c) for c in crops[:, 0, 0]], atol=1e-4)
    embedded = rec.embed(flat(SOURCE_RGB), faces_at([(50, 60)]).kps)
    np.testing.assert_allclose(embedded[0], raw_embedding(SOURCE_RGB), atol=1e-4)
    assert np.linalg.norm(l2_normalise(embedded), axis=1) == pytest.approx([1.0])


# --- source conversions ---------------------------------------------------------------------------------


def test_inswapper_emap_conversion_and_patch_geometry(tmp_path, recognizer):
    swapper, path = swapper_for("inswapper_128", tmp_path, recognizer)
    assert load_emap(path).shape == (512, 512)
    source = swapper.prepare_source([flat(SOURCE_RGB)], [faces_at([(80, 90)])])
    raw = raw_embedding(SOURCE_RGB)
    s = raw @ load_emap(path) / np.linalg.norm(raw)
    np.testing.assert_allclose(source.data["source"], s, rtol=1e-4, atol=1e-5)
    targets = faces_at([(40, 50), (300, 120)])
    patches = swapper.swap(source, [flat(GRAY, (400, 500))], [targets])[0]
    assert [p.track_id for p in patches] == [10, 11]
    for patch, kps in zip(patches, targets.kps):
        assert patch.crop.shape == (128, 128, 3) and patch.mask.shape == (128, 128)
        assert np.abs(patch.crop - expected_uniform(GRAY / 255 + s[:3])).max() <= 1
        np.testing.assert_allclose(patch.mask, box_mask(128), atol=1e-6)
        np.testing.assert_allclose(transform_points(template_points("arcface_128", 128), patch.matrix), kps, atol=1e-3)


def test_hyperswap_uses_mean_of_unit_embeddings(tmp_path, recognizer):
    swapper, _ = swapper_for("hyperswap_1a_256", tmp_path, recognizer, mask=True)
    other = [30, 220, 90]
    source = swapper.prepare_source([flat(SOURCE_RGB), flat(other), flat(0)],
                                    [faces_at([(80, 90)]), faces_at([(20, 30), (60, 40)], side=60), Faces.empty()])
    s = (l2_normalise(raw_embedding(SOURCE_RGB)) + l2_normalise(raw_embedding(other))) / 2
    np.testing.assert_allclose(source.data["source"], s, atol=1e-5)
    patch = swapper.swap(source, [flat(GRAY, (400, 400))], [faces_at([(100, 100)])])[0][0]
    assert patch.crop.shape == (256, 256, 3)
    assert np.abs(patch.crop - expected_uniform(GRAY / 255 + s[:3] * 0.5)).max() <= 1  # output × 0.5 + 0.5


def test_hyperswap_mask_output_stays_out_of_the_paste_mask_on_both_paths(tmp_path, recognizer, torch_device):
    """FaceFusion uses output 0 only: the graph has already blended its face through ``mask`` (here 0.25
    everywhere), so the paste mask is the box mask alone, not its minimum with ``mask``."""
    torch = pytest.importorskip("torch")
    from steadyswap.engine.gpu.onnx_module import TorchOnnx
    from steadyswap.engine.gpu.stages import GpuRecognizer, GpuSwapper

    options = {"mask_blur": 0.5, "mask_padding": (10, 0, 0, 0)}
    swapper, path = swapper_for("hyperswap_1a_256", tmp_path, recognizer, mask=True, **options)
    source = swapper.prepare_source([flat(SOURCE_RGB)], [faces_at([(80, 90)])])
    patch = swapper.swap(source, [flat(GRAY, (400, 400))], [faces_at([(100, 100)])])[0][0]
    expected = box_mask(256, 0.5, (10, 0, 0, 0))
    assert (expected > 0.25).mean() > 0.5  # where a product or minimum with the model's mask would show
    np.testing.assert_allclose(patch.mask, expected, atol=1e-6)

    arcface = TorchOnnx(tmp_path / "arcface_w600k_r50.onnx", torch_device)
    gpu = GpuSwapper(get_model("hyperswap_1a_256"), TorchOnnx(path, torch_device),
                     GpuRecognizer(get_model("arcface_w600k_r50"), arcface), path, **options)
    crops = torch.from_numpy(patch.target).permute(2, 0, 1)[None].float().to(torch_device)
    vector = torch.from_numpy(source.data["source"])[None].to(torch_device)
    swapped, masks = gpu.run(crops, vector)
    np.testing.assert_allclose(masks[0].cpu().numpy(), expected, atol=1e-6)
    assert np.abs(swapped[0].permute(1, 2, 0).cpu().numpy() - patch.crop).max() <= 1


def test_hyperswap_without_mask_output_uses_the_box_mask(tmp_path, recognizer):
    swapper, _ = swapper_for("hyperswap_1c_256", tmp_path, recognizer, mask_blur=0.5, mask_padding=(10, 0, 0, 0))
    source = swapper.prepare_source([flat(SOURCE_RGB)], [faces_at([(80, 90)])])
    patch = swapper.swap(source, [flat(GRAY, (400, 400))], [faces_at([(100, 100)])])[0][0]
    np.testing.assert_allclose(patch.mask, box_mask(256, 0.5, (10, 0, 0, 0)), atol=1e-6)


def test_simswap_converts_then_normalises_with_imagenet_input(tmp_path, recognizer):
    swapper, _ = swapper_for("simswap_256", tmp_path, recognizer)
    source = swapper.prepare_source([flat(SOURCE_RGB)], [faces_at([(80, 90)])])
    s = l2_normalise(-raw_embedding(SOURCE_RGB))  # the converter stand-in negates
    np.testing.assert_allclose(source.data["source"], s, atol=1e-5)
    colour = np.array([153, 145, 132])
    patch = swapper.swap(source, [flat(colour, (400, 400))], [faces_at([(100, 100)])])[0][0]
    normalised = (colour / 255 - IMAGENET_MEAN) / IMAGENET_STD
    assert np.abs(patch.crop - expected_uniform(normalised + s[:3])).max() <= 1  # simswap output is not denormalised


def test_blendswap_feeds_an_aligned_rgb_source_image(tmp_path, recognizer):
    swapper, _ = swapper_for("blendswap_256", tmp_path, recognizer, mode="source_mean")
    source = swapper.prepare_source([flat(SOURCE_RGB)], [faces_at([(80, 90)])])
    assert source.data["source"].shape == (3, 112, 112)
    patch = swapper.swap(source, [flat(GRAY, (400, 400))], [faces_at([(100, 100)])])[0][0]
    assert np.abs(patch.crop.astype(int) - SOURCE_RGB).max() <= 1


def test_weight_mixes_in_the_target_identity(tmp_path, recognizer):
    swapper, path = swapper_for("inswapper_128", tmp_path, recognizer, weight=1.0)
    source = swapper.prepare_source([flat(SOURCE_RGB)], [faces_at([(80, 90)])])
    s = source.data["source"]
    given = RNG.normal(0, 1, (2, 512)).astype(np.float32)
    patches = swapper.swap(source, [flat(GRAY, (400, 500))], [faces_at([(40, 50), (300, 120)], embeddings=given)])[0]
    for patch, target in zip(patches, given):
        mixed = s * 1.35 - 0.35 * target / np.linalg.norm(target)
        assert np.abs(patch.crop - expected_uniform(GRAY / 255 + mixed[:3])).max() <= 1
    swapper.weight = 0.0  # no embeddings given: the recognizer embeds the (gray) target
    patch = swapper.swap(source, [flat(GRAY, (400, 500))], [faces_at([(40, 50)])])[0][0]
    mixed = s * 0.65 + 0.35 * l2_normalise(raw_embedding([GRAY] * 3))
    assert np.abs(patch.crop - expected_uniform(GRAY / 255 + mixed[:3])).max() <= 1


# --- pixel boost and batching ---------------------------------------------------------------------------


def test_pixel_boost_runs_interleaved_tiles_and_reinterleaves(tmp_path, recognizer):
    swapper, _ = swapper_for("inswapper_128", tmp_path, recognizer, mode="tile_mean", pixel_boost=512)
    pattern = RNG.integers(0, 255, (4, 4, 3))  # period 4: each interleaved tile sees one colour of it
    frame = (np.tile(pattern, (150, 150, 1)) + RNG.integers(0, 2, (600, 600, 3))).astype(np.uint8)
    targets = faces_at([(40, 28)], side=512)  # crop = frame[28:540, 40:552], unscaled
    source = swapper.prepare_source([flat(SOURCE_RGB)], [faces_at([(80, 90)])])
    patch = swapper.swap(source, [frame], [targets])[0][0]
    crop, matrix = warp_face(frame, targets.kps[0], "arcface_128", 512)
    assert patch.crop.shape == (512, 512, 3)
    np.testing.assert_allclose(patch.matrix, matrix)
    means = np.array([[crop[i::4, j::4].reshape(-1, 3).mean(0) for j in range(4)] for i in range(4)])
    expected = np.tile(means, (128, 128, 1))  # pixel (y, x) gets the mean of tile (y % 4, x % 4)
    assert np.abs(patch.crop - expected.round()).max() <= 1
    assert np.abs(patch.crop[:4, :4] - pattern).max() <= 2  # 28 and 40 are multiples of 4


def test_batches_follow_the_graph_and_the_cap(tmp_path, recognizer):
    frames = [RNG.integers(0, 255, (300, 400, 3), np.uint8) for _ in range(2)]
    faces = [faces_at([(30, 40), (200, 80)]), faces_at([(100, 100), (10, 150)], side=90)]
    results, calls = [], []
    for batch, cap in (("N", None), ("N", 3), (1, None)):
        swapper, _ = swapper_for("hyperswap_1b_256", tmp_path, recognizer, batch=batch, mask=True,
                                 pixel_boost=512, batch_size=cap)
        swapper.session = CountingSession(swapper.session)
        source = swapper.prepare_source([flat(SOURCE_RGB)], [faces_at([(80, 90)])])
        patches = swapper.swap(source, frames, faces)
        assert [len(p) for p in patches] == [2, 2]
        results.append(np.stack([p.crop for frame_patches in patches for p in frame_patches]))
        calls.append(swapper.session.batches)
    assert calls == [[16], [12, 4], [1] * 16]  # 2 frames × 2 faces × 2² tiles; the cap counts faces
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


def test_fp16_graph_inputs_are_cast(tmp_path, recognizer):
    half, _ = swapper_for("inswapper_128_fp16", tmp_path, recognizer, dtype=TensorProto.FLOAT16)
    source = half.prepare_source([flat(SOURCE_RGB)], [faces_at([(80, 90)])])
    patch = half.swap(source, [flat(GRAY, (400, 400))], [faces_at([(100, 100)])])[0][0]
    assert np.abs(patch.crop - expected_uniform(GRAY / 255 + source.data["source"][:3])).max() <= 1


def test_frames_without_faces_skip_the_model(tmp_path, recognizer):
    swapper, _ = swapper_for("inswapper_128", tmp_path, recognizer)
    swapper.session = CountingSession(swapper.session)
    source = swapper.prepare_source([flat(SOURCE_RGB)], [faces_at([(80, 90)])])
    assert swapper.swap(source, [flat(GRAY), flat(GRAY)], [Faces.empty(), Faces.empty()]) == [[], []]
    assert swapper.session.batches == []
    with pytest.raises(NoFaceError):
        swapper.prepare_source([flat(0)], [Faces.empty()])


def test_bad_options_and_contracts_are_clear_errors(tmp_path, recognizer):
    with pytest.raises(UsageError, match="384 is not one of 256x256, 512x512"):
        swapper_for("hyperswap_1a_256", tmp_path, recognizer, pixel_boost=384)
    path = onnx_standins.recognizer(tmp_path / "not_a_swapper.onnx", WEIGHTS)
    with pytest.raises(ModelError, match="expected graph inputs 'source' and 'target'"):
        OnnxSwapper(get_model("hyperswap_1a_256"), runtime.create_session(path), recognizer)
    with pytest.raises(ModelError, match="needs its embedding map"):
        OnnxSwapper(get_model("inswapper_128"), runtime.create_session(path), recognizer)


# --- paste-back and assembly -----------------------------------------------------------------------------


def test_patches_paste_back_onto_the_faces(tmp_path, recognizer):
    swapper, _ = swapper_for("blendswap_256", tmp_path, recognizer, mode="source_mean")
    source = swapper.prepare_source([flat(SOURCE_RGB)], [faces_at([(80, 90)])])
    frame = flat(GRAY, (400, 500))
    targets = faces_at([(40, 50), (300, 120)])
    patches = swapper.swap(source, [frame], [targets])[0]
    paste = pytest.importorskip("steadyswap.blend.paste")
    out = paste.paste_patches(frame, patches)
    for kps in targets.kps:
        x, y = kps[2].round().astype(int)  # the nose: well inside the mask
        assert np.abs(out[y, x].astype(int) - SOURCE_RGB).max() <= 2
    assert (out[0, 0] == GRAY).all() and (out[-1, -1] == GRAY).all()


def test_assembly_builds_a_swapper_from_a_models_folder(tmp_path):
    spec = get_model("inswapper_128")
    emap = RNG.normal(0, 0.05, (512, 512))
    onnx_standins.swapper(tmp_path / spec.file_name, 128, emap=emap)
    onnx_standins.recognizer(tmp_path / "arcface_w600k_r50.onnx", WEIGHTS)
    for name in ("inswapper_128", "arcface_w600k_r50"):
        content = (tmp_path / f"{name}.onnx").read_bytes()
        (tmp_path / f"{name}.hash").write_text(format(zlib.crc32(content), "08x"))
    config = RunConfig(face_swapper_model="inswapper_128", face_swapper_pixel_boost="256x256",
                       face_swapper_weight=0.3, models_dir=str(tmp_path))
    swapper = assembly.build_swapper(config)
    assert isinstance(swapper, OnnxSwapper)
    assert (swapper.crop_size, swapper.weight, swapper.recognizer.name) == (256, 0.3, "arcface_w600k_r50")
    np.testing.assert_allclose(swapper.emap, emap.astype(np.float32))
    patches = swapper.swap(swapper.prepare_source([flat(SOURCE_RGB)], [faces_at([(80, 90)])]),
                           [flat(GRAY, (400, 400))], [faces_at([(100, 100)])])
    assert patches[0][0].crop.shape == (256, 256, 3)
