"""Still frames stay still (blend/hold.py): a repeated target frame gives a repeated output face."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from steadyswap import RunConfig
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
