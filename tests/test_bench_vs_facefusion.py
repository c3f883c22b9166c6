"""scripts/bench_vs_facefusion.py: the parts that need neither FaceFusion nor the network (the models folder both
tools read, the output checks, the ratio table)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import zlib
from pathlib import Path

import av
import numpy as np
import onnxruntime as ort
import pytest

from tests.conftest import media_path
from steadyswap.models.registry import get_model
from steadyswap.models.store import ModelStore

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_vs_facefusion.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_vs_facefusion", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


FACEFUSION_FILES = ("yunet_2023_mar", "hyperswap_1a_256", "arcface_w600k_r50", "2dfan4", "fan_68_5", "fairface",
                    "nsfw_1", "nsfw_2", "nsfw_3", "xseg_1", "bisenet_resnet_34", "kim_vocal_2")
"""What FaceFusion 3.5.0's start-up checks ask for with the benchmark's flags."""


@pytest.fixture(scope="module")
def near_free(bench, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("near-free")
    bench.build_models(folder, "near-free")
    return folder


def test_every_file_has_the_hash_facefusion_checks(near_free):
    for name in FACEFUSION_FILES:
        model = near_free / f"{name}.onnx"
        assert (near_free / f"{name}.hash").read_text() == format(zlib.crc32(model.read_bytes()), "08x")
    store = ModelStore(near_free)
    for name in ("hyperswap_1a_256", "arcface_w600k_r50", "2dfan4", "fan_68_5"):
        assert store.status(get_model(name)) == "verified"
    model = near_free / "arcface_w600k_r50.onnx"
    model.write_bytes(model.read_bytes() + b"\0")
    assert store.status(get_model("arcface_w600k_r50")) == "corrupt"


def test_near_free_graphs_keep_facefusion_reading_safe_and_swapped(near_free):
    """The content analysers read as safe, fairface gives class ids, the swapper stripes the crop it is given."""
    def run(name: str, **feeds: np.ndarray) -> list[np.ndarray]:
        return ort.InferenceSession(str(near_free / f"{name}.onnx"), providers=["CPUExecutionProvider"]).run(
            None, feeds)

    image = np.random.default_rng(0).uniform(0, 1, (1, 3, 640, 640)).astype(np.float32)
    assert np.max(run("nsfw_1", input=image)[0][:, 4:]) <= 0.2
    assert run("nsfw_2", input=image[:, :, :384, :384])[0][0].tolist() == [0.0, 0.0]
    race, gender, age = run("fairface", input=image[:, :, :224, :224])
    assert race.dtype == np.int64 and gender.shape == (1,) and age[0] == 0
    target = np.zeros((1, 3, 256, 256), np.float32)
    output, _ = run("hyperswap_1a_256", source=np.ones((1, 512), np.float32), target=target)
    assert np.allclose(np.unique(output), [-0.4, 0.4])
    heatmaps = run("2dfan4", input=image[:, :, :256, :256])[1]
    assert np.interp(heatmaps.max(axis=(2, 3)).mean(), [0, 0.9], [0, 1]) < 0.5  # FaceFusion keeps the detector's points


def test_the_convolution_stack_has_the_multiply_accumulates_asked(bench, tmp_path):
    import onnx

    path = bench.constant_graph(tmp_path / "fairface.onnx", 224, [("gender_id", np.zeros((1,), np.int64))], 3.6e9)
    graph = onnx.load(str(path)).graph
    weights = {tensor.name: onnx.numpy_helper.to_array(tensor).shape for tensor in graph.initializer}
    convs = [weights[node.input[1]] for node in graph.node if node.op_type == "Conv"]
    cells = (224 // 4) ** 2
    macs = sum(cells * int(np.prod(shape)) for shape in convs)
    assert macs == pytest.approx(3.6e9, rel=0.1)


def encode(frames: list[np.ndarray], path: Path, fps: int = 30) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = {"crf": "12"}
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_output_checks_see_frames_audio_and_where_the_picture_changed(bench, tmp_path):
    clip = media_path("video/liveportrait_s32_1280x720_30f.mp4")
    frames = bench.clip_frames(clip)
    assert frames == 30 and bench.has_audio(clip)

    untouched = bench.check_output(clip, shutil.copy(clip, tmp_path / "copy.mp4"), frames, bench.YUNET)
    assert untouched.frames == 30 and untouched.audio and untouched.sampled > 0
    assert untouched.problems() == [f"face changed by {untouched.face_change:.1f} levels only"]

    _, images = bench.sampled_frames(clip, set(range(frames)))
    painted = []
    detector = __import__("cv2").FaceDetectorYN.create(str(bench.YUNET), "", (320, 320), 0.6)
    for index in range(frames - 1):
        image = images[index].copy()
        centre, _ = bench.face_regions(image, detector)
        image[centre] = 128
        painted.append(image)
    checks = bench.check_output(clip, encode(painted, tmp_path / "painted.mp4"), frames, bench.YUNET)
    assert checks.face_change > 20 and checks.outside_change is not None and checks.outside_change < 4
    assert checks.problems() == ["29 frames, the target has 30", "audio missing"]

    everywhere = [np.full_like(images[index], 128) for index in range(frames)]
    checks = bench.check_output(clip, encode(everywhere, tmp_path / "grey.mp4"), frames, bench.YUNET)
    assert any(problem.startswith("picture away from the face changed") for problem in checks.problems())

    missing = bench.check_output(clip, tmp_path / "never-written.mp4", frames, bench.YUNET)
    assert missing.problems() == ["0 frames, the target has 30", "audio missing"]


def test_ratio_rows_take_medians_and_pair_the_tools(bench):
    def run(tool: str, clip: str, seconds: float, passed: bool = True):
        checks = bench.Checks(90, 90, True, True, 30.0 if passed else 0.0, 1.0, 8)
        return bench.Run(tool, "near-free", clip, 90, seconds, seconds * 2, 500.0, 0, 1.0, checks)

    runs = [run("facefusion", "a.mp4", s) for s in (30.0, 10.0, 12.0)]
    runs += [run("steadyswap", "a.mp4", s) for s in (6.0, 2.0, 3.0)]
    runs += [run("facefusion", "b.mp4", 9.0), run("steadyswap", "b.mp4", 3.0, passed=False)]
    runs += [run("facefusion", "c.mp4", 9.0)]
    rows = bench.ratio_rows(runs)
    assert [(row.clip, row.facefusion_s, row.steadyswap_s, row.ratio, row.checked) for row in rows] == [
        ("a.mp4", 12.0, 3.0, 4.0, True), ("b.mp4", 9.0, 3.0, 3.0, False)]
    assert rows[0].facefusion_fps == 7.5 and rows[0].steadyswap_runs_s == [6.0, 2.0, 3.0]
    text = bench.table(rows)
    assert rows[0].cpu_ratio == 4.0
    assert ("| near-free | a.mp4 | 90 | 12.0 (7.50) | 3.0 (30.00) | 4.00x | 24.0 / 6.0 (4.00x) | 500 / 500 | yes |"
            in text)
    assert text.splitlines()[-1].endswith("| NO |")


def test_x264_alone_encodes_the_cut_and_the_floor_table_leaves_the_rest(bench, monkeypatch):
    """``--floor``: x264 alone encodes exactly the cut's frames, and the table gives each target's budget
    (FaceFusion's median over the target) less the one-frame run's and x264's CPU time, per remaining frame."""
    encoded = []
    real_open = bench.tempfile.TemporaryDirectory

    class Kept(real_open):  # keep the encoded file for a look
        def cleanup(self):
            for path in Path(self.name).glob("*.mp4"):
                with av.open(str(path)) as container:
                    encoded.append(sum(1 for _ in container.decode(video=0)))
            super().cleanup()

    monkeypatch.setattr(bench.tempfile, "TemporaryDirectory", Kept)
    seconds, cpu = bench.x264_alone(media_path("video/liveportrait_d0_crf20.mp4"), 12)
    assert seconds > 0 and cpu > 0 and encoded == [12]
    checks = bench.Checks(90, 90, True, True, 30.0, 1.0, 8)
    runs = [bench.Run(tool, "near-free", "a.mp4", 91, s, s, 400.0, 0, 1.0, checks)
            for tool, s in (("facefusion", 20.0), ("steadyswap", 5.0))]
    floor = bench.Floor("near-free", "a.mp4", 91, 1.0, 1.5, 2.0, 2.5)
    monkeypatch.setattr(bench.os, "cpu_count", lambda: 2)
    row = bench.floor_table([floor], bench.ratio_rows(runs)).splitlines()[-1]
    # budget 20 / 5 = 4 s; 2 cores · 4 s − 1.5 − 2.5 CPU s = 4 CPU s over the 90 frames after the first
    assert row == "| near-free | a.mp4 | 91 | 5x | 20.0 | 4.00 | 1.00 (1.50) | 2.00 (2.50) | 44.4 |"
