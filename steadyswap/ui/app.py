"""The FastAPI app: the page, its JSON API, uploads, previews, people, the run queue and its event stream.

Every path a request names goes through ``PathGuard``; errors become one-line JSON messages
(``{"error": ...}``, with ``"field"`` when an option's value is the cause) that the page shows beside what
caused them, and the server keeps running. An existing output is replaced only when the job says
``overwrite`` (else 409, and the page asks the user).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PureWindowsPath
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect

from steadyswap.analysis.mediapipe_import import solution
from steadyswap.errors import InputNotFoundError, SteadySwapError, UsageError
from steadyswap.io import media_kind
from steadyswap.ui.faces import PersonChoice, find_people
from steadyswap.ui.frames import FrameStores, encode_jpeg, fit
from steadyswap.ui.jobs import JobQueue, JobSpec, OutputExists, StateError, UnknownJob
from steadyswap.ui.live import add_live_routes
from steadyswap.ui.options import config_from_options, field_of, option_errors, schema
from steadyswap.ui.paths import MEDIA_EXTENSIONS, PathGuard, PathRefused
from steadyswap.ui.preview import MODES, PreviewRequest, PreviewService

log = logging.getLogger(__name__)

TOKEN_COOKIE = "steadyswap_token"


@dataclass
class UiSettings:
    """How the server runs.

    Attributes:
        allow_dirs: folders inputs are browsed in and outputs written to (``--allow-dir``).
        work_dir: the UI's own folder (uploads, job folders, preview maps); a new temporary one if None.
        token: required on every request when set (``--host``); None on loopback.
        max_upload: largest upload in bytes.
        preview_size: longest side of preview frames, in pixels.
        run: the engine call (``swap_file``'s signature); tests pass a stand-in.
    """

    allow_dirs: list[Path] = field(default_factory=lambda: [Path.cwd()])
    work_dir: Path | None = None
    token: str | None = None
    max_upload: int = 20 * 1024**3
    preview_size: int = 640
    run: Any = None


class PersonBody(BaseModel):
    frame: int = Field(ge=0)
    box: list[float] = Field(min_length=4, max_length=4)
    source: str | None = None


class InputsBody(BaseModel):
    sources: list[str] = Field(default_factory=list)
    target: str
    options: dict[str, Any] = Field(default_factory=dict)
    people: list[PersonBody] | None = None


class PreviewBody(InputsBody):
    frame: int = 0
    mode: str = "side"
    client: str = ""
    seq: int = 0
    mask: bool = False


class JobBody(InputsBody):
    output: str | None = None
    overwrite: bool = False


class RetryBody(BaseModel):
    overwrite: bool = False


class OptionsBody(BaseModel):
    options: dict[str, Any] = Field(default_factory=dict)


class PeopleBody(BaseModel):
    target: str
    options: dict[str, Any] = Field(default_factory=dict)


def create_app(settings: UiSettings) -> FastAPI:
    """The UI's app for ``settings`` (its work folder is created if missing)."""
    # Requests run on several threads; two of them importing MediaPipe's face mesh for the first time at once
    # (a preview and Find people) deadlock in Python's import locks, so it is imported here, on one thread.
    solution("face_mesh")
    work_dir = settings.work_dir or Path(tempfile.mkdtemp(prefix="steadyswap-ui-"))
    uploads = work_dir / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    guard = PathGuard(settings.allow_dirs, readable=[uploads])
    stores = FrameStores(settings.preview_size)
    previews = PreviewService(stores, work_dir)
    queue = JobQueue(work_dir, settings.run)
    people_cache: dict[str, list[dict]] = {}

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        queue.close()
        previews.close()
        stores.close()

    app = FastAPI(title="steadyswap", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.work_dir = work_dir
    static = resources.files("steadyswap.ui") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    add_live_routes(app, guard, settings.token, TOKEN_COOKIE)

    @app.middleware("http")
    async def guard_requests(request: Request, call_next: Any) -> Response:
        refusal = _refusal(request, settings.token)
        if refusal is not None:
            return refusal
        response = await call_next(request)
        if settings.token and request.query_params.get("token") == settings.token:
            response.set_cookie(TOKEN_COOKIE, settings.token, httponly=True, samesite="strict")
        return response

    @app.exception_handler(SteadySwapError)
    async def steadyswap_error(_: Request, error: SteadySwapError) -> JSONResponse:
        message = " ".join(str(error).split())
        if isinstance(error, OutputExists):
            return JSONResponse({"error": f"{message}: send overwrite to replace it", "exists": message},
                                status_code=409)
        status = 403 if isinstance(error, PathRefused) else 404 if isinstance(error, InputNotFoundError | UnknownJob) else 422
        field = field_of(message)
        return JSONResponse({"error": message, **({"field": field} if field else {})}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return JSONResponse({"error": f"{where}: {first.get('msg', 'invalid request')}"}, status_code=422)

    @app.exception_handler(Exception)
    async def internal(_: Request, error: Exception) -> JSONResponse:
        log.exception("request failed")
        return JSONResponse({"error": f"internal error: {type(error).__name__}: {error}"}, status_code=500)

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse((static / "index.html").read_text(encoding="utf-8"))

    @app.get("/api/state")
    def state() -> dict[str, Any]:
        return {"allowed": [str(a) for a in guard.allowed], "max_upload": settings.max_upload,
                "modes": list(MODES), "extensions": list(MEDIA_EXTENSIONS), **schema()}

    @app.get("/api/browse")
    def browse(path: str | None = None) -> dict[str, Any]:
        folder = guard.folder(path)
        parent = guard.parent_of(folder)
        return {"path": str(folder), "parent": None if parent is None else str(parent),
                "roots": [str(a) for a in guard.allowed], "entries": [vars(entry) for entry in guard.listing(folder)]}

    @app.get("/api/media")
    def media(path: str) -> dict[str, Any]:
        return {"path": str(guard.input_file(path)), **vars(stores.get(guard.input_file(path)).info)}

    @app.get("/api/thumb")
    def thumb(path: str, size: int = 160, frame: int = 0, box: str | None = None) -> Response:
        """A frame of ``path``, or with ``box`` (x0,y0,x1,y1 in its pixels) a person's face from it."""
        store = stores.get(guard.input_file(path))
        image = store.get(frame)
        if box is not None:
            try:
                x0, y0, x1, y1 = (round(float(v) * store.scale) for v in box.split(","))
            except ValueError:
                raise UsageError(f"box {box}: expected x0,y0,x1,y1") from None
            image = image[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)]
            if not image.size:
                raise UsageError(f"box {box} is outside frame {frame}")
        return Response(encode_jpeg(fit(image, min(max(size, 16), 640)), 85), media_type="image/jpeg")

    @app.post("/api/upload")
    async def upload(request: Request, name: str = "upload") -> JSONResponse:
        """Store the body under a random name; errors name the user's file (``name``), never the stored one."""
        name = PureWindowsPath(name).name  # a bare file name, whichever separators a client sent
        extension = Path(name).suffix.lower()
        if extension not in MEDIA_EXTENSIONS:
            raise UsageError(f"{name}: uploads must be photos or videos ({', '.join(MEDIA_EXTENSIONS)})")
        declared = int(request.headers.get("content-length") or 0)
        if declared > settings.max_upload:
            return _too_large(name, settings.max_upload)
        destination = uploads / f"{secrets.token_hex(8)}{extension}"
        size = 0
        try:
            with destination.open("wb") as file:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > settings.max_upload:
                        raise OverflowError
                    file.write(chunk)
        except (OverflowError, ClientDisconnect) as error:
            destination.unlink(missing_ok=True)
            if isinstance(error, OverflowError):
                return _too_large(name, settings.max_upload)
            raise UsageError(f"{name}: the upload was interrupted") from None
        if size == 0:
            destination.unlink()
            raise UsageError(f"{name}: the file is empty")
        try:
            await asyncio.to_thread(stores.get, destination)
        except SteadySwapError as error:
            destination.unlink()
            raise type(error)(str(error).replace(str(destination), name)) from None
        return JSONResponse({"path": str(destination), "name": name, "size": size})

    @app.post("/api/preview")
    def preview(body: PreviewBody) -> Response:
        if body.mode not in MODES:
            raise UsageError(f"preview mode must be one of {', '.join(MODES)}")
        sources, target = _inputs(guard, body)
        config = config_from_options(body.options)
        request = PreviewRequest(sources, target, body.frame, body.mode, config,
                                 _people(guard, body.people, sources), body.client, body.seq, body.mask)
        result = previews.render(request)
        if result is None:
            return Response(status_code=204, headers={"X-Superseded": "1"})
        return Response(result.data, media_type=result.media_type, headers={
            "X-Faces": str(result.faces), "X-Frame": str(result.frame), "X-Ms": f"{result.ms:.0f}",
            "Cache-Control": "no-store"})

    @app.post("/api/people")
    def people(body: PeopleBody) -> dict[str, Any]:
        target = guard.input_file(body.target)
        config = config_from_options(body.options)
        store = stores.get(target)
        key = json.dumps([str(target), store.mtime, config.face_detector_model, config.face_detector_score,
                          config.face_recognizer_model, config.reference_face_distance])
        if key not in people_cache:
            people_cache[key] = find_people(store, config)
        return {"people": people_cache[key], "width": store.info.width, "height": store.info.height}

    @app.post("/api/options/check")
    def check_options(body: OptionsBody) -> dict[str, Any]:
        return {"errors": option_errors(body.options)}

    @app.post("/api/jobs")
    def add_job(body: JobBody) -> dict[str, Any]:
        sources, target = _inputs(guard, body)
        taken = {job.spec.output for job in queue.jobs.values()}
        output = guard.output_file(body.output) if body.output else _free_output(guard, target, taken)
        config = config_from_options(body.options)
        spec = JobSpec(sources, target, output, config, _people(guard, body.people, sources), body.overwrite)
        return queue.submit(spec).public()

    @app.get("/api/jobs")
    def jobs() -> dict[str, Any]:
        return {"jobs": queue.snapshot()[1]}

    @app.post("/api/jobs/{number}/cancel")
    def cancel(number: int) -> dict[str, Any]:
        return queue.cancel(number).public()

    @app.post("/api/jobs/{number}/retry")
    def retry(number: int, body: RetryBody | None = None) -> dict[str, Any]:
        return queue.retry(number, body is not None and body.overwrite).public()

    @app.get("/api/jobs/{number}/output")
    def output(number: int, download: bool = False) -> FileResponse:
        job = queue.get(number)
        if job.state != "done" or not job.spec.output.is_file():
            raise StateError(f"job {number} has no output yet")
        return FileResponse(job.spec.output, filename=job.spec.output.name if download else None,
                            headers={"Cache-Control": "no-store"})

    @app.get("/api/jobs/{number}/report.{kind}")
    def report(number: int, kind: str) -> FileResponse:
        job = queue.get(number)
        path = job.report.with_suffix(f".{kind}")
        if kind not in ("png", "json", "csv") or not path.is_file():
            raise InputNotFoundError(f"job {number} has no {kind} report")
        return FileResponse(path)

    @app.get("/api/events")
    async def events(request: Request) -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            sent, quiet = -1, 0.0
            while not await request.is_disconnected():
                version, jobs = queue.snapshot()
                if version != sent:
                    sent, quiet = version, 0.0
                    yield f"data: {json.dumps({'jobs': jobs})}\n\n"
                elif quiet >= 15:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
                await asyncio.sleep(0.2)
                quiet += 0.2

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    return app


def _refusal(request: Request, token: str | None) -> Response | None:
    """Why a request is refused (no or wrong token; a foreign Host or Origin), or None to serve it."""
    host = request.headers.get("host", "")
    if token is None:
        if urlsplit(f"//{host}").hostname not in ("127.0.0.1", "localhost", "::1"):
            return JSONResponse({"error": "this server answers on 127.0.0.1 only"}, status_code=403)
    else:
        given = (request.headers.get("x-steadyswap-token") or request.query_params.get("token")
                 or request.cookies.get(TOKEN_COOKIE) or "")
        if not secrets.compare_digest(given.encode(), token.encode()):
            return JSONResponse({"error": "missing or wrong token: open the address printed when the server "
                                          "started (it ends in ?token=...)"}, status_code=401)
    origin = request.headers.get("origin")
    if origin is not None and request.method not in ("GET", "HEAD") and urlsplit(origin).netloc != host:
        return JSONResponse({"error": "cross-site request refused"}, status_code=403)
    return None


def _too_large(name: str, limit: int) -> JSONResponse:
    return JSONResponse({"error": f"{name} is larger than the upload limit of {limit / 1024**2:.0f} MB "
                                  "(--max-upload-mb)"}, status_code=413)


def _inputs(guard: PathGuard, body: InputsBody) -> tuple[list[Path], Path]:
    if not body.sources:
        raise UsageError("choose at least one source photo")
    sources = [guard.input_file(s) for s in body.sources]
    for source in sources:
        if media_kind(source) != "image":
            raise UsageError(f"source {source.name} is a video; sources must be photos")
    return sources, guard.input_file(body.target)


def _people(guard: PathGuard, people: list[PersonBody] | None, sources: list[Path]) -> list[PersonChoice] | None:
    """The page's people map, each source one of the run's source photos; None when there is none."""
    if people is None:
        return None
    if not any(p.source for p in people):
        raise UsageError("map at least one person to a source photo, or clear the people map")
    chosen = []
    for person in people:
        source = guard.input_file(person.source) if person.source else None
        if source is not None and source not in sources:
            raise UsageError(f"person at frame {person.frame} is mapped to a photo that is not a source")
        chosen.append(PersonChoice(person.frame, tuple(person.box), source))  # type: ignore[arg-type]
    return chosen


def _free_output(guard: PathGuard, target: Path, taken: set[Path]) -> Path:
    """``<target stem>.swapped<ext>`` in the first writable allowed folder, numbered so that no existing file
    or queued output is overwritten."""
    folder = next((f for f in guard.allowed if os.access(f, os.W_OK)), None)
    if folder is None:
        raise PathRefused("no allowed folder is writable: give an output path")
    stem, suffix = target.stem, target.suffix.lower()
    if len(stem) == 16 and all(c in "0123456789abcdef" for c in stem):  # an upload's random name
        stem = "upload"
    candidate, number = folder / f"{stem}.swapped{suffix}", 2
    while candidate.exists() or candidate in taken:
        candidate, number = folder / f"{stem}.swapped-{number}{suffix}", number + 1
    return candidate
