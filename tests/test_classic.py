"""The classic swapper on real faces: identity moves, expression follows the target, the rest is untouched."""

from __future__ import annotations

import numpy as np
import pytest

from steadyswap.analysis.mediapipe_mesh import MediaPipeAnalyzer
from steadyswap.analysis.mesh_topology import mouth_opening
from steadyswap.config import RunConfig
from steadyswap.engine.frame_swapper import FaceSwapper
from steadyswap.errors import NoFaceError
from tests.conftest import media_path
from tests.helpers import decode, photo


def test_image_swap_changes_the_face_and_nothing_far_from_it() -> None:
    target = photo(media_path("image/fr_biden_512.jpg"))
    with FaceSwapper([media_path("image/fr_obama_512.jpg")]) as swapper:
        result = swapper.swap_image(target)
    assert len(result.faces) == 1
    x0, y0, x1, y1 = result.faces.boxes[0].astype(int)
    face_change = np.abs(result.image[y0:y1, x0:x1].astype(int) - target[y0:y1, x0:x1]).mean()
    assert face_change > 8
    outside = np.ones(target.shape[:2], bool)
    outside[max(y0 - 2, 0):y1 + 2, max(x0 - 2, 0):x1 + 2] = False
    assert np.array_equal(result.image[outside], target[outside]), "pixels outside the face box are bit-exact"


def test_no_face_in_target_passes_the_photo_through() -> None:
    dog = photo(media_path("image/liveportrait_s33_dog_negative.jpg"))
    with FaceSwapper([media_path("image/fr_obama_512.jpg")]) as swapper:
        result = swapper.swap_image(dog)
    assert result.image is dog and len(result.faces) == 0


def test_source_without_a_face_is_refused() -> None:
    with pytest.raises(NoFaceError):
        FaceSwapper([media_path("image/liveportrait_s33_dog_negative.jpg")])


def test_many_mode_swaps_both_people() -> None:
    target = photo(media_path("image/fr_two_people_640.jpg"))
    with FaceSwapper([media_path("image/liveportrait_s1_512.jpg")], RunConfig(face_selector_mode="many")) as swapper:
        assert len(swapper.swap_image(target).faces) == 2
    with FaceSwapper([media_path("image/liveportrait_s1_512.jpg")], RunConfig(face_selector_mode="one")) as swapper:
        result = swapper.swap_image(target)
    assert len(result.faces) == 1


def test_talking_mouth_and_blinks_follow_the_target() -> None:
    """The mouth opening measured on the output tracks the target's over a talking clip."""
    frames = decode(media_path("video/liveportrait_d3_93f.mp4"))
    with FaceSwapper([media_path("image/fr_obama_512.jpg")], RunConfig(face_smoothing="off"), fps=30) as swapper:
        outputs = swapper.swap_frames(frames)
    changed = np.mean([np.abs(o.astype(int) - f).mean() for o, f in zip(outputs, frames)])
    assert changed > 2, "the face really was replaced"
    target_analyzer, output_analyzer = MediaPipeAnalyzer(max_faces=1), MediaPipeAnalyzer(max_faces=1)
    target_open, output_open = [], []
    for frame, output in zip(frames, outputs):
        t = target_analyzer.analyze([frame], video=True)[0]
        o = output_analyzer.analyze([output], video=True)[0]
        if len(t) and len(o):
            target_open.append(mouth_opening(t.landmarks)[0])
            output_open.append(mouth_opening(o.landmarks)[0])
    target_open, output_open = np.array(target_open), np.array(output_open)
    assert len(frames) == 93 and len(target_open) > 85  # measured: every frame analysed on both sides
    assert np.ptp(target_open) > 0.15, "the clip really talks"
    assert np.corrcoef(target_open, output_open)[0, 1] > 0.9
    assert np.abs(target_open - output_open).mean() < 0.05
