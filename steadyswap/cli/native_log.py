"""Keep native libraries' log chatter (MediaPipe/absl, TFLite) off the user's terminal.

Those libraries write straight to file descriptor 2, past Python's logging. While a command runs,
fd 2 is a pipe read by a thread that forwards every line except such log lines to the real stderr;
Python's own ``sys.stderr`` (progress bar, messages) writes to the real stderr directly.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

NOISE = re.compile(rb"^([WIEF]\d{4} |WARNING: All log messages before absl|INFO: Created TensorFlow Lite)")


@contextlib.contextmanager
def filtered_native_stderr() -> Iterator[None]:
    """Filter native log lines from fd 2 for the duration of the block (no-op without a real fd 2)."""
    try:
        if sys.stderr.fileno() != 2:
            raise ValueError
    except (AttributeError, ValueError, OSError):
        yield
        return
    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    previous = sys.stderr
    sys.stderr = open(real, "w", buffering=1, encoding=previous.encoding, errors="backslashreplace", closefd=False)
    forwarder = threading.Thread(target=_forward, args=(read_end, real), name="steadyswap-stderr", daemon=True)
    forwarder.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)
        forwarder.join(timeout=2)
        sys.stderr.close()
        sys.stderr = previous
        os.close(real)


def _forward(read_end: int, real: int) -> None:
    with os.fdopen(read_end, "rb") as lines:
        for line in lines:
            if not NOISE.match(line):
                os.write(real, line)
