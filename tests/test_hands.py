"""The hand occluder: a hand in front of the target face stays the target's, on the CPU path and the GPU engine.

The clip (tests/data/video/hand_over_face_40f.mp4, made by scripts/make_test_data.py) is a real hand cut out of
LivePortrait's s20 clip moving over the face of liveportrait_d3; its ``_hands.npz`` holds each frame's hand pixels.
The checks start where the occluder first finds the hand (``FOUND_FROM``).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from steadyswap.analysis.hands import IDLE_STRIDE
from steadyswap.config import RunConfig
from steadyswap.engine.frame_swapper import FaceSwapper
from tests.conftest import YUNET, media_path
from tests.helpers import decode, photo

pytest.importorskip("mediapipe", reason="the hand occluder and the classic swapper need MediaPipe")

CLIP = "video/hand_over_face_40f.mp4"
FOUND_FROM = 3
"""The first frame where the clip's hand is found: frame 0 is searched in vain, 1 and 2 are not searched
(``IDLE_STRIDE``)."""


def _source() -> np.ndarray:
    return photo(media_path("image/liveportrait_s1_512.jpg"))


def _hands(frames: int | None = None) -> np.ndarray:
    """(n, H, W) bool: each frame's hand pixels, 2 px in from the hand's edge (the composite's soft edge)."""
    stored = np.load(media_path(CLIP.replace(".mp4", "_hands.npz")))
    hands = np.unpackbits(stored["hands"], axis=-1)[..., :int(stored["width"])][:frames]
    return np.stack([cv2.erode(hand, np.ones((5, 5), np.uint8)) > 0 for hand in hands])


def _kept(output: np.ndarray, target: np.ndarray, hands: np.ndarray, tolerance: int = 0) -> np.ndarray:
    """Per frame, the share of hand pixels that are the target's (within ``tolerance`` levels)."""
    same = (np.abs(output.astype(np.int16) - target).max(axis=3) <= tolerance)
    return np.array([same[k][hands[k]].mean() for k in range(len(hands))])


def _swap(frames: list[np.ndarray], occluder: str) -> np.ndarray:
    with FaceSwapper([_source()], RunConfig(hand_occluder=occluder)) as swapper:
        results = [r for frame in frames for r in swapper.push(frame)] + swapper.flush()
    return np.stack([r.image for r in results])


def test_a_hand_over_the_face_stays_the_targets_and_the_face_around_it_is_swapped() -> None:
    frames = decode(media_path(CLIP))
    target, hands = np.stack(frames).astype(np.int16), _hands()
    kept, covered = _swap(frames, "on"), _swap(frames, "off")
    assert len(kept) == len(covered) == 40
    assert _kept(kept, target, hands)[FOUND_FROM:].min() >= 0.99  # bit-exact: the masks are 0 there
    # off: the swapped face covers the hand (but where the source's pixels along the face's outline are not its
    # skin, source_keep leaves the target there, hand included: up to 0.21 on s1, whose hair reaches the cheeks)
    assert _kept(covered, target, hands)[10:].max() < 0.25
    near_hand = np.stack([cv2.dilate(h.astype(np.uint8), np.ones((61, 61), np.uint8)) > 0 for h in hands])
    swapped_face = (covered != target).any(axis=3) & ~near_hand  # what the swap changes away from the hand
    assert swapped_face[FOUND_FROM:].mean() > 0.05
    still = (kept != target).any(axis=3)[FOUND_FROM:][swapped_face[FOUND_FROM:]]
    # most of it still changed (the seamless paste brings some flat skin back to the target's exact values, and
    # the occluder keeps the hand out of the colour statistics, so the two runs' faces differ by a few levels)
    assert still.mean() > 0.9


def test_the_classic_swapper_on_the_device_keeps_the_hand(torch_device: str) -> None:
    """The GPU engine cuts the same hands out of its device masks (``GpuPatches.occlude``)."""
    pytest.importorskip("torch")
    from steadyswap.engine.gpu.engine import GpuEngine, GpuOptions

    frames = decode(media_path(CLIP), limit=12)
    target, hands = np.stack(frames).astype(np.int16), _hands(12)
    with GpuEngine([_source()], RunConfig(), GpuOptions(device=torch_device)) as engine:
        got = np.stack(engine.swap_frames(frames))
    assert _kept(got, target, hands)[FOUND_FROM:].min() >= 0.99
    assert (got != target).any(axis=3).mean() > 0.05  # the face is swapped


def test_onnx_runs_on_the_device_find_hands_on_a_small_copy(torch_device: str, tmp_path: Path) -> None:
    """With an ONNX detector the engine's streams see only thumbnails: hands are found on a device-made copy at
    the occluder's size. A stand-in swapper paints each face its own mean colour, so a covered hand is obvious.
    The engine decodes to RGB with its own conversion (a level off swscale's here and there), on which the palm
    detector misses the hand on frame 3 and finds it on the next search, frame 6."""
    pytest.importorskip("torch")
    from steadyswap.engine.gpu.engine import GpuEngine, GpuOptions
    from tests import onnx_standins

    models = tmp_path / "models"
    models.mkdir()
    onnx_standins.gpu_engine_models(models, YUNET)
    onnx_standins.swapper(models / "hyperswap_1a_256.onnx", 256, mode="tile_mean")
    target, hands = np.stack(decode(media_path(CLIP), limit=12)).astype(np.int16), _hands(12)
    shares = {}
    for occluder in ("on", "off"):
        config = RunConfig(face_swapper_model="hyperswap_1a_256", face_detector_model="yunet",
                           face_landmarker_model="none", models_dir=str(models), trim_frame_end=12,
                           output_video_quality=100, watermark=False, color_strength=0.0, hand_occluder=occluder)
        output = tmp_path / f"{occluder}.mp4"
        with GpuEngine([_source()], config, GpuOptions(device=torch_device, half=False, segments=1)) as engine:
            assert engine.run_video(media_path(CLIP), output).frames == 12
        shares[occluder] = _kept(np.stack(decode(output)), target, hands, tolerance=3)  # yuv420p round trip
    assert shares["on"][FOUND_FROM + IDLE_STRIDE:].min() >= 0.98
    assert shares["off"][10:].max() < 0.5
