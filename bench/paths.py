"""Where the harness finds its profiles and keeps caches, results and reports."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The repository's devices/ and models/, linked into the package so that a wheel (a non-editable install,
# a lab board) ships them as package data; in a checkout the links lead to the folders users edit.
SHIPPED = Path(__file__).parent / "shipped"


def devices_dir() -> Path:
    """Device profiles (one YAML per lab device); ``BENCH_DEVICES_DIR`` overrides."""
    return Path(os.environ.get("BENCH_DEVICES_DIR", (SHIPPED / "devices").resolve()))


def models_dir() -> Path:
    """Model cards (one YAML per model); ``BENCH_MODELS_DIR`` overrides."""
    return Path(os.environ.get("BENCH_MODELS_DIR", (SHIPPED / "models").resolve()))


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
