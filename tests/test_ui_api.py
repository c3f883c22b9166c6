"""The web UI's API through FastAPI's TestClient: preview, people, queue, cancel, errors, path refusal, token.

Queue mechanics use a stand-in engine (fast, controllable); one image run and one cancelled video run go
through the real ``swap_file``.
"""

from __future__ import annotations

import json
import shlex
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the ui extra (fastapi, uvicorn) is not installed")
pytest.importorskip("httpx", reason="FastAPI's TestClient needs httpx")

from fastapi.testclient import TestClient

from steadyswap.assembly import build_enhancer, build_masker
from steadyswap.cli.main import build_parser
from steadyswap.cli.run import build_config
from steadyswap.config import FACE_MASK_REGIONS, FACE_MASK_TYPES, PROCESSORS, RunConfig
from steadyswap.engine.pipeline import RunResult
from steadyswap.errors import Interrupted, ModelError, NoFaceError
from steadyswap.flags import FLAGS
from steadyswap.models.store import ENV_VAR
from steadyswap.ui.app import UiSettings, create_app
from steadyswap.ui.options import cli_command, config_from_options
from tests import onnx_standins
from tests.conftest import DATA, media_path


class FakeEngine:
    """Stands in for ``swap_file``: reports progress frame by frame; ``gate`` holds it mid-run."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.fail: Exception | None = None
        self.calls: list[tuple] = []

    def __call__(self, sources, target, output, config, progress, cancel) -> RunResult:
        self.calls.append((sources, target, output, config))
        if self.fail is not None:
            raise self.fail
        for done in range(1, 11):
            progress(done, 10)
            if done == 3:
                self.gate.wait(10)
            if cancel.is_set():
                raise Interrupted("run cancelled")
        Path(output).write_bytes(b"video")
        Path(config.quality_report).with_suffix(".png").write_bytes(b"png")
        return RunResult(Path(output), 10, 0.1, 100.0, "summary text")


def make_client(tmp_path: Path, run=None, token: str | None = None, max_upload: int = 1 << 30) -> TestClient:
    settings = UiSettings(allow_dirs=[tmp_path / "out", DATA], work_dir=tmp_path / "work", token=token,
                          max_upload=max_upload, run=run)
    (tmp_path / "out").mkdir(exist_ok=True)
    return TestClient(create_app(settings), base_url="http://127.0.0.1")


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def client(tmp_path: Path, engine: FakeEngine):
    with make_client(tmp_path, engine) as c:
        yield c


def wait_for(client: TestClient, number: int, states: tuple[str, ...], timeout: float = 20) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = next(j for j in client.get("/api/jobs").json()["jobs"] if j["id"] == number)
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {number} never reached {states}: {job}")


def decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def test_page_and_options_come_from_runconfig(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "steadyswap" in page.text and "/static/app.js" in page.text
    assert client.get("/static/app.js").status_code == 200
    state = client.get("/api/state").json()
    options = {o["field"]: o for o in state["options"]}
    defaults = RunConfig()
    assert options["color_strength"]["default"] == defaults.color_strength
    assert options["color_strength"]["flag"] == "--color-strength"
    assert options["output_video_preset"]["default"] == defaults.output_video_preset
    assert "classic" in options["face_swapper_model"]["choices"]
    assert options["face_swapper_weight"]["when"] == [["face_swapper_model!", ["classic"]]]


def test_preview_modes_frames_and_sizes(client: TestClient) -> None:
    body = {"sources": ["image/fr_obama_512.jpg"], "target": "video/liveportrait_d0_crf20.mp4", "frame": 0}
    shots = {}
    for mode in ("side", "output", "crops"):
        response = client.post("/api/preview", json={**body, "mode": mode})
        assert response.status_code == 200, response.text
        assert response.headers["x-faces"] == "1"
        shots[mode] = decode(response.content)
    assert shots["output"].shape[:2] == (512, 512)  # d0 is 512 px: below the preview size, kept as is
    assert shots["side"].shape[:2] == (512, 512 * 2 + 6)
    assert shots["crops"].shape[0] % 196 == 0
    later = client.post("/api/preview", json={**body, "mode": "output", "frame": 60})
    assert later.headers["x-frame"] == "60"
    assert np.abs(decode(later.content).astype(int) - shots["output"]).mean() > 1
    clamped = client.post("/api/preview", json={**body, "mode": "output", "frame": 9999})
    assert clamped.headers["x-frame"] == "77"


def test_preview_changes_with_options_and_scales_large_frames(client: TestClient) -> None:
    body = {"sources": ["image/fr_obama_512.jpg"], "target": "video/liveportrait_s32_1280x720_30f.mp4",
            "mode": "output"}
    plain = client.post("/api/preview", json=body)
    assert decode(plain.content).shape[:2] == (360, 640)
    weaker = client.post("/api/preview", json={**body, "options": {"color_strength": "0", "face_mask_blur": "0.8"}})
    # over the whole frame, where the face is a small part (0.19 since the degrade stage's detail match)
    assert np.abs(decode(weaker.content).astype(int) - decode(plain.content)).mean() > 0.15


def test_only_the_latest_preview_is_served(client: TestClient) -> None:
    body = {"sources": ["image/fr_obama_512.jpg"], "target": "image/fr_two_people_640.jpg", "client": "page1"}
    assert client.post("/api/preview", json={**body, "seq": 5}).status_code == 200
    stale = client.post("/api/preview", json={**body, "seq": 4})
    assert stale.status_code == 204 and stale.headers["x-superseded"] == "1"
    assert client.post("/api/preview", json={**body, "seq": 4, "client": "page2"}).status_code == 200


def test_errors_are_one_line_messages(client: TestClient) -> None:
    dog = client.post("/api/preview", json={"sources": ["image/liveportrait_s33_dog_negative.jpg"],
                                            "target": "image/fr_two_people_640.jpg"})
    assert dog.status_code == 422 and "no face" in dog.json()["error"]
    bad = client.post("/api/preview", json={"sources": ["image/fr_obama_512.jpg"],
                                            "target": "image/fr_two_people_640.jpg",
                                            "options": {"color_strength": "7"}})
    assert bad.status_code == 422 and bad.json()["error"].startswith("--color-strength")
    video_source = client.post("/api/preview", json={"sources": ["video/liveportrait_d0_crf20.mp4"],
                                                     "target": "image/fr_two_people_640.jpg"})
    assert "sources must be photos" in video_source.json()["error"]
    missing = client.get("/api/media", params={"path": "image/nothing.jpg"})
    assert missing.status_code == 404 and "no such file" in missing.json()["error"]
    assert client.post("/api/preview", json={"target": 3}).status_code == 422
    assert client.get("/api/jobs/99/output").json() == {"error": "no job 99"}
    assert client.get("/api/state").status_code == 200  # still serving


def test_people_grouped_and_mapped(client: TestClient) -> None:
    two = client.post("/api/people", json={"target": "image/fr_two_people_640.jpg"}).json()["people"]
    assert len(two) == 2 and all(p["thumbnail"].startswith("data:image/jpeg;base64,") for p in two)
    x0, y0, x1, y1 = two[0]["box"]
    face = decode(client.get("/api/thumb", params={"path": "image/fr_two_people_640.jpg", "size": 640,
                                                   "box": ",".join(map(str, two[0]["box"]))}).content)
    assert abs(face.shape[1] / face.shape[0] - (x1 - x0) / (y1 - y0)) < 0.05  # the person's face, as the page shows it
    outside = client.get("/api/thumb", params={"path": "image/fr_two_people_640.jpg", "box": "5000,5000,5100,5100"})
    assert outside.status_code == 422 and "outside frame 0" in outside.json()["error"]
    video = client.post("/api/people", json={"target": "video/liveportrait_d0_crf20.mp4"}).json()["people"]
    assert len(video) == 1 and video[0]["seen"] >= 30
    x0, y0, x1, y1 = video[0]["box"]
    assert 0 <= x0 < x1 <= 512 and 0 <= y0 < y1 <= 512  # target pixels
    people = [{"frame": p["frame"], "box": p["box"], "source": None} for p in two]
    body = {"sources": [str(media_path("image/fr_obama_512.jpg"))], "target": "image/fr_two_people_640.jpg",
            "mode": "output"}
    assert "map at least one person" in client.post("/api/preview", json={**body, "people": people}).json()["error"]
    people[0]["source"] = body["sources"][0]
    one = client.post("/api/preview", json={**body, "people": people})
    assert one.status_code == 200, one.text
    assert one.headers["x-faces"] == "1"
    people[1]["source"] = body["sources"][0]
    assert client.post("/api/preview", json={**body, "people": people}).headers["x-faces"] == "2"
    people[0]["source"] = str(media_path("image/fr_biden_512.jpg"))
    assert "not a source" in client.post("/api/preview", json={**body, "people": people}).json()["error"]


def test_queue_progress_cancel_retry_and_face_map(client: TestClient, engine: FakeEngine, tmp_path: Path) -> None:
    engine.gate.clear()
    sources = [str(media_path("image/fr_obama_512.jpg").resolve()), str(media_path("image/fr_biden_512.jpg").resolve())]
    people = [{"frame": 3, "box": [10, 20, 110, 140], "source": sources[1]},
              {"frame": 9, "box": [200, 20, 300, 140], "source": None}]
    job = client.post("/api/jobs", json={"sources": sources, "target": "video/liveportrait_d0_crf20.mp4",
                                         "output": str(tmp_path / "out" / "a.mp4"), "people": people,
                                         "options": {"color_strength": "0.5"}}).json()
    running = wait_for(client, job["id"], ("running",))
    end = time.monotonic() + 10
    while running["done"] < 3 and time.monotonic() < end:
        running = wait_for(client, job["id"], ("running",))
    assert running["done"] == 3 and running["total"] == 10 and running["fps"] > 0 and running["eta"] is not None
    queued = client.post("/api/jobs", json={"sources": sources[:1], "target": "video/liveportrait_d0_crf20.mp4"}).json()
    assert queued["state"] == "queued"
    assert client.post(f"/api/jobs/{queued['id']}/cancel").json()["state"] == "cancelled"
    client.post(f"/api/jobs/{job['id']}/cancel")
    engine.gate.set()
    assert wait_for(client, job["id"], ("cancelled", "done", "failed"))["state"] == "cancelled"
    assert not (tmp_path / "out" / "a.mp4").exists()
    face_map = json.loads((tmp_path / "work" / "jobs" / str(job["id"]) / "face_map.json").read_text())
    assert face_map["sources"] == {"fr_biden_512": sources[1]}
    assert face_map["people"] == [{"frame": 3, "box": [10, 20, 110, 140], "source": "fr_biden_512"},
                                  {"frame": 9, "box": [200, 20, 300, 140], "source": None}]
    config = engine.calls[0][3]
    assert config.face_map.endswith("face_map.json") and config.color_strength == 0.5
    assert f"--face-map {config.face_map}" in job["command"] and "--quality-report" in job["command"]
    retried = client.post(f"/api/jobs/{job['id']}/retry").json()
    done = wait_for(client, retried["id"], ("done", "failed"))
    assert done["state"] == "done" and done["done"] == 10 and done["report"] and done["summary"] == "summary text"
    assert client.get(f"/api/jobs/{retried['id']}/output").content == b"video"
    download = client.get(f"/api/jobs/{retried['id']}/output", params={"download": "true"})
    assert 'filename="a.mp4"' in download.headers["content-disposition"]
    assert client.get(f"/api/jobs/{retried['id']}/report.png").content == b"png"
    asked = client.post(f"/api/jobs/{retried['id']}/retry")  # its output exists now: replaced only when told
    assert asked.status_code == 409 and asked.json()["exists"] == f"{tmp_path / 'out' / 'a.mp4'} already exists"
    assert client.post(f"/api/jobs/{retried['id']}/retry", json={"overwrite": True}).status_code == 200
    assert Path(queued["output"]) == tmp_path / "out" / "liveportrait_d0_crf20.swapped.mp4"  # the first allowed folder
    again = client.post("/api/jobs", json={"sources": sources[:1], "target": "video/liveportrait_d0_crf20.mp4"}).json()
    assert Path(again["output"]).name == "liveportrait_d0_crf20.swapped-2.mp4"  # queued outputs are not reused


def test_an_existing_output_is_replaced_only_with_overwrite(client: TestClient, engine: FakeEngine,
                                                           tmp_path: Path) -> None:
    kept = tmp_path / "out" / "kept.jpg"
    kept.write_bytes(b"the user's photo")
    body = {"sources": ["image/fr_obama_512.jpg"], "target": "image/fr_two_people_640.jpg", "output": str(kept)}
    refused = client.post("/api/jobs", json=body)
    assert refused.status_code == 409, refused.text
    assert refused.json() == {"error": f"{kept} already exists: send overwrite to replace it",
                              "exists": f"{kept} already exists"}
    assert client.get("/api/jobs").json()["jobs"] == [] and not engine.calls
    done = wait_for(client, client.post("/api/jobs", json={**body, "overwrite": True}).json()["id"], ("done",))
    assert kept.read_bytes() == b"video" and done["output"] == str(kept)

    engine.gate.clear()  # a queued or running job's output is taken too
    first = client.post("/api/jobs", json={**body, "output": str(tmp_path / "out" / "a.mp4")}).json()
    wait_for(client, first["id"], ("running",))
    again = client.post("/api/jobs", json={**body, "output": str(tmp_path / "out" / "a.mp4")})
    assert again.status_code == 409 and f"is also the output of job {first['id']} (running)" in again.json()["error"]
    late = client.post("/api/jobs", json={**body, "output": str(tmp_path / "out" / "late.jpg")}).json()
    (tmp_path / "out" / "late.jpg").write_bytes(b"written meanwhile")  # appears while the job waits
    engine.gate.set()
    failed = wait_for(client, late["id"], ("done", "failed"))
    assert failed["state"] == "failed" and "appeared after the job was queued" in failed["error"]
    assert (tmp_path / "out" / "late.jpg").read_bytes() == b"written meanwhile"


def test_an_input_as_output_is_refused_when_the_job_is_submitted(client: TestClient, engine: FakeEngine,
                                                                 tmp_path: Path) -> None:
    source, target = media_path("image/fr_obama_512.jpg").resolve(), media_path("image/fr_two_people_640.jpg").resolve()
    before = source.read_bytes(), target.read_bytes()
    two = client.post("/api/people", json={"target": str(target)}).json()["people"]
    people = [{"frame": p["frame"], "box": p["box"], "source": str(source)} for p in two]  # a face-map photo
    (tmp_path / "out" / "photos").symlink_to(target.parent)  # the same file through a linked folder
    for output, given in ((target, target), (source, source), (tmp_path / "out" / "photos" / target.name, target)):
        for overwrite in (False, True):
            response = client.post("/api/jobs", json={"sources": [str(source)], "target": str(target), "people": people,
                                                      "output": str(output), "overwrite": overwrite})
            assert response.status_code == 422, response.text
            assert response.json()["error"] == f"{output.parent.resolve() / output.name}: output would overwrite the input {given}"
    assert client.get("/api/jobs").json()["jobs"] == [] and not engine.calls
    assert (source.read_bytes(), target.read_bytes()) == before


def test_option_values_are_checked_as_typed(client: TestClient) -> None:
    errors = client.post("/api/options/check", json={"options": {"color_strength": "7", "face_mask_blur": "0.2",
                                                                 "output_video_quality": "x"}}).json()["errors"]
    assert errors == {"color_strength": "--color-strength: 7.0 is outside 0.0..1.0",
                      "output_video_quality": "--output-video-quality: 'x' is not a valid value"}
    together = client.post("/api/options/check", json={"options": {"trim_frame_start": "9", "trim_frame_end": "3"}})
    assert together.json()["errors"] == {"trim_frame_end": "--trim-frame-end: must be greater than --trim-frame-start"}
    assert client.post("/api/options/check", json={"options": {"color_strength": "0.2"}}).json() == {"errors": {}}
    preview = client.post("/api/preview", json={"sources": ["image/fr_obama_512.jpg"],
                                                "target": "image/fr_two_people_640.jpg",
                                                "options": {"face_mask_blur": "3"}})
    assert preview.status_code == 422 and preview.json()["field"] == "face_mask_blur"


def test_failed_runs_say_why_and_the_queue_goes_on(client: TestClient, engine: FakeEngine) -> None:
    body = {"sources": ["image/fr_obama_512.jpg"], "target": "video/liveportrait_d0_crf20.mp4"}
    engine.fail = NoFaceError("no face found in the source image(s)")
    first = wait_for(client, client.post("/api/jobs", json=body).json()["id"], ("failed",))
    assert first["error"] == "no face found in the source image(s)"
    engine.fail = RuntimeError("boom")
    second = wait_for(client, client.post("/api/jobs", json=body).json()["id"], ("failed",))
    assert second["error"] == "internal error: RuntimeError: boom"
    engine.fail = None
    assert wait_for(client, client.post("/api/jobs", json=body).json()["id"], ("done",))["state"] == "done"


def test_event_stream_sends_the_queue(client: TestClient) -> None:
    client.post("/api/jobs", json={"sources": ["image/fr_obama_512.jpg"], "target": "video/liveportrait_d0_crf20.mp4"})
    with client.stream("GET", "/api/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        line = next(line for line in stream.iter_lines() if line.startswith("data: "))
    assert json.loads(line[6:])["jobs"][0]["id"] == 1


def test_paths_outside_the_allowed_folders_are_refused(client: TestClient, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "inside.jpg").symlink_to(media_path("image/fr_obama_512.jpg"))
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(media_path("image/fr_biden_512.jpg").read_bytes())
    (out / "leak.jpg").symlink_to(secret)
    (out / "leakdir").symlink_to(tmp_path)
    for path in ("../secret.jpg", "image/../../secret.jpg", str(secret), "/etc/passwd", str(out / "leak.jpg"),
                 str(out / "leakdir" / "secret.jpg")):
        response = client.get("/api/media", params={"path": path})
        assert response.status_code == 403, (path, response.text)
    assert client.get("/api/media", params={"path": str(out / "inside.jpg")}).status_code == 200
    assert client.get("/api/browse", params={"path": str(tmp_path)}).status_code == 403
    assert client.get("/api/browse", params={"path": str(out / "leakdir")}).status_code == 403
    names = [e["name"] for e in client.get("/api/browse", params={"path": str(out)}).json()["entries"]]
    assert names == ["inside.jpg"]
    body = {"sources": ["image/fr_obama_512.jpg"], "target": "image/fr_two_people_640.jpg"}
    for output in (str(tmp_path / "x.jpg"), str(out / ".." / "x.jpg"), "/tmp/x.jpg", str(out / "leak.jpg"),
                   str(out / "leakdir" / "x.jpg"), str(out / "x.txt")):
        response = client.post("/api/jobs", json={**body, "output": output})
        assert response.status_code == 403, (output, response.text)
    people = [{"frame": 0, "box": [0, 0, 10, 10], "source": str(secret)}]
    assert client.post("/api/preview", json={**body, "people": people}).status_code == 403
    assert not (tmp_path / "x.jpg").exists()


def test_uploads_stream_to_random_names_within_a_limit(tmp_path: Path, engine: FakeEngine) -> None:
    photo = media_path("image/fr_obama_512.jpg").read_bytes()
    with make_client(tmp_path, engine, max_upload=len(photo)) as client:
        uploaded = client.post("/api/upload", params={"name": "../../evil.jpg"}, content=photo).json()
        path = Path(uploaded["path"])
        assert path.parent == (tmp_path / "work" / "uploads").resolve() or path.parent == tmp_path / "work" / "uploads"
        assert path.name != "evil.jpg" and path.suffix == ".jpg" and path.read_bytes() == photo
        assert uploaded["name"] == "evil.jpg" and uploaded["size"] == len(photo)
        assert not (tmp_path / "evil.jpg").exists()
        preview = client.post("/api/preview",
                              json={"sources": [uploaded["path"]], "target": "image/fr_two_people_640.jpg"})
        assert preview.status_code == 200
        too_big = client.post("/api/upload", params={"name": "big.jpg"}, content=photo + b"x")
        assert too_big.status_code == 413 and "limit" in too_big.json()["error"]

        def chunks():  # no Content-Length: the limit is enforced while streaming
            yield photo
            yield b"more"

        assert client.post("/api/upload", params={"name": "big.jpg"}, content=chunks()).status_code == 413
        script = client.post("/api/upload", params={"name": "run.sh"}, content=b"x")
        assert script.status_code == 422 and script.json()["error"].startswith("run.sh: uploads must be photos")
        broken = client.post("/api/upload", params={"name": "C:\\Users\\me\\holiday.jpg"}, content=b"not a photo")
        assert broken.status_code == 422 and broken.json()["error"].startswith("holiday.jpg")  # the user's name
        assert "uploads" not in broken.json()["error"]
        assert len(list((tmp_path / "work" / "uploads").iterdir())) == 1


def test_token_is_required_when_set(tmp_path: Path, engine: FakeEngine) -> None:
    with make_client(tmp_path, engine, token="s3cret") as client:
        refused = client.get("/api/state")
        assert refused.status_code == 401 and "token" in refused.json()["error"]
        assert client.get("/", params={"token": "wrong"}).status_code == 401
        assert client.get("/api/state", headers={"X-Steadyswap-Token": "s3cret"}).status_code == 200
        page = client.get("/", params={"token": "s3cret"})
        assert page.status_code == 200 and "steadyswap_token" in page.headers["set-cookie"]
        assert client.get("/api/state").status_code == 200  # the cookie now carries it
        client.cookies.clear()
        assert client.get("/static/app.js").status_code == 401


def test_loopback_server_refuses_foreign_hosts_and_origins(client: TestClient) -> None:
    assert client.get("/api/state", headers={"Host": "evil.example:8000"}).status_code == 403
    cross = client.post("/api/jobs", json={}, headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403
    assert client.get("/api/state", headers={"Host": "localhost:8000"}).status_code == 200


def test_cli_command_repeats_the_run(tmp_path: Path) -> None:
    config = config_from_options({"color_strength": "0.4", "face_mask_padding": "5 10", "face_smoothing": "ema",
                                  "execution_providers": "cpu", "output_video_preset": "ultrafast"},
                                 face_map=str(tmp_path / "map one.json"), quality_report=str(tmp_path / "r.json"))
    command = cli_command([Path("a b.jpg")], Path("t.mp4"), Path("o.mp4"), config)
    args = build_parser()[0].parse_args(shlex.split(command)[1:])
    assert args.sources == ["a b.jpg"] and args.target == "t.mp4" and args.output == "o.mp4"
    assert build_config(args) == config


def test_real_engine_image_run_and_cancelled_video_run(tmp_path: Path) -> None:
    with make_client(tmp_path) as client:
        two = client.post("/api/people", json={"target": "image/fr_two_people_640.jpg"}).json()["people"]
        source = str(media_path("image/fr_obama_512.jpg"))
        people = [{"frame": p["frame"], "box": p["box"], "source": source if i == 0 else None}
                  for i, p in enumerate(two)]
        job = client.post("/api/jobs", json={"sources": [source], "target": "image/fr_two_people_640.jpg",
                                             "output": str(tmp_path / "out" / "two.jpg"), "people": people}).json()
        done = wait_for(client, job["id"], ("done", "failed"), timeout=60)
        assert done["state"] == "done", done
        assert done["provenance"].startswith("MARKED: C2PA manifest valid")  # the result panel's verify line
        before, after = (cv2.imread(str(p))
                         for p in (media_path("image/fr_two_people_640.jpg"), tmp_path / "out" / "two.jpg"))
        x0, y0, x1, y1 = (int(v) for v in two[1]["box"])
        # unmapped: unchanged but for JPEG and the watermark (about 2 levels, docs/provenance.md)
        assert np.abs(after[y0:y1, x0:x1].astype(int) - before[y0:y1, x0:x1]).mean() < 4
        x0, y0, x1, y1 = (int(v) for v in two[0]["box"])
        assert np.abs(after[y0:y1, x0:x1].astype(int) - before[y0:y1, x0:x1]).mean() > 3  # mapped: swapped

        video = client.post("/api/jobs", json={"sources": [source], "target": "video/tpsmm_driving_78f.mp4",
                                               "output": str(tmp_path / "out" / "cut.mp4")}).json()
        end = time.monotonic() + 60
        while wait_for(client, video["id"], ("running", "done", "failed"))["done"] < 2 and time.monotonic() < end:
            time.sleep(0.05)
        client.post(f"/api/jobs/{video['id']}/cancel")
        assert wait_for(client, video["id"], ("cancelled", "done", "failed"), timeout=60)["state"] == "cancelled"
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["two.jpg"]


def test_ui_command_prints_the_token_and_needs_it(tmp_path: Path) -> None:
    import subprocess
    import sys
    import urllib.error
    import urllib.request

    from steadyswap.cli.main import main

    assert main(["ui", "--allow-dir", str(tmp_path / "missing")]) == 2
    process = subprocess.Popen([sys.executable, "-m", "steadyswap", "ui", "--host", "0.0.0.0", "--allow-dir",
                                str(tmp_path), "--work-dir", str(tmp_path / "work")],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = process.stdout.readline().split("steadyswap ui: ", 1)[1].strip()
        assert "?token=" in url and process.stdout.readline().startswith("steadyswap ui: token ")
        local = url.replace("0.0.0.0", "127.0.0.1")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(local.split("?")[0] + "api/state", timeout=10)
        assert refused.value.code == 401
        with urllib.request.urlopen(local, timeout=10) as page:
            assert page.status == 200 and "steadyswap_token" in page.headers["set-cookie"]
    finally:
        process.terminate()
        process.wait(timeout=10)


MASK_OPTIONS = {"face_mask_types": ["box", "occlusion", "area", "region"], "face_mask_areas": ["mouth", "upper-face"],
                "face_mask_regions": "skin nose mouth", "face_occluder_model": "many",
                "face_parser_model": "bisenet_resnet_18", "hand_occluder": "off",
                "processors": ["face_swapper", "face_enhancer"], "face_enhancer_model": "codeformer",
                "face_enhancer_blend": "60", "face_enhancer_weight": "0.3"}
PORTRAIT = {"sources": ["image/liveportrait_s1_512.jpg"], "target": "image/fr_obama_512.jpg"}


def test_mask_and_enhancer_options_are_the_cli_flags(client: TestClient) -> None:
    options = {o["field"]: o for o in client.get("/api/state").json()["options"]}
    defaults = RunConfig()
    assert options["face_mask_types"]["kind"] == "multi" and options["face_mask_types"]["flag"] == "--face-mask-types"
    assert options["face_mask_types"]["choices"] == list(FACE_MASK_TYPES)
    assert options["face_mask_types"]["default"] == list(defaults.face_mask_types)
    assert options["face_mask_regions"]["default"] == list(FACE_MASK_REGIONS)
    assert options["face_mask_areas"]["when"] == [["face_mask_types", ["area"]]]
    assert options["face_mask_regions"]["when"] == options["face_parser_model"]["when"] == [["face_mask_types", ["region"]]]
    assert options["face_occluder_model"]["when"] == [["face_mask_types", ["occlusion"]]]
    assert options["processors"]["choices"] == list(PROCESSORS) and options["processors"]["fixed"] == ["face_swapper"]
    assert options["face_enhancer_blend"]["default"] == defaults.face_enhancer_blend
    assert options["face_enhancer_weight"]["when"] == [["processors", ["face_enhancer"]],
                                                       ["face_enhancer_model", ["codeformer"]]]
    assert "gpen_bfr_512" in options["face_enhancer_model"]["choices"]
    assert "(default: box)" in options["face_mask_types"]["help"]
    flags = {flag.dest: flag for flag in FLAGS}
    for field, option in options.items():  # every choice list is there, and the flag's own where it has one
        if option["kind"] in ("select", "multi"):
            assert option["choices"], field
            given = [choice for choice in option["choices"] if choice]  # blank: the default the CLI leaves unsaid
            assert flags[field].choices is None or given == list(flags[field].choices), field


def test_mask_and_enhancer_options_round_trip_to_the_command_line(client: TestClient, engine: FakeEngine,
                                                                  tmp_path: Path) -> None:
    job = client.post("/api/jobs", json={**PORTRAIT, "output": str(tmp_path / "out" / "m.jpg"),
                                         "options": MASK_OPTIONS}).json()
    assert "--face-mask-types box occlusion area region --face-mask-areas mouth upper-face" in job["command"]
    assert "--processors face_swapper face_enhancer --face-enhancer-model codeformer" in job["command"]
    wait_for(client, job["id"], ("done",))
    config = engine.calls[-1][3]
    assert (config.face_mask_regions, config.face_enhancer_weight, config.hand_occluder) == (
        ("skin", "nose", "mouth"), 0.3, "off")
    args = build_parser()[0].parse_args(shlex.split(job["command"])[1:])
    assert build_config(args) == config
    errors = client.post("/api/options/check", json={"options": {"face_mask_types": [], "processors": ["x"]}}).json()
    assert errors["errors"] == {
        "face_mask_types": "--face-mask-types: expected at least one of box, occlusion, area, region",
        "processors": "--processors x is not supported yet (steadyswap runs face_swapper and face_enhancer)"}


def test_a_missing_model_is_the_clis_line_under_its_option(client: TestClient, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    models = tmp_path / "models"
    models.mkdir()
    monkeypatch.setenv(ENV_VAR, str(models))
    options = {"face_mask_types": ["box", "occlusion", "region"], "processors": ["face_swapper", "face_enhancer"]}
    errors = client.post("/api/options/check", json={"options": options}).json()["errors"]
    config = config_from_options(options)
    with pytest.raises(ModelError) as masks:
        build_masker(config)
    with pytest.raises(ModelError) as enhancer:
        build_enhancer(config)
    assert errors == {"face_occluder_model": str(masks.value), "face_parser_model": str(masks.value),
                      "face_enhancer_model": str(enhancer.value)}
    assert "run `steadyswap models download xseg_1 bisenet_resnet_34`" in errors["face_occluder_model"]
    assert "run `steadyswap models download gfpgan_1.4`" in errors["face_enhancer_model"]
    preview = client.post("/api/preview", json={**PORTRAIT, "options": options})
    assert preview.status_code == 422 and preview.json()["error"] == str(masks.value)
    onnx_standins.mask_models(models)
    errors = client.post("/api/options/check", json={"options": {**options, "face_parser_model": "bisenet_resnet_18",
                                                                 "face_enhancer_model": "codeformer"}}).json()
    assert errors["errors"] == {"face_enhancer_model": errors["errors"]["face_enhancer_model"]}
    assert "steadyswap models download codeformer" in errors["errors"]["face_enhancer_model"]


def preview_mask(client: TestClient, options: dict) -> np.ndarray:
    """The preview's paste mask of the portrait swap with ``options``, 0-255."""
    response = client.post("/api/preview", json={**PORTRAIT, "mode": "mask", "options": options})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png", response.text
    return cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)


def test_the_mask_overlay_is_the_swaps_paste_mask_of_the_face(client: TestClient) -> None:
    (person,) = client.post("/api/people", json={"target": PORTRAIT["target"]}).json()["people"]
    x0, y0, x1, y1 = (round(v) for v in person["box"])  # a 512-px photo: preview pixels are target pixels
    mask = preview_mask(client, {})
    assert mask.shape == (512, 410) and mask.dtype == np.uint8
    assert mask[(y0 + y1) // 2, (x0 + x1) // 2] == 255 and (mask[y0:y1, x0:x1] > 0).mean() > 0.5
    margin = (x1 - x0) // 2
    far = np.ones(mask.shape, bool)
    far[max(y0 - margin, 0):y1 + margin, max(x0 - margin, 0):x1 + margin] = False
    assert mask[far].max() == 0 and far.mean() > 0.5
    plain, tinted = (decode(client.post("/api/preview", json={**PORTRAIT, "mode": "output", "mask": shown}).content)
                     .astype(int) for shown in (False, True))
    change = np.abs(tinted - plain).max(axis=2)
    assert change[mask > 128].mean() > 40 and change[far].max() <= 2
    assert client.post("/api/preview", json={**PORTRAIT, "mode": "side", "mask": True}).status_code == 200


def test_area_and_region_choices_change_the_overlay(client: TestClient, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Each mask is cut from the box mask (combined by minimum); the upper face lies above the lower face; the
    stand-in parser calls a pixel skin where its red channel leads and nose where green does (never on this
    face), so skin keeps most of the face and nose almost none of it."""
    monkeypatch.setenv(ENV_VAR, str(onnx_standins.mask_models(tmp_path)))
    box = preview_mask(client, {}).astype(int)
    masks = {name: preview_mask(client, {"face_mask_types": ["box", kind], f"face_mask_{kind}s": [name]}).astype(int)
             for kind, name in (("area", "upper-face"), ("area", "lower-face"), ("region", "skin"),
                                ("region", "nose"))}
    masks["every region"] = preview_mask(client, {"face_mask_types": ["box", "region"]}).astype(int)
    for name, mask in masks.items():
        assert (mask <= box + 1).all(), name
    for name in ("upper-face", "lower-face", "skin", "every region"):
        assert 0 < (masks[name] > 128).sum() < (box > 128).sum(), name
    rows = {name: np.argwhere(masks[name] > 128)[:, 0].mean() for name in ("upper-face", "lower-face")}
    assert rows["upper-face"] + 20 < rows["lower-face"]
    assert (masks["skin"] > 128).sum() > 0.5 * (box > 128).sum() and (masks["nose"] > 0).sum() < 100
    assert (masks["skin"] <= masks["every region"] + 1).all()


def test_the_overlay_leaves_out_a_hand_over_the_face(client: TestClient) -> None:
    """Frame 5 of the hand clip (a real hand over the face; its pixels stored beside it, see tests/test_hands.py):
    with the hand occluder the paste mask is 0 on the hand and the face around it is still swapped; without it
    the mask covers the hand."""
    from tests.test_hands import CLIP, _hands

    body = {"sources": ["image/liveportrait_s1_512.jpg"], "target": CLIP, "frame": 5, "mode": "mask"}
    kept, covered = (cv2.imdecode(np.frombuffer(client.post("/api/preview", json={
        **body, "options": {"hand_occluder": switch}}).content, np.uint8), cv2.IMREAD_UNCHANGED).astype(int)
        for switch in ("on", "off"))
    hand = _hands(6)[5]
    # without it most of the hand is under the mask (0.47: along the face's outline, where s1's hair reaches her
    # cheeks, source_keep leaves the source's pixels out of the mask)
    assert kept[hand].max() == 0 and (covered[hand] > 128).mean() > 0.4
    assert (kept <= covered + 1).all() and (kept > 128).sum() > 0.3 * (covered > 128).sum()
