"""Provenance that survives: a C2PA manifest signed into every output and an invisible watermark in its pixels,
and ``verify`` that reads both back (docs/provenance.md)."""

from steadyswap.provenance.marking import check_signing, run_id, seal_for, watermark_for
from steadyswap.provenance.watermark import Detection, Watermark, detect

__all__ = ["Detection", "Watermark", "check_signing", "detect", "run_id", "seal_for", "watermark_for"]
