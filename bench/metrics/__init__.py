"""Accuracy, drift, latency and energy figures (names fixed by DESIGN.md)."""

from bench.metrics.accuracy import F1Max, aupro, average_precision, f1_max, image_auroc, pixel_auroc

__all__ = ["F1Max", "aupro", "average_precision", "f1_max", "image_auroc", "pixel_auroc"]
