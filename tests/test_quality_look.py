"""The monitor's look measures (quality/look.py) on real frames: each flags a real defect of a swap and
stays at its ideal on a plain re-encode of the target."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from steadyswap import RunConfig
from steadyswap.engine.frame_swapper import FaceSwapper
from steadyswap.quality import QualityMonitor
from steadyswap.types import Faces
from tests.conftest import media_path
from tests.helpers import decode, repeated_frames_clip

UNBLENDED = RunConfig(face_mask_blur=0.0, color_strength=0.0, face_degrade="none", face_hold="none")
"""A pasted patch: hard mask edge, the source's own colour, its own sharpness, every frame swapped anew."""


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    """24 frames of a talking head with frame 10 held for 8 more frames (encoded repeats)."""
    path, _ = repeated_frames_clip(tmp_path_factory.mktemp("look") / "held.mp4")
    return decode(path)


def _swap(frames: list[np.ndarray], config: RunConfig) -> tuple[list[np.ndarray], list[Faces]]:
    swapper = FaceSwapper([media_path("image/liveportrait_s12.jpg")], config)
    results = [r for frame in frames for r in swapper.push(frame)] + swapper.flush()
    return [r.image for r in results], [r.faces for r in results]


def _summary(targets: list[np.ndarray], outputs: list[np.ndarray], faces: list[Faces]) -> dict:
    monitor = QualityMonitor()
    for target, output, found in zip(targets, outputs, faces, strict=True):
        monitor.update(target, output, found)
    return monitor.summary()


def _reencode(frames: list[np.ndarray], path: Path) -> list[np.ndarray]:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25, options={"crf": "18"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return decode(path)


def test_a_plain_reencode_scores_the_ideal(clip: list[np.ndarray], tmp_path: Path) -> None:
    _, faces = _swap(clip, RunConfig())
    summary = _summary(clip, _reencode(clip, tmp_path / "again.mp4"), faces)
    assert summary["colour_contrast"]["count"] == len(clip)
    assert summary["colour_contrast"]["max"] < 1.0
    assert 0.95 < summary["seam_ratio"]["min"] and summary["seam_ratio"]["max"] < 1.05
    assert summary["still_motion_tgt"]["count"] == 8  # the held frames, and only those
    assert abs(summary["still_motion_added"]) < 0.05
    assert 0.97 < summary["sharpness_face"]["mean"] < 1.03, summary["sharpness_face"]


def test_an_unblended_patch_is_flagged(clip: list[np.ndarray]) -> None:
    outputs, faces = _swap(clip, UNBLENDED)
    summary = _summary(clip, outputs, faces)
    # the source's own skin against the target's neck (the seamless paste still carries the target's colour in
    # from the soft edges on skin that remain: the eye and mouth holes, the source's hair cut above the eyes and
    # what does not look like its skin along the outline, which ``source_keep`` leaves out)
    assert summary["colour_contrast"]["mean"] > 5
    assert summary["seam_ratio"]["mean"] > 1.25  # the hard edge (its colour step lowered by that same paste);
    # a plain re-encode stays within 0.95-1.05 (above)
    assert summary["still_motion_added"] > 0.3  # the face moves on the held frames


def test_the_default_swap_holds_still_frames(clip: list[np.ndarray]) -> None:
    outputs, faces = _swap(clip, RunConfig())
    summary = _summary(clip, outputs, faces)
    assert summary["still_motion_added"] < 0.05
