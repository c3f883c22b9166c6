"""The embedded analyser on real photos and clips; scene cuts on real footage."""

from __future__ import annotations

import numpy as np
import pytest

from steadyswap.analysis.cuts import SceneCutDetector
from steadyswap.analysis.mesh_topology import five_points, mouth_opening, triangles
from tests.conftest import media_path, shared_cases
from tests.helpers import decode, photo, still_analyzer

PORTRAITS = ["image/fr_obama_512.jpg", "image/fr_biden_512.jpg", "image/liveportrait_s1_512.jpg",
             "image/liveportrait_s12.jpg", "image/liveportrait_s42.jpg",
             *shared_cases("image/fr_obama.jpg", "image/fr_biden.jpg", "image/fr_kit_harington_john1.jpeg",
                           "image/fr_rose_leslie_img2.jpg", "image/liveportrait_s1.jpg", "image/tpsmm_source.png")]
STEADY_CLIPS = ["video/liveportrait_d3_93f.mp4", "video/tpsmm_driving_78f.mp4", "video/liveportrait_d0_crf20.mp4",
                "video/liveportrait_d11_61f.mp4", "video/liveportrait_d19_60f.mp4",
                *shared_cases("video/liveportrait_d3.mp4", "video/liveportrait_d14.mp4", "video/tpsmm_driving.mp4")]
"""Talking heads without a cut; the shared cases run whole clips of up to 536 frames."""


@pytest.mark.parametrize("name", PORTRAITS)
def test_one_face_on_each_portrait(name: str) -> None:
    image = photo(media_path(name))
    faces = still_analyzer().analyze([image])[0]
    assert len(faces) == 1
    x0, y0, x1, y1 = faces.boxes[0]
    h, w = image.shape[:2]
    assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
    assert (x1 - x0) > 0.1 * w, "a portrait's face spans a good part of the picture"
    assert faces.landmarks.shape == (1, 478, 2)
    left, right = faces.kps[0, 0], faces.kps[0, 1]
    assert left[0] < right[0], "five points list the image-left eye first"


def test_two_people_and_no_dog() -> None:
    analyzer = still_analyzer()
    two = analyzer.analyze([photo(media_path("image/fr_two_people_640.jpg"))])[0]
    assert len(two) == 2
    dog = analyzer.analyze([photo(media_path("image/liveportrait_s33_dog_negative.jpg"))])[0]
    assert len(dog) == 0


def test_downscaled_analysis_keeps_landmarks_in_full_resolution() -> None:
    from steadyswap.analysis.mediapipe_mesh import MediaPipeAnalyzer

    image = photo(media_path("image/liveportrait_s1_512.jpg"))
    full = MediaPipeAnalyzer(analysis_size=2048).analyze([image])[0]
    small = MediaPipeAnalyzer(analysis_size=512).analyze([image])[0]
    eye_distance = np.linalg.norm(full.kps[0, 0] - full.kps[0, 1])
    error = np.linalg.norm(full.landmarks[0, :468] - small.landmarks[0, :468], axis=-1).mean()
    assert error < 0.05 * eye_distance


def test_mesh_topology() -> None:
    tri = triangles()
    assert 800 < len(tri) < 900 and tri.max() < 468
    points = np.random.default_rng(0).random((2, 478, 2)).astype(np.float32)
    assert five_points(points).shape == (2, 5, 2)
    assert mouth_opening(points).shape == (2,)


@pytest.mark.parametrize(("clip", "expected"), [
    ("video/fr_hamilton_180f.mp4", (20, 82)),
    *((clip, (20, 82, 211)) for clip in shared_cases("video/fr_short_hamilton_clip.mp4"))])
def test_cuts_fire_on_the_cuts_of_the_hamilton_clip(clip: str, expected: tuple[int, ...]) -> None:
    detector = SceneCutDetector()
    cuts = [i for i, frame in enumerate(decode(media_path(clip))) if detector.update(frame)]
    assert len(cuts) == len(expected)
    for cut, frame in zip(cuts, expected):
        assert abs(cut - frame) <= 1


@pytest.mark.parametrize("clip", STEADY_CLIPS)
def test_no_cuts_on_head_motion(clip: str) -> None:
    detector = SceneCutDetector()
    assert not any(detector.update(frame) for frame in decode(media_path(clip)))
