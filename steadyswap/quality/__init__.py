"""Quality monitor: temporal PSNR, temporal-difference fidelity, sharpness and landmark jitter of a swap."""

from steadyswap.quality.metrics import (
    Box,
    face_region,
    jitter,
    lag_frames,
    laplacian_variance,
    moving_average,
    psnr,
    sharpness_ratio,
    summarize,
    td_fidelity,
    temporal_psnr,
)
from steadyswap.quality.monitor import QualityMonitor, measure, write_report
from steadyswap.quality.report import text_summary

__all__ = [
    "Box",
    "QualityMonitor",
    "face_region",
    "jitter",
    "lag_frames",
    "laplacian_variance",
    "measure",
    "moving_average",
    "psnr",
    "sharpness_ratio",
    "summarize",
    "td_fidelity",
    "temporal_psnr",
    "text_summary",
    "write_report",
]
