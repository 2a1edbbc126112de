"""edge-ad-bench: one harness that benchmarks anomaly detectors on edge devices."""

__version__ = "0.1.0"
