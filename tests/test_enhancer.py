"""The face enhancer stage: registry contracts, canvas geometry, tone smoothing, the CPU stage on a real photo,
its options and its missing-model message. Both paths' agreement is in the parity matrix (tests/test_parity.py).

The enhancers are stand-ins (tests/onnx_standins.enhancer: more contrast and brighter, codeformer's weight
lowering the contrast); the real networks' output is not verified here.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from steadyswap.blend.align import estimate_matrix
from steadyswap.cli.main import build_parser, main
from steadyswap.cli.models import run_models
from steadyswap.cli.run import build_config
from steadyswap.config import RunConfig
from steadyswap.engine.frame_swapper import FaceSwapper
from steadyswap.enhance.geometry import blend_weights, canvas_size, frame_to_canvas
from steadyswap.enhance.tone import ToneSmoother, steady_tone
from steadyswap.errors import UnsupportedOptionError, UsageError
from steadyswap.models.registry import get_model, models_for
from tests import onnx_standins
from tests.conftest import YUNET, media_path
from tests.helpers import photo

ENHANCERS = ["codeformer", "gfpgan_1.2", "gfpgan_1.3", "gfpgan_1.4", "gpen_bfr_256", "gpen_bfr_512", "gpen_bfr_1024",
             "gpen_bfr_2048", "restoreformer_plus_plus"]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """YuNet, ArcFace and hyperswap stand-ins (its mask output 1: the paste takes the whole swapped face), and
    enhancer stand-ins for gfpgan_1.4, codeformer and gpen_bfr_256."""
    root = onnx_standins.gpu_engine_models(tmp_path_factory.mktemp("enhancer-models"), YUNET)
    onnx_standins.swapper(root / "hyperswap_1a_256.onnx", 256, mask=True, mask_value=1.0)
    onnx_standins.enhancer(root / "gfpgan_1.4.onnx", 512)
    onnx_standins.enhancer(root / "codeformer.onnx", 512, weight=True)
    onnx_standins.enhancer(root / "gpen_bfr_256.onnx", 256)
    return root


def config(models: Path, **options) -> RunConfig:
    return RunConfig(face_swapper_model="hyperswap_1a_256", face_detector_model="yunet", models_dir=str(models),
                     color_strength=0.0, **options)


def swap(models: Path, image: np.ndarray, **options):
    with FaceSwapper([media_path("image/liveportrait_s1_512.jpg")], config(models, **options)) as swapper:
        return swapper.swap_image(image).image


# --- registry and geometry --------------------------------------------------------------------------------


def test_registry_holds_facefusion_35_enhancers_with_their_contracts():
    assert [spec.name for spec in models_for("enhancer")] == ENHANCERS
    for spec in models_for("enhancer"):
        assert spec.url() == ("https://github.com/facefusion/facefusion-assets/releases/download/models-3.0.0/"
                              f"{spec.name}.onnx")
        assert spec.hash_url().endswith(f"/models-3.0.0/{spec.name}.hash")
        assert (spec.mean, spec.std, spec.bgr, spec.denormalise) == ((0.5,) * 3, (0.5,) * 3, True, True)
        assert spec.weight_input == (spec.name == "codeformer")
    sizes = {spec.name: (spec.template, spec.size) for spec in models_for("enhancer")}
    assert sizes["gpen_bfr_256"] == ("arcface_128", 256)
    assert sizes["gpen_bfr_2048"] == ("ffhq_512", 2048) and sizes["codeformer"] == ("ffhq_512", 512)
    assert get_model(RunConfig().face_enhancer_model).name == "gfpgan_1.4"


def test_canvas_centre_is_the_model_crop_and_only_the_centre_is_blended():
    spec = get_model("gfpgan_1.4")
    kps = np.array([[[200, 210], [260, 208], [232, 250], [210, 280], [255, 279]]], np.float32)
    side, margin = canvas_size(spec)
    shifted = frame_to_canvas(kps, spec)[0]
    shifted[:, 2] -= margin
    np.testing.assert_allclose(shifted, estimate_matrix(kps[0], "ffhq_512", 512), atol=1e-9)
    weights = blend_weights(spec, 60, 0.3)
    assert weights.shape == (side, side)
    assert weights[:margin].max() == 0 and weights[:, side - margin:].max() == 0
    assert weights[side // 2, side // 2] == pytest.approx(0.6)


# --- tone smoothing ---------------------------------------------------------------------------------------


def flickering_frames(count: int = 60) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A steady input face and an enhancer output whose brightness jumps by up to ±12 levels a frame."""
    rng = np.random.default_rng(5)
    before = rng.uniform(60, 200, (1, 3, 32, 32)).astype(np.float32)
    jumps = rng.uniform(-12, 12, count).astype(np.float32)
    after = np.stack([before[0] * 1.1 + 10 + jump for jump in jumps])
    return before, after, np.ones((1, 32, 32), np.float32)


def test_tone_smoothing_removes_most_of_the_enhancers_flicker_and_keeps_its_average_change():
    before, after, mask = flickering_frames()
    smoother = ToneSmoother()
    out = np.concatenate([steady_tone([smoother], [0], before, frame[None], mask, np.stack) for frame in after])
    raw_means, out_means = after.mean(axis=(1, 2, 3)), out.mean(axis=(1, 2, 3))
    assert np.abs(np.diff(out_means)).mean() < 0.35 * np.abs(np.diff(raw_means)).mean()
    assert abs(out_means[20:].mean() - raw_means[20:].mean()) < 3  # the enhancer's own brightening stays
    detail = (out - out.mean(axis=(2, 3), keepdims=True)) / (after - after.mean(axis=(2, 3), keepdims=True))
    assert np.allclose(detail, detail.mean(), rtol=0.1)  # the picture is the enhancer's, re-toned


def test_tone_smoothing_is_per_track_and_the_same_maths_on_torch():
    torch = pytest.importorskip("torch")
    before, after, mask = flickering_frames(8)
    on_numpy, on_torch = ToneSmoother(), ToneSmoother()
    for frame in after:
        pair = np.concatenate([frame[None], frame[None] + 40])
        two_before, two_masks = np.concatenate([before, before]), np.concatenate([mask, mask])
        cpu = steady_tone([on_numpy] * 2, [0, 1], two_before, pair, two_masks, np.stack)
        device = steady_tone([on_torch] * 2, [0, 1], torch.from_numpy(two_before), torch.from_numpy(pair),
                             torch.from_numpy(two_masks), torch.stack)
        np.testing.assert_allclose(device.numpy(), cpu, atol=1e-2)
    assert sorted(on_numpy._state) == [0, 1]
    assert float(on_numpy._state[1][0].mean() - on_numpy._state[0][0].mean()) == pytest.approx(40, abs=0.5)


# --- the stage on the CPU path ----------------------------------------------------------------------------


def test_enhancer_changes_only_the_swapped_face_and_blend_sets_how_much(models: Path):
    # the degrade stage off: it would take part of the stand-in's added contrast back to the target's (its blur
    # and its detail match come after the enhancer, for every swapper), which is not what is measured here
    image = photo(media_path("image/liveportrait_s12.jpg"))
    alone = swap(models, image, face_degrade="none")
    full = swap(models, image, processors=("face_swapper", "face_enhancer"), face_enhancer_blend=100,
                face_degrade="none")
    none = swap(models, image, processors=("face_swapper", "face_enhancer"), face_enhancer_blend=0,
                face_degrade="none")
    swapped = (alone != image).any(axis=2)
    assert swapped.mean() > 0.05
    near = cv2.dilate(swapped.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0  # the swap's mask edge, resampled
    for result in (full, none):
        assert np.array_equal(result[~near], image[~near])
    # the stand-in brightens and adds contrast; the seamless paste gives the face the target's low frequencies
    # (its brightness) back, so what shows is the contrast
    assert full[swapped].std() > alone[swapped].std() + 5
    # blend 0: the swap alone, resampled once more through the canvas, whose larger patch gets its own seamless
    # correction field (measured: 2.6 levels mean, 8 at the 99.5th percentile; the enhanced face differs by far more)
    diff = np.abs(none.astype(np.int16) - alone)[swapped]
    assert diff.mean() < 3.5 and np.percentile(diff, 99.5) <= 10
    assert np.abs(full.astype(np.int16) - alone)[swapped].mean() > 2 * diff.mean()


def test_codeformer_gets_its_weight(models: Path):
    image = photo(media_path("image/liveportrait_s12.jpg"))
    low, high = (swap(models, image, processors=("face_swapper", "face_enhancer"), face_enhancer_model="codeformer",
                      face_enhancer_blend=100, face_enhancer_weight=w) for w in (0.0, 1.0))
    changed = (low != high).any(axis=2)
    assert changed.mean() > 0.05  # the stand-in's contrast falls with the weight


def test_gpen_bfr_256_runs_on_its_own_template(models: Path):
    image = photo(media_path("image/liveportrait_s12.jpg"))
    alone = swap(models, image, face_degrade="none")
    gpen = swap(models, image, processors=("face_swapper", "face_enhancer"), face_enhancer_model="gpen_bfr_256",
                face_degrade="none")
    swapped = (alone != image).any(axis=2)
    assert gpen[swapped].std() > alone[swapped].std() + 4  # the stand-in's contrast (see above, degrade off too)


# --- options and messages ---------------------------------------------------------------------------------


def test_facefusion_enhancer_flags_map_onto_the_run():
    parser, _ = build_parser()
    args = parser.parse_args(["run", "-s", "a.jpg", "-t", "b.mp4", "-o", "c.mp4", "--processors", "face_swapper",
                              "face_enhancer", "--face-enhancer-model", "codeformer", "--face-enhancer-blend", "55",
                              "--face-enhancer-weight", "0.3"])
    chosen = build_config(args)
    assert (chosen.processors, chosen.face_enhancer_model, chosen.face_enhancer_blend, chosen.face_enhancer_weight) == (
        ("face_swapper", "face_enhancer"), "codeformer", 55, 0.3)
    assert chosen.enhances and not RunConfig().enhances


@pytest.mark.parametrize(("processors", "error", "message"), [
    (("face_enhancer", "face_swapper"), UsageError, "runs face_swapper, optionally followed by face_enhancer"),
    (("face_enhancer",), UsageError, "it always swaps"),
    (("face_swapper", "frame_enhancer"), UnsupportedOptionError, "--processors frame_enhancer is not supported yet"),
])
def test_processors_other_than_swap_then_enhance_are_refused(processors, error, message):
    with pytest.raises(error, match=message):
        RunConfig(processors=processors).validate()


@pytest.mark.parametrize(("option", "value"), [("face_enhancer_blend", 101), ("face_enhancer_weight", -0.1)])
def test_enhancer_ranges_are_checked(option: str, value: float):
    with pytest.raises(UsageError, match=option.replace("_", "-")):
        RunConfig(**{option: value}).validate()


def test_unknown_enhancer_model_is_named():
    with pytest.raises(UsageError, match="unknown enhancer model 'gfpgan_9'.*gfpgan_1.4"):
        RunConfig(processors=("face_swapper", "face_enhancer"), face_enhancer_model="gfpgan_9").validate()
    with pytest.raises(UsageError, match="unknown enhancer model 'inswapper_128'"):
        RunConfig(face_enhancer_model="inswapper_128").validate()


def test_missing_enhancer_file_is_one_line_with_the_download_command(tmp_path: Path, capsys):
    (tmp_path / "models").mkdir()
    models = onnx_standins.gpu_engine_models(tmp_path / "models", YUNET)
    target = media_path("image/liveportrait_s12.jpg")
    code = main(["run", "-q", "-s", str(media_path("image/liveportrait_s1_512.jpg")), "-t", str(target),
                 "-o", str(tmp_path / "out.jpg"), "--models-dir", str(models), "--face-swapper-model",
                 "hyperswap_1a_256", "--face-detector-model", "yunet", "--processors", "face_swapper",
                 "face_enhancer", "--face-enhancer-model", "gpen_bfr_512"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 6
    assert len(err) == 1 and "Traceback" not in err[0]
    assert "gpen_bfr_512.onnx (missing)" in err[0] and "`steadyswap models download gpen_bfr_512`" in err[0]
    assert not (tmp_path / "out.jpg").exists()


def test_models_list_shows_the_enhancers(tmp_path: Path):
    (tmp_path / "codeformer.onnx").write_bytes(b"stand-in")
    parser, _ = build_parser()
    out = io.StringIO()
    assert run_models(parser.parse_args(["models", "list", "--models-dir", str(tmp_path), "--task", "enhancer"]),
                      out) == 0
    rows = out.getvalue().splitlines()[2:]
    assert [row.split()[0] for row in rows if row.strip()][-9:] == ENHANCERS
    assert re.match(r"codeformer\s+enhancer\s+present\s+S-Lab-1.0", next(r for r in rows if r.startswith("codeformer")))
