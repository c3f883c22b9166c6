"""Quality monitor: metrics against hand-computed values on synthetic frames, reports, one real clip."""

from __future__ import annotations

import csv
import itertools
import json
import math

import cv2
import numpy as np
import pytest

from steadyswap.errors import ShapeError
from steadyswap.io import read_image
from steadyswap.quality import (
    QualityMonitor,
    face_region,
    jitter,
    lag_frames,
    measure,
    moving_average,
    psnr,
    sharpness_ratio,
    summarize,
    td_fidelity,
    temporal_psnr,
    write_report,
)
from steadyswap.types import Faces
from tests.conftest import media_path

PEAK2 = 255.0**2


def make_faces(boxes: list[list[float]], landmarks: np.ndarray | None = None,
               track_ids: list[int] | None = None, iod: float = 50.0) -> Faces:
    """Faces with the given boxes; eyes ``iod`` pixels apart; landmarks default to the box corners."""
    boxes_array = np.array(boxes, np.float32).reshape(-1, 4)
    n = len(boxes_array)
    if landmarks is None:
        landmarks = boxes_array.reshape(n, 2, 2)
    kps = np.zeros((n, 5, 2), np.float32)
    kps[:, 1, 0] = iod
    ids = np.arange(n) if track_ids is None else np.array(track_ids)
    return Faces(boxes_array, np.ones(n, np.float32), np.asarray(landmarks, np.float32), kps, ids.astype(np.int64))


def textured(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 200, (h, w, 3), dtype=np.uint8)


# ---- psnr / temporal_psnr --------------------------------------------------------------------------------------


def test_psnr_constant_offset() -> None:
    a = textured()
    assert psnr(a, a + np.uint8(7)) == pytest.approx(10 * math.log10(PEAK2 / 49))
    assert psnr(a, a) == math.inf


def test_psnr_one_pixel_shift_of_ramp() -> None:
    # Columns 0, 10, ..., 200; rolled one pixel right, every column differs by 10 except column 0 (200).
    ramp = np.broadcast_to((np.arange(21) * 10).astype(np.uint8)[None, :, None], (5, 21, 3)).copy()
    shifted = np.roll(ramp, 1, axis=1)
    assert psnr(ramp, shifted) == pytest.approx(10 * math.log10(PEAK2 / ((20 * 10**2 + 200**2) / 21)))
    assert psnr(ramp, shifted, box=(1, 0, 21, 5)) == pytest.approx(10 * math.log10(PEAK2 / 100))
    assert math.isnan(psnr(ramp, shifted, box=(3, 3, 3, 5)))


def test_temporal_psnr_nan_at_start_and_cuts() -> None:
    base = textured()
    frames = [base, base + np.uint8(5), base + np.uint8(5), base]
    values = temporal_psnr(frames, cuts=[False, False, False, True])
    assert math.isnan(values[0]) and math.isnan(values[3])
    assert values[1] == pytest.approx(10 * math.log10(PEAK2 / 25))
    assert values[2] == math.inf


# ---- td_fidelity / sharpness / face_region ---------------------------------------------------------------------


def test_td_fidelity_identical_motion_is_inf() -> None:
    tgt_prev, tgt = textured(seed=1), textured(seed=2)
    assert td_fidelity(tgt_prev + np.uint8(20), tgt + np.uint8(20), tgt_prev, tgt) == math.inf


def test_td_fidelity_static_target_equals_output_tpsnr() -> None:
    tgt = textured()
    out_prev, out = tgt.copy(), tgt.copy()
    out[10:20, 10:20] += np.uint8(30)  # the output flickers, the target is still
    box = (5, 5, 30, 30)
    assert td_fidelity(out_prev, out, tgt, tgt, box) == pytest.approx(psnr(out_prev, out, box))
    assert td_fidelity(out_prev, out, tgt, tgt, box) == pytest.approx(10 * math.log10(PEAK2 / (100 * 900 / 625)))


def test_compression_noise_barely_counts_and_blur_does() -> None:
    """A soft real face saved as a JPEG reads as sharp as before (the plain 3×3 Laplacian read up to 1.46: the
    codec's fine noise), while a blur of 0.7 pixels reads clearly softer."""
    face = cv2.GaussianBlur(read_image(media_path("image/fr_obama_512.jpg")), (0, 0), 1.2)
    box = (130, 100, 380, 400)
    for quality in (90, 70, 50):
        _, data = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, quality])
        saved = np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_UNCHANGED))
        assert 0.98 <= sharpness_ratio(saved, face, box) <= 1.03, quality
    assert sharpness_ratio(cv2.GaussianBlur(face, (0, 0), 0.7), face, box) < 0.85


def test_blur_lowers_sharpness_ratio() -> None:
    target = textured(seed=3)
    blurred = cv2.GaussianBlur(target, (5, 5), 1.5)
    box = (8, 8, 56, 40)
    assert sharpness_ratio(target, target, box) == pytest.approx(1.0)
    assert sharpness_ratio(blurred, target, box) < 0.5
    assert math.isnan(sharpness_ratio(target, np.zeros_like(target), box))


def test_face_region_union_with_margin() -> None:
    faces = make_faces([[10, 20, 50, 60], [40, 30, 80, 70]])
    # Union (10, 20, 80, 70), 70×50 -> 7 and 5 pixels more on each side.
    assert face_region(faces, (100, 100, 3), 0.1) == (3, 15, 87, 75)
    assert face_region(make_faces([[0, 0, 10, 10]]), (100, 100, 3), 0.1) == (0, 0, 11, 11)
    assert face_region(Faces.empty(), (100, 100, 3)) is None
    assert face_region(make_faces([[120, 120, 150, 150]]), (100, 100, 3)) is None


# ---- jitter / lag / summarize ----------------------------------------------------------------------------------


def ramp_trajectory(frames: int = 40, k: int = 3) -> np.ndarray:
    t = np.arange(frames, dtype=np.float64)[:, None]
    return np.stack([100 + 2 * t + 10 * np.arange(k), 80 + 0 * t + 5 * np.arange(k)], axis=-1)


def test_jitter_of_alternating_noise_and_smooth_ramp() -> None:
    ramp = ramp_trajectory()
    iod = np.full(len(ramp), 50.0)
    assert np.nanmax(jitter(ramp, iod, window=7)) == pytest.approx(0.0, abs=1e-9)
    noisy = ramp.copy()
    noisy[..., 0] += (-1.0) ** np.arange(len(ramp))[:, None]
    # The 7-frame mean of ±1 alternating is ∓1/7, so the residual is 8/7 pixel.
    values = jitter(noisy, iod, window=7)
    assert np.isnan(values[:3]).all() and np.isnan(values[-3:]).all()
    np.testing.assert_allclose(values[3:-3], 8 / 7 / 50)
    np.testing.assert_allclose(jitter(noisy, iod, window=5)[2:-2], 4 / 5 / 50)
    assert np.isnan(jitter(noisy, np.zeros(len(ramp)), window=7)).all()


def test_moving_average_needs_odd_window() -> None:
    with pytest.raises(ValueError):
        moving_average(np.zeros((10, 2)), 4)
    assert np.isnan(moving_average(np.zeros((3, 2)), 5)).all()


def test_lag_of_delayed_trajectory() -> None:
    t = np.arange(200, dtype=np.float64)
    raw = np.stack([50 * np.sin(2 * np.pi * t / 40), 30 * np.cos(2 * np.pi * t / 27)], axis=1)
    delayed = raw[np.maximum(t.astype(int) - 2, 0)]
    assert lag_frames(raw, delayed) == pytest.approx(2.0, abs=0.15)
    assert lag_frames(raw, raw) == pytest.approx(0.0, abs=0.05)
    assert math.isnan(lag_frames(np.zeros((20, 2)), np.zeros((20, 2))))


def test_summarize_skips_nan_and_caps_inf() -> None:
    result = summarize([3.0, math.nan, 1.0, 2.0, math.inf], cap=10.0)
    assert result["mean"] == pytest.approx(4.0)
    assert result["std"] == pytest.approx(np.std([3, 1, 2, 10]))
    assert (result["min"], result["max"], result["argmin"], result["argmax"], result["count"]) == (1.0, 10.0, 2, 4, 4)
    assert result["p05"] == pytest.approx(1.15)  # linear between sorted 1 and 2 at 0.05 × 3
    empty = summarize([math.nan])
    assert empty["count"] == 0 and empty["argmin"] is None and math.isnan(empty["mean"])


# ---- QualityMonitor --------------------------------------------------------------------------------------------


CUT = 20


def synthetic_clip(frames: int = 36) -> tuple[list[np.ndarray], list[np.ndarray], list[Faces], list[bool]]:
    """A square face moving right on a textured still; the output flickers inside the face; a new shot at CUT."""
    rng = np.random.default_rng(7)
    shots = [textured(seed=10), textured(seed=11)]
    targets, outputs, faces, cuts = [], [], [], []
    trajectory = ramp_trajectory(frames, k=4) * 0.25
    trajectory[..., 0] += 0.5 * (-1.0) ** np.arange(frames)[:, None]  # landmark jitter
    for i in range(frames):
        target = shots[i >= CUT].copy()
        x = 8 + i % 16
        target[12:36, x:x + 24] = 180
        output = target.copy()
        output[16:32, x + 4:x + 20] = rng.integers(100, 140, dtype=np.uint8)  # a flickering swapped face
        box = [x, 12, x + 24, 36]
        targets.append(target)
        outputs.append(output)
        faces.append(make_faces([box], trajectory[i][None], [0], iod=20.0))
        cuts.append(i == CUT)
    return targets, outputs, faces, cuts


def test_monitor_matches_pure_functions_and_skips_cut() -> None:
    targets, outputs, faces, cuts = synthetic_clip()
    monitor = measure(targets, outputs, faces, cuts)
    stats = monitor.frame_stats
    assert [s.index for s in stats] == list(range(len(targets)))
    assert stats[CUT].scene_cut
    column = np.array([s.values["tpsnr_frame_out"] for s in stats])
    np.testing.assert_array_equal(column, temporal_psnr(outputs, cuts=cuts))
    for key in ("tpsnr_face_out", "tpsnr_face_tgt", "tpsnr_frame_tgt", "td_fidelity_face"):
        assert math.isnan(stats[0].values[key]) and math.isnan(stats[CUT].values[key])
    # Face region of frame 5: frame 4's box (12, 12, 36, 36) grown 2.4 px -> (9, 9, 39, 39), frame 5's
    # (13, 12, 37, 36) -> (10, 9, 40, 39); their union:
    box = (9, 9, 40, 39)
    assert stats[5].values["tpsnr_face_out"] == pytest.approx(psnr(outputs[4], outputs[5], box))
    assert stats[5].values["td_fidelity_face"] == pytest.approx(
        td_fidelity(outputs[4], outputs[5], targets[4], targets[5], box))
    summary = monitor.summary()
    assert summary["tpsnr_frame_tgt"]["count"] == len(targets) - 2
    # The cut frame would be the worst; it must not reach the aggregates.
    assert summary["tpsnr_frame_tgt"]["min"] == pytest.approx(np.nanmin(temporal_psnr(targets, cuts=cuts)))
    assert summary["tpsnr_frame_tgt"]["min"] > psnr(targets[CUT - 1], targets[CUT]) + 3
    assert summary["flicker_added_face"] > 0
    # Jitter restarts at the cut: 3 frames each side of it lack a full window.
    jit = np.array([s.values["jitter"] for s in stats])
    assert np.isnan(jit[CUT - 3:CUT + 3]).all() and np.isnan(jit[:3]).all() and np.isnan(jit[-3:]).all()
    np.testing.assert_allclose(jit[3:CUT - 3], 0.5 * 8 / 7 / 20)
    assert math.isnan(summary["lag_frames"]) and "jitter_raw" not in summary


def test_monitor_lag_and_raw_jitter() -> None:
    t = np.arange(62, dtype=np.float64)
    path = np.stack([100 + 40 * np.sin(2 * np.pi * t / 30), 100 + 20 * np.cos(2 * np.pi * t / 23)], axis=1)
    path = path[:, None, :] + np.array([[0.0, 0.0], [20.0, 0.0]])  # (T + 2, 2 landmarks, 2)
    raw, smoothed = path[2:], path[:-2]  # smoothed[t] = raw[t - 2]
    image = textured(200, 200)
    monitor, by_track = QualityMonitor(), QualityMonitor()
    for i in range(len(raw)):
        faces = make_faces([[60, 60, 160, 160]], smoothed[i][None], [3], iod=20.0)
        monitor.update(image, image, faces, raw_landmarks=raw[i][None])
        # The same raw landmarks as Faces, matched by track id among other faces.
        raw_faces = make_faces([[0, 0, 9, 9], [60, 60, 160, 160]], np.stack([raw[i] + 50, raw[i]]), [9, 3])
        by_track.update(image, image, faces, raw_landmarks=raw_faces)
    summary = monitor.summary()
    matched = by_track.summary()  # Faces stores float32, the array was float64
    assert matched["lag_frames"] == pytest.approx(summary["lag_frames"], rel=1e-5)
    assert matched["jitter_raw"]["mean"] == pytest.approx(summary["jitter_raw"]["mean"], rel=1e-5)
    per_frame = [s.values["jitter"] for s in monitor.frame_stats]
    # Faces stores float32 landmarks, hence the tolerance.
    np.testing.assert_allclose(per_frame, jitter(smoothed, np.full(len(smoothed), 20.0)), rtol=1e-5)
    assert summary["lag_frames"] == pytest.approx(2.0, abs=0.2)
    assert summary["jitter_raw"]["count"] == len(raw) - 6
    assert summary["td_fidelity_face"]["min"] == 100.0  # identical frames: inf, counted as the cap


def test_monitor_rejects_bad_shapes() -> None:
    monitor = QualityMonitor()
    image = textured()
    faces = make_faces([[0, 0, 10, 10]])
    with pytest.raises(ShapeError):
        monitor.update(image, image[:, :32], faces)
    with pytest.raises(ShapeError):
        monitor.update(image, image, faces, raw_landmarks=np.zeros((1, 5, 2)))
    with pytest.raises(ValueError):
        measure([image, image], [image], [faces, faces])


def test_reports_written_and_readable(tmp_path) -> None:
    targets, outputs, faces, cuts = synthetic_clip()
    monitor = measure(targets, outputs, faces, cuts)
    monitor.write_json(tmp_path / "q.json")
    monitor.write_csv(tmp_path / "q.csv")
    monitor.plot(tmp_path / "q.png")
    data = json.loads((tmp_path / "q.json").read_text())
    summary = data["summary"]
    assert {"frames", "scene_cuts", "settings", "tpsnr_face_out", "tpsnr_face_tgt", "tpsnr_frame_out",
            "tpsnr_frame_tgt", "td_fidelity_face", "sharpness_face", "jitter", "flicker_added_face",
            "flicker_added_frame", "lag_frames"} <= set(summary)
    assert set(summary["tpsnr_face_out"]) >= {"mean", "std", "min", "p05", "argmin"}
    assert summary["scene_cuts"] == [CUT] and len(data["frames"]) == len(targets)
    assert data["frames"][0]["tpsnr_frame_out"] is None
    with open(tmp_path / "q.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == len(targets) and rows[CUT]["scene_cut"] == "1"
    assert math.isnan(float(rows[CUT]["tpsnr_face_out"]))
    assert float(rows[5]["tpsnr_face_out"]) == pytest.approx(monitor.frame_stats[5].values["tpsnr_face_out"], rel=1e-5)
    png = (tmp_path / "q.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert write_report(monitor, tmp_path / "r.json") == monitor.text_summary()
    assert all((tmp_path / f"r.{ext}").stat().st_size > 0 for ext in ("json", "csv", "png"))
    text = monitor.text_summary()
    assert "tPSNR face output" in text and "Added flicker" in text
    assert len(text.splitlines()) <= 24 and max(map(len, text.splitlines())) <= 120


# ---- real media ------------------------------------------------------------------------------------------------


def test_real_clip_against_itself() -> None:
    av = pytest.importorskip("av")
    with av.open(str(media_path("video/liveportrait_d3_93f.mp4"))) as container:
        frames = [f.to_ndarray(format="rgb24") for f in itertools.islice(container.decode(video=0), 40)]
    assert len(frames) == 40
    h, w = frames[0].shape[:2]
    faces = [make_faces([[w / 4, h / 4, 3 * w / 4, 3 * h / 4]])] * len(frames)
    summary = measure(frames, frames, faces).summary()
    for region in ("face", "frame"):
        assert summary[f"tpsnr_{region}_out"] == summary[f"tpsnr_{region}_tgt"]
        assert summary[f"flicker_added_{region}"] == 0.0
    assert summary["td_fidelity_face"]["min"] == 100.0
    assert summary["sharpness_face"]["mean"] == pytest.approx(1.0)
    assert 15 < summary["tpsnr_frame_out"]["mean"] < 100
    blurred = [cv2.GaussianBlur(f, (7, 7), 2.0) for f in frames]
    worse = measure(frames, blurred, faces).summary()
    assert worse["sharpness_face"]["max"] < 0.8
    assert worse["td_fidelity_face"]["max"] < 100.0
