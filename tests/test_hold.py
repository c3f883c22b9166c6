"""Still frames stay still (blend/hold.py): a repeated target frame gives a repeated output face."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from steadyswap import RunConfig
from steadyswap.blend.hold import FOLLOW_LEVELS
from steadyswap.engine.frame_swapper import FaceSwapper
from steadyswap.quality.metrics import face_region
from tests.conftest import media_path
from tests.helpers import decode, repeated_frames_clip


def _changes(tmp_path: Path, hold: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Per frame, the mean absolute change from the previous frame in the face box: target's and output's."""
    clip, repeated = repeated_frames_clip(tmp_path / "held.mp4")
    frames = decode(clip)
    swapper = FaceSwapper([media_path("image/liveportrait_s12.jpg")], RunConfig(face_hold=hold))
    results = [r for frame in frames for r in swapper.push(frame)] + swapper.flush()
    target, output = [np.nan], [np.nan]
    for t in range(1, len(frames)):
        x0, y0, x1, y1 = face_region(results[t].faces, frames[t].shape)
        target.append(np.abs(frames[t][y0:y1, x0:x1].astype(np.int16) - frames[t - 1][y0:y1, x0:x1]).mean())
        output.append(np.abs(results[t].image[y0:y1, x0:x1].astype(np.int16)
                             - results[t - 1].image[y0:y1, x0:x1]).mean())
    return np.array(target), np.array(output), repeated


def test_repeated_target_frames_repeat_the_output_face(tmp_path: Path) -> None:
    target, output, repeated = _changes(tmp_path, "still")
    assert target[repeated].max() > 0  # codec noise: the repeats are not bit-exact
    assert target[repeated].max() < 0.5
    assert (output[repeated] <= target[repeated] + 1e-6).all()
    moving = [t for t in range(1, len(target)) if t not in repeated and t - 1 not in repeated]
    assert (output[moving] > 0.3 * target[moving]).all()  # elsewhere the face moves as the target does


def test_without_the_hold_the_swapped_face_drifts_over_repeats(tmp_path: Path) -> None:
    target, output, repeated = _changes(tmp_path, "none")
    assert output[repeated].mean() > 2 * target[repeated].mean()


def _ramp(frame: np.ndarray, levels: float) -> np.ndarray:
    """``frame`` brightened by 0 at its left edge to ``levels`` at its right (a slow change of the light)."""
    ramp = np.linspace(0, levels, frame.shape[1], dtype=np.float32)[None, :, None]
    return np.clip(frame + ramp + 0.5, 0, 255).astype(np.uint8)


def _followed(follow: float) -> tuple[np.ndarray, np.ndarray]:
    """Target and output change, in the face box, of a frame whose light changes by up to 2.5 levels."""
    first = decode(media_path("video/liveportrait_d3_93f.mp4"), 1)[0]
    frames = [first, first, _ramp(first, 2.5)]
    swapper = FaceSwapper([media_path("image/liveportrait_s12.jpg")], RunConfig())
    swapper.hold.follow = follow
    results = [r for frame in frames for r in swapper.push(frame)] + swapper.flush()
    x0, y0, x1, y1 = face_region(results[2].faces, first.shape)
    target = frames[2][y0:y1, x0:x1].astype(np.int16) - frames[1][y0:y1, x0:x1]
    return target, results[2].image[y0:y1, x0:x1].astype(np.int16) - results[1].image[y0:y1, x0:x1]


def test_a_small_change_of_the_target_face_changes_the_output_face_alike() -> None:
    """The light changes by 2.5 levels at most: the held patch follows it, so the output's face changes as the
    target's does (within the rounding of the crop and of the paste), where a new swap of the frame redraws the
    face by more."""
    target, output = _followed(FOLLOW_LEVELS)
    assert np.abs(output - target).max() <= 2 and (np.abs(output - target) > 1).mean() < 0.01
    target, output = _followed(0.0)
    assert np.abs(output - target).max() > 10 and (np.abs(output - target) > 1).mean() > 0.05
