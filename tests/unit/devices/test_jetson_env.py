"""Jetson environment capture from a fake root tree and fake command output (no board needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from support.fake_boards import NVPMODEL, RELEASE, fake_jetson

from bench.devices.tensorrt.jetson_env import (
    is_jetson,
    jetpack_version,
    jetson_environment,
    parse_nvpmodel,
    parse_tegra_release,
)


def commands(outputs: dict[str, str | None]):
    def run(argv: Sequence[str]) -> str | None:
        return outputs.get(argv[0])
    return run


def test_release_and_nvpmodel_parsing() -> None:
    assert parse_tegra_release(RELEASE) == "36.4.3"
    assert parse_tegra_release("# R35 (release), REVISION: 4.1, GCID: 1, BOARD: t186ref") == "35.4.1"
    assert parse_tegra_release("garbage") is None
    assert parse_nvpmodel(NVPMODEL) == ("MAXN_SUPER", 2)
    assert parse_nvpmodel("NV Power Mode: 15W\n0\n") == ("15W", 0)


def test_jetpack_prefers_the_package_then_the_release_table() -> None:
    assert jetpack_version("36.4.3", commands({"dpkg-query": "6.2.1+b38"})) == ("6.2.1", "dpkg nvidia-jetpack")
    assert jetpack_version("36.4.3", commands({})) == ("6.2", "L4T release table")
    version, source = jetpack_version("99.1.0", commands({}))
    assert version is None and source.startswith("unknown")


def test_full_capture_matches_the_fake_jetson(tmp_path: Path) -> None:
    root = fake_jetson(tmp_path)
    env = jetson_environment("MAXN_SUPER", root, commands({"nvpmodel": NVPMODEL, "dpkg-query": "6.2+b77"}))
    assert is_jetson(root)
    assert env["board"] == "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super"
    assert (env["l4t"], env["jetpack"], env["power_mode"], env["power_mode_id"]) == ("36.4.3", "6.2", "MAXN_SUPER", 2)
    assert env["jetson_clocks"] is True
    assert env["gpu_clock_hz"] == {"cur_hz": 1020000000, "min_hz": 1020000000, "max_hz": 1020000000}
    assert env["emc_clock_hz"] == 3199000000
    assert env["warnings"] == []


def test_power_mode_mismatch_and_unpinned_clocks_are_warned(tmp_path: Path) -> None:
    root = fake_jetson(tmp_path, gpu=(306000000, 306000000, 1020000000), cpu_pinned=False, emc=None)
    env = jetson_environment("MAXN_SUPER", root, commands({"nvpmodel": "NV Power Mode: 15W\n0\n"}))
    assert env["power_mode"] == "15W" and env["jetson_clocks"] is False
    assert env["emc_clock_hz"] is None and "root" in env["emc_clock_source"]
    assert any("power mode is 15W, the profile expects MAXN_SUPER" in w for w in env["warnings"])
    assert any("jetson_clocks is off" in w for w in env["warnings"])


def test_missing_nvpmodel_is_unknown_not_guessed(tmp_path: Path) -> None:
    env = jetson_environment("MAXN_SUPER", fake_jetson(tmp_path), commands({}))
    assert env["power_mode"] is None
    assert env["warnings"] == ["power mode unknown (nvpmodel -q failed); the profile expects MAXN_SUPER"]


@pytest.mark.parametrize("gpu_pinned, cpu_pinned, expected", [(True, True, True), (True, False, False),
                                                             (False, True, False)])
def test_jetson_clocks_needs_gpu_and_cpus_pinned(tmp_path: Path, gpu_pinned: bool, cpu_pinned: bool,
                                                 expected: bool) -> None:
    gpu = (1020000000, 1020000000 if gpu_pinned else 306000000, 1020000000)
    env = jetson_environment(None, fake_jetson(tmp_path, gpu=gpu, cpu_pinned=cpu_pinned), commands({}))
    assert env["jetson_clocks"] is expected
