"""``--emulate``: a device's numerics on the host, for predicted drift before touching hardware.

FP16 devices (TensorRT on Jetson, QNN GPU on RB5) run the exported graph converted to FP16 with
the device's policy of what stays FP32 (``bench.devices.fp16``); the IMX500 runs the very MCT
INT8 model its converter receives (``bench.devices.imx500_quant``), through ONNX Runtime with
the mct_quantizers custom ops. Runs are marked emulated in the record and never enter device
latency or energy tables: the timing is the host CPU's, not the device's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import onnxruntime as ort

from bench.devices.base import Artifact, ExportedModel, InferenceResult, Session
from bench.devices.host import HostDevice
from bench.errors import BadInput
from bench.util import file_sha256, installed_version

NUMERICS = ("fp16", "int8_mct")



class EmulatedDevice(HostDevice):
    kind = "emulated"

    @property
    def emulated(self) -> bool:
        return True

    @property
    def numerics(self) -> str:
        numerics = self.profile.emulation.get("numerics")
        if numerics not in NUMERICS:
            raise BadInput(f"{self.profile.source}: emulation numerics must be one of {', '.join(NUMERICS)}")
        return numerics

    def settings(self) -> dict[str, Any]:
        """The host CPU runs the emulation (threads from the profile's ``emulation.host``); basic graph
        optimisation only, so ONNX Runtime's fusions do not change the emulated device's rounding."""
        host = self.profile.emulation.get("host") or {}
        return self.resolve({**host, "providers": ["CPUExecutionProvider"], "graph_optimization_level": "basic"})

    def toolchain(self) -> dict[str, str]:
        tools = {"onnxruntime": ort.__version__}
        if self.numerics == "fp16":
            tools["onnxconverter-common"] = installed_version("onnxconverter-common") or "not installed"
        else:
            tools["model-compression-toolkit"] = installed_version("model-compression-toolkit") or "not installed"
            tools["mct-quantizers"] = installed_version("mct-quantizers") or "not installed"
        return tools

    def availability(self) -> tuple[bool, str]:
        missing = [name for name, version in self.toolchain().items() if version == "not installed"]
        if missing:
            extra = "imx500" if self.numerics == "int8_mct" else "emulate"
            return False, f"emulating {self.profile.name} needs {', '.join(missing)}: pip install -e '.[{extra}]'"
        return True, f"{self.numerics} emulation on the host CPU with " + ", ".join(
            f"{k} {v}" for k, v in self.toolchain().items())

    def compile(self, exported: ExportedModel, workdir: Path) -> Artifact:
        ok, reason = self.availability()
        if not ok:
            raise BadInput(reason)
        workdir.mkdir(parents=True, exist_ok=True)
        if self.numerics == "fp16":
            from bench.devices.fp16 import to_fp16

            target = workdir / "model_fp16.onnx"
            details = to_fp16(exported.onnx_path, target, self.profile.emulation.get("policy", "tensorrt_fp16"))
        else:
            target, details = self._quantize(exported, workdir)
        return Artifact(target, file_sha256(target), self.profile.precision, self.toolchain(), exported.sha256,
                        json.loads(json.dumps(details, default=str)))

    def quantization_images(self) -> int:
        return int(self.profile.emulation.get("representative_images", 32)) if self.numerics == "int8_mct" else 0

    def _quantize(self, exported: ExportedModel, workdir: Path) -> tuple[Path, dict[str, Any]]:
        """The IMX500 device's own quantized model (``bench.devices.imx500.quantize_exported``)."""
        from bench.devices.imx500 import quantize_exported

        report = quantize_exported(exported, workdir, self.quantization_images(), self.profile.name)
        return Path(report.onnx_path), {"quantization": report.to_json(), "normalization": report.normalization,
                                        "mctq_onnx_sha256": report.onnx_sha256}

    def open(self, artifact: Artifact) -> Session:
        """The session; an INT8 model that takes pixels in [0, 1] gets the runner's normalised tensors mapped back."""
        session = super().open(artifact)
        normalization = artifact.details.get("normalization")
        if normalization:
            from bench.devices.imx500_quant import Normalization

            return PixelInputSession(session, Normalization.from_json(normalization))
        return session

    def session_options(self) -> ort.SessionOptions:
        if self.numerics == "int8_mct":
            import mct_quantizers

            return mct_quantizers.get_ort_session_options()
        return ort.SessionOptions()

    def environment(self) -> dict[str, Any]:
        env = super().environment()
        env["emulation"] = {"numerics": self.numerics, "of_device": self.profile.kind,
                            "policy": self.profile.emulation.get("policy"), "toolchain": self.toolchain(),
                            "representative_images": self.profile.emulation.get("representative_images")}
        return env


class PixelInputSession(Session):
    """Feeds a network that normalises inside: the runner's normalised tensor goes back to RGB in [0, 1]."""

    def __init__(self, inner: Session, normalization: Any) -> None:
        self.inner = inner
        self.normalization = normalization

    def infer(self, batch: Any) -> InferenceResult:
        from bench.devices.imx500_quant import to_pixels

        return self.inner.infer(to_pixels(batch, self.normalization))

    def close(self) -> None:
        self.inner.close()
