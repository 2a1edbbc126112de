"""Where the harness finds its profiles and keeps caches, results and reports."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def devices_dir() -> Path:
    """Device profiles (one YAML per lab device); ``BENCH_DEVICES_DIR`` overrides."""
    return Path(os.environ.get("BENCH_DEVICES_DIR", PROJECT_ROOT / "devices"))


def models_dir() -> Path:
    """Model cards (one YAML per model); ``BENCH_MODELS_DIR`` overrides."""
    return Path(os.environ.get("BENCH_MODELS_DIR", PROJECT_ROOT / "models"))


def cache_dir() -> Path:
    """Generated data, fitted checkpoints, exported graphs and compiled artifacts."""
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edge-ad-bench"
    return Path(os.environ.get("BENCH_CACHE_DIR", default))


def results_dir() -> Path:
    """Default run-record store."""
    return Path(os.environ.get("BENCH_RESULTS_DIR", "results"))


def reports_dir() -> Path:
    """Default report output."""
    return Path(os.environ.get("BENCH_REPORTS_DIR", "reports"))
