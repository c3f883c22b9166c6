"""The web UI end to end in a real headless Chromium (Debian's /usr/bin/chromium) driven by Playwright.

The server runs on 127.0.0.1 in a thread; pages open at 1280x720. Set STEADYSWAP_UPDATE_SCREENSHOTS=1 to
rewrite docs/ui_main.png, docs/ui_narrow.png, docs/ui_finished.png and docs/ui_mask.png from this run.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
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
from steadyswap.models.store import ENV_VAR
from steadyswap.ui.app import UiSettings, create_app
from tests.conftest import DATA, media_path

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ui_out")


@contextmanager
def serving(app) -> Iterator[tuple[str, threading.Thread]]:
    """``app`` served by uvicorn on a free port of 127.0.0.1 in a thread: its address, and the thread."""
    sock = _bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    end = time.monotonic() + 20
    while not server.started and time.monotonic() < end:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/", thread
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def server(out_dir: Path) -> Iterator[str]:
    """The UI on a free port of 127.0.0.1; inputs from the test media, outputs into ``out_dir``."""
    app = create_app(UiSettings(allow_dirs=[out_dir, DATA], work_dir=out_dir.parent / "ui_work"))
    with serving(app) as (url, _thread):
        yield url


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server: str) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    page.bring_to_front()  # the focused tab: a page another test opened would keep the file chooser from showing
    page.goto(server)
    page.wait_for_selector("body[data-ready=true]")
    yield page
    context.close()


def pick(page: Page, role: str, path: str) -> None:
    """Type ``path`` into a role's path field, add it, and wait until the page lists it."""
    page.fill(f".pick[data-role={role}] .path", path)
    page.click(f".pick[data-role={role}] .add")
    listed = page.locator(f"#{'sources' if role == 'source' else 'target'} li .name")
    expect(listed.filter(has_text=Path(path).name)).to_have_count(1, timeout=30_000)


def save(page: Page, name: str, tmp_path: Path) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=False)
    if os.environ.get("STEADYSWAP_UPDATE_SCREENSHOTS"):
        page.screenshot(path=str(DOCS / name), full_page=False)


def test_preview_people_and_run_in_the_browser(page: Page, out_dir: Path, tmp_path: Path) -> None:
    page.click(".pick[data-role=source] .browse")  # the file browser, limited to the allowed folders
    page.click(f"#browser-list button:has-text('{DATA.resolve()}')")
    page.click("#browser-list button:has-text('image/')")
    page.click("#browser-list button:has-text('fr_obama_512.jpg')")
    expect(page.locator("#sources li")).to_have_count(1)
    pick(page, "target", "video/tpsmm_driving_78f.mp4")
    preview = page.locator("#preview")
    expect(preview).to_have_attribute("data-frame", "0", timeout=30_000)
    first = preview.screenshot()

    page.locator("#frame").fill("60")  # move the slider
    expect(preview).to_have_attribute("data-frame", "60", timeout=30_000)
    assert preview.screenshot() != first
    expect(page.locator("#preview-status")).to_contain_text("1 face(s) swapped")

    page.click("#modes button[data-mode=crops]")
    expect(page.locator("#modes button.on")).to_have_text("Face crops")
    page.wait_for_function("Number(document.querySelector('#preview').dataset.seq) >= 3")

    page.click("#find-people")
    person = page.locator(".person").first
    expect(person).to_be_visible(timeout=30_000)
    person.locator("select").select_option(label="fr_obama_512.jpg")
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
    assert abs(job.locator("video").evaluate("video => video.duration") - 78 / 25) < 0.1
    job.locator("details").first.evaluate("node => node.open = true")
    job.evaluate("node => node.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(1000)  # let the player's loading spinner fade out before the screenshot
    save(page, "ui_finished.png", tmp_path)

    target, output = probe(media_path("video/tpsmm_driving_78f.mp4")), probe(out_dir / "driving_swapped.mp4")
    assert output.frame_count == target.frame_count == 78
    assert len(output.audio) == len(target.audio) == 1
    assert (output.width, output.height) == (target.width, target.height)


def wait_for_new_preview(page: Page, action) -> None:
    """Do ``action`` and wait until the preview shown answers a request made after it."""
    seq = page.evaluate("state.seq")
    action()
    page.wait_for_function("seq => Number(document.querySelector('#preview').dataset.seq) > seq", arg=seq,
                           timeout=30_000)


def test_mask_and_enhancer_options_and_the_mask_overlay(page: Page, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path))  # no model downloaded
    pick(page, "source", "image/liveportrait_s1_512.jpg")
    pick(page, "target", "image/fr_obama_512.jpg")
    preview = page.locator("#preview")
    expect(page.locator("#preview-status")).to_contain_text("1 face(s) swapped", timeout=30_000)
    plain = preview.screenshot()

    wait_for_new_preview(page, lambda: page.check("#show-mask"))  # the swap's paste mask, tinted
    expect(page.locator("#preview-status")).to_contain_text("tinted")
    tinted = preview.screenshot()
    assert tinted != plain
    areas, regions = (page.locator(f".option[data-field=face_mask_{name}]") for name in ("areas", "regions"))
    expect(areas).to_be_hidden()
    wait_for_new_preview(page, lambda: page.check("#option-face_mask_types input[value=area]"))
    expect(areas).to_be_visible()
    expect(regions).to_be_hidden()
    wait_for_new_preview(page, lambda: page.uncheck("#option-face_mask_areas input[value=lower-face]"))
    assert preview.screenshot() != tinted  # the overlay follows the areas chosen
    page.locator("#options details[data-group='Mask and colour']").evaluate("node => node.scrollIntoView()")
    page.mouse.move(0, 0)
    save(page, "ui_mask.png", tmp_path)
    expect(page.locator(".option[data-field=face_mask_types] .changed, #options details[data-group='Mask and colour'] "
                        ".changed")).to_have_text("2 changed")

    page.check("#option-face_mask_types input[value=occlusion]")  # xseg_1 is not downloaded
    occluder = page.locator(".option[data-field=face_occluder_model] .inline-error")
    expect(occluder).to_contain_text("run `steadyswap models download xseg_1`")
    page.uncheck("#option-face_mask_types input[value=occlusion]")
    expect(occluder).to_be_hidden()

    expect(page.locator("#option-processors input[value=face_swapper]")).to_be_checked()
    expect(page.locator("#option-processors input[value=face_swapper]")).to_be_disabled()
    model, weight = (page.locator(f".option[data-field=face_enhancer_{name}]") for name in ("model", "weight"))
    expect(model).to_be_hidden()
    page.check("#option-processors input[value=face_enhancer]")
    expect(model).to_be_visible()
    expect(weight).to_be_hidden()
    expect(model.locator(".inline-error")).to_contain_text("run `steadyswap models download gfpgan_1.4`")
    page.select_option("#option-face_enhancer_model", "codeformer")
    expect(weight).to_be_visible()  # only codeformer has a weight input
    expect(model.locator(".inline-error")).to_contain_text("run `steadyswap models download codeformer`")

    page.reload()  # kept over a reload: the list options and the overlay switch
    page.wait_for_selector("body[data-ready=true]")
    expect(page.locator("#option-face_mask_areas input[value=lower-face]")).not_to_be_checked()
    expect(page.locator("#option-face_mask_areas input[value=mouth]")).to_be_checked()
    expect(page.locator("#option-processors input[value=face_enhancer]")).to_be_checked()
    expect(page.locator("#show-mask")).to_be_checked()


def test_uploaded_no_face_source_shows_one_clear_error(page: Page) -> None:
    dog = media_path("image/liveportrait_s33_dog_negative.jpg")
    page.set_input_files(".pick[data-role=source] .upload", str(dog))  # the upload fallback
    expect(page.locator("#sources li .name")).to_have_text(dog.name, timeout=30_000)
    pick(page, "target", "image/fr_two_people_640.jpg")
    inline, toast = page.locator("#preview-error"), page.locator("#toast")
    expect(inline).to_contain_text("no face", timeout=30_000)
    expect(toast).to_contain_text("no face")
    assert "Traceback" not in toast.text_content()
    page.click("#toast-close")
    expect(toast).to_be_hidden()
    expect(inline).to_be_visible()  # stays beside the preview until the preview works


def test_existing_output_is_replaced_only_after_asking(page: Page, out_dir: Path) -> None:
    kept = out_dir / "kept.jpg"
    kept.write_bytes(media_path("image/fr_biden_512.jpg").read_bytes())
    before = kept.read_bytes()
    pick(page, "source", "image/fr_obama_512.jpg")
    pick(page, "target", "image/fr_two_people_640.jpg")
    expect(page.locator("#target li")).to_have_count(1)
    page.fill("#output", str(kept))
    jobs = page.locator(".job").count()
    page.click("#start")
    dialog = page.locator("#overwrite")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"{kept} already exists")
    page.click("#overwrite button[value=keep]")
    expect(dialog).to_be_hidden()
    page.wait_for_timeout(500)
    assert page.locator(".job").count() == jobs and kept.read_bytes() == before
    expect(page.locator("#run-error")).to_be_hidden()

    page.click("#start")
    page.click("#overwrite button[value=replace]")
    job = page.locator(f".job[data-job='{jobs + 1}']")
    expect(job).to_have_attribute("data-state", "done", timeout=90_000)
    replaced = cv2.imread(str(kept))
    assert kept.read_bytes() != before and replaced.shape[:2] == (376, 640)  # now the swapped target

    job.locator(".retry").click()  # a retry would replace the output it made: asked too
    expect(dialog).to_be_visible()
    page.click("#overwrite button[value=keep]")
    page.wait_for_timeout(500)
    assert page.locator(".job").count() == jobs + 1


def test_input_as_output_is_refused_at_submit(page: Page) -> None:
    target = media_path("image/fr_two_people_640.jpg").resolve()
    before = target.read_bytes()
    pick(page, "source", "image/fr_obama_512.jpg")
    pick(page, "target", str(target))
    expect(page.locator("#target li")).to_have_count(1)
    page.fill("#output", str(target))
    jobs = page.locator(".job").count()
    page.click("#start")
    error = page.locator("#run-error")
    expect(error).to_have_text(f"{target}: output would overwrite the input {target}")
    expect(error).to_be_in_viewport()
    expect(page.locator("#toast")).to_be_in_viewport()
    expect(page.locator("#overwrite")).to_be_hidden()  # refused outright: nothing to confirm
    assert page.locator(".job").count() == jobs and target.read_bytes() == before


def test_errors_show_beside_their_cause_and_in_view(page: Page) -> None:
    pick(page, "source", "image/fr_obama_512.jpg")
    pick(page, "target", "video/liveportrait_d0_crf20.mp4")
    expect(page.locator("#preview")).to_have_attribute("data-frame", "0", timeout=30_000)
    field = page.locator("#option-color_strength")
    field.scroll_into_view_if_needed()
    field.fill("7")  # checked as typed, against the CLI's own limits
    message = page.locator(".option[data-field=color_strength] .inline-error")
    expect(message).to_have_text("--color-strength: 7.0 is outside 0.0..1.0")
    expect(message).to_be_in_viewport()
    expect(field).to_have_attribute("aria-invalid", "true")
    field.fill("0.5")
    expect(message).to_be_hidden()
    expect(field).to_have_attribute("aria-invalid", "false")

    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")  # the inputs are out of sight
    page.set_input_files(".pick[data-role=source] .upload",
                         files=[{"name": "holiday.jpg", "mimeType": "image/jpeg", "buffer": b"not a photo"}])
    toast = page.locator("#toast")
    expect(toast).to_contain_text("holiday.jpg", timeout=30_000)  # the user's file name, not the stored one
    expect(toast).to_be_in_viewport()
    inline = page.locator("#source-error")
    expect(inline).to_have_text(toast.locator("#toast-text").text_content())
    assert "uploads" not in inline.text_content()
    expect(page.locator("#sources li")).to_have_count(1)


def test_reload_and_the_address_keep_the_setup(page: Page, browser) -> None:
    pick(page, "source", "image/fr_obama_512.jpg")
    pick(page, "source", "image/fr_biden_512.jpg")
    pick(page, "target", "image/fr_two_people_640.jpg")
    expect(page.locator("#sources li")).to_have_count(2)
    page.click("#find-people")
    expect(page.locator(".person")).to_have_count(2, timeout=30_000)
    page.locator(".person select").nth(1).select_option(label="fr_biden_512.jpg")
    page.fill("#option-color_strength", "0.4")
    page.locator("#option-color_strength").dispatch_event("change")
    page.fill("#output", "two_swapped.jpg")
    page.click("#modes button[data-mode=crops]")
    obama, biden = (str(media_path(f"image/fr_{name}_512.jpg").resolve()) for name in ("obama", "biden"))

    def same_setup(view: Page) -> None:
        expect(view.locator("#sources li .name")).to_have_text(["fr_obama_512.jpg", "fr_biden_512.jpg"])
        expect(view.locator("#target li .name")).to_have_text("fr_two_people_640.jpg")
        expect(view.locator(".person select").nth(0)).to_have_value(obama)
        expect(view.locator(".person select").nth(1)).to_have_value(biden)
        expect(view.locator(".person img").nth(1)).not_to_have_js_property("naturalWidth", 0)
        expect(view.locator("#option-color_strength")).to_have_value("0.4")
        expect(view.locator("#output")).to_have_value("two_swapped.jpg")
        expect(view.locator("#modes button.on")).to_have_text("Face crops")
        expect(view.locator("#preview-status")).to_contain_text("2 face(s) swapped", timeout=30_000)

    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    same_setup(page)
    other = browser.new_context(viewport={"width": 1280, "height": 720})  # nothing stored: the address alone
    shared = other.new_page()
    shared.goto(page.url)
    shared.wait_for_selector("body[data-ready=true]")
    same_setup(shared)
    other.close()


def test_keyboard_reaches_upload_and_the_preview_modes_early(page: Page) -> None:
    order = []
    for _ in range(40):
        page.keyboard.press("Tab")
        order.append(page.evaluate("""() => { const e = document.activeElement;
            return e.dataset.mode ? `mode:${e.dataset.mode}` : e.closest('#options') ? 'option'
              : `${e.closest('.pick')?.dataset.role || ''}:${e.id || e.className}`; }"""))
    assert order[:4] == ["source:path", "source:add", "source:browse", "source:upload-button"]
    assert order.index("mode:side") < order.index("option")  # the preview before the options
    assert order.index("target:upload-button") < order.index("mode:side") < order.index(":start")
    # Enter on the focused button opens the file input's chooser (its click is recorded rather than waiting
    # for the native dialog, which a loaded headless browser may not raise in time), then a file picked there
    # is uploaded
    page.evaluate("""() => document.querySelector('.pick[data-role=target] .upload').addEventListener(
        'click', event => { window.chooserOpened = true; event.preventDefault(); })""")
    page.focus(".pick[data-role=target] .upload-button")
    page.keyboard.press("Enter")
    page.wait_for_function("window.chooserOpened === true", timeout=10_000)
    page.set_input_files(".pick[data-role=target] .upload", str(media_path("image/fr_two_people_640.jpg")))
    expect(page.locator("#target li .name")).to_have_text("fr_two_people_640.jpg", timeout=30_000)


def test_layout_keeps_the_run_in_view_and_fits_narrow_screens(page: Page, tmp_path: Path) -> None:
    expect(page.locator("#preview")).to_be_hidden()  # no broken-image icon before there is a preview
    assert page.locator("#preview").evaluate("node => getComputedStyle(node).display") == "none"
    page.set_input_files(".pick[data-role=source] .upload", str(media_path("image/fr_obama_512.jpg")))
    expect(page.locator("#sources li")).to_have_count(1, timeout=30_000)
    pick(page, "target", "video/liveportrait_d0_crf20.mp4")
    page.select_option("#option-face_selector_mode", "reference")
    page.click("#find-people")
    expect(page.locator(".person")).to_have_count(1, timeout=30_000)
    rows = page.locator(".option:visible")
    assert rows.count() >= 18
    for label in rows.locator("label:has(.flag)").all():  # words first, the flag beside them
        words, flag = label.locator("span").all_text_contents()
        assert not words.startswith("-") and flag.startswith("--")
    for element in ("#start", "#output", "#queue-title", "#modes", "#frame"):
        expect(page.locator(element)).to_be_in_viewport()
    page.focus("#option-smoothing_beta")
    expect(page.locator("#option-smoothing_beta-help")).to_contain_text("One-Euro speed coefficient")
    page.mouse.wheel(0, 2000)  # scrolling the options keeps preview and Run in view
    page.wait_for_timeout(300)
    assert page.evaluate("window.scrollY") > 300
    for element in ("#start", "#modes"):
        expect(page.locator(element)).to_be_in_viewport()
    page.evaluate("window.scrollTo(0, 0)")
    untruncated = """select => { const font = getComputedStyle(select).font, canvas = document.createElement('canvas');
        const context = canvas.getContext('2d'); context.font = font;
        return [...select.options].every(o => context.measureText(o.text).width + 34 <= select.clientWidth); }"""
    assert page.locator(".person select").evaluate(untruncated)

    page.set_viewport_size({"width": 400, "height": 800})
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    assert page.locator(".person select").evaluate(untruncated)
    page.fill("#output", str(media_path("video/liveportrait_d0_crf20.mp4").resolve()))
    page.click("#start")  # a long error in the toast still fits
    expect(page.locator("#toast")).to_be_in_viewport()
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    page.click("#toast-close")
    page.evaluate("window.scrollTo(0, 0)")
    save(page, "ui_narrow.png", tmp_path)


def axe_script() -> Path | None:
    """axe-core's axe.min.js: $STEADYSWAP_AXE_JS, else ./node_modules (``npm install --no-save axe-core``)."""
    given = os.environ.get("STEADYSWAP_AXE_JS")
    found = Path(given) if given else DOCS.parent / "node_modules" / "axe-core" / "axe.min.js"
    return found if found.is_file() else None


@pytest.mark.skipif(axe_script() is None, reason="axe-core is not installed (npm install --no-save axe-core, "
                                                  "or set STEADYSWAP_AXE_JS to its axe.min.js)")
def test_accessibility_check_finds_no_serious_violations(page: Page) -> None:
    pick(page, "source", "image/fr_obama_512.jpg")
    pick(page, "target", "image/fr_two_people_640.jpg")
    page.click("#find-people")
    expect(page.locator(".person")).to_have_count(2, timeout=30_000)
    page.fill("#option-color_strength", "3")
    expect(page.locator(".option[data-field=color_strength] .inline-error")).to_be_visible()
    page.add_script_tag(path=str(axe_script()))  # served from disk: the page loads nothing from outside
    for width in (1280, 400):
        page.set_viewport_size({"width": width, "height": 720})
        violations = page.evaluate("async () => (await axe.run(document)).violations"
                                   ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target)}))")
        serious = [v for v in violations if v["impact"] in ("serious", "critical")]
        assert not serious, serious
