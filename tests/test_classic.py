"""The classic swapper on real faces: identity moves, expression follows the target, the rest is untouched."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from steadyswap.analysis.mediapipe_mesh import MediaPipeAnalyzer
from steadyswap.analysis import mesh_topology
from steadyswap.analysis.mesh_topology import mouth_opening
from steadyswap.config import RunConfig
from steadyswap.engine.frame_swapper import FaceSwapper
from steadyswap.errors import NoFaceError, UsageError
from tests.conftest import media_path
from tests.helpers import decode, photo


def test_image_swap_changes_the_face_and_nothing_far_from_it() -> None:
    target = photo(media_path("image/fr_biden_512.jpg"))
    with FaceSwapper([media_path("image/fr_obama_512.jpg")]) as swapper:
        result = swapper.swap_image(target)
    assert len(result.faces) == 1
    x0, y0, x1, y1 = result.faces.boxes[0].astype(int)
    face_change = np.abs(result.image[y0:y1, x0:x1].astype(int) - target[y0:y1, x0:x1]).mean()
    assert face_change > 5  # the face's detail is the source's (its broad colour and light the target's: 6.9 levels)
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


def test_the_source_fringe_stays_out_and_the_forehead_share_is_honoured() -> None:
    """A source with a fringe down to the brows (liveportrait_s1) pasted onto a bare forehead: by default almost
    none of the forehead above the target's brows changes; asking for the whole forehead pastes more of it, but
    the fringe, unlike skin, stays out (the forehead's colour barely moves); other swappers refuse the option."""
    target = photo(media_path("image/fr_biden_512.jpg"))
    changed, change = {}, {}
    for share in (0.0, 1.0):
        with FaceSwapper([media_path("image/liveportrait_s1_512.jpg")], RunConfig(face_mask_forehead=share)) as swapper:
            result = swapper.swap_image(target)
        points = result.faces.landmarks[0]
        brows = points[mesh_topology.eyebrows()]
        rows = slice(int(points[mesh_topology.FOREHEAD_TOP, 1]), int(brows[:, 1].min()))
        columns = slice(int(brows[:, 0].min()), int(brows[:, 0].max()))
        difference = np.abs(result.image[rows, columns].astype(int) - target[rows, columns])
        changed[share], change[share] = int((difference.sum(axis=2) > 0).sum()), float(difference.mean())
    assert changed[0.0] == 0 and changed[1.0] > 200
    assert change[1.0] < 3, "the source's hair is not pasted over the target's forehead"
    with pytest.raises(UsageError, match="--face-mask-forehead"):
        RunConfig(face_swapper_model="inswapper_128", face_mask_forehead=0.5).validate()


def test_hair_over_the_source_cheeks_stays_out_and_the_inner_face_is_kept() -> None:
    """liveportrait_s1's hair reaches inside her face's outline below the eyes: near the outline there, what does
    not look like her skin is left out of what may be pasted (it showed as a dark streak on the far cheek of a
    turned target), while the inner face below the eyes is kept whole, shadows and all."""
    from steadyswap.blend.skin import SIDE_BAND, source_keep
    from tests.helpers import still_analyzer

    image = photo(media_path("image/liveportrait_s1_512.jpg"))
    points = still_analyzer().analyze([image])[0].landmarks[0]
    oval = mesh_topology.face_oval()
    keep = source_keep(image, points, oval)
    hull = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(hull, [np.round(points[oval]).astype(np.int32)], 1)
    height = float(np.hypot(*(points[mesh_topology.FOREHEAD_TOP] - points[mesh_topology.CHIN])))
    inset = cv2.distanceTransform(hull, cv2.DIST_L2, 5)
    eyes = np.concatenate(mesh_topology.features()[:2])
    below = np.zeros_like(hull, bool)
    below[int(points[eyes, 1].max() + 0.05 * height):, :] = True
    band = below & (inset > 0) & (inset < SIDE_BAND * height)
    inner = below & (inset > (SIDE_BAND + 0.06) * height)  # beyond the band and its softening
    assert (keep[band] < 128).mean() > 0.1
    assert (keep[inner] == 255).all(), "the inner face below the eyes is kept"
    hair = band & (image.mean(axis=2) < 90)  # dark brown strands inside the outline; her skin is far lighter
    assert hair.sum() > 50 and (keep[hair] < 128).all(), "the hair over the cheeks stays out"
