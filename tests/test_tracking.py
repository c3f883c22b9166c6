"""Tracker ids and landmark smoothing on synthetic trajectories with known answers."""

from __future__ import annotations

import numpy as np

from steadyswap.tracking.smoothing import LandmarkSmoother, ema_step, one_euro_step, smoothing_factor
from steadyswap.tracking.tracker import FaceTracker, box_iou, match
from steadyswap.types import Faces


def make_faces(centres: list[tuple[float, float]], size: float = 100.0) -> Faces:
    rows = []
    for cx, cy in centres:
        offsets = np.array([[-0.2, -0.1], [0.2, -0.1], [0, 0.05], [-0.15, 0.25], [0.15, 0.25]]) * size
        rows.append(offsets + (cx, cy))
    kps = np.array(rows, np.float32).reshape(-1, 5, 2)
    boxes = np.array([[cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2] for cx, cy in centres], np.float32)
    return Faces(boxes.reshape(-1, 4), np.ones(len(centres), np.float32), kps.copy(), kps)


def test_iou_and_greedy_match() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10]], np.float32)
    assert np.allclose(box_iou(a, b), [[50 / 150, 1.0]])
    assert match(np.array([[0.9, 0.1], [0.2, 0.8]]), 1.0) == [(0, 1), (1, 0)]
    assert match(np.array([[2.0]]), 1.0) == []


def test_two_people_keep_their_ids_and_survive_missed_frames() -> None:
    tracker = FaceTracker(max_missed=3)
    first = tracker.update(make_faces([(100, 100), (400, 100)]))
    a, b = first.track_ids
    moved = tracker.update(make_faces([(410, 105), (108, 98)]))
    assert list(moved.track_ids) == [b, a]
    tracker.update(make_faces([(112, 100)]))
    tracker.update(make_faces([(114, 100)]))
    back = tracker.update(make_faces([(116, 100), (415, 104)]))
    assert list(back.track_ids) == [a, b], "a face missed for two frames keeps its track"
    tracker.reset()
    fresh = tracker.update(make_faces([(116, 100)]))
    assert fresh.track_ids[0] not in (a, b)
    tracker.reset(renumber=True)  # a new video: numbered as by a new tracker
    assert list(tracker.update(make_faces([(400, 100), (100, 100)])).track_ids) == list(first.track_ids)


def test_track_dies_after_max_missed() -> None:
    tracker = FaceTracker(max_missed=1)
    a = tracker.update(make_faces([(100, 100)])).track_ids[0]
    tracker.update(Faces.empty())
    tracker.update(Faces.empty())
    assert tracker.update(make_faces([(100, 100)])).track_ids[0] != a


def test_one_euro_removes_jitter_at_rest_and_follows_motion() -> None:
    rng = np.random.default_rng(1)
    fps, n = 30.0, 240
    still = 50 + rng.normal(0, 1.0, n)
    state, out = None, []
    for x in still:
        state = one_euro_step(state, np.array([x]), 1 / fps, min_cutoff=1.0, beta=0.05, d_cutoff=1.0, scale=1.0)
        out.append(state.value[0])
    assert np.std(np.diff(out[30:])) < 0.3 * np.std(np.diff(still[30:]))
    ramp = np.arange(n) * 20.0
    state, out = None, []
    for x in ramp:
        state = one_euro_step(state, np.array([x]), 1 / fps, min_cutoff=1.0, beta=0.05, d_cutoff=1.0, scale=1.0)
        out.append(state.value[0])
    lag_frames = (ramp[-1] - out[-1]) / 20.0
    assert lag_frames < 1.0, "fast motion raises the cutoff: under a frame of lag"


def test_ema_is_the_common_75_25_blend() -> None:
    assert np.allclose(ema_step(np.array([4.0]), np.array([8.0]), 0.25), [5.0])
    assert np.allclose(ema_step(None, np.array([8.0]), 0.25), [8.0])
    assert 0 < smoothing_factor(1.0, 1 / 30) < 1


def test_smoother_keeps_state_per_track() -> None:
    smoother = LandmarkSmoother("ema", alpha=0.5)
    faces = make_faces([(100, 100), (400, 100)]).with_(track_ids=np.array([0, 1]))
    smoother.update(faces)
    shifted = make_faces([(110, 100), (400, 100)]).with_(track_ids=np.array([0, 1]))
    out = smoother.update(shifted)
    assert np.allclose(out.landmarks[0] - faces.landmarks[0], [5, 0], atol=1e-4)
    assert np.allclose(out.landmarks[1], faces.landmarks[1], atol=1e-4), "track 1 did not move and is not pulled"
    assert np.allclose(LandmarkSmoother("off").update(shifted).landmarks, shifted.landmarks)


def test_zero_phase_one_euro_has_no_lag_on_a_ramp_and_removes_noise() -> None:
    from steadyswap.tracking.smoothing import zero_phase_one_euro

    ramp = np.arange(11, dtype=np.float64)[:, None] * 7.0
    assert np.allclose(zero_phase_one_euro(ramp, 1 / 30, 1.0, 2.0), ramp[5]), "symmetric: no lag"
    rng = np.random.default_rng(2)
    noisy = 50 + rng.normal(0, 1.0, (11, 200))
    assert np.std(zero_phase_one_euro(noisy, 1 / 30, 1.0, 2.0, scale=200)) < 0.5 * np.std(noisy[5])


def test_lookahead_smoother_waits_then_flushes_every_frame_in_order() -> None:
    smoother = LandmarkSmoother("one-euro", fps=30, lookahead=3)
    out = []
    for step in range(8):
        faces = make_faces([(100 + 5 * step, 100)]).with_(track_ids=np.array([0]))
        smoother.push(faces)
        if (done := smoother.pop()) is not None:
            out.append(done)
    assert len(out) == 5, "three frames wait for their future"
    while (done := smoother.pop(final=True)) is not None:
        out.append(done)
    assert len(out) == 8
    centres = [f.kps[0].mean(axis=0)[0] for f in out]
    assert np.allclose(np.diff(centres[1:-1]), 5, atol=1e-3), "steady motion passes without lag"


def test_lookahead_does_not_mix_tracks() -> None:
    smoother = LandmarkSmoother("one-euro", fps=30, lookahead=2)
    frames = [make_faces([(100, 100)]).with_(track_ids=np.array([0]))] * 3 + \
             [make_faces([(400, 300)]).with_(track_ids=np.array([1]))] * 3
    out = []
    for faces in frames:
        smoother.push(faces)
        out += [d for d in [smoother.pop()] if d is not None]
    while (done := smoother.pop(final=True)) is not None:
        out.append(done)
    assert np.allclose(out[2].kps, frames[2].kps) and np.allclose(out[3].kps, frames[3].kps)
