"""Model downloads: resumable (HTTP Range), CRC32-checked, atomic.

Bytes go to ``<file>.part``; an interrupted transfer is resumed from there (in the same call up to
``retries`` times, or by a later call). The part file is renamed to its final name only after its CRC32
matches, and removed when it does not: a half or corrupt file never sits under the final name.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

from steadyswap.errors import DownloadError
from steadyswap.models.registry import ASSET_HOSTS, ModelSpec, requirements
from steadyswap.models.store import ModelStore, file_crc32

Progress = Callable[[str, int, int | None], None]
"""Called as (file name, bytes so far, total bytes or None) while a file downloads."""

log = logging.getLogger(__name__)

_HEADERS = {"User-Agent": "steadyswap"}
_CRC32 = re.compile(r"[0-9a-f]{8}")


def fetch_crc32(url: str, timeout: float = 30.0) -> str:
    """Read a FaceFusion ``.hash`` file: the CRC32 of its model as 8 hex digits."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=_HEADERS), timeout=timeout) as response:
            text = response.read(64).decode("ascii", "replace").strip().lower()
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise DownloadError(f"cannot fetch {url}: {_reason(error)}") from error
    if not _CRC32.fullmatch(text):
        raise DownloadError(f"{url} does not hold a CRC32 (8 hex digits): {text[:20]!r}")
    return text


def download_file(url: str, target: Path, expected_crc32: str, *, retries: int = 3, timeout: float = 30.0,
                  backoff: float = 1.0, progress: Progress | None = None, chunk: int = 1 << 20) -> str:
    """Download ``url`` to ``target`` through ``target.part``, resuming and checking the CRC32.

    Returns:
        The CRC32 of the file now at ``target``.
    Raises:
        DownloadError: unreachable server, HTTP error, transfer still short after ``retries`` resumes
            (the part file is kept for the next call), or a CRC32 mismatch (the part file is removed).
    """
    target = Path(target)
    part = target.with_name(target.name + ".part")
    target.parent.mkdir(parents=True, exist_ok=True)
    error: Exception | None = None
    for attempt in range(retries + 1):
        if attempt:
            time.sleep(backoff * attempt)
        try:
            _transfer(url, part, timeout, chunk, progress, target.name)
            break
        except urllib.error.HTTPError as http_error:
            if http_error.code == 416 and part.exists():  # Range past the end: the part file is complete
                break
            if http_error.code < 500:
                raise DownloadError(f"cannot download {url}: HTTP {http_error.code} {http_error.reason}") from None
            error = http_error
        except (urllib.error.URLError, http.client.HTTPException, OSError) as transfer_error:
            error = transfer_error
    else:
        kept = f"; {part.stat().st_size} bytes kept in {part} to resume" if part.exists() else ""
        raise DownloadError(f"cannot download {url}: {_reason(error)} (after {retries + 1} attempts{kept})")
    actual = file_crc32(part)
    if actual != expected_crc32.lower():
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url}: CRC32 {actual} does not match the expected {expected_crc32}; file removed")
    os.replace(part, target)
    return actual


def download_model(spec: ModelSpec, store: ModelStore, *, patterns: Sequence[str] = ASSET_HOSTS, retries: int = 3,
                   timeout: float = 30.0, backoff: float = 1.0, progress: Progress | None = None) -> list[Path]:
    """Make ``spec`` and the models it needs (its converter) verified in ``store``; skip files already verified.

    ``patterns`` are URL patterns with ``{tag}`` and ``{file}``, tried in order for each file (FaceFusion's
    GitHub assets, then its Hugging Face mirror, by default); a host that fails is logged and the next one
    tried. Files go to the store's own folder, never into a FaceFusion install it falls back on.
    Returns the paths of the model files.

    Raises:
        DownloadError: every host failed (the message gives each host's reason).
    """
    paths = []
    for needed in requirements(spec):
        if store.status(needed) == "verified":
            paths.append(store.path(needed))
            continue
        path = store.root / needed.file_name
        failures = []
        for pattern in patterns:
            try:
                expected = needed.crc32 or fetch_crc32(needed.hash_url(pattern), timeout)
                crc = download_file(needed.url(pattern), path, expected, retries=retries, timeout=timeout,
                                    backoff=backoff, progress=progress)
                break
            except DownloadError as error:
                failures.append(str(error))
                if pattern != patterns[-1]:
                    log.warning("%s; trying the next host", error)
        else:
            raise DownloadError("; ".join(failures))
        store.remember(path, crc)
        _write_atomic(store.root / needed.hash_name, expected)
        paths.append(path)
    return paths


def _transfer(url: str, part: Path, timeout: float, chunk: int, progress: Progress | None, name: str) -> None:
    """Append the rest of ``url`` to ``part``; raise if the body ends short."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {**_HEADERS, **({"Range": f"bytes={offset}-"} if offset else {})}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
        if response.status == 206 and not _range_starts_at(response.headers.get("Content-Range"), offset):
            part.unlink()
            raise http.client.HTTPException(f"asked for bytes {offset}- and got {response.headers['Content-Range']}")
        if response.status != 206:
            offset = 0  # the server ignored the Range header and sends the whole file
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        done = offset
        with part.open("ab" if offset else "wb") as out:
            while block := response.read(chunk):
                out.write(block)
                done += len(block)
                if progress:
                    progress(name, done, total)
    if total is not None and done < total:
        raise http.client.IncompleteRead(b"", total - done)


def _range_starts_at(content_range: str | None, offset: int) -> bool:
    match = re.match(r"bytes (\d+)-", content_range or "")
    return bool(match) and int(match.group(1)) == offset


def _write_atomic(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".part")
    temporary.write_text(text)
    os.replace(temporary, path)


def _reason(error: Exception | None) -> str:
    if isinstance(error, urllib.error.URLError) and not isinstance(error, urllib.error.HTTPError):
        return f"{error.reason} (offline, or the server is down?)"
    return str(error) or type(error).__name__
