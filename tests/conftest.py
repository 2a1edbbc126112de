"""Shared fixtures: an isolated cache per test session and a tiny fitted demo, built once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support.cli import run_cli
from support.extras import need


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Tests never read or fill the user's real cache."""
    cache = tmp_path_factory.getbasetemp() / "bench-cache"
    monkeypatch.setenv("BENCH_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``bench demo --small`` once: its data, checkpoints, backbone, run record and report."""
    need("export", "torch")  # the demo fits TinyGLASS
    work = tmp_path_factory.mktemp("demo")
    cache = tmp_path_factory.getbasetemp() / "bench-cache"
    done = run_cli(["demo", "--small"], cwd=work, env={"BENCH_CACHE_DIR": str(cache)})
    assert done.returncode == 0, done.stderr[-3000:]
    run_dirs = sorted((work / "results").iterdir())
    assert len(run_dirs) == 1
    manifest = json.loads((run_dirs[0] / "manifest.json").read_text())
    request = manifest["request"]
    return {
        "work": work, "cache": cache, "run": run_dirs[0], "report": work / "reports" / "demo" / "index.html",
        "data_root": Path(request["data_root"]), "checkpoint": Path(request["checkpoint"]),
        "backbone": Path(request["backbone_weights"]), "stdout": done.stdout,
    }


@pytest.fixture(scope="session")
def converter_cli(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real IMX500 converter in its own venv, created once per test session (as ``python -m
    bench.devices.imx500.converter install`` does; Java 17 comes from apt where it is missing).
    ``BENCH_TEST_IMXCONV_ENV`` reuses an existing environment between local test sessions."""
    from bench.devices.imx500.converter import install

    env = Path(os.environ.get("BENCH_TEST_IMXCONV_ENV", tmp_path_factory.getbasetemp() / "imxconv-env"))
    return install(env)
