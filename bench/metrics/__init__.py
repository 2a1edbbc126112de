"""Accuracy, drift, latency and energy figures (names fixed by DESIGN.md)."""

from bench.metrics.accuracy import (
    F1Max,
    aupro,
    aupro_grid_minmax,
    average_precision,
    f1_max,
    image_auroc,
    pixel_auroc,
)
from bench.metrics.drift import DeLongResult, paired_delong

__all__ = ["DeLongResult", "F1Max", "aupro", "aupro_grid_minmax", "average_precision", "f1_max", "image_auroc",
           "paired_delong", "pixel_auroc"]
