"""Detection cadence (``--face-detector-interval``, ``tracking.cadence``): faces detected on keyframes and carried
between them, on the real YuNet and the committed clips, against detection on every frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from steadyswap.config import RunConfig
from steadyswap.engine.frame_swapper import FaceSwapper
from steadyswap.errors import UsageError
from steadyswap.io import VideoReader, probe
from steadyswap.tracking import cadence
from steadyswap.types import Faces
from tests.conftest import YUNET, media_path

SOURCE = "image/liveportrait_s1_512.jpg"
CLIPS = ["video/liveportrait_d3_93f.mp4", "video/tpsmm_driving_78f.mp4", "video/liveportrait_d11_61f.mp4",
         "video/fr_hamilton_180f.mp4"]
MEAN_ERROR, MAX_ERROR = 0.03, 0.2
"""Bounds on a carried face's five points against the detector's own on that frame, in eye distances: the mean
over a clip's faces and the worst face (measured: means 0.006-0.019, worst 0.155 on Hamilton's wide shots;
docs/benchmarks.md)."""


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    from tests import onnx_standins

    return onnx_standins.gpu_engine_models(tmp_path_factory.mktemp("cadence-models"), YUNET)


def face(x: float, score: float = 0.9) -> Faces:
    points = np.array([[[x + 2, 3], [x + 8, 3], [x + 5, 5], [x + 3, 8], [x + 7, 8]]], np.float32)
    return Faces(np.array([[x, 0, x + 10, 10]], np.float32), np.array([score], np.float32), points.copy(), points)


def test_faces_are_carried_only_between_agreeing_keyframes() -> None:
    assert cadence.pairs(face(0), face(1), 0.75) == [0]
    two = Faces(*(np.concatenate([a, b]) for a, b in zip(
        (face(0).boxes, face(0).scores, face(0).landmarks, face(0).kps),
        (face(50).boxes, face(50).scores, face(50).landmarks, face(50).kps))))
    assert cadence.pairs(two, two[[1, 0]], 0.75) == [1, 0]  # rows follow the faces, not their order
    assert cadence.pairs(face(0), two, 0.75) is None  # a face came
    assert cadence.pairs(face(0), face(0, score=0.6), 0.75) is None  # a weak detection is looked for every frame
    assert cadence.pairs(face(0), face(3), 0.75) is None  # moved half an eye distance: motion need not be straight
    between = cadence.carry(face(0), face(1), [0], 3)
    assert [float(f.kps[0, 0, 0]) for f in between] == [2.25, 2.5, 2.75]
    assert all(f.track_ids[0] == -1 for f in between)


def swap(clip: Path, models: Path, interval: int, **options) -> tuple[list, int, int]:
    """The results of a clip pushed frame by frame, the detector's calls and the clip's frame count."""
    config = RunConfig(face_detector_model="yunet", face_swapper_model="hyperswap_1a_256", models_dir=str(models),
                       face_landmarker_model="none", face_detector_interval=interval, hand_occluder="off",
                       face_selector_mode="many", **options)
    with VideoReader(clip) as reader:
        frames = list(reader)
    with FaceSwapper([media_path(SOURCE)], config, 25) as swapper:
        calls = []
        detect = swapper.analyzer.analyze
        swapper.analyzer.analyze = lambda images, video=False: calls.append(len(images)) or detect(images, video)
        results = [result for frame in frames for result in swapper.push(frame.image, frame.index)]
        results += swapper.flush()
    return results, len(calls), len(frames)


@pytest.mark.parametrize("clip", CLIPS)
def test_carried_faces_follow_the_detected_ones(clip: str, models: Path) -> None:
    path = media_path(clip)
    every, calls_every, count = swap(path, models, 1)
    carried, calls, _ = swap(path, models, 3)
    assert len(carried) == len(every) == calls_every == count  # every frame comes out, once, in order
    assert calls < 0.75 * count  # keyframes, cuts and the spans that disagreed
    errors = []
    for detected, kept in zip(every, carried, strict=True):
        assert kept.scene_cut == detected.scene_cut
        if detected.scene_cut:  # a cut is always a keyframe
            np.testing.assert_array_equal(kept.raw_faces.kps, detected.raw_faces.kps)
        confident = detected.raw_faces.scores >= cadence.confident(0.5)
        assert len(kept.raw_faces) >= confident.sum()  # faces found where faces are
        if len(kept.raw_faces) != len(detected.raw_faces):
            continue  # a weak detection between two keyframes without it (Hamilton: 3 frames, scores 0.55-0.69)
        for row in range(len(detected.raw_faces)):
            points = detected.raw_faces.kps[row]
            eyes = np.linalg.norm(points[0] - points[1])
            errors.append(np.linalg.norm(kept.raw_faces.kps - points, axis=-1).mean(axis=-1).min() / eyes)
    assert np.mean(errors) <= MEAN_ERROR and max(errors) <= MAX_ERROR


def test_a_file_run_keeps_every_frame(models: Path, tmp_path: Path) -> None:
    """A run whose last frames wait for a keyframe that never comes (93 frames, interval 5) writes them all."""
    from steadyswap.api import swap_file

    target = media_path("video/liveportrait_d3_93f.mp4")
    config = RunConfig(face_detector_model="yunet", face_swapper_model="hyperswap_1a_256", models_dir=str(models),
                       face_detector_interval=5, hand_occluder="off")
    result = swap_file([media_path(SOURCE)], target, tmp_path / "out.mp4", config)
    assert result.frames == probe(target).frame_count == probe(tmp_path / "out.mp4").frame_count == 93


def test_the_interval_is_refused_where_it_cannot_work() -> None:
    from steadyswap.engine.live import LiveSwapper

    assert RunConfig().detection_interval == 1
    assert RunConfig(face_detector_model="yunet").detection_interval == 3
    with pytest.raises(UsageError, match="mesh follows its faces itself"):
        RunConfig(face_detector_interval=2).validate()
    with pytest.raises(UsageError, match="--face-detector-interval"):
        RunConfig(face_detector_model="yunet", face_detector_interval=0).validate()
    with pytest.raises(UsageError, match="live input has no later keyframe"):
        LiveSwapper([media_path(SOURCE)], RunConfig(face_detector_model="yunet", face_detector_interval=2))


def test_the_flag_on_the_command_line(tmp_path: Path) -> None:
    from steadyswap.cli.main import main

    args = ["run", "-s", str(media_path(SOURCE)), "-t", str(media_path("video/liveportrait_d3_93f.mp4")), "-o",
            str(tmp_path / "out.mp4")]
    assert main([*args, "--face-detector-interval", "zero"]) == 2
    assert main([*args, "--face-detector-interval", "2"]) == 2  # beside the embedded mesh
    assert not (tmp_path / "out.mp4").exists()


def test_segments_decode_past_their_end_up_to_the_next_keyframe() -> None:
    """A segment's last frames are carried from the same two keyframes as in a single run: it decodes the
    smoother's lookahead and then up to the cadence's next keyframe."""
    from steadyswap.engine.segment_runner import lookahead_frames

    onnx = RunConfig(face_swapper_model="hyperswap_1a_256", face_detector_model="yunet")
    assert onnx.detection_interval == 3 and onnx.smoothing_lookahead == 10
    assert lookahead_frames(onnx) == 10 + 2
    assert lookahead_frames(RunConfig()) == 10  # the mesh detects every frame
    assert lookahead_frames(RunConfig(face_detector_model="yunet", face_smoothing="off",
                                      face_swapper_model="hyperswap_1a_256")) == 2
