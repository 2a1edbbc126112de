"""The artifact cache key: an artifact is reused only when nothing that built it changed.

Each test changes one thing the old key (model, profile YAML, toolchain) did not see - an adapter
default, an FP16 policy entry, the family's compiler sources, the model code of a quantizing
toolchain - and expects a new key; an unchanged setup must keep its key and hit the cache.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from support.tiny_model import write_tiny_onnx

from bench.devices import registry
from bench.devices.base import DeviceProfile, ExportedModel
from bench.devices.cache import cache_key, compiled_artifact
from bench.devices.host import HostSettings
from bench.devices.profiles import load_profile
from bench.devices.registry import create_device
from bench.devices.tensorrt import fp16_policy
from bench.util import file_sha256


@pytest.fixture
def model(tmp_path: Path) -> ExportedModel:
    path = write_tiny_onnx(tmp_path / "tiny.onnx")
    return ExportedModel(path, file_sha256(path), "image", (1, 3, 16, 16), ("score", "patch_scores"))


def host_profile(kind: str = "host") -> DeviceProfile:
    """A host profile whose runtime section writes nothing: every setting is the adapter's default."""
    return DeviceProfile(name="cpu", kind=kind, precision="fp32", source=Path("cpu.yaml"))


@pytest.fixture
def fake_family(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A family package on sys.path, registered as ``fakefamily``: a host device that quantizes."""
    package = tmp_path / "site" / "fakefamily"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent('''
        from bench.devices.family import DeviceFamily
        from bench.devices.host import HostSettings

        FAMILY = DeviceFamily(name="fakefamily", description="a test family", adapter="fakefamily.adapter:Device",
                              settings=HostSettings)
    '''))
    (package / "adapter.py").write_text(textwrap.dedent('''
        from bench.devices.host.adapter import HostDevice


        class Device(HostDevice):
            def quantization_images(self) -> int:
                return 4
    '''))
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.setitem(registry.FAMILIES, "fakefamily", "fakefamily")
    yield package
    for name in ("fakefamily", "fakefamily.adapter"):
        sys.modules.pop(name, None)


def test_an_unchanged_setup_keeps_its_key_and_reuses_the_artifact(model: ExportedModel, tmp_path: Path) -> None:
    assert cache_key(model, create_device(host_profile())) == cache_key(model, create_device(host_profile()))
    first, cached = compiled_artifact(model, create_device(host_profile()), tmp_path / "cache")
    again, cached_again = compiled_artifact(model, create_device(host_profile()), tmp_path / "cache")
    assert (cached, cached_again) == (False, True)
    assert again.path == first.path and again.sha256 == first.sha256
    revision = again.details["compiler_revision"]  # recorded, so the manifest shows it
    assert len(revision) == 16 and int(revision, 16) >= 0


def test_a_changed_adapter_default_changes_the_key(model: ExportedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    before = cache_key(model, create_device(host_profile()))

    @dataclass(frozen=True)
    class NewDefault(HostSettings):
        graph_optimization_level: str = "basic"

    real = registry.family
    monkeypatch.setattr(registry, "family", lambda name: replace(real(name), settings=NewDefault))
    assert create_device(host_profile()).settings.graph_optimization_level == "basic"
    assert cache_key(model, create_device(host_profile())) != before


def test_an_edited_fp16_policy_changes_the_emulated_key(model: ExportedModel, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = load_profile("jetson")
    before = cache_key(model, create_device(profile, emulate=True))
    policy = fp16_policy.POLICIES["tensorrt_fp16"]
    edited = replace(policy, fp32_ops=policy.fp32_ops | {"Softmax"})
    monkeypatch.setitem(fp16_policy.POLICIES, "tensorrt_fp16", edited)
    assert cache_key(model, create_device(profile, emulate=True)) != before
    monkeypatch.setitem(fp16_policy.POLICIES, "tensorrt_fp16", replace(policy, risky_ops={}))
    assert cache_key(model, create_device(profile, emulate=True)) != before


def test_edited_family_sources_change_the_key_and_the_recorded_revision(
        model: ExportedModel, fake_family: Path, tmp_path: Path) -> None:
    first, _ = compiled_artifact(model, create_device(host_profile("fakefamily")), tmp_path / "cache")
    with (fake_family / "adapter.py").open("a") as source:
        source.write("\n# an edit to how the family compiles\n")
    key = cache_key(model, create_device(host_profile("fakefamily")))
    assert key != first.path.parent.name
    rebuilt, cached = compiled_artifact(model, create_device(host_profile("fakefamily")), tmp_path / "cache")
    assert not cached and rebuilt.path.parent.name == key
    assert rebuilt.details["compiler_revision"] != first.details["compiler_revision"]


def test_the_model_code_revision_keys_quantizing_toolchains_only(model: ExportedModel, fake_family: Path) -> None:
    quantizing = create_device(host_profile("fakefamily"))
    plain = create_device(host_profile())
    edited = replace(model, module_revision="0123456789abcdef")
    assert cache_key(edited, quantizing) != cache_key(model, quantizing)
    assert cache_key(edited, plain) == cache_key(model, plain)


def test_the_family_package_stays_in_the_revision_beside_compiles_with(fake_family: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``compiles_with`` adds modules: an edit to the family's own package still changes its revision."""
    (fake_family.parent / "fakehelper.py").write_text("STEP = 1\n")
    real = registry.family
    monkeypatch.setattr(registry, "family", lambda name: replace(real(name), compiles_with=("fakehelper",)))
    device = create_device(host_profile("fakefamily"))
    before = device.compiler_revision()
    with (fake_family / "adapter.py").open("a") as source:
        source.write("\n# an edit to the family itself\n")
    after_package = device.compiler_revision()
    (fake_family.parent / "fakehelper.py").write_text("STEP = 2\n")
    assert len({before, after_package, device.compiler_revision()}) == 3
    sys.modules.pop("fakehelper", None)
