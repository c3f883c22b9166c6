"""The Python API: one call that swaps a file into a file, and the per-frame ``FaceSwapper``.

Example:
    >>> from steadyswap import RunConfig, swap_file                       # doctest: +SKIP
    >>> swap_file(["face.jpg"], "in.mp4", "out.mp4", RunConfig(face_selector_mode="many"))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from steadyswap.config import RunConfig
from steadyswap.engine.frame_swapper import FaceSwapper
from steadyswap.engine.decision import Backend, Entry, decide
from steadyswap.engine.gpu import engine_module
from steadyswap.engine.pipeline import Progress, RunResult, check_run, run_image, run_video

log = logging.getLogger(__name__)


def swap_file(sources: list[str | Path] | str | Path, target: str | Path, output: str | Path,
              config: RunConfig | None = None, progress: Progress | None = None,
              cancel: threading.Event | None = None) -> RunResult:
    """Swap the face of ``sources`` into the image or video ``target`` and write ``output``.

    Args:
        sources: one or more source photos.
        target: an image or a video.
        output: the file to write (never one of the inputs); it appears only when complete.
        config: run options (the CLI's flags); defaults otherwise.
        progress: called with (frames done, total frames) as a video run advances.
        cancel: set it from another thread to stop the run; no output is left.

    Raises:
        InputNotFoundError, MediaDecodeError: unreadable inputs. NoFaceError: no face in the sources.
        OutputError: output equals an input or cannot be written. UsageError: bad options.
    """
    config = (config or RunConfig()).validate()
    source_paths = [Path(s) for s in ([sources] if isinstance(sources, (str, Path)) else sources)]
    target_path, output_path = Path(target), Path(output)
    kind = check_run(source_paths, target_path, output_path, config)
    decision = decide(config, Entry.RUN)
    if decision.backend is Backend.ENGINE:
        run_file = engine_module().run_file
        return run_file(source_paths, target_path, output_path, config, kind, progress, cancel)
    if decision.note:
        log.warning(decision.note)
    config = decision.config
    if kind == "image":
        with FaceSwapper(source_paths, config) as swapper:
            return run_image(swapper, target_path, output_path, config)
    return run_video(lambda fps: FaceSwapper(source_paths, config, fps), target_path, output_path, config, progress,
                     cancel)


__all__ = ["FaceSwapper", "RunConfig", "RunResult", "swap_file"]
