"""``steadyswap ui``: serve the local web UI (needs the ``ui`` extra: fastapi, uvicorn)."""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import socket
import threading
import webbrowser
from pathlib import Path

from steadyswap.errors import UsageError

LOOPBACK = "127.0.0.1"


def add_ui_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``ui`` command to a CLI's subparsers."""
    parser = subparsers.add_parser(
        "ui", help="open the local web UI (preview, people map, run queue)",
        description="Serve steadyswap's web UI on 127.0.0.1. Inputs are picked from the --allow-dir folders "
        "(or uploaded); outputs are written inside them. Binding elsewhere with --host prints a token that "
        "every request must carry.",
    )
    parser.add_argument("--host", default=LOOPBACK,
                        help=f"address to bind (default: {LOOPBACK}); any other needs the printed token")
    parser.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    parser.add_argument("--open", action="store_true", help="open the page in the default browser")
    parser.add_argument("--allow-dir", action="append", dest="allow_dirs", metavar="DIR",
                        help="folder the UI may read inputs from and write outputs to; repeatable "
                        "(default: the current folder)")
    parser.add_argument("--work-dir", metavar="DIR",
                        help="the UI's own folder for uploads and run files (default: a new temporary folder)")
    parser.add_argument("--max-upload-mb", type=float, default=20 * 1024, metavar="MB",
                        help="largest upload in MB (default: %(default)g)")
    parser.add_argument("--preview-size", type=int, default=640, metavar="PIXELS",
                        help="longest side of preview frames (default: %(default)s)")
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"), default="info",
                        help="messages to show (default: %(default)s)")
    return parser


def run_ui(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C."""
    try:
        import uvicorn

        from steadyswap.ui.app import UiSettings, create_app
    except ImportError as error:
        raise UsageError(f"the ui command needs the ui extra: pip install 'steadyswap[ui]' ({error})") from None
    if not 16 <= args.preview_size <= 4096:
        raise UsageError("--preview-size: must be between 16 and 4096 pixels")
    if args.max_upload_mb <= 0:
        raise UsageError("--max-upload-mb: must be positive")
    allow = [Path(d).expanduser() for d in (args.allow_dirs or [Path.cwd()])]
    for folder in allow:
        if not folder.is_dir():
            raise UsageError(f"--allow-dir {folder}: no such folder")
    work_dir = Path(args.work_dir).expanduser() if args.work_dir else None
    token = None if _is_loopback(args.host) else secrets.token_urlsafe(24)
    sock = _bind(args.host, args.port)
    port = sock.getsockname()[1]
    settings = UiSettings(allow_dirs=allow, work_dir=work_dir, token=token,
                          max_upload=int(args.max_upload_mb * 1024**2), preview_size=args.preview_size)
    app = create_app(settings)
    shown_host = args.host if ":" not in args.host else f"[{args.host}]"
    url = f"http://{shown_host}:{port}/" + (f"?token={token}" if token else "")
    print(f"steadyswap ui: {url}", flush=True)
    if token:
        print(f"steadyswap ui: token {token} (every request needs it; keep it private)", flush=True)
    print(f"steadyswap ui: allowed folders: {', '.join(str(a.resolve()) for a in allow)}; "
          f"work folder: {app.state.work_dir}", flush=True)
    if args.open:
        threading.Timer(1.0, webbrowser.open, [url]).start()
    config = uvicorn.Config(app, log_level="warning" if args.log_level == "info" else args.log_level,
                            timeout_graceful_shutdown=2)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one), so the printed port is the one served."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    sock.listen(64)
    return sock
