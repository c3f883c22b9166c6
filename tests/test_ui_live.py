"""The web UI's Live tab: its WebSocket through FastAPI's TestClient (guard, errors, frames swapped), and the page in
headless Chromium with a fake camera fed from a test clip (``--use-file-for-fake-video-capture``)."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the ui extra (fastapi, uvicorn) is not installed")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from fastapi.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from steadyswap.ui.app import UiSettings, create_app  # noqa: E402
from tests.conftest import DATA, media_path  # noqa: E402
from tests.helpers import decode, still_analyzer  # noqa: E402

SOURCE = "image/fr_obama_512.jpg"
CLIP = "video/liveportrait_d0_crf20.mp4"
CHROMIUM = Path("/usr/bin/chromium")
LIVE = "ws://127.0.0.1/api/live"


def make_client(tmp_path: Path, token: str | None = None) -> TestClient:
    settings = UiSettings(allow_dirs=[DATA], work_dir=tmp_path / "work", token=token)
    return TestClient(create_app(settings), base_url="http://127.0.0.1")


def jpeg(image: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()


def unjpeg(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def assert_swapped(before: np.ndarray, after: np.ndarray, noise: float) -> None:
    """The face changed; a corner far from it did not, beyond ``noise`` (JPEG) levels on average."""
    faces = still_analyzer().analyze([before])[0]
    assert len(faces) == 1
    x0, y0, x1, y1 = faces.boxes[0].astype(int)
    face = np.abs(after[y0:y1, x0:x1].astype(int) - before[y0:y1, x0:x1]).mean()
    side = max(8, before.shape[0] // 8)
    corner = np.abs(after[:side, :side].astype(int) - before[:side, :side]).mean()
    assert face > 4.5, f"the face was swapped (mean change {face:.1f})"  # 5.8-6.0 on the clips used here
    assert corner < noise, f"far from the face only codec noise remains (mean change {corner:.1f})"


def test_frames_come_back_swapped_with_their_stamp(tmp_path: Path) -> None:
    frames = decode(media_path(CLIP), limit=3)
    with make_client(tmp_path) as client, client.websocket_connect(LIVE) as socket:
        socket.send_json({"sources": [str(media_path(SOURCE))],
                          "options": {"color_strength": "0.5", "trim_frame_start": "3"}})
        ready = socket.receive_json()
        assert ready["ready"] and ready["device"] == "cpu" and ready["unused"] == ["trim_frame_start"]
        for k, frame in enumerate(frames):
            socket.send_bytes(struct.pack("<d", 1000.0 + k) + jpeg(frame))
            answer = socket.receive_bytes()
            assert struct.unpack("<d", answer[:8])[0] == 1000.0 + k
        assert_swapped(frames[-1], unjpeg(answer[8:]), noise=3.0)
        socket.send_bytes(b"12345678not a jpeg")
        assert "not a JPEG" in socket.receive_json()["error"]


@pytest.mark.parametrize(("hello", "says"), [
    ({"sources": []}, "choose at least one source photo"),
    ({"sources": ["/etc/passwd"]}, "outside the allowed folders"),
    ({"sources": [CLIP]}, "sources must be photos"),
    ({"sources": [SOURCE], "options": {"face_selector_mode": "reference"}}, "reference selection"),
    ({"sources": [SOURCE], "options": {"face_mask_blur": "2"}}, "--face-mask-blur"),
])
def test_a_bad_start_is_one_line(tmp_path: Path, hello: dict, says: str) -> None:
    hello["sources"] = [str(media_path(s)) if s in (SOURCE, CLIP) else s for s in hello["sources"]]
    with make_client(tmp_path) as client, client.websocket_connect(LIVE) as socket:
        socket.send_json(hello)
        answer = socket.receive_json()
        assert says in answer["error"] and "\n" not in answer["error"]
        with pytest.raises(WebSocketDisconnect):
            socket.receive_json()


def test_the_socket_is_guarded_as_the_http_api(tmp_path: Path) -> None:
    with make_client(tmp_path) as client:
        for headers in ({"Host": "evil.example"}, {"Origin": "http://evil.example"}):
            with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(LIVE, headers=headers):
                pass
            assert refused.value.code == 1008
    with make_client(tmp_path, token="s3cret") as client:
        for path in (LIVE, LIVE + "?token=wrong"):
            with pytest.raises(WebSocketDisconnect) as refused, client.websocket_connect(path):
                pass
            assert refused.value.code == 1008 and "token" in refused.value.reason
        for path, cookies in ((LIVE + "?token=s3cret", {}), (LIVE, {"steadyswap_token": "s3cret"})):
            client.cookies.clear()
            client.cookies.update(cookies)
            with client.websocket_connect(path, headers={"Host": "192.0.2.1:8000",
                                                         "Origin": "http://192.0.2.1:8000"}) as socket:
                socket.send_json({"sources": []})
                assert "source photo" in socket.receive_json()["error"]


# ---------- the page in headless Chromium ----------

def y4m_clip(path: Path, frames: int = 25, side: int = 384) -> Path:
    """The first ``frames`` of the clip, scaled to ``side`` pixels, as raw YUV4MPEG2 (Chromium's fake camera)."""
    with av.open(str(media_path(CLIP))) as source, av.open(str(path), "w", format="yuv4mpegpipe") as out:
        stream = out.add_stream("rawvideo", rate=25)
        stream.width = stream.height = side
        stream.pix_fmt = "yuv420p"
        for _, frame in zip(range(frames), source.decode(video=0)):
            scaled = frame.reformat(width=side, height=side, format="yuv420p")
            scaled.pts = None
            out.mux(stream.encode(scaled))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def live_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple]:
    """The UI on 127.0.0.1 in a thread, and Chromium with a fake camera playing a test clip."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")
    pytest.importorskip("uvicorn", reason="the ui extra is not installed")
    if not any(__import__("importlib").util.find_spec(name) for name in ("websockets", "wsproto")):
        pytest.skip("uvicorn has no WebSocket implementation (pip install websockets: the ui extra)")
    from playwright.sync_api import sync_playwright

    from tests.test_ui_browser import CHROMIUM_ARGS, serving

    folder = tmp_path_factory.mktemp("ui_live")
    clip = y4m_clip(folder / "camera.y4m")
    app = create_app(UiSettings(allow_dirs=[DATA], work_dir=folder / "work"))
    args = [*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}"]
    with serving(app) as (url, thread), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=args)
        yield browser, url, thread
        browser.close()


def canvas_pixels(page, selector: str) -> np.ndarray:
    """The canvas as RGB, read through a lossless PNG."""
    url = page.evaluate(f"document.querySelector('{selector}').toDataURL('image/png')")
    import base64

    data = np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8)
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


@pytest.mark.slow
def test_live_tab_swaps_the_camera_and_the_server_survives_the_page_closing(live_page) -> None:
    browser, url, server_thread = live_page
    for round_ in range(2):  # the second page proves the server survived the first closing mid-stream
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")
        page.fill(".pick[data-role=source] .path", str(media_path(SOURCE)))
        page.click(".pick[data-role=source] .add")
        page.wait_for_function("document.querySelectorAll('#sources li').length === 1")
        page.click("#pane-tabs button[data-tab=live]")
        page.select_option("#live-size", "320x240")
        page.click("#live-start")
        page.wait_for_function("Number(document.querySelector('#live-output').dataset.frames) >= 5", timeout=60_000)
        if round_ == 0:
            camera, swapped = canvas_pixels(page, "#live-input"), canvas_pixels(page, "#live-output")
            assert camera.shape == swapped.shape and camera.shape[0] >= 240
            assert_swapped(camera, swapped, noise=4.0)
            page.wait_for_function("/frames\\/s, latency \\d+ ms/.test(document.querySelector('#live-status')"
                                   ".textContent)", timeout=30_000)
            if os.environ.get("STEADYSWAP_UPDATE_SCREENSHOTS"):
                page.screenshot(path=str(Path(__file__).resolve().parents[1] / "docs" / "ui_live.png"))
        context.close()  # mid-stream: the socket drops without a goodbye
        assert server_thread.is_alive()


def test_the_live_tab_smooths_with_the_live_defaults_unless_changed() -> None:
    """The options panel sends every control: a One-Euro parameter left at the file default gets live's."""
    from steadyswap.config import LIVE_SMOOTHING, RunConfig
    from steadyswap.ui.live import _start
    from steadyswap.ui.paths import PathGuard

    files = RunConfig()
    hello = {"sources": [str(media_path(SOURCE))],
             "options": {"smoothing_min_cutoff": files.smoothing_min_cutoff, "smoothing_beta": 3.0}}
    _, config, _ = _start(PathGuard([DATA]), hello)
    assert config.smoothing_min_cutoff == LIVE_SMOOTHING["smoothing_min_cutoff"] != files.smoothing_min_cutoff
    assert config.smoothing_d_cutoff == LIVE_SMOOTHING["smoothing_d_cutoff"] and config.smoothing_beta == 3.0
