"""docs/adding-a-device.md, followed literally: its code blocks become a family package and a profile,
one registry line adds it, and the new device runs, pairs with the host reference and passes the gate."""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import paths

import bench.devices
from bench.cli import main
from bench.devices import registry
from bench.records import load_run

REPO = paths.REPO
GUIDE = REPO / "docs" / "adding-a-device.md"


def guide_files() -> dict[str, str]:
    """Every fenced block whose first line is a comment naming its file: path -> content."""
    files = {}
    for block in re.findall(r"```(?:python|yaml)\n(.*?)```", GUIDE.read_text(), flags=re.S):
        first, _, rest = block.partition("\n")
        if first.startswith("# ") and "/" in first:
            files[first[2:].strip()] = rest
    return files


@pytest.fixture
def labnpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The guide's family as bench.devices.labnpu (from a folder beside the package, not inside the source
    tree), its registry line, and a devices folder holding the shipped host profile and the guide's."""
    files = guide_files()
    assert {"bench/devices/labnpu/__init__.py", "bench/devices/labnpu/adapter.py", "devices/labnpu.yaml"} <= set(files)
    extra = tmp_path / "package"
    devices = tmp_path / "devices"
    devices.mkdir()
    shutil.copy(REPO / "devices" / "host.yaml", devices)
    for name, text in files.items():
        in_package = name.startswith("bench/devices/")
        target = extra / name.removeprefix("bench/devices/") if in_package else devices / Path(name).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    monkeypatch.setattr(bench.devices, "__path__", [*bench.devices.__path__, str(extra)])
    monkeypatch.setitem(registry.FAMILIES, "labnpu", "bench.devices.labnpu")
    monkeypatch.setenv("BENCH_DEVICES_DIR", str(devices))
    yield devices
    for module in [m for m in sys.modules if m.startswith("bench.devices.labnpu")]:
        del sys.modules[module]


def test_a_family_added_by_the_guide_runs_pairs_and_gates(labnpu: Path, small_demo: dict, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "results"
    common = ["--data-root", str(small_demo["data_root"]), "--checkpoint", str(small_demo["checkpoint"]),
              "--backbone-weights", str(small_demo["backbone"]), "--categories", "washer", "--limit", "6",
              "--warmup", "1", "--min-count", "3", "--min-duration", "0", "--out", str(out)]
    assert main(["list", "devices"]) == 0
    assert "labnpu" in capsys.readouterr().out
    assert main(["run", "--device", "labnpu", *common]) == 0
    assert main(["run", "--device", "host", *common]) == 0
    runs = {load_run(p).manifest["device"]["profile"]: load_run(p) for p in out.iterdir()}
    npu = runs["labnpu"]
    assert npu.manifest["device"]["kind"] == "labnpu" and npu.manifest["device"]["role"] == "device"
    assert npu.manifest["model"]["categories"]["washer"]["artifact_toolchain"]["labnpu-compiler"] == "1.0"
    assert npu.metrics["categories"]["washer"]["timing_source"] == "device_clock"
    assert runs["host"].manifest["device"]["role"] == "reference"
    capsys.readouterr()
    # six images cannot decide a 0.2-point gate (one pair alone is several points): inconclusive, exit 4
    assert main(["nightly", str(out), "--no-pixel", "--max-drift", "0.2"]) == 4
    assert "1 device runs compared against the 0.20-point gate (--max-drift): 0 exceed, 1 inconclusive, 0 within" \
        in capsys.readouterr().err


def test_an_unknown_runtime_key_in_the_new_profile_is_refused(labnpu: Path, capsys: pytest.CaptureFixture) -> None:
    profile = labnpu / "labnpu.yaml"
    profile.write_text(profile.read_text().replace("  threads: 1", "  thread: 1"))
    assert main(["run", "--device", "labnpu", "--data-root", str(labnpu), "--out", str(labnpu / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "labnpu.yaml" in err and "thread" in err
