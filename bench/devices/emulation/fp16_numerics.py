"""FP16 numerics on the host (TensorRT FP16, QNN GPU FP16): the exported graph converted under a family's policy.

A family with FP16 numerics names ``Fp16Numerics`` in ``FAMILY.emulation`` and defines its policy in its
own ``fp16_policy`` module; the profile's ``emulation.policy`` picks one by name (default: the family's
own, when it defines exactly one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.devices.base import ExportedModel
from bench.devices.emulation.fp16_policy import family_policies, policies, policy
from bench.devices.emulation.numerics import Numerics
from bench.errors import BadInput
from bench.util import installed_version


class Fp16Numerics(Numerics):
    name = "fp16"

    def policy_name(self) -> str:
        """The profile's ``emulation.policy``, else the family's own policy when it defines exactly one."""
        named = self.profile.emulation.get("policy")
        if named:
            return str(named)
        own = family_policies(self.profile.kind)
        if len(own) != 1:
            valid = ", ".join(sorted(policies()))
            raise BadInput(f"{self.profile.source}: emulation.policy is required; valid: {valid}")
        return next(iter(own))

    def toolchain(self) -> dict[str, str]:
        return {"onnxconverter-common": installed_version("onnxconverter-common") or "not installed"}

    def compile(self, exported: ExportedModel, workdir: Path) -> tuple[Path, dict[str, Any]]:
        from bench.devices.emulation.fp16 import to_fp16

        target = workdir / "model_fp16.onnx"
        return target, to_fp16(exported.onnx_path, target, self.policy_name())

    def resolved(self) -> dict[str, Any]:
        return {"numerics": self.name, "policy": self.policy_name()}

    def artifact_key(self) -> dict[str, Any]:
        """The policy by content, not only by name: editing it rebuilds the converted graph."""
        return {**self.resolved(), "policy_content": policy(self.policy_name()).content()}
