"""The IMX500 adapter: MCT INT8 and ``imxconv-pt`` on the host, ``network.rpk`` and picamera2 on the Pi.

compile (host, no camera): Sony MCT post-training quantization with the IMX500 TPC on the
representative set (``runtime.representative_images``, recorded), exported as MCTQ ONNX that takes
RGB in [0, 1] with the preprocessing's normalisation inside (the sensor's own input); then the
converter in its tool environment (``bench.devices.imx500.converter``) to ``packerOut.zip``,
refused with the memory figures when it does not fit. The MCTQ ONNX is the very file
``--emulate`` runs, so predicted and measured drift refer to one model.

open (Raspberry Pi): ``imx500-package`` turns packerOut.zip into ``network.rpk`` (cached beside
the artifact), then picamera2 runs it with input-tensor injection (``bench.devices.imx500.session``).
The profile's ``runtime`` keys are :class:`bench.devices.imx500.IMX500Settings`.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from bench.devices.base import Artifact, Device, ExportedModel, Session
from bench.devices.imx500 import IMX500Settings
from bench.devices.imx500.converter import (
    CONVERTER_VERSION,
    ConversionFailed,
    convert,
    converter_status,
    find_converter,
)
from bench.devices.onnx_info import output_shapes
from bench.errors import BadInput, BenchError
from bench.util import file_sha256, installed_version

PACKAGER = "imx500-package"
RPK_NAME = "network.rpk"


def _has_mct_quantizers(onnx_path: Path) -> bool:
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return any(node.domain == "mct_quantizers" for node in graph.node)


class IMX500Device(Device):
    settings: IMX500Settings

    def quantization_images(self) -> int:
        return self.settings.representative_images

    def toolchain(self) -> dict[str, str]:
        return {"model-compression-toolkit": installed_version("model-compression-toolkit") or "not installed",
                "mct-quantizers": installed_version("mct-quantizers") or "not installed",
                "imx500-converter": CONVERTER_VERSION}

    def packager(self) -> Path | None:
        configured = self.settings.packager
        if configured:
            path = Path(configured).expanduser()
            return path if path.is_file() else None
        found = shutil.which(PACKAGER)
        return Path(found) if found else None

    def availability(self) -> tuple[bool, str]:
        """Running needs the Pi side (picamera2 and imx500-package); compiling needs the host side."""
        missing = []
        if self.packager() is None:
            missing.append(f"{PACKAGER} (Raspberry Pi only: sudo apt install imx500-tools)")
        for module, hint in (("picamera2", "sudo apt install python3-picamera2"),
                             ("OpenEXR", "pip install openexr")):
            try:
                __import__(module)
            except ImportError:
                missing.append(f"{module} ({hint})")
        if missing:
            return False, "not a Raspberry Pi with the AI Camera stack: missing " + "; ".join(missing)
        return True, f"picamera2 {installed_version('picamera2')}, {self.packager()}"

    def compile_status(self) -> tuple[bool, str]:
        """Whether this machine can compile (quantize and convert) for the IMX500."""
        if installed_version("model-compression-toolkit") is None:
            return False, "model-compression-toolkit missing: pip install -e '.[imx500]'"
        return converter_status(self.settings.converter)

    def compile(self, exported: ExportedModel, workdir: Path) -> Artifact:
        from bench.devices.imx500.quant import quantize_exported

        ok, reason = self.compile_status()
        if not ok:
            raise BadInput(f"compiling for {self.profile.name} needs the IMX500 converter: {reason}")
        workdir.mkdir(parents=True, exist_ok=True)
        report = quantize_exported(exported, workdir, self.quantization_images(), self.profile.name)
        onnx_path = Path(report.onnx_path)
        if not _has_mct_quantizers(onnx_path):
            raise ConversionFailed(f"{onnx_path}: no mct_quantizers nodes; the converter needs an MCT-quantized model")
        cli = find_converter(self.settings.converter)
        assert cli is not None  # compile_status checked it
        conversion = convert(onnx_path, workdir / "converted", cli,
                             input_persistency=self.settings.input_persistency)
        packer = workdir / "packerOut.zip"
        shutil.copyfile(conversion.packer_zip, packer)
        details = {"quantization": report.to_json(), "conversion": conversion.to_json(),
                   "mctq_onnx_sha256": file_sha256(onnx_path), "normalization": report.normalization,
                   "output_names": list(exported.output_names), "output_shapes": output_shapes(exported.onnx_path)}
        return Artifact(packer, file_sha256(packer), self.profile.precision, self.toolchain(), exported.sha256,
                        json.loads(json.dumps(details, default=str)))

    def package(self, artifact: Artifact) -> Path:
        """``network.rpk`` from packerOut.zip with the Pi's imx500-package (once per artifact).

        The tool writes into a scratch folder renamed to ``rpk/`` only when it succeeded, so a packager
        killed mid-write (Ctrl-C, a power cut) never leaves a partial network that later runs would reuse.
        """
        rpk = artifact.path.parent / "rpk" / RPK_NAME
        if rpk.is_file():
            return rpk
        tool = self.packager()
        if tool is None:
            raise BadInput(f"{PACKAGER} not found: packaging network.rpk runs on the Raspberry Pi "
                           f"(sudo apt install imx500-tools)")
        scratch = Path(tempfile.mkdtemp(prefix="rpk.partial-", dir=artifact.path.parent))
        try:
            done = subprocess.run([str(tool), "-i", str(artifact.path), "-o", str(scratch)], capture_output=True,
                                  text=True, check=False)
            if done.returncode != 0 or not (scratch / RPK_NAME).is_file():
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
                raise BenchError(f"{artifact.path}: {PACKAGER} failed (exit {done.returncode}): {tail[0]}")
            if rpk.parent.is_dir() and not rpk.is_file():  # left by a packaging that failed before this scheme
                shutil.rmtree(rpk.parent)
            try:
                scratch.rename(rpk.parent)
            except OSError:
                if not rpk.is_file():  # else another process packaged the same artifact first
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return rpk

    def _open(self, artifact: Artifact) -> Session:
        from bench.devices.imx500.quant import Normalization
        from bench.devices.imx500.session import InjectionSession

        normalization = artifact.details.get("normalization")
        if not normalization:
            raise BadInput(f"{artifact.path}: compiled without the input normalisation; recompile with this version")
        shapes = {name: tuple(dims) for name, dims in (artifact.details.get("output_shapes") or {}).items()}
        return InjectionSession(self.package(artifact), Normalization.from_json(normalization),
                                list(artifact.details.get("output_names") or []), self.settings, shapes)

    def environment(self) -> dict[str, Any]:
        compile_ok, compile_reason = self.compile_status()
        run_ok, run_reason = self.availability()
        model = Path("/proc/device-tree/model")
        return {
            "os": platform.platform(), "machine": platform.machine(), "python": platform.python_version(),
            "board": model.read_text(errors="replace").strip("\x00\n") if model.is_file() else None,
            "runtime": {"picamera2": installed_version("picamera2"), "openexr": installed_version("openexr"),
                        "imx500-package": str(self.packager()) if self.packager() else None,
                        "imx500-converter": CONVERTER_VERSION, "model-compression-toolkit":
                        installed_version("model-compression-toolkit")},
            "settings": {key: getattr(self.settings, key) for key in (
                "representative_images", "input_persistency", "frame_rate", "timeout_s", "max_reinjections")},
            "compile_here": compile_reason if not compile_ok else "ok",
            "run_here": run_reason if not run_ok else "ok",
            "power_mode": None,
            "warnings": [],
        }
