"""The IMX500's numerics for ``--emulate``: the very MCT INT8 model its converter receives, on the host.

The emulation engine (``bench.devices.emulation``) runs it in ONNX Runtime with the mct_quantizers
custom ops, so predicted and measured drift refer to one model. The model takes RGB in [0, 1] (the
normalisation is inside, as on the sensor); the runner's normalised tensors are mapped back first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from bench.devices.base import Artifact, ExportedModel, InferenceResult, Session
from bench.devices.emulation.numerics import Numerics
from bench.devices.imx500.quant import Normalization, quantize_exported, to_pixels
from bench.util import installed_version

DEFAULT_REPRESENTATIVE_IMAGES = 32


class MctInt8Numerics(Numerics):
    """MCT post-training quantization with the IMX500 TPC on ``emulation.representative_images`` images."""

    name = "int8_mct"
    extra = "imx500"

    def toolchain(self) -> dict[str, str]:
        return {"model-compression-toolkit": installed_version("model-compression-toolkit") or "not installed",
                "mct-quantizers": installed_version("mct-quantizers") or "not installed"}

    def quantization_images(self) -> int:
        return int(self.profile.emulation.get("representative_images", DEFAULT_REPRESENTATIVE_IMAGES))

    def resolved(self) -> dict[str, Any]:
        return {"numerics": self.name, "representative_images": self.quantization_images()}

    def compile(self, exported: ExportedModel, workdir: Path) -> tuple[Path, dict[str, Any]]:
        report = quantize_exported(exported, workdir, self.quantization_images(), self.profile.name)
        return Path(report.onnx_path), {"quantization": report.to_json(), "normalization": report.normalization,
                                        "mctq_onnx_sha256": report.onnx_sha256}

    def session_options(self) -> ort.SessionOptions:
        import mct_quantizers

        return mct_quantizers.get_ort_session_options()

    def session(self, inner: Session, artifact: Artifact) -> Session:
        normalization = artifact.details.get("normalization")
        return PixelInputSession(inner, Normalization.from_json(normalization)) if normalization else inner


class PixelInputSession(Session):
    """Feeds a network that normalises inside: the runner's normalised tensor goes back to RGB in [0, 1]."""

    def __init__(self, inner: Session, normalization: Normalization) -> None:
        self.inner = inner
        self.normalization = normalization

    def infer(self, batch: np.ndarray) -> InferenceResult:
        return self.inner.infer(to_pixels(batch, self.normalization))

    def _close(self) -> None:
        self.inner.close()
