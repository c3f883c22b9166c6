"""Read an output's provenance back: its C2PA manifest (and whether it validates) and the watermark in its pixels.

``verify`` works on any image or video, marked or not, and never raises for missing provenance: the
``Verdict`` says what was found. A manifest's validation comes from the ``c2pa`` library: a signature or
content hash that no longer matches (the file was edited after signing) makes it invalid; a signer on no
trust list is reported as untrusted, which is expected of this install's own certificate.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from steadyswap.io import VideoReader, media_kind, probe, read_image
from steadyswap.provenance.credentials import INSTALL_FILE, install_credentials, install_folder
from steadyswap.provenance.manifest import FORMATS, SOFT_BINDING, TOOL
from steadyswap.provenance.watermark import Detection, detect

SAMPLE_FRAMES = 16
"""Frames of a video searched for the watermark, spread evenly over it."""
UNTRUSTED = "signingCredential.untrusted"

FOUND, NOT_FOUND, TAMPERED = 0, 10, 11
"""Exit codes of ``steadyswap verify``: provenance found and intact; none found; a manifest that fails validation."""
VERDICTS = {FOUND: "marked", NOT_FOUND: "not marked", TAMPERED: "tampered"}


@dataclass(frozen=True)
class ManifestReport:
    """What the C2PA manifest of a file says.

    Attributes:
        present: the file carries a manifest.
        state: the library's validation state: "Trusted", "Valid" or "Invalid" (None without a manifest).
        failures: validation failure codes, ``signingCredential.untrusted`` included.
        generator: the claim generator ("steadyswap 0.1.0").
        synthetic: an action declares trained algorithmic media (a face swap, a generated picture).
        signer: the signing certificate's common name and issuer.
        local_signer: signed by this install's own certificate.
        run_id: the watermark run id the manifest declares (soft binding), if any.
        models: the models its steadyswap action lists.
        error: why the manifest could not be read, when it could not.
    """

    present: bool
    state: str | None = None
    failures: tuple[str, ...] = ()
    generator: str | None = None
    synthetic: bool = False
    signer: str | None = None
    local_signer: bool = False
    run_id: int | None = None
    models: tuple[str, ...] = ()
    error: str | None = None

    @property
    def valid(self) -> bool:
        """Signature and content hashes check out (the signer may still be untrusted)."""
        return self.present and self.error is None and not [f for f in self.failures if f != UNTRUSTED]

    @property
    def trusted(self) -> bool:
        return self.valid and UNTRUSTED not in self.failures


@dataclass(frozen=True)
class Verdict:
    """The provenance of one file: its manifest and the watermark search."""

    path: str
    manifest: ManifestReport
    watermark: Detection | None

    @property
    def tampered(self) -> bool:
        return self.manifest.present and not self.manifest.valid

    @property
    def found(self) -> bool:
        """A valid manifest or the watermark was found."""
        return self.manifest.valid or bool(self.watermark and self.watermark.found)

    @property
    def exit_code(self) -> int:
        return TAMPERED if self.tampered else FOUND if self.found else NOT_FOUND

    @property
    def summary(self) -> str:
        """The one-line verdict."""
        parts = [_manifest_phrase(self.manifest)]
        mark = self.watermark
        if mark is not None and mark.found:
            run = f", run {mark.run_id}" if mark.run_id is not None else ""
            parts.append(f"watermark found ({mark.pictures_found}/{mark.pictures} pictures, score {mark.score:.1f}"
                         f"{run})")
        elif mark is not None:
            parts.append(f"no watermark (score {mark.score:.1f} in {mark.pictures} pictures)")
        return f"{self.path}: {VERDICTS[self.exit_code].upper()}: {'; '.join(parts)}"

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON: the verdict, its line, and both reports."""
        manifest = {**asdict(self.manifest), "valid": self.manifest.valid, "trusted": self.manifest.trusted}
        return {"path": self.path, "verdict": VERDICTS[self.exit_code], "summary": self.summary,
                "manifest": manifest, "watermark": asdict(self.watermark) if self.watermark else None}


def verify(path: str | Path, frames: int = SAMPLE_FRAMES, trust: list[bytes] | None = None,
           watermark: bool = True) -> Verdict:
    """Read the manifest of ``path`` and look for the watermark in ``frames`` of its frames (all of a photo).

    Args:
        path: an image or a video.
        frames: video frames to search, spread evenly.
        trust: PEM certificates of further trust anchors (this install's own CA is always one).
        watermark: search the pixels too.

    Raises:
        InputNotFoundError, MediaDecodeError: the file is missing or not an image or a video.
    """
    path = Path(path)
    kind = media_kind(path)
    manifest = read_manifest(path, trust or [])
    detection = None
    if watermark:
        detection = detect(_pictures(path, kind, frames))
    return Verdict(str(path), manifest, detection)


def read_manifest(path: Path, trust: list[bytes]) -> ManifestReport:
    """The manifest report of ``path``; never raises for a missing or broken manifest."""
    import c2pa

    settings: dict[str, Any] = {"verify": {"verify_trust": True}}
    if trust:
        settings["trust"] = {"user_anchors": b"".join(trust).decode()}
    try:
        with c2pa.Context.from_dict(settings) as context, open(path, "rb") as handle:
            reader = c2pa.Reader.try_create(_mime(path), handle, context=context)
            if reader is None:
                return ManifestReport(present=False)
            with reader:
                active = reader.get_active_manifest() or {}
                results = reader.get_validation_results() or {}
                state = reader.get_validation_state()
    except c2pa.C2paError as e:
        text = " ".join(str(e).split())
        if "ManifestNotFound" in text or "NotSupported" in text:
            return ManifestReport(present=False, error=None if "ManifestNotFound" in text else text)
        return ManifestReport(present=True, state="Invalid", error=text)
    failures = tuple(item["code"] for item in (results.get("activeManifest") or {}).get("failure", []))
    signature = active.get("signature_info") or {}
    generator = (active.get("claim_generator_info") or [{}])[0]
    actions = _actions(active)
    ours = [a for a in actions if (a.get("softwareAgent") or {}).get("name") == TOOL]
    return ManifestReport(
        present=True, state=state, failures=failures,
        generator=f"{generator.get('name', '?')} {generator.get('version', '')}".strip() if generator else None,
        synthetic=any("trainedalgorithmic" in str(a.get("digitalSourceType")).lower() for a in actions),
        signer=f"{signature.get('common_name')} ({signature.get('issuer')})" if signature else None,
        local_signer=str(signature.get("cert_serial_number")) == _local_serial(),
        run_id=_declared_run_id(active),
        models=tuple(m.get("name", "?") for a in ours for m in (a.get("parameters") or {}).get("models", [])))


def _actions(active: dict[str, Any]) -> list[dict[str, Any]]:
    """Every action of the manifest's actions assertions."""
    return [action for assertion in active.get("assertions", [])
            if str(assertion.get("label", "")).startswith("c2pa.actions")
            for action in assertion.get("data", {}).get("actions", [])]


def _declared_run_id(active: dict[str, Any]) -> int | None:
    for assertion in active.get("assertions", []):
        data = assertion.get("data", {})
        if assertion.get("label") == "c2pa.soft-binding" and data.get("alg") == SOFT_BINDING and data.get("blocks"):
            try:
                return int.from_bytes(base64.b64decode(data["blocks"][0]["value"]), "big")
            except (KeyError, ValueError, TypeError):
                return None
    return None


def _local_serial() -> str | None:
    """The serial number of this install's signing certificate, when this install has made one."""
    from cryptography import x509

    if not (install_folder() / INSTALL_FILE).is_file():
        return None
    return str(x509.load_pem_x509_certificate(install_credentials().chain_pem).serial_number)


def _mime(path: Path) -> str:
    return FORMATS.get(path.suffix.lower(), path.suffix.lower().lstrip("."))


def _pictures(path: Path, kind: str, count: int) -> Iterator[np.ndarray]:
    """The photo, or ``count`` frames of the video spread evenly (each decoded from the keyframe before it)."""
    if kind == "image":
        yield read_image(path)
        return
    total = probe(path).frame_count
    indices = sorted({round(i * (total - 1) / max(1, count - 1)) for i in range(min(count, total))}) if total else [0]
    for index in indices:
        with VideoReader(path, index, index + 1, high_bit_depth=False) as reader:
            for frame in reader:
                yield frame.image


def _manifest_phrase(report: ManifestReport) -> str:
    if not report.present:
        return "no C2PA manifest" + (f" ({report.error})" if report.error else "")
    if not report.valid:
        reasons = ", ".join(f for f in report.failures if f != UNTRUSTED) or report.error or "unknown"
        return f"C2PA manifest fails validation ({reasons})"
    who = "this install's own certificate" if report.local_signer else report.signer or "an unnamed signer"
    trust = "trusted" if report.trusted else "signer not on a trust list"
    kind = "synthetic media" if report.synthetic else "no synthetic-media action"
    return f"C2PA manifest valid ({report.generator or 'unknown tool'}, {kind}, signed by {who}, {trust})"


def dumps(verdict: Verdict) -> str:
    """The verdict as indented JSON."""
    return json.dumps(verdict.to_dict(), indent=1, default=lambda v: v.item() if isinstance(v, np.generic) else str(v))
