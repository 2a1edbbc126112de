"""Device profiles: ``kind`` names the family (registry key), ``role`` is loaded and checked, and each
family reads ``runtime`` into its typed settings, refusing unknown keys and values with the file named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.devices.profiles import load_profile
from bench.devices.registry import create_device, family, family_names
from bench.errors import BadInput


def write_profile(folder: Path, **fields: object) -> Path:
    folder.mkdir(exist_ok=True)
    data = {"name": "lab", "kind": "host", "precision": "fp32", **fields}
    (folder / "lab.yaml").write_text(yaml.safe_dump(data))
    return folder


def test_every_shipped_profile_names_a_family_and_only_the_cpu_host_is_the_reference() -> None:
    kinds = {name: load_profile(name).kind for name in ("host", "host-cuda", "jetson", "tensorrt-gpu", "imx500", "rb5")}
    assert kinds == {"host": "host", "host-cuda": "host", "jetson": "tensorrt", "tensorrt-gpu": "tensorrt",
                     "imx500": "imx500", "rb5": "rb5"}
    assert family_names() == ["host", "imx500", "rb5", "tensorrt"]
    assert all(family(kind).name == kind for kind in set(kinds.values()))
    roles = {name: load_profile(name).role for name in kinds}
    assert [name for name, role in roles.items() if role == "reference"] == ["host"]


def test_an_unknown_role_is_refused_naming_the_file(tmp_path: Path) -> None:
    folder = write_profile(tmp_path / "devices", role="baseline")
    with pytest.raises(BadInput, match=r"lab\.yaml: role 'baseline' is not one of reference, device"):
        load_profile("lab", folder)


def test_an_unknown_kind_lists_the_families(tmp_path: Path) -> None:
    profile = load_profile("lab", write_profile(tmp_path / "devices", kind="jetson"))
    with pytest.raises(BadInput, match="device kind 'jetson' is not built in this version"):
        create_device(profile)


def test_host_settings_fill_defaults_and_refuse_typos(tmp_path: Path) -> None:
    device = create_device(load_profile("lab", write_profile(tmp_path / "a", runtime={"intra_op_num_threads": 2})))
    assert device.settings.providers == ("CPUExecutionProvider",) and device.settings.graph_optimization_level == "all"
    assert device.resolved_options()["intra_op_num_threads"] == 2
    typo = load_profile("lab", write_profile(tmp_path / "b", runtime={"intra_op_threads": 2}))
    with pytest.raises(BadInput, match=r"lab\.yaml: runtime: unknown key\(s\) intra_op_threads; valid: "):
        create_device(typo)
    level = load_profile("lab", write_profile(tmp_path / "c", runtime={"graph_optimization_level": "max"}))
    with pytest.raises(BadInput, match=r"lab\.yaml: runtime: graph_optimization_level must be one of disable"):
        create_device(level)


def test_tensorrt_settings_are_typed(tmp_path: Path) -> None:
    jetson = create_device(load_profile("jetson"))
    assert (jetson.settings.workspace_mib, jetson.settings.expected_power_mode) == (1024, "MAXN_SUPER")
    assert jetson.settings.builder_optimization_level is None  # not in the YAML: the default
    typo = load_profile("lab", write_profile(tmp_path / "d", kind="tensorrt", precision="fp16",
                                             runtime={"workspace_mb": 512}))
    with pytest.raises(BadInput, match=r"unknown key\(s\) workspace_mb; valid: builder_optimization_level, "
                                       r"cuda_graph, expected_power_mode, gpu_index, system_root, timing_cache, "
                                       r"workspace_mib"):
        create_device(typo)


def test_a_misspelt_top_level_key_is_refused(tmp_path: Path) -> None:
    """``rol: reference`` once silently made the profile a device run."""
    (tmp_path / "cpu.yaml").write_text("name: cpu\nkind: host\nprecision: fp32\nrol: reference\n")
    with pytest.raises(BadInput, match=r"cpu\.yaml: unknown key\(s\) rol; valid: .*role"):
        load_profile("cpu", tmp_path)
