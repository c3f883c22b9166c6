"""The web UI end to end in a real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright.

The server runs on 127.0.0.1 in a thread. Set STEADYSWAP_UPDATE_SCREENSHOTS=1 to rewrite
docs/ui_main.png and docs/ui_finished.png from this run.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed (pip install playwright)")
pytest.importorskip("uvicorn", reason="the ui extra (fastapi, uvicorn) is not installed")

import uvicorn
from playwright.sync_api import Page, expect, sync_playwright

from steadyswap.cli.ui import _bind
from steadyswap.io import probe
from steadyswap.ui.app import UiSettings, create_app
from tests.conftest import media_path

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ui_out")


@pytest.fixture(scope="module")
def server(out_dir: Path) -> Iterator[str]:
    """The UI on a free port of 127.0.0.1; inputs from the shared media, outputs into ``out_dir``."""
    app = create_app(UiSettings(allow_dirs=[out_dir, media_path("")], work_dir=out_dir.parent / "ui_work"))
    sock = _bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    end = time.monotonic() + 20
    while not server.started and time.monotonic() < end:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.goto(server)
    page.wait_for_selector("body[data-ready=true]")
    yield page
    context.close()


def pick(page: Page, role: str, path: str) -> None:
    page.fill(f".pick[data-role={role}] .path", path)
    page.click(f".pick[data-role={role}] .add")


def save(page: Page, name: str, tmp_path: Path) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=False)
    if os.environ.get("STEADYSWAP_UPDATE_SCREENSHOTS"):
        page.screenshot(path=str(DOCS / name), full_page=False)


def test_preview_people_and_run_in_the_browser(page: Page, out_dir: Path, tmp_path: Path) -> None:
    page.click(".pick[data-role=source] .browse")  # the file browser, limited to the allowed folders
    page.click(f"#browser-list button:has-text('{media_path('').resolve()}')")
    page.click("#browser-list button:has-text('image/')")
    page.click("#browser-list button:has-text('fr_obama.jpg')")
    expect(page.locator("#sources li")).to_have_count(1)
    pick(page, "target", "video/tpsmm_driving.mp4")
    preview = page.locator("#preview")
    expect(preview).to_have_attribute("data-frame", "0", timeout=30_000)
    first = preview.screenshot()

    page.locator("#frame").fill("120")  # move the slider
    expect(preview).to_have_attribute("data-frame", "120", timeout=30_000)
    assert preview.screenshot() != first
    expect(page.locator("#preview-status")).to_contain_text("1 face(s) swapped")

    page.click("#modes button[data-mode=crops]")
    expect(page.locator("#modes button.on")).to_have_text("Face crops")
    page.wait_for_function("Number(document.querySelector('#preview').dataset.seq) >= 3")

    page.click("#find-people")
    person = page.locator(".person").first
    expect(person).to_be_visible(timeout=30_000)
    person.locator("select").select_option(label="fr_obama.jpg")
    page.select_option("#option-output_video_preset", "ultrafast")
    page.fill("#output", str(out_dir / "driving_swapped.mp4"))
    page.click("#modes button[data-mode=side]")
    page.wait_for_timeout(500)
    save(page, "ui_main.png", tmp_path)

    page.click("#start")
    job = page.locator(".job").first
    expect(job).to_have_attribute("data-state", "running", timeout=30_000)
    expect(job.locator(".stats")).to_contain_text("frames/s", timeout=30_000)
    expect(job).to_have_attribute("data-state", "done", timeout=90_000)
    expect(job.locator("video")).to_have_count(1)
    expect(job.locator("a.download")).to_have_attribute("download", "driving_swapped.mp4")
    page.wait_for_function("document.querySelector('.job .report')?.naturalWidth > 0", timeout=30_000)
    command = job.locator(".command").text_content()
    assert command.startswith("steadyswap run -s ") and "--face-map " in command
    assert "--output-video-preset ultrafast" in command
    page.wait_for_function("document.querySelector('.job video').readyState === 4", timeout=30_000)  # it plays
    expect(job.locator("table.quality")).to_contain_text("TD fidelity")
    assert abs(job.locator("video").evaluate("video => video.duration") - 169 / 25) < 0.1
    job.locator("details").first.evaluate("node => node.open = true")
    job.evaluate("node => node.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(1000)  # let the player's loading spinner fade out before the screenshot
    save(page, "ui_finished.png", tmp_path)

    target, output = probe(media_path("video/tpsmm_driving.mp4")), probe(out_dir / "driving_swapped.mp4")
    assert output.frame_count == target.frame_count == 169
    assert len(output.audio) == len(target.audio) == 1
    assert (output.width, output.height) == (target.width, target.height)


def test_uploaded_no_face_source_shows_one_clear_error(page: Page) -> None:
    dog = media_path("image/liveportrait_s33_dog_negative.jpg")
    page.set_input_files(".pick[data-role=source] .upload", str(dog))  # the upload fallback
    expect(page.locator("#sources li .name")).to_have_text(dog.name, timeout=30_000)
    pick(page, "target", "image/fr_two_people.jpg")
    error = page.locator("#error")
    expect(error).to_be_visible(timeout=30_000)
    expect(error).to_contain_text("no face")
    assert "Traceback" not in error.text_content()
    page.click("#error-close")
    expect(error).to_be_hidden()
