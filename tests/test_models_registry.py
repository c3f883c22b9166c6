"""Registry, models folder, alignment geometry, box mask, runtime providers, factories and `models list`."""

from __future__ import annotations

import argparse
import io
import os
import re
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from steadyswap import assembly
from steadyswap.blend import align
from steadyswap.blend.box_mask import box_mask
from steadyswap.cli.models import add_models_parser, run_models
from steadyswap.config import RunConfig
from steadyswap.errors import ModelError, UsageError
from steadyswap.models import runtime, store as store_module
from steadyswap.models.registry import MODELS, TAGS, get_model, models_for, requirements
from steadyswap.models.store import ModelStore, resolve_models_dir

# --- registry -------------------------------------------------------------------------------------------


def test_registry_entries_are_complete_and_consistent():
    assert len({s.file_stem for s in MODELS.values()}) == len(MODELS)
    for spec in MODELS.values():
        assert spec.tag in TAGS
        assert re.fullmatch(r"https://github\.com/facefusion/facefusion-assets/releases/download/"
                            rf"{spec.tag}/{re.escape(spec.file_stem)}\.onnx", spec.url())
        assert spec.hash_url().endswith(f"/{spec.file_stem}.hash")
        assert spec.licence and spec.vendor and spec.outputs and spec.inputs
        assert spec.hash_source.startswith("CRC32 in https://")
        if spec.template:
            assert spec.template in align.TEMPLATES
        if spec.task == "swapper":
            assert spec.size and spec.source and spec.pixel_boosts[0] == spec.size
            assert all(boost % spec.size == 0 for boost in spec.pixel_boosts)
            assert (spec.converter is not None) == spec.source.startswith("converted")
            if spec.source == "image":
                assert spec.source_template in align.TEMPLATES and spec.source_size


def test_facefusion_facts_for_key_models():
    inswapper = get_model("inswapper_128")
    assert (inswapper.size, inswapper.template, inswapper.source, inswapper.mean, inswapper.std) == (
        128, "arcface_128", "emap", (0, 0, 0), (1, 1, 1))
    hyperswap = get_model("hyperswap_1b_256")
    assert (hyperswap.size, hyperswap.template, hyperswap.source, hyperswap.tag, hyperswap.denormalise) == (
        256, "arcface_128", "normed", "models-3.3.0", True)
    assert any(o.startswith("mask") for o in hyperswap.outputs)
    assert get_model("simswap_256").mean == (0.485, 0.456, 0.406)
    assert get_model("arcface_w600k_r50").template == "arcface_112_v2"
    assert get_model("yunet").url().endswith("/models-3.4.0/yunet_2023_mar.onnx")
    assert [s.name for s in models_for("detector")] == ["retinaface", "scrfd", "yolo_face", "yunet"]
    assert [get_model(name).sizes for name in ("retinaface", "scrfd", "yolo_face", "yunet")] == [
        (160, 320, 480, 512, 640), (160, 320, 480, 512, 640), (640,), (640,)]
    fan_68_5 = get_model("fan_68_5")
    assert (fan_68_5.task, fan_68_5.template, fan_68_5.licence, fan_68_5.url()) == (
        "converter", "ffhq_512", "OpenRAIL-M",
        "https://github.com/facefusion/facefusion-assets/releases/download/models-3.0.0/fan_68_5.onnx")


def test_face_masker_models_as_facefusion_declares_them():
    assert [(s.name, s.tag, s.size, s.layout, s.bgr) for s in models_for("occluder")] == [
        ("xseg_1", "models-3.1.0", 256, "nhwc", True), ("xseg_2", "models-3.1.0", 256, "nhwc", True),
        ("xseg_3", "models-3.2.0", 256, "nhwc", True)]
    assert [(s.name, s.tag, s.size, s.layout, s.mean, s.std) for s in models_for("parser")] == [
        ("bisenet_resnet_18", "models-3.1.0", 512, "nchw", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ("bisenet_resnet_34", "models-3.0.0", 512, "nchw", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))]
    assert get_model("xseg_3").url().endswith("/models-3.2.0/xseg_3.onnx")


def test_lookup_by_file_stem_and_requirements():
    assert get_model("yoloface_8n").name == "yolo_face"
    assert [s.name for s in requirements(get_model("ghost_2_256"))] == ["ghost_2_256", "crossface_ghost"]
    assert [s.name for s in requirements(get_model("2dfan4"))] == ["2dfan4", "fan_68_5"]
    with pytest.raises(UsageError, match="unknown landmarker model 'fan_68_5' \\(known: 2dfan4\\)"):
        get_model("fan_68_5", "landmarker")
    with pytest.raises(UsageError, match="unknown swapper model 'yunet'"):
        get_model("yunet", "swapper")
    with pytest.raises(UsageError, match="known: .*inswapper_128"):
        get_model("nope")


# --- models folder --------------------------------------------------------------------------------------


def test_models_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "default_models_dir", lambda: tmp_path / "cache")
    assert resolve_models_dir(None, {}) == tmp_path / "cache"
    assert resolve_models_dir(None, {"STEADYSWAP_MODELS_DIR": str(tmp_path / "env")}) == tmp_path / "env"
    assert resolve_models_dir(tmp_path / "cli", {"STEADYSWAP_MODELS_DIR": "x"}) == tmp_path / "cli"
    facefusion = tmp_path / "facefusion"
    (facefusion / ".assets" / "models").mkdir(parents=True)
    assert resolve_models_dir(facefusion, {}) == facefusion / ".assets" / "models"
    assert resolve_models_dir(facefusion / ".assets", {}) == facefusion / ".assets" / "models"


def _write_model(root: Path, name: str, content: bytes, hash_text: str | None = "auto") -> Path:
    spec = get_model(name)
    root.mkdir(parents=True, exist_ok=True)
    (root / spec.file_name).write_bytes(content)
    if hash_text is not None:
        text = format(zlib.crc32(content), "08x") if hash_text == "auto" else hash_text
        (root / spec.hash_name).write_text(text)
    return root / spec.file_name


def test_status_verified_present_corrupt_missing(tmp_path):
    store = ModelStore(tmp_path)
    _write_model(tmp_path, "yunet", b"yunet bytes")
    _write_model(tmp_path, "scrfd", b"scrfd bytes", hash_text=None)
    _write_model(tmp_path, "retinaface", b"retinaface bytes", hash_text="deadbeef")
    statuses = {name: store.status(get_model(name)) for name in ("yunet", "scrfd", "retinaface", "yolo_face")}
    assert statuses == {"yunet": "verified", "scrfd": "present", "retinaface": "corrupt", "yolo_face": "missing"}
    assert store.require(get_model("scrfd")) == tmp_path / "scrfd_2.5g.onnx"
    with pytest.raises(ModelError, match="corrupt.*steadyswap models download retinaface"):
        store.require(get_model("retinaface"))
    with pytest.raises(ModelError, match="missing"):
        store.require(get_model("yolo_face"))


def test_crc_is_cached_by_size_and_mtime(tmp_path, monkeypatch):
    path = _write_model(tmp_path, "yunet", b"first content")
    calls = []
    real = store_module.file_crc32
    monkeypatch.setattr(store_module, "file_crc32", lambda p: calls.append(p) or real(p))
    assert ModelStore(tmp_path).status(get_model("yunet")) == "verified"
    assert ModelStore(tmp_path).status(get_model("yunet")) == "verified"  # a new run reads the JSON cache
    assert len(calls) == 1
    path.write_bytes(b"other content!")  # same size would still differ in mtime
    os.utime(path, ns=(1, 1))
    assert ModelStore(tmp_path).status(get_model("yunet")) == "corrupt"
    assert len(calls) == 2


def test_read_only_folder_still_verifies(tmp_path, monkeypatch):
    _write_model(tmp_path, "yunet", b"abc")
    monkeypatch.setattr(Path, "write_text", lambda *a, **k: (_ for _ in ()).throw(PermissionError("ro")))
    assert ModelStore(tmp_path).status(get_model("yunet")) == "verified"


# --- alignment geometry ---------------------------------------------------------------------------------


def test_similarity_fit_recovers_a_known_transform_and_agrees_with_opencv():
    rng = np.random.default_rng(0)
    src = align.template_points("arcface_128", 128)
    angle, scale, shift = 0.3, 2.5, np.array([40.0, -7.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rotation.T + shift
    np.testing.assert_allclose(align.similarity_matrix(src, dst), np.hstack([rotation, shift[:, None]]), atol=1e-9)
    noisy = dst + rng.normal(0, 1.5, dst.shape)
    ours = align.similarity_matrix(noisy, src)
    opencv = cv2.estimateAffinePartial2D(noisy, src, method=cv2.RANSAC, ransacReprojThreshold=100)[0]
    np.testing.assert_allclose(ours, opencv, atol=2e-3)


def test_similarity_never_reflects():
    src = align.template_points("ffhq_512", 512)
    mirrored = src * [-1, 1]
    matrix = align.similarity_matrix(src, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_warp_face_returns_crop_to_frame_matrix():
    frame = np.random.default_rng(1).integers(0, 255, (300, 400, 3), np.uint8)
    similarity = np.array([[1.5, 0.2, 100], [-0.2, 1.5, 60.0]])
    kps = align.transform_points(align.template_points("arcface_112_v2", 112), similarity)
    crop, matrix = align.warp_face(frame, kps, "arcface_112_v2", 112)
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    np.testing.assert_allclose(align.transform_points(align.template_points("arcface_112_v2", 112), matrix), kps,
                               atol=1e-6)
    np.testing.assert_allclose(align.invert_affine(align.invert_affine(matrix)), matrix, atol=1e-9)
    with pytest.raises(UsageError, match="unknown alignment template"):
        align.warp_face(frame, kps, "nope", 112)


def test_box_mask_feathers_and_pads():
    mask = box_mask(128, blur=0.3, padding=(10, 0, 0, 0))
    assert mask.dtype == np.float32 and mask.shape == (128, 128)
    assert mask[64, 64] == pytest.approx(1.0, abs=1e-3) and mask[0, 64] < 0.05 and mask[64, 0] < 0.2
    assert mask[12, 64] < mask[64, 64] and 0 < mask[64, 3] < mask[64, 30]
    hard = box_mask(128, blur=0.0)
    assert hard[0].max() == 0 and hard[1:-1, 1:-1].min() == 1


# --- runtime --------------------------------------------------------------------------------------------


def test_unavailable_provider_is_a_model_error():
    assert "cpu" in runtime.available_providers()
    assert runtime.session_providers(["cpu"]) == ["CPUExecutionProvider"]
    missing = [p for p in ("cuda", "tensorrt") if p not in runtime.available_providers()]
    if not missing:
        pytest.skip("this onnxruntime offers cuda and tensorrt")
    with pytest.raises(ModelError, match=f"'{missing[0]}' is not available.*available: cpu"):
        runtime.session_providers([missing[0]])
    with pytest.raises(ModelError, match="unknown execution provider"):
        runtime.session_providers(["rocm"])


def test_blob_normalises_and_flips_channels():
    image = np.array([[[255, 0, 51]]], np.uint8)[None]
    np.testing.assert_allclose(runtime.blob(image, (0.5,) * 3, (0.5,) * 3).ravel(), [1, -1, -0.6], atol=1e-6)
    np.testing.assert_allclose(runtime.blob(image, (0,) * 3, (1,) * 3, bgr=True).ravel(), [0.2, 0, 1], atol=1e-6)


def test_blob_equals_the_formula_bit_for_bit_and_places_images_on_a_black_canvas():
    """The lookup tables give exactly the float32 arithmetic of ``(pixel / 255 - mean) / std`` (so both paths and
    earlier runs see the same inputs); with ``size`` the images sit top-left on a canvas of level 0."""
    images = np.random.default_rng(5).integers(0, 256, (2, 37, 23, 3), np.uint8)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    flipped = images[..., ::-1].astype(np.float32) / np.float32(255.0)
    expected = ((flipped - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(runtime.blob(images, mean, std, bgr=True), expected)
    canvas = runtime.blob(images, mean, std, bgr=True, size=(64, 32))
    np.testing.assert_array_equal(canvas[:, :, :37, :23], expected)
    black = (-np.asarray(mean, np.float32) / np.asarray(std, np.float32))[None, :, None, None]
    np.testing.assert_array_equal(canvas[:, :, 37:], np.broadcast_to(black, (2, 3, 27, 32)))
    np.testing.assert_array_equal(canvas[:, :, :37, 23:], np.broadcast_to(black, (2, 3, 37, 9)))


# --- factories ------------------------------------------------------------------------------------------


def test_factories_return_none_for_embedded_defaults(tmp_path):
    config = RunConfig(models_dir=str(tmp_path))
    assert assembly.build_analyzer(config) is None
    assert assembly.build_swapper(config) is None
    assert assembly.build_recognizer(config) is None
    with pytest.raises(UsageError, match="needs an ONNX --face-detector-model"):
        assembly.build_analyzer(RunConfig(face_landmarker_model="2dfan4", models_dir=str(tmp_path)))


def test_assembly_names_every_missing_file(tmp_path):
    config = RunConfig(face_swapper_model="simswap_256", models_dir=str(tmp_path))
    with pytest.raises(ModelError, match=r"simswap_256\.onnx \(missing\).*crossface_simswap\.onnx.*"
                                         r"arcface_w600k_r50\.onnx.*models download simswap_256 crossface_simswap"):
        assembly.build_swapper(config)


def test_pixel_boost_parsing():
    assert assembly.parse_pixel_boost(None) is None
    assert assembly.parse_pixel_boost("512") == 512
    with pytest.raises(UsageError, match="square size"):
        assembly.parse_pixel_boost("512x256")


# --- CLI ------------------------------------------------------------------------------------------------


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="steadyswap")
    add_models_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_models_list(tmp_path):
    _write_model(tmp_path, "yunet", b"yunet")
    out = io.StringIO()
    assert run_models(_parse(["models", "list", "--models-dir", str(tmp_path), "--task", "detector"]), out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == f"models folder: {tmp_path}"
    assert re.match(r"yunet\s+detector\s+verified\s+MIT\s+yunet_2023_mar\.onnx", lines[-1])
    assert re.match(r"scrfd\s+detector\s+missing", lines[3])
    out = io.StringIO()
    assert run_models(_parse(["models", "list", "--models-dir", str(tmp_path), "--task", "occluder"]), out) == 0
    assert [line.split()[:3] for line in out.getvalue().splitlines()[2:]] == [
        [name, "occluder", "missing"] for name in ("xseg_1", "xseg_2", "xseg_3")]


def test_models_download_unknown_name_is_usage_error(tmp_path):
    err = io.StringIO()
    args = _parse(["models", "download", "nope", "--models-dir", str(tmp_path)])
    assert run_models(args, io.StringIO(), err) == 2 and "unknown model 'nope'" in err.getvalue()


def test_facefusion_installs_are_found_and_read_in_place(tmp_path, monkeypatch):
    """An existing FaceFusion install's models are used without copying when the user named no folder."""
    home, project = tmp_path / "home", tmp_path / "project"
    pinokio = home / "pinokio/api/facefusion-pinokio.git/facefusion/.assets/models"
    clone = home / "facefusion/.assets/models"
    for folder in (pinokio, clone, project):
        folder.mkdir(parents=True)
    assert store_module.facefusion_installs(project, home) == [clone, pinokio]
    (project / ".assets" / "models").mkdir(parents=True)  # run from inside a FaceFusion checkout: first
    assert store_module.facefusion_installs(project, home)[0] == project / ".assets" / "models"

    _write_model(pinokio, "yunet", b"yunet from pinokio")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(store_module.Path, "home", lambda: home)
    monkeypatch.setattr(store_module, "default_models_dir", lambda: tmp_path / "cache")
    store = store_module.open_store(None, {})
    assert store.root == tmp_path / "cache" and store.fallbacks == [clone, pinokio]
    assert store.require(get_model("yunet")) == pinokio / "yunet_2023_mar.onnx"
    assert store.status(get_model("yunet")) == "verified"
    assert store_module.open_store(tmp_path / "named", {}).fallbacks == []  # a named folder is used alone
    assert store_module.open_store(None, {"STEADYSWAP_MODELS_DIR": str(tmp_path)}).fallbacks == []
