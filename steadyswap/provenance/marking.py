"""What a run marks: the one place that turns a run's options into the watermark of its frames and the C2PA
seal of its output, so the CPU path, the GPU engine, segments and batch joins mark alike."""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterable
from pathlib import Path

from steadyswap.config import RunConfig
from steadyswap.provenance.credentials import load_credentials
from steadyswap.provenance.manifest import Seal, can_sign
from steadyswap.provenance.watermark import RUN_IDS, Watermark

log = logging.getLogger(__name__)

NOT_IN_RUN_ID = frozenset({"execution_providers", "execution_batch_size", "video_memory_strategy", "models_dir",
                           "quality_report", "watermark", "c2pa_cert", "c2pa_key", "extra",
                           "trim_frame_start", "trim_frame_end", "output_image_quality"})
"""Options a run's id does not depend on: where or how it computes, and (the last three) which frames and what
photo quality, which a batch worker's pooled GPU engine does not keep per job (``ENGINE_UNUSED_FIELDS``). So
the segments of one output (on a GPU, on CPU workers, resumed later) all carry the id its manifest declares."""


def run_id(target: str | Path | None, config: RunConfig) -> int:
    """The run id in the watermark: a CRC of the target's path (None: live input) and the options that shape
    the output.

    >>> run_id("a.mp4", RunConfig()) == run_id("a.mp4", RunConfig(execution_providers=("cuda",)))
    True
    """
    settings = {k: v for k, v in config.to_dict().items() if k not in NOT_IN_RUN_ID}
    where = "live" if target is None else str(Path(target).expanduser().resolve())
    text = json.dumps({"target": where, "options": settings},
                      sort_keys=True, default=str)
    return zlib.crc32(text.encode()) % RUN_IDS


def watermark_for(target: str | Path | None, config: RunConfig) -> Watermark | None:
    """The watermark of a run's frames, or None with ``--no-watermark``."""
    return Watermark(run_id(target, config)) if config.watermark else None


def check_signing(output: str | Path, config: RunConfig) -> None:
    """Load the credentials that will sign ``output`` (made on first use), so that a missing or unusable
    ``--c2pa-cert``/``--c2pa-key`` stops a run before any work, a batch job before its segments.

    Raises:
        UsageError, InputNotFoundError, InputError: as ``load_credentials``.
    """
    if can_sign(output):
        load_credentials(config.c2pa_cert, config.c2pa_key)


def seal_for(output: str | Path, target: str | Path | None, inputs: Iterable[str | Path],
             config: RunConfig) -> Seal | None:
    """The C2PA seal of a run's output, or None for a container that cannot hold a manifest (MKV, WebM).

    Args:
        output: the file the run writes.
        target: the target (the manifest's parent ingredient); None for live input (a camera: no parent).
        inputs: the other files the run reads: source photos, a face map and its photos.
        config: the run's options.

    Raises:
        UsageError, InputNotFoundError, InputError: the signing certificate or key (``--c2pa-cert``,
            ``--c2pa-key``) is missing or unusable: before the run does any work.
    """
    if not can_sign(output):
        log.info("%s: no C2PA manifest (the c2pa library cannot embed one in %s files); the frames carry the "
                 "watermark and the container its tags", output, Path(output).suffix)
        return None
    mark = watermark_for(target, config)
    parts = dict.fromkeys(Path(p) for p in inputs)
    if target is not None:
        parts.pop(Path(target), None)
    return Seal(Path(output).name, None if target is None else Path(target), tuple(parts), config,
                mark.run_id if mark else None, load_credentials(config.c2pa_cert, config.c2pa_key))
