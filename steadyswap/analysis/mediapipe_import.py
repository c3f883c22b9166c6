"""MediaPipe's solution modules without the start-up of its package.

``import mediapipe`` runs the package's ``__init__``, which imports every solution and task and their drawing
helpers, and with them matplotlib's pyplot and an audio library: about 0.45 s of CPU at every run's start on the
2-core machine (of about 0.5 s for the whole import), none of which the face mesh or the hand models use.
``solution(name)`` imports only ``mediapipe.python.solutions.<name>`` and what that module imports itself: the
packages ``mediapipe`` and ``mediapipe.python.solutions`` are put in place first with their ``__init__`` not
yet run, and it runs the first time something reads an attribute those packages do not have yet, so code that
imports mediapipe as usual later in the same process still sees the whole package.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from collections.abc import Callable

_DEFERRED = ("mediapipe", "mediapipe.python.solutions")
_lock = threading.RLock()
"""Held while modules are imported here: two threads importing MediaPipe at once can deadlock on Python's
import locks (seen in the web UI)."""


class _DeferredPackage(types.ModuleType):
    """A package whose ``__init__`` runs when an attribute it lacks is first read."""

    def __getattr__(self, name: str) -> object:
        run: Callable[[], None] | None = self.__dict__.pop("_steadyswap_init", None)
        if run is None:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        with _lock:
            run()
        return getattr(self, name)


def _defer(name: str) -> None:
    """Put the package ``name`` in ``sys.modules`` with its ``__init__`` deferred (unless it is there already)."""
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        raise ImportError(f"No module named {name!r}", name=name)
    package = _DeferredPackage(name)
    package.__spec__ = spec
    package.__loader__ = spec.loader
    package.__file__ = spec.origin
    package.__path__ = list(spec.submodule_search_locations)
    package.__package__ = name
    loader = spec.loader
    package.__dict__["_steadyswap_init"] = lambda: loader.exec_module(package)
    sys.modules[name] = package
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, package)


def solution(name: str) -> types.ModuleType:
    """``mediapipe.python.solutions.<name>`` (``hands``, ``face_mesh``, ``face_mesh_connections``), imported
    without the rest of MediaPipe.

    Raises:
        ImportError: MediaPipe is not installed.
    """
    with _lock:
        for package in _DEFERRED:
            _defer(package)
        return importlib.import_module(f"mediapipe.python.solutions.{name}")
