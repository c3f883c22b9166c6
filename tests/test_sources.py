"""Several source photos make one identity; a photo without a face is left out with a warning.

Neural swappers run the stand-in models of ``gpu_models_dir`` (hyperswap_1a_256: output = target + the
first three source values; an ArcFace stand-in whose embedding follows the crop's colour) with the real
YuNet on real photos; the classic swapper runs on real photos and clips.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from steadyswap.engine.frame_swapper import FaceSwapper
from steadyswap.errors import NoFaceError
from steadyswap.swap.sources import average_embeddings
from tests.conftest import gpu_engine_config, media_path
from tests.helpers import decode, photo

FIRST, SECOND = "image/liveportrait_s1_512.jpg", "image/liveportrait_s42.jpg"
NO_FACE = "image/liveportrait_s33_dog_negative.jpg"


def _swapped(sources: list[Path], config, target: np.ndarray) -> np.ndarray:
    with FaceSwapper(sources, config) as swapper:
        return swapper.swap_image(target).image


def test_neural_swappers_use_the_mean_of_the_unit_embeddings(gpu_models_dir: Path) -> None:
    config = gpu_engine_config(gpu_models_dir)
    paths = [media_path(FIRST), media_path(SECOND)]
    with FaceSwapper(paths, config) as both, FaceSwapper(paths[:1], config) as one, \
            FaceSwapper(paths[1:], config) as other:
        vectors = np.stack([one.source.embedding, other.source.embedding])
        # hyperswap takes FaceFusion's mean of unit vectors, not renormalised
        np.testing.assert_allclose(both.source.data["source"], average_embeddings(vectors)[1], atol=1e-6)
        np.testing.assert_allclose(both.source.embedding, vectors.mean(0), rtol=1e-5)
        assert np.linalg.norm(both.source.data["source"]) < 0.999  # two different identities
    target = photo(media_path("image/fr_obama_512.jpg"))
    outputs = [_swapped(p, config, target) for p in (paths, paths[:1], paths[1:])]
    assert not np.array_equal(outputs[0], outputs[1]) and not np.array_equal(outputs[0], outputs[2])
    assert (outputs[0] != target).any()


def test_a_source_without_a_face_is_named_in_a_warning_and_left_out(caplog: pytest.LogCaptureFixture) -> None:
    target = decode(media_path("video/liveportrait_d3_93f.mp4"), limit=1)[0]
    dog = media_path(NO_FACE)
    with caplog.at_level(logging.WARNING, logger="steadyswap"):
        got = _swapped([media_path(FIRST), dog], None, target)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"source {dog}: no face found; using the other 1 source photo(s)"]
    np.testing.assert_array_equal(got, _swapped([media_path(FIRST)], None, target))  # swapped, with the face found


def test_no_face_in_any_source_names_them() -> None:
    dog = media_path(NO_FACE)
    with pytest.raises(NoFaceError, match=f"no face found in the source image\\(s\\): {dog}, source photo 2"):
        FaceSwapper([dog, photo(dog)])


def test_classic_merges_every_photo_into_one_texture() -> None:
    """Two people's photos give a face unlike either alone; outside the face, the merged source is the most
    frontal photo unchanged."""
    frames = decode(media_path("video/liveportrait_d3_93f.mp4"), limit=4)
    first, second = photo(media_path(FIRST)), photo(media_path(SECOND))
    runs, prepared = {}, {}
    for name, sources in (("both", [first, second]), ("first", [first]), ("second", [second])):
        with FaceSwapper(sources) as swapper:
            runs[name] = np.stack([swapper.swap_frame(frame) for frame in frames]).astype(np.int16)
            prepared[name] = swapper.source
    changed = (runs["first"] != np.stack(frames)).any(axis=3)
    assert changed.mean() > 0.02  # the face was swapped
    for alone in ("first", "second"):
        assert np.abs(runs["both"] - runs[alone])[changed].mean() > 2  # a visible difference on the face
    source = prepared["both"]
    assert source is not None
    base = next(i for i, image in enumerate((first, second)) if image.shape == source.image.shape)
    points = source.data["pyramid"][0][1]
    outside = np.ones(source.image.shape[:2], bool)
    outside[int(points[:, 1].min()) - 2:int(points[:, 1].max()) + 3, int(points[:, 0].min()) - 2:
            int(points[:, 0].max()) + 3] = False
    np.testing.assert_array_equal(source.image[outside], (first, second)[base][outside])
    assert (source.image != (first, second)[base]).any()


def test_head_pose_reads_the_turn_of_the_head() -> None:
    """Frames of one clip where the head faces the camera and turns to the image's left; the turned frame
    mirrored turns the head to the image's right."""
    from steadyswap.analysis import mesh_topology
    from tests.helpers import still_analyzer

    frames = decode(media_path("video/liveportrait_d3_93f.mp4"), limit=22)
    found = still_analyzer().analyze([frames[0], frames[21], np.ascontiguousarray(frames[21][:, ::-1])], video=False)
    yaw = mesh_topology.head_pose(np.stack([f.landmarks[0] for f in found]))[:, 0]
    assert abs(yaw[0]) < 5 and yaw[1] < -15 and yaw[2] > 15


def test_gpu_engine_builds_the_source_as_the_cpu_path(gpu_models_dir: Path, torch_device: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """Parity: the same photos give the same source vector and embedding on both paths, and the engine warns
    once (not once per segment) about a photo without a face."""
    pytest.importorskip("torch")
    from steadyswap.engine.gpu.engine import GpuEngine, GpuOptions

    config = gpu_engine_config(gpu_models_dir)
    paths = [media_path(FIRST), media_path(NO_FACE), media_path(SECOND)]
    with caplog.at_level(logging.WARNING, logger="steadyswap"):
        with GpuEngine(paths, config, GpuOptions(device=torch_device, half=False)) as engine:
            assert engine.models.swapper is not None and engine.models.detector is not None
            used = engine.sources
            gpu = engine.models.swapper.prepare_source(used, engine.models.detector.analyze(used))
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"source {paths[1]}: no face found; using the other 2 source photo(s)"]
    assert len(used) == 2
    with FaceSwapper([paths[0], paths[2]], config) as cpu:
        assert cpu.source is not None
        np.testing.assert_allclose(gpu.data["source"].cpu().numpy(), cpu.source.data["source"], atol=1e-4)  # TF32 on CUDA
        # raw embeddings differ by the crops' interpolation (torch vs OpenCV), about 1e-4 here
        np.testing.assert_allclose(gpu.embedding, cpu.source.embedding, atol=1e-3)
