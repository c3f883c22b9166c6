"""Child interpreters that talk to their parent over a socket pair.

Used where one process's GIL or CUDA context is the limit: codec processes (``io.codec_processes``) and GPU
engine workers (``engine.gpu.workers``). A child is a fresh interpreter running a module (``python -m``),
never a fork of a parent that holds a CUDA context, and it does not re-run the caller's main script the
way multiprocessing's spawn does, so scripts need no ``if __name__ == "__main__"`` guard. Messages are
pickled tuples whose first item names them; ``("error", exception)`` reports a failure, and a child that
dies is reported as such, never waited on forever.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
from multiprocessing.connection import Connection
from typing import Any

from steadyswap.errors import SteadySwapError

POLL_SECONDS = 0.5
"""How often a waiting side checks that the other process is still alive."""


def start(module: str, role: str, *setup: Any, group: bool = False) -> tuple[subprocess.Popen, Connection]:
    """Start ``python -m module role FD`` and send it ``setup``; returns the process and its connection.
    The module reads its end with ``child_connection()``. ``group``: the child leads a process group of
    its own (with the children it starts), which ``kill_group`` ends at once and a terminal's Ctrl-C does
    not reach: its parent decides when it stops."""
    ours, theirs = socket.socketpair()
    with theirs:
        process = subprocess.Popen([sys.executable, "-m", module, role, str(theirs.fileno())],
                                   pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, start_new_session=group)
    conn = Connection(ours.detach())
    conn.send(setup)
    return process, conn


def child_connection() -> tuple[str, Connection, tuple[Any, ...]]:
    """In the child: its role, its connection to the parent and the setup the parent sent."""
    conn = Connection(int(sys.argv[2]))
    return sys.argv[1], conn, conn.recv()


def receive(conn: Connection, process: subprocess.Popen, what: str) -> tuple[Any, ...]:
    """The child's next message; raises when it died instead, or the exception it reports."""
    try:
        while not conn.poll(POLL_SECONDS):
            if process.poll() is not None and not conn.poll():
                raise EOFError
        message = conn.recv()
    except (EOFError, OSError):
        try:
            process.wait(POLL_SECONDS)
        except subprocess.TimeoutExpired:
            pass
        raise SteadySwapError(f"{what} process died (exit code {process.returncode})") from None
    if message[0] == "error":
        raise message[1]
    return message


def stop(process: subprocess.Popen, conn: Connection, grace: float = 5.0) -> None:
    """Wait up to ``grace`` seconds for the child to leave, then kill it; close the connection."""
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    conn.close()


def kill_group(process: subprocess.Popen, conn: Connection) -> None:
    """Kill a child started with ``group`` and every process it started; close the connection."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    stop(process, conn, grace=0)


def portable(error: BaseException) -> BaseException:
    """``error`` if it survives pickling, else an equivalent SteadySwapError."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        return SteadySwapError(f"{type(error).__name__}: {error}")
