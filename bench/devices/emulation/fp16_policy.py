"""FP16 policies: what an FP16 device keeps in FP32, and why. Each family with FP16 numerics defines its own
policies in its package's ``fp16_policy`` module (``POLICIES``, by name); they are looked up by name here,
through the registry's families, so a new family adds its policy in its own folder.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.devices.sources import Source
from bench.errors import BadInput


@dataclass(frozen=True)
class Fp16Policy:
    """What one FP16 device keeps in FP32, why, and where that is documented."""

    device: str
    fp32_ops: frozenset[str]
    rationale: str
    sources: tuple[Source, ...]
    # Ops the device runs in FP16 although they are numerically fragile; reported, not blocked, so the
    # emulation shows the drift they cause.
    risky_ops: dict[str, str] = field(default_factory=dict)

    def content(self) -> dict[str, Any]:
        """The policy as plain, ordered data: what an artifact converted under it depends on."""
        data = asdict(self)
        data["fp32_ops"] = sorted(self.fp32_ops)
        return data


REDUCTION_RISK = "sums many values; an FP16 result loses digits and overflows past 65504"


def family_policies(family: str) -> dict[str, Fp16Policy]:
    """The FP16 policies a family defines (none when its package has no ``fp16_policy`` module)."""
    from bench.devices.registry import FAMILIES

    module = f"{FAMILIES[family]}.fp16_policy"
    if importlib.util.find_spec(module) is None:
        return {}
    return dict(importlib.import_module(module).POLICIES)


def policies() -> dict[str, Fp16Policy]:
    """Every family's FP16 policies, by name."""
    from bench.devices.registry import family_names

    return {name: policy for family in family_names() for name, policy in family_policies(family).items()}


def policy(name: str) -> Fp16Policy:
    known = policies()
    if name not in known:
        raise BadInput(f"unknown FP16 policy '{name}'; valid policies: {', '.join(sorted(known))}")
    return known[name]
