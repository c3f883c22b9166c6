"""``steadyswap live`` and its engine on a real clip played as a live input (at its frame rate, as a camera).

The counts depend on how fast this machine swaps, so the assertions hold for any speed: every frame is either
sent or dropped, never queued beyond the hand-off's room; sent frames keep their capture timestamps, in order.
"""

from __future__ import annotations

import io
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from steadyswap.cli.main import main
from steadyswap.config import LIVE_SMOOTHING, RunConfig, live_smoothing
from steadyswap.engine.live import LatestFrames, LiveSwapper, Pace, run_live
from steadyswap.errors import MediaDecodeError, UsageError
from steadyswap.io.capture import MILLISECONDS, Capture, Captured, StreamCapture
from steadyswap.io.live_outputs import FileOutput, LiveOutput, StreamOutput, live_info
from steadyswap.io.writer import OutputSettings
from steadyswap.provenance.verify import verify
from tests.conftest import HAND_OCCLUDER, gpu_engine_config, media_path
from tests.helpers import decode, looped_clip, still_analyzer

CLIP = "video/liveportrait_d0_crf20.mp4"  # 78 frames, 512×512, 25 frames/s
SOURCE = "image/fr_obama_512.jpg"


def frames_by_pts(path: Path) -> dict[int, np.ndarray]:
    with av.open(str(path)) as container:
        return {frame.pts: frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)}


class Collect(LiveOutput):
    """An output that keeps what it was sent."""

    def __init__(self, width: int, height: int) -> None:
        self.size = (width, height)
        self.sent: list[tuple[int, np.ndarray]] = []
        self.closed = False

    def send(self, image: np.ndarray, pts: int) -> bool:
        self.sent.append((pts, image))
        return True

    def close(self) -> None:
        self.closed = True


class Slow:
    """A swapper slower than the clip's 25 frames/s: its render inverts each frame after 0.12 s.
    ``stop_after``: Ctrl-C arrives (in the main thread, as a real one) while the step after that many renders."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.steps: list[int] = []
        self.stop_after = stop_after
        self.closed = False

    def decide(self, images: list[np.ndarray]) -> list[np.ndarray]:
        self.steps.append(len(images))
        return images

    def render(self, step: list[np.ndarray]) -> list[np.ndarray]:
        assert not self.closed, "rendered after close"
        if self.stop_after is not None and len(self.steps) > self.stop_after:
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)  # type: ignore[arg-type]
        time.sleep(0.12)
        return [255 - image for image in step]

    def finish(self, image: np.ndarray) -> np.ndarray:
        return image

    def close(self) -> None:
        self.closed = True


def stage_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name in ("steadyswap-decide", "steadyswap-render")]


def test_latest_frame_wins() -> None:
    slot = LatestFrames(2)
    for frame in range(5):
        slot.put(frame)
    assert (slot.take(1, timeout=0), slot.take(5, timeout=0), slot.take(5, timeout=0)) == ([3], [4], [])
    assert slot.dropped == 3 and slot.most_held == 2
    slot.put(5)
    slot.end(MediaDecodeError("broken"))
    assert slot.take(5, timeout=0) == [5]
    with pytest.raises(MediaDecodeError):
        slot.take(5, timeout=0)


@pytest.mark.parametrize("batch", [1, 2])
def test_a_slow_swapper_drops_frames_instead_of_queueing_them(batch: int) -> None:
    clip = media_path(CLIP)
    outputs: list[Collect] = []

    def open_output(width: int, height: int) -> Collect:
        outputs.append(Collect(width, height))
        return outputs[-1]

    swapper = Slow()
    result = run_live(StreamCapture(str(clip)), swapper, open_output, batch=batch)
    assert result.ended == "end of input"
    assert result.dropped > 0 and result.frames + result.dropped == 78
    assert 1 <= result.held <= batch and max(swapper.steps) <= batch
    (output,) = outputs
    assert output.closed and output.size == (512, 512) and len(output.sent) == result.frames
    expected = frames_by_pts(clip)
    stamps = [pts for pts, _ in output.sent]
    assert stamps == sorted(set(stamps)) and set(stamps) <= set(expected)
    pts, image = output.sent[-1]
    assert np.array_equal(image, 255 - expected[pts]), "each frame went out with its own timestamp"


def test_ctrl_c_finishes_the_file(tmp_path: Path) -> None:
    """Ctrl-C is how a camera stream ends: the frames sent so far become a complete file, and the stage threads
    have ended (the steps in flight dropped) before ``run_live`` returns, so the swapper may be closed."""
    clip, output = media_path(CLIP), tmp_path / "live.mp4"
    capture = StreamCapture(str(clip))
    result = run_live(capture, Slow(stop_after=4), lambda w, h: FileOutput(
        output, [clip], live_info(w, h, 25.0, capture.time_base, str(clip)), OutputSettings(preset="ultrafast")))
    assert result.ended == "Ctrl-C" and 2 <= result.frames <= 5
    assert stage_threads() == []
    assert len(frames_by_pts(output)) == result.frames
    assert [p.name for p in tmp_path.iterdir()] == ["live.mp4"]


class Gated:
    """A swapper whose first render waits for the second step's decision: the loop hangs (and the test fails
    after 20 s) unless the two stages overlap. Counts the steps between their decision and their output."""

    def __init__(self) -> None:
        self.second_decided = threading.Event()
        self.decided = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()
        self.overlapped = False

    def decide(self, images: list[np.ndarray]) -> list[np.ndarray]:
        with self.lock:
            self.decided += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if self.decided == 2:
            self.second_decided.set()
        return images

    def render(self, step: list[np.ndarray]) -> list[np.ndarray]:
        if not self.overlapped:
            self.overlapped = self.second_decided.wait(timeout=20)
        return [255 - image for image in step]

    def finish(self, image: np.ndarray) -> np.ndarray:
        return image

    def sent(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def close(self) -> None:
        pass


def test_the_next_frames_are_decided_while_these_render_and_leave_in_order() -> None:
    clip = media_path(CLIP)
    swapper = Gated()

    class SlowOutput(Collect):
        def send(self, image: np.ndarray, pts: int) -> bool:
            time.sleep(0.08)  # slower than the clip: steps back up to the capture hand-off, which drops
            swapper.sent()
            return super().send(image, pts)

    outputs: list[Collect] = []
    result = run_live(StreamCapture(str(clip)), swapper, lambda w, h: outputs.append(SlowOutput(w, h)) or outputs[-1])
    assert swapper.overlapped, "the first render waited for the second decision"
    assert result.ended == "end of input" and result.frames + result.dropped == 78 and result.dropped > 0
    assert 2 <= swapper.most_in_flight <= 3, "one step deciding, one rendering, one going out at most"
    expected = frames_by_pts(clip)
    stamps = [pts for pts, _ in outputs[0].sent]
    assert stamps == sorted(set(stamps)) and len(stamps) == result.frames
    assert all(np.array_equal(image, 255 - expected[pts]) for pts, image in outputs[0].sent)
    assert stage_threads() == []


def test_a_failing_render_ends_the_stream_with_its_error(tmp_path: Path) -> None:
    class Fails(Slow):
        def render(self, step: list[np.ndarray]) -> list[np.ndarray]:
            if len(self.steps) == 3:
                raise MemoryError("out of device memory")
            return super().render(step)

    clip, output = media_path(CLIP), tmp_path / "live.mp4"
    capture = StreamCapture(str(clip))
    with pytest.raises(MemoryError):
        run_live(capture, Fails(), lambda w, h: FileOutput(output, [clip], live_info(w, h, 25.0, capture.time_base,
                                                                                     str(clip)),
                                                          OutputSettings(preset="ultrafast")))
    assert list(tmp_path.iterdir()) == [] and stage_threads() == []


def test_a_failing_input_leaves_no_file(tmp_path: Path) -> None:
    class Breaks(Capture):
        name, time_base, fps = "breaks", MILLISECONDS, 25.0

        def __init__(self) -> None:
            self.count = 0

        def read(self) -> Captured | None:
            self.count += 1
            if self.count > 3:
                raise MediaDecodeError("breaks: decoding stopped")
            time.sleep(0.05)
            return Captured(self.count, self.count, np.zeros((64, 64, 3), np.uint8), time.monotonic())

        def close(self) -> None:
            pass

    output = tmp_path / "live.mp4"
    with pytest.raises(MediaDecodeError):
        run_live(Breaks(), Slow(), lambda w, h: FileOutput(output, [], live_info(w, h, 25.0, MILLISECONDS, "breaks"),
                                                             OutputSettings(preset="ultrafast")))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_live_command_file_to_file(tmp_path: Path) -> None:
    clip, output = media_path(CLIP), tmp_path / "live.mp4"
    code = main(["live", "-s", str(media_path(SOURCE)), "--input", str(clip), "-o", str(output), "--quiet"])
    assert code == 0
    expected, got = frames_by_pts(clip), frames_by_pts(output)
    assert 10 <= len(got) <= 78 and set(got) <= set(expected)
    with av.open(str(output)) as container:
        assert "steadyswap" in container.metadata.get("comment", "")
    verdict = verify(output, frames=4)  # signed (no parent: a live recording) and watermarked
    assert verdict.manifest.valid and verdict.manifest.synthetic and verdict.watermark.found
    pts = sorted(got)[len(got) // 2]
    before, after = expected[pts], got[pts]
    assert after.shape == before.shape == (512, 512, 3)
    faces = still_analyzer().analyze([before])[0]
    assert len(faces) == 1
    x0, y0, x1, y1 = faces.boxes[0].astype(int)
    face = np.abs(after[y0:y1, x0:x1].astype(int) - before[y0:y1, x0:x1]).mean()
    corner = np.abs(after[:60, :60].astype(int) - before[:60, :60]).mean()
    assert face > 4, "the face was swapped"  # its detail the source's, its broad colour the target's (local shading)
    assert corner < 2.5, "far from the face only codec noise remains"


@pytest.mark.slow
def test_sigterm_ends_the_stream_and_completes_the_file(tmp_path: Path,
                                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    output = tmp_path / "live.mp4"
    clip = looped_clip(tmp_path_factory.mktemp("long") / "long.mp4", "video/liveportrait_d3_93f.mp4", 11)
    process = subprocess.Popen(
        [sys.executable, "-m", "steadyswap", "live", "-s", str(media_path(SOURCE)),
         "--input", str(clip), "-o", str(output)],
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not list(tmp_path.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(tmp_path.iterdir()), "the stream started writing its temporary file"
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "ended by SIGTERM" in stderr
    assert [p.name for p in tmp_path.iterdir()] == ["live.mp4"]
    assert 0 < len(decode(output)) < 1023


@pytest.mark.parametrize("fmt", ["flv", "mpegts"])
def test_stream_output_muxes_playable_h264(tmp_path: Path, fmt: str) -> None:
    sink = tmp_path / f"out.{fmt}"
    frames = decode(media_path(CLIP), limit=10)
    output = StreamOutput(str(sink), fmt, 511, 511, 25.0, MILLISECONDS, 23, "ultrafast")
    for k, frame in enumerate(frames):
        output.send(np.ascontiguousarray(frame[:511, :511]), k * 40)
    output.close()
    got = decode(sink)
    assert len(got) == 10 and got[0].shape == (512, 512, 3)  # padded to even sides for 4:2:0
    assert np.abs(got[5][:511, :511].astype(int) - frames[5][:511, :511]).mean() < 4


def test_live_command_sends_mpegts_over_udp() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(0.5)
    received = bytearray()
    done = threading.Event()

    def listen() -> None:
        while not done.is_set():
            try:
                received.extend(receiver.recv(65536))
            except TimeoutError:
                continue

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    url = f"udp://127.0.0.1:{receiver.getsockname()[1]}"
    try:
        code = main(["live", "-s", str(media_path(SOURCE)), "--input", str(media_path("video/tpsmm_driving_78f.mp4")),
                     "--no-realtime", "-o", url, "--quiet"])
        time.sleep(0.5)
    finally:
        done.set()
        listener.join()
        receiver.close()
    assert code == 0
    with av.open(io.BytesIO(bytes(received)), format="mpegts") as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert frames and frames[0].shape == (412, 410, 3)


@pytest.mark.parametrize(("words", "code", "says"), [
    (["-o", "window"], 5, "--output window: no display here"),
    (["-o", "virtual-camera"], 2, "needs pyvirtualcam: pip install 'steadyswap[live]'"),
    (["-o", "ftp://host/x"], 2, "cannot send to ftp://"),
    (["-o", "OUT", "--face-selector-mode", "reference"], 2, "reference selection and face maps are for files"),
    (["-o", "CLIP"], 5, "output would overwrite the input"),
    (["--input", "MISSING", "-o", "OUT"], 3, "no such file"),
    (["--camera", "7", "-o", "OUT"], 3, "camera 7: cannot be opened"),
    (["-o", "OUT", "--size", "640x480"], 2, "a file plays at its own"),
    (["--camera", "0", "-o", "OUT", "--no-realtime"], 2, "--no-realtime is for a file --input"),
    (["-o", "OUT", "--compile"], 2, "--compile (the GPU option 'compile') needs the GPU engine"),
])
def test_bad_live_commands_say_one_line(words: list[str], code: int, says: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("cv2")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if "--camera" not in words and "--input" not in words:
        words = ["--input", "CLIP", *words]
    names = {"CLIP": str(media_path(CLIP)), "OUT": str(tmp_path / "out.mp4"), "MISSING": str(tmp_path / "no.mp4")}
    if "virtual-camera" in words and __import__("importlib").util.find_spec("pyvirtualcam"):
        pytest.skip("pyvirtualcam is installed")
    assert main(["live", "-s", str(media_path(SOURCE)), *(names.get(w, w) for w in words)]) == code
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], lines
    assert list(tmp_path.iterdir()) == []


def test_live_swapper_refuses_lookahead_it_cannot_have() -> None:
    """Live smoothing is causal whatever the config says; selection that needs a target's frames is refused."""
    source = media_path(SOURCE)
    with pytest.raises(UsageError):
        LiveSwapper([source], RunConfig(face_selector_mode="reference"))
    swapper = LiveSwapper([source], RunConfig(smoothing_lookahead=5))
    try:
        assert swapper._frames is not None and swapper._frames.smoother.lookahead == 0
    finally:
        swapper.close()


def test_gpu_engine_swaps_live_frames_as_the_cpu_path(gpu_models_dir: Path) -> None:
    """``--execution-providers cuda`` runs the same loop on the GPU engine (torch on the CPU here)."""
    pytest.importorskip("torch")
    source = media_path("image/liveportrait_s1_512.jpg")
    frames = decode(media_path("video/liveportrait_d3_93f.mp4"), limit=4)
    cpu_config = gpu_engine_config(gpu_models_dir)
    gpu_config = gpu_engine_config(gpu_models_dir, execution_providers=("cuda",),
                                   extra={"gpu": {"device": "cpu", "half": False}})
    cpu, gpu = LiveSwapper([source], cpu_config), LiveSwapper([source], gpu_config)
    try:
        assert (cpu.device, gpu.device) == ("cpu", "cpu") and gpu._engine is not None
        expected = np.stack(cpu.swap(frames[:1]) + cpu.swap(frames[1:2]) + cpu.swap(frames[2:])).astype(np.int16)
        got = np.stack(gpu.swap(frames[:1]) + gpu.swap(frames[1:2]) + gpu.swap(frames[2:])).astype(np.int16)
    finally:
        cpu.close()
        gpu.close()
    changed = expected != np.stack(frames)
    assert changed.mean() > 0.05  # a face was found and swapped
    diff = np.abs(got - expected)
    assert diff.mean() < 0.4 and np.percentile(diff[changed], 99.9) <= 3  # as in test_gpu_engine: rounding


def test_gpu_engine_in_the_live_loop(gpu_models_dir: Path) -> None:
    pytest.importorskip("torch")
    clip = media_path("video/liveportrait_d3_93f.mp4")
    config = gpu_engine_config(gpu_models_dir, execution_providers=("cuda",),
                               extra={"gpu": {"device": "cpu", "half": False}})
    swapper = LiveSwapper([media_path("image/liveportrait_s1_512.jpg")], config)
    outputs: list[Collect] = []

    def open_output(width: int, height: int) -> Collect:
        outputs.append(Collect(width, height))
        return outputs[-1]

    stop = threading.Event()

    class TwoSteps:
        def decide(self, images: list[np.ndarray]) -> object:
            steps.append(len(images))
            if len(steps) == 2:
                stop.set()
            return swapper.decide(images)

        def render(self, step: object) -> list[np.ndarray]:
            return swapper.render(step)

        def finish(self, image: np.ndarray) -> np.ndarray:
            return swapper.finish(image)

        def close(self) -> None:
            swapper.close()

    steps: list[int] = []
    try:
        result = run_live(StreamCapture(str(clip)), TwoSteps(), open_output, batch=2, stop=stop)
    finally:
        swapper.close()
    assert result.ended == "stop" and result.frames == sum(steps) >= 2 and result.held <= 2
    expected = frames_by_pts(clip)
    changed = [np.abs(image.astype(int) - expected[pts]).mean() for pts, image in outputs[0].sent]
    assert min(changed) > 0.5, "every frame sent had its face swapped"


def test_virtual_camera_gets_rgb_frames_of_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pyvirtualcam adapter, with a stand-in module (the real one needs a v4l2loopback or OBS device)."""
    sent: list[np.ndarray] = []
    opened: list[tuple] = []

    class Camera:
        def __init__(self, width: int, height: int, fps: float, fmt: str) -> None:
            opened.append((width, height, fps, fmt))

        def send(self, image: np.ndarray) -> None:
            sent.append(image)

        def close(self) -> None:
            opened.append("closed")

    fake = type(sys)("pyvirtualcam")
    fake.Camera, fake.PixelFormat = Camera, type("PixelFormat", (), {"RGB": "rgb"})
    monkeypatch.setitem(sys.modules, "pyvirtualcam", fake)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: object() if name == "pyvirtualcam" else None)
    clip = media_path("video/tpsmm_driving_78f.mp4")  # 410×412, 25 frames/s
    assert main(["live", "-s", str(media_path(SOURCE)), "--input", str(clip), "-o", "virtual-camera",
                 "--quiet"]) == 0
    assert opened[0] == (410, 412, 25.0, "rgb") and opened[-1] == "closed"
    assert 10 <= len(sent) <= 78 and all(image.shape == (412, 410, 3) for image in sent)


def test_the_window_ends_the_stream_when_the_viewer_presses_q(monkeypatch: pytest.MonkeyPatch) -> None:
    import cv2

    shown: list[np.ndarray] = []
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(cv2, "namedWindow", lambda *a: None)
    monkeypatch.setattr(cv2, "imshow", lambda title, bgr: shown.append(bgr))
    monkeypatch.setattr(cv2, "waitKey", lambda delay: ord("q") if len(shown) == 3 else -1)
    monkeypatch.setattr(cv2, "getWindowProperty", lambda *a: 1.0)
    monkeypatch.setattr(cv2, "destroyWindow", lambda *a: None)
    from steadyswap.io.live_outputs import WindowOutput

    window = WindowOutput()
    result = run_live(StreamCapture(str(media_path(CLIP))), Slow(), lambda w, h: window)
    assert result.ended == "window closed" and result.frames == 3 and len(shown) == 3


def test_live_smoothing_defaults_apply_only_where_not_set() -> None:
    config = live_smoothing(RunConfig(smoothing_beta=3.0), {"smoothing_beta", "sources"})
    assert (config.smoothing_min_cutoff, config.smoothing_beta, config.smoothing_d_cutoff) == (
        LIVE_SMOOTHING["smoothing_min_cutoff"], 3.0, LIVE_SMOOTHING["smoothing_d_cutoff"])
    assert RunConfig().smoothing_min_cutoff != LIVE_SMOOTHING["smoothing_min_cutoff"], "files keep theirs"


def test_live_smoothing_halves_the_landmark_jitter_on_a_clip() -> None:
    """The causal filter with the live defaults, over a clip's tracked face-mesh landmarks (the method of
    docs/quality.md and scripts/tune_smoothing.py): under half the unsmoothed jitter, less than the file defaults
    leave when causal, at under two frames of lag."""
    from steadyswap.analysis.mediapipe_mesh import MediaPipeAnalyzer
    from steadyswap.quality.metrics import jitter, lag_frames
    from steadyswap.tracking.smoothing import LandmarkSmoother
    from steadyswap.tracking.tracker import FaceTracker

    analyzer, tracker, raw = MediaPipeAnalyzer(max_faces=1), FaceTracker(), []
    for image in decode(media_path("video/liveportrait_d0.mp4")):
        faces = tracker.update(analyzer.analyze([image], video=True)[0])
        raw.append(faces[faces.track_ids == 0])
    analyzer.close()
    raw = [faces for faces in raw if len(faces)]
    assert len(raw) > 70

    def smoothed(**params: float) -> np.ndarray:
        smoother = LandmarkSmoother("one-euro", 25.0, lookahead=0, **params)
        return np.stack([smoother.update(faces).landmarks[0] for faces in raw])

    def jitter_of(points: np.ndarray) -> float:
        return float(np.nanmean(jitter(points, np.linalg.norm(points[:, 33] - points[:, 263], axis=-1))))

    unsmoothed = np.stack([faces.landmarks[0] for faces in raw])
    live = smoothed(min_cutoff=LIVE_SMOOTHING["smoothing_min_cutoff"], beta=LIVE_SMOOTHING["smoothing_beta"],
                    d_cutoff=LIVE_SMOOTHING["smoothing_d_cutoff"])
    files = RunConfig()
    causal_file_defaults = smoothed(min_cutoff=files.smoothing_min_cutoff, beta=files.smoothing_beta,
                                    d_cutoff=files.smoothing_d_cutoff)
    assert jitter_of(live) <= 0.5 * jitter_of(unsmoothed)
    assert jitter_of(live) < jitter_of(causal_file_defaults)
    assert 0 < lag_frames(unsmoothed.mean(axis=1), live.mean(axis=1)) < 2.0


@pytest.mark.gpu
def test_gpu_engine_decides_on_one_thread_while_another_renders(gpu_models_dir: Path, deterministic_cuda) -> None:
    """On CUDA, ``decide_frames`` (upload, detection: its own CUDA stream) of each frame runs on a thread while the
    frame before renders on another (the live loop's overlap): the frames come out as ``swap_frames`` one after
    another makes them (with deterministic kernels: benchmarked ones differ by a few levels between engines)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from concurrent.futures import ThreadPoolExecutor

    from steadyswap.engine.gpu.engine import GpuEngine

    source, frames = media_path("image/liveportrait_s1_512.jpg"), decode(media_path("video/liveportrait_d3_93f.mp4"))
    config = gpu_engine_config(gpu_models_dir, execution_providers=("cuda",))
    with GpuEngine([source], config) as engine:
        deterministic_cuda()
        expected = [engine.swap_frames([frame])[0] for frame in frames[:24]]
    with GpuEngine([source], config) as engine, ThreadPoolExecutor(1) as decider, ThreadPoolExecutor(1) as renderer:
        deterministic_cuda()
        decided = decider.submit(engine.decide_frames, [frames[0]])
        rendering = []
        for frame in frames[1:24]:
            step = decided.result()
            rendering.append(renderer.submit(engine.render_frames, step))
            decided = decider.submit(engine.decide_frames, [frame])
        rendering.append(renderer.submit(engine.render_frames, decided.result()))
        got = [future.result()[0] for future in rendering]
    changed = [np.abs(a.astype(int) - f).mean() for a, f in zip(expected, frames)]
    assert min(changed) > 0.5, "faces were swapped"
    for want, have in zip(expected, got, strict=True):
        assert np.abs(want.astype(int) - have).max() <= 1


def test_live_swapper_warms_up_at_the_captures_size_and_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """The warm-up swaps the source photo in a frame of the capture's size (a face there, so the swapper runs),
    one frame and then a step of ``batch``: the stream's own shapes are set up before its first frame."""
    from steadyswap.swap.classic import ClassicSwapper

    capture = StreamCapture(str(media_path(CLIP)), realtime=False)
    capture.close()
    assert capture.size == (512, 512)
    steps: list[tuple[int, tuple[int, ...]]] = []
    faces_swapped: list[int] = []
    swap, swap_faces = LiveSwapper.swap, ClassicSwapper.swap
    monkeypatch.setattr(LiveSwapper, "swap", lambda self, images: steps.append((len(images), images[0].shape))
                        or swap(self, images))
    monkeypatch.setattr(ClassicSwapper, "swap", lambda self, source, frames, faces: faces_swapped.append(
        sum(len(found) for found in faces)) or swap_faces(self, source, frames, faces))
    LiveSwapper([media_path(SOURCE)], RunConfig(watermark=False), frame_size=(640, 360), batch=2).close()
    assert steps == [(1, (360, 640, 3)), (2, (360, 640, 3))]
    assert sum(faces_swapped) == 3  # the photo's face found in each warm-up frame and swapped


def test_one_slow_step_does_not_slow_the_steps_after_it() -> None:
    """The decide stage starts a step every ``Pace.period``: a first render that waited seconds for kernel tuning
    (session 9 on CUDA: an exponential average of it throttled the loop to 1-6 frames/s for seconds) must not
    hold back the steps after it, while a stage that is slow every step still sets the pace."""
    pace = Pace()
    pace.add("decide", 0.004)
    pace.add("render", 2.5)
    assert pace.period == 2.5  # only one step so far: nothing better to go by
    for _ in range(2):
        pace.add("render", 0.020)
        pace.add("decide", 0.004)
    assert pace.period == pytest.approx(0.020)
    for _ in range(9):
        pace.add("output", 0.050)
    assert pace.period == pytest.approx(0.050)


def test_each_stage_runs_on_one_thread_whichever_thread_asks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The warm-up and the live loop's stage threads reach the swapper's decide and render work on the same
    two threads, and so does a second swapper (PyTorch tunes cuDNN kernels per thread: a fresh thread would tune
    them all again)."""
    from steadyswap.engine.frame_swapper import FaceSwapper

    threads: dict[str, set[str]] = {"decide": set(), "render": set()}
    analyse, accept = FaceSwapper.analyse, FaceSwapper.accept
    monkeypatch.setattr(FaceSwapper, "analyse", lambda self, *args, **kwargs: threads["decide"].add(
        threading.current_thread().name) or analyse(self, *args, **kwargs))
    monkeypatch.setattr(FaceSwapper, "accept", lambda self, *args, **kwargs: threads["render"].add(
        threading.current_thread().name) or accept(self, *args, **kwargs))
    swapper = LiveSwapper([media_path(SOURCE)], RunConfig(watermark=False), frame_size=(512, 512))
    frame = decode(media_path(CLIP))[0]
    try:
        for caller in range(2):  # two other threads, one after the other, as two live loops would
            worker = threading.Thread(target=swapper.swap, args=([frame],), name=f"caller-{caller}")
            worker.start()
            worker.join()
        swapper.swap([frame])  # and this one
    finally:
        swapper.close()
    second = LiveSwapper([media_path(SOURCE)], RunConfig(watermark=False), frame_size=(512, 512))
    try:
        second.swap([frame])
    finally:
        second.close()
    assert len(threads["decide"]) == 1 and len(threads["render"]) == 1
    assert threads["decide"] != threads["render"]
    assert not any(name.startswith(("caller", "MainThread")) for names in threads.values() for name in names)


@pytest.mark.gpu
def test_compiled_swapper_gives_the_eager_frames_and_a_second_stream_works(gpu_models_dir: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """``live --compile`` (the swapper compiled, replayed as a CUDA graph; the detector's graph captured as one
    CUDA graph per batch shape): the frames of a compiled stream are the eager stream's (to the rounding of fused
    kernels), neither model fell back to eager, and a second compiled stream in the same process (the web UI's
    second session) swaps as well."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from steadyswap.engine.gpu.onnx_module import CudaGraphs

    source, frames = media_path("image/liveportrait_s1_512.jpg"), decode(media_path("video/liveportrait_d3_93f.mp4"))
    eager_config = gpu_engine_config(gpu_models_dir, execution_providers=("cuda",))
    compiled_config = replace(eager_config, extra={"gpu": {"compile": "reduce-overhead"}})
    runs = []
    for config in (eager_config, compiled_config, compiled_config):
        swapper = LiveSwapper([source], config, frame_size=(512, 512))
        try:
            runs.append(np.stack([swapper.swap([frame])[0] for frame in frames[:6]]).astype(np.int16))
            detector = swapper._engine.models.detector.model
            assert isinstance(detector.run, CudaGraphs) == (config is compiled_config)
            if config is compiled_config:
                assert list(detector.run.graphs) and detector.graphed, "the detector was captured"
        finally:
            swapper.close()
    changed = runs[0] != np.stack(frames[:6])
    assert changed.mean() > 0.05, "faces were swapped"
    for compiled in runs[1:]:
        diff = np.abs(compiled - runs[0])
        figures = (diff.mean(), np.percentile(diff[changed], 99.9), diff.max())
        assert figures[0] < 0.4 and figures[1] <= 3, figures
    assert "failed here" not in caplog.text
    from steadyswap.engine.gpu.onnx_module import compiled_on_cuda
    assert compiled_on_cuda(), "steadyswap.cli.main.entry would end this process without its teardown"


@pytest.mark.gpu
def test_compiled_live_command_ends_with_exit_code_0_and_a_complete_file(gpu_models_dir: Path,
                                                                          tmp_path: Path) -> None:
    """``steadyswap live --compile`` from a file, to its end: exit code 0 and a complete file, twice (torch's
    teardown after CUDA graphs crashed such processes at exit, after their output, in about one run of six;
    ``entry`` ends them without it)."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    for run in range(2):
        output = tmp_path / f"live{run}.mp4"
        done = subprocess.run(
            [sys.executable, "-m", "steadyswap", "live", "-s", str(media_path(SOURCE)), "--input",
             str(media_path("video/liveportrait_d3_93f.mp4")), "-o", str(output), "--compile",
             "--execution-providers", "cuda", "--face-swapper-model", "hyperswap_1a_256", "--face-detector-model",
             "yunet", "--face-landmarker-model", "none", "--models-dir", str(gpu_models_dir),
             "--hand-occluder", HAND_OCCLUDER],
            capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "failed here" not in done.stderr
        assert 0 < len(decode(output)) <= 93  # played at its rate: frames the stream could not take are dropped


class Ticking(Capture):
    """A camera of small black frames, one every ``interval`` seconds, for ``count`` frames."""

    name, time_base, fps, size = "ticking", Fraction(1, 1000), 100.0, (16, 16)

    def __init__(self, count: int, interval: float) -> None:
        self.count, self.interval, self.read_frames = count, interval, 0
        self.began = time.monotonic()

    def read(self) -> Captured | None:
        if self.read_frames == self.count:
            return None
        time.sleep(max(0.0, self.began + self.read_frames * self.interval - time.monotonic()))
        frame = Captured(self.read_frames, self.read_frames, np.zeros((16, 16, 3), np.uint8), time.monotonic())
        self.read_frames += 1
        return frame

    def close(self) -> None:
        pass


def test_a_decided_step_does_not_wait_for_the_render() -> None:
    """The decide stage times each step to end as the render becomes free: a step decided earlier would wait for
    the render with its frames ageing, on every frame (before: a decide of 20 ms and a render of 60 ms left each
    step waiting about 40 ms, a third more latency)."""
    decided_at: dict[int, float] = {}
    waits: list[float] = []

    class Timed:
        def decide(self, images: list[np.ndarray]) -> int:
            time.sleep(0.020)
            step = len(decided_at)
            decided_at[step] = time.monotonic()
            return step

        def render(self, step: int) -> list[np.ndarray]:
            waits.append(time.monotonic() - decided_at[step])
            time.sleep(0.060)
            return [np.zeros((16, 16, 3), np.uint8)]

        def finish(self, image: np.ndarray) -> np.ndarray:
            return image

        def close(self) -> None:
            pass

    result = run_live(Ticking(300, 0.005), Timed(), lambda width, height: Collect(width, height))
    assert result.ended == "end of input" and len(waits) >= 15
    assert statistics.median(waits[5:]) < 0.015, [round(wait * 1000) for wait in waits]
