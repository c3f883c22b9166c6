"""The Live tab's WebSocket (``/api/live``): the page's camera frames in, swapped frames out, the newest frame wins.

Protocol. The page opens the socket (on 127.0.0.1 freely; elsewhere with the token, in the address or the
cookie the page got; from the page's own origin only) and sends one JSON message: ``{"sources": [paths],
"options": {field: value}}``, the source list and options panel of the page; options that mean nothing live
(those not in ``flags.LIVE_FIELDS``) are set aside and named in the answer, ``{"ready": true, "device": ..., "unused":
[...]}``, or ``{"error": "one line"}`` before the socket closes. Then each binary message is a frame: 8 bytes
the page's own timestamp (float64, little-endian) and a JPEG; each answer is the same 8 bytes and the swapped
frame as JPEG, so the page measures capture→display latency on its own clock. A frame arriving while one is
being swapped replaces any frame still waiting (counted as dropped), so a slow server never builds a backlog.
About once a second a JSON message ``{"fps", "dropped", "ms"}`` reports the server's rate, frames dropped and
mean swap time. Closing the page ends the session; the server frees its swapper and keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from steadyswap.config import LIVE_SMOOTHING, RunConfig, live_smoothing
from steadyswap.engine.live import LiveSwapper
from steadyswap.errors import SteadySwapError, UsageError
from steadyswap.flags import LIVE_FIELDS
from steadyswap.io import media_kind
from steadyswap.ui.frames import encode_jpeg
from steadyswap.ui.options import config_from_options
from steadyswap.ui.paths import PathGuard

log = logging.getLogger(__name__)

STAMP = 8
"""Bytes of the page's timestamp before each frame's JPEG."""
MAX_SESSIONS = 2
"""Live sessions at once: each holds its own models and keeps a core busy."""
MAX_FRAME_BYTES = 8 * 1024 * 1024
JPEG_QUALITY = 85
LOOPBACK = ("127.0.0.1", "localhost", "::1")
POLICY_VIOLATION = 1008


def add_live_routes(app: FastAPI, guard: PathGuard, token: str | None, token_cookie: str) -> None:
    """Serve ``/api/live`` on ``app``: inputs through ``guard``; ``token`` (None on loopback) as the HTTP API
    requires it, from the address (``?token=``) or the ``token_cookie`` cookie."""
    sessions = threading.BoundedSemaphore(MAX_SESSIONS)

    @app.websocket("/api/live")
    async def live(websocket: WebSocket) -> None:
        refusal = live_refusal(websocket, token, token_cookie)
        if refusal is not None:
            await websocket.close(code=POLICY_VIOLATION, reason=refusal)
            return
        await websocket.accept()
        if not sessions.acquire(blocking=False):
            await _fail(websocket, f"{MAX_SESSIONS} live sessions are running already; stop one first")
            return
        try:
            await _session(websocket, guard)
        finally:
            sessions.release()


def live_refusal(websocket: WebSocket, token: str | None, token_cookie: str) -> str | None:
    """Why the socket is refused, or None: a foreign Host without a token, a missing or wrong token, or an
    Origin other than the page's own (browsers let any site open a WebSocket to any address)."""
    host = websocket.headers.get("host", "")
    if token is None:
        if urlsplit(f"//{host}").hostname not in LOOPBACK:
            return "this server answers on 127.0.0.1 only"
    else:
        given = websocket.query_params.get("token") or websocket.cookies.get(token_cookie) or ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            return "missing or wrong token"
    origin = websocket.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != host:
        return "cross-site connection refused"
    return None


async def _session(websocket: WebSocket, guard: PathGuard) -> None:
    try:
        hello = await websocket.receive_json()
        sources, config, unused = _start(guard, hello)
        swapper = await asyncio.to_thread(LiveSwapper, sources, config)
    except WebSocketDisconnect:
        return
    except (SteadySwapError, ValueError, TypeError, KeyError) as error:
        await _fail(websocket, " ".join(str(error).split()))
        return
    session = _Session(swapper)
    try:
        await websocket.send_json({"ready": True, "device": swapper.device, "unused": unused})
        await session.run(websocket)
    except (WebSocketDisconnect, RuntimeError, OSError) as error:  # the page closed or went away
        log.debug("live session ended: %s", error)
    finally:
        session.close()


def _start(guard: PathGuard, hello: Any) -> tuple[list[Path], Any, list[str]]:
    """The session's source photos, run options and the options set aside, from the page's first message."""
    if not isinstance(hello, dict):
        raise UsageError("the first message must be {\"sources\": [...], \"options\": {...}}")
    if not hello.get("sources"):
        raise UsageError("choose at least one source photo")
    sources = [guard.input_file(str(s)) for s in hello["sources"]]
    for source in sources:
        if media_kind(source) != "image":
            raise UsageError(f"source {source.name} is a video; sources must be photos")
    options = dict(hello.get("options") or {})
    unused = sorted(field for field in options if field not in LIVE_FIELDS)
    config = config_from_options({field: value for field, value in options.items() if field in LIVE_FIELDS})
    # the panel sends every control, set or not: a One-Euro parameter at the file default counts as not set
    defaults = RunConfig()
    changed = {field for field in LIVE_SMOOTHING if getattr(config, field) != getattr(defaults, field)}
    return sources, live_smoothing(config, changed), unused


async def _fail(websocket: WebSocket, message: str) -> None:
    try:
        await websocket.send_json({"error": message})
        await websocket.close(code=POLICY_VIOLATION)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass


class _Session:
    """One page's stream: receive frames (the newest waiting wins), swap each on a worker thread, send it back."""

    def __init__(self, swapper: LiveSwapper) -> None:
        self.swapper: LiveSwapper | None = swapper
        self._lock = threading.Lock()  # a swap in progress finishes before the swapper is closed
        self._waiting: bytes | None = None
        self._arrived = asyncio.Event()
        self._ended = False
        self.dropped = 0
        self._count, self._busy, self._since = 0, 0.0, time.monotonic()

    async def run(self, websocket: WebSocket) -> None:
        receiver = asyncio.create_task(self._receive(websocket))
        try:
            while True:
                await self._arrived.wait()
                self._arrived.clear()
                if self._waiting is None:
                    if self._ended:
                        return
                    continue
                message, self._waiting = self._waiting, None
                began = time.monotonic()
                try:
                    answer = await asyncio.to_thread(self._swap, message)
                except UsageError as error:  # one bad frame: say so and go on with the next
                    await websocket.send_json({"error": str(error)})
                    continue
                self._busy += time.monotonic() - began
                self._count += 1
                await websocket.send_bytes(answer)
                await self._report(websocket)
        finally:
            receiver.cancel()

    async def _receive(self, websocket: WebSocket) -> None:
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes")
                if not data:
                    continue
                if self._waiting is not None:
                    self.dropped += 1
                self._waiting = data
                self._arrived.set()
        except (WebSocketDisconnect, RuntimeError, OSError) as error:  # the connection went away
            log.debug("live session: receiving stopped: %s", error)
        finally:
            self._ended = True
            self._arrived.set()

    def _swap(self, message: bytes) -> bytes:
        if len(message) <= STAMP or len(message) > MAX_FRAME_BYTES:
            raise UsageError("a frame must be an 8-byte stamp and a JPEG of at most 8 MB")
        bgr = cv2.imdecode(np.frombuffer(message, np.uint8, offset=STAMP), cv2.IMREAD_COLOR)
        if bgr is None:
            raise UsageError("a frame that is not a JPEG image arrived")
        with self._lock:
            if self.swapper is None:
                raise RuntimeError("the session has ended")
            swapped = self.swapper.swap([cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)])[0]
        return message[:STAMP] + encode_jpeg(swapped, JPEG_QUALITY)

    async def _report(self, websocket: WebSocket) -> None:
        now = time.monotonic()
        if now - self._since < 1.0:
            return
        seconds = now - self._since
        await websocket.send_json({"fps": round(self._count / seconds, 1), "dropped": self.dropped,
                                   "ms": round(self._busy / max(self._count, 1) * 1000)})
        self._count, self._busy, self._since = 0, 0.0, now

    def close(self) -> None:
        """Free the swapper once any swap in progress has finished (on a thread: never blocks the server)."""
        def release() -> None:
            with self._lock:
                swapper, self.swapper = self.swapper, None
            if swapper is not None:
                swapper.close()

        threading.Thread(target=release, name="steadyswap-live-close", daemon=True).start()
