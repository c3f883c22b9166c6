"""Downloads against a local HTTP server on 127.0.0.1: good file, wrong hash, resumed transfer, server down."""

from __future__ import annotations

import io
import socket
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from steadyswap.cli.main import build_parser
from steadyswap.cli.models import run_models
from steadyswap.errors import DownloadError
from steadyswap.models.download import download_file, download_model
from steadyswap.models.registry import get_model
from steadyswap.models.store import ModelStore

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB


class AssetServer(ThreadingHTTPServer):
    """Serves ``files`` by path, honours Range, and cuts the first ``cut_after`` bytes' response short once."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), AssetHandler)
        self.files: dict[str, bytes] = {}
        self.cut_after: int | None = None
        self.requests: list[tuple[str, str | None]] = []

    @property
    def pattern(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{{tag}}/{{file}}"


class AssetHandler(BaseHTTPRequestHandler):
    server: AssetServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.requests.append((self.path, self.headers.get("Range")))
        body = self.server.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        if start >= len(body):
            self.send_error(416)
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        cut = self.server.cut_after
        if cut is not None and self.path.endswith(".onnx"):
            self.server.cut_after = None
            self.wfile.write(body[start:cut])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body[start:])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[AssetServer]:
    httpd = AssetServer()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _publish(server: AssetServer, name: str, body: bytes, crc: str | None = None) -> None:
    spec = get_model(name)
    server.files[f"/{spec.tag}/{spec.file_name}"] = body
    server.files[f"/{spec.tag}/{spec.hash_name}"] = (crc or format(zlib.crc32(body), "08x")).encode()


def test_good_file_is_downloaded_verified_and_not_fetched_twice(tmp_path, server):
    _publish(server, "yunet", PAYLOAD)
    store = ModelStore(tmp_path)
    seen = []
    paths = download_model(get_model("yunet"), store, patterns=[server.pattern],
                           progress=lambda name, done, total: seen.append((name, done, total)))
    assert paths == [tmp_path / "yunet_2023_mar.onnx"]
    assert paths[0].read_bytes() == PAYLOAD
    assert store.status(get_model("yunet")) == "verified"
    assert seen[-1] == ("yunet_2023_mar.onnx", len(PAYLOAD), len(PAYLOAD))
    assert not list(tmp_path.glob("*.part"))
    count = len(server.requests)
    download_model(get_model("yunet"), ModelStore(tmp_path), patterns=[server.pattern])
    assert len(server.requests) == count


def test_converter_is_downloaded_with_its_swapper(tmp_path, server):
    _publish(server, "simswap_256", b"swapper")
    _publish(server, "crossface_simswap", b"converter")
    paths = download_model(get_model("simswap_256"), ModelStore(tmp_path), patterns=[server.pattern])
    assert [p.name for p in paths] == ["simswap_256.onnx", "crossface_simswap.onnx"]


def test_wrong_hash_is_rejected_and_removed(tmp_path, server):
    _publish(server, "yunet", PAYLOAD, crc="00000000")
    with pytest.raises(DownloadError, match="does not match the expected 00000000; file removed"):
        download_model(get_model("yunet"), ModelStore(tmp_path), patterns=[server.pattern], backoff=0)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_transfer_resumes_with_range(tmp_path, server):
    _publish(server, "yunet", PAYLOAD)
    server.cut_after = 300_000
    path = download_model(get_model("yunet"), ModelStore(tmp_path), patterns=[server.pattern], backoff=0)[0]
    assert path.read_bytes() == PAYLOAD
    model_requests = [r for r in server.requests if r[0].endswith(".onnx")]
    assert model_requests[0][1] is None
    assert model_requests[1][1] == "bytes=300000-"


def test_part_file_left_by_an_earlier_run_is_resumed(tmp_path, server):
    spec = get_model("yunet")
    _publish(server, "yunet", PAYLOAD)
    server.cut_after = 500_000
    target = tmp_path / spec.file_name
    with pytest.raises(DownloadError, match="500000 bytes kept in .*part to resume"):
        download_file(server.pattern.format(tag=spec.tag, file=spec.file_name), target,
                      format(zlib.crc32(PAYLOAD), "08x"), retries=0)
    assert not target.exists() and (tmp_path / f"{spec.file_name}.part").stat().st_size == 500_000
    download_model(spec, ModelStore(tmp_path), patterns=[server.pattern])
    assert target.read_bytes() == PAYLOAD
    assert server.requests[-1] == (f"/{spec.tag}/{spec.file_name}", "bytes=500000-")


def test_missing_asset_is_an_http_error(tmp_path, server):
    with pytest.raises(DownloadError, match="scrfd_2.5g.hash: HTTP Error 404"):
        download_model(get_model("scrfd"), ModelStore(tmp_path), patterns=[server.pattern])
    _publish(server, "scrfd", b"scrfd")
    del server.files["/models-3.0.0/scrfd_2.5g.onnx"]
    with pytest.raises(DownloadError, match="scrfd_2.5g.onnx: HTTP 404"):
        download_model(get_model("scrfd"), ModelStore(tmp_path), patterns=[server.pattern])
    assert list(tmp_path.iterdir()) == []


def test_server_down_is_a_clear_download_error(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pattern = f"http://127.0.0.1:{port}/{{tag}}/{{file}}"
    with pytest.raises(DownloadError, match="cannot fetch .*yunet_2023_mar.hash.*offline"):
        download_model(get_model("yunet"), ModelStore(tmp_path), patterns=[pattern], timeout=2)
    with pytest.raises(DownloadError, match="offline.*after 2 attempts"):
        download_file(pattern.format(tag="t", file="f.onnx"), tmp_path / "f.onnx", "00000000", retries=1, backoff=0)
    assert list(tmp_path.iterdir()) == []


def test_models_download_command(tmp_path, server):
    _publish(server, "yunet", PAYLOAD)
    parser, _ = build_parser()
    out, err = io.StringIO(), io.StringIO()
    args = parser.parse_args(["models", "download", "yunet", "scrfd", "--models-dir", str(tmp_path),
                              "--url-pattern", server.pattern])
    assert run_models(args, out, err) == 6  # scrfd is not published: reported, yunet still downloaded
    assert out.getvalue() == f"yunet: verified {tmp_path / 'yunet_2023_mar.onnx'}\n"
    assert "yunet_2023_mar.onnx: 1.0/1.0 MB\n" in err.getvalue()
    assert "error: scrfd: cannot fetch" in err.getvalue() and "404" in err.getvalue()


def test_models_download_fetches_face_enhancers(tmp_path, server):
    _publish(server, "gfpgan_1.4", PAYLOAD)
    _publish(server, "codeformer", PAYLOAD[::-1])
    parser, _ = build_parser()
    out, err = io.StringIO(), io.StringIO()
    args = parser.parse_args(["models", "download", "gfpgan_1.4", "codeformer", "--models-dir", str(tmp_path),
                              "--url-pattern", server.pattern])
    assert run_models(args, out, err) == 0
    assert out.getvalue().splitlines() == [f"gfpgan_1.4: verified {tmp_path / 'gfpgan_1.4.onnx'}",
                                           f"codeformer: verified {tmp_path / 'codeformer.onnx'}"]
    assert ("/models-3.0.0/gfpgan_1.4.hash", None) in server.requests
    assert (tmp_path / "codeformer.onnx").read_bytes() == PAYLOAD[::-1]


def test_second_host_serves_what_the_first_cannot(tmp_path, server):
    """FaceFusion's two hosts: a dead or incomplete first host falls through to the second, with one warning."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/{{tag}}/{{file}}"
    _publish(server, "yunet", PAYLOAD)
    path = download_model(get_model("yunet"), ModelStore(tmp_path), patterns=[dead, server.pattern], timeout=2,
                          backoff=0)[0]
    assert path.read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match="offline.*; .*scrfd_2.5g.hash: HTTP Error 404"):
        download_model(get_model("scrfd"), ModelStore(tmp_path), patterns=[dead, server.pattern], timeout=2,
                       backoff=0)


def test_download_lands_in_the_store_not_in_a_facefusion_install(tmp_path, server):
    own, install = tmp_path / "own", tmp_path / "facefusion" / ".assets" / "models"
    install.mkdir(parents=True)
    own.mkdir()
    spec = get_model("yunet")
    (install / spec.file_name).write_bytes(b"damaged")
    (install / spec.hash_name).write_text(format(zlib.crc32(PAYLOAD), "08x"))
    store = ModelStore(own, [install])
    assert store.status(spec) == "corrupt" and store.path(spec) == install / spec.file_name
    _publish(server, "yunet", PAYLOAD)
    assert download_model(spec, store, patterns=[server.pattern]) == [own / spec.file_name]
    assert store.status(spec) == "verified" and (install / spec.file_name).read_bytes() == b"damaged"
