"""The RB5 Gen2 adapter: QNN GPU FP16, through Qualcomm AI Hub or a local board over adb.

``runtime.transport`` picks how the device is reached:

* ``aihub``: the exported ONNX is compiled by AI Hub to a QNN DLC for the profile's device
  (``runtime.aihub.device`` by name, or ``device_attributes`` such as
  ``chipset:qualcomm-qcs8550-proxy``, since AI Hub's device list changes), the dataset runs as
  inference jobs in chunks and latency comes from a profile job (``bench.devices.rb5.aihub_session``).
  GPU and FP16 are set in the job options (``--compute_unit gpu --qnn_options
  default_graph_gpu_precision=FLOAT16``). AI Hub reports no power.
* ``adb``: the DLC (compiled by AI Hub, or ``runtime.dlc`` from a local QAIRT converter) runs on a
  board on the lab's USB with qnn-net-run and the GPU backend (``bench.devices.rb5.qnn_adb``).

Compile job ids, the AI Hub device and client version are recorded with the artifact; inference
and profile job ids with each category. The API token is never read or recorded here.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

from bench.devices.base import Artifact, Device, ExportedModel, Session
from bench.devices.onnx_info import output_shapes
from bench.devices.rb5 import RB5Settings
from bench.devices.rb5.aihub import AIHubError, AIHubRefused, device, finished, load_hub, submitted
from bench.errors import BadInput, BenchError
from bench.paths import cache_dir
from bench.util import file_sha256, installed_version


def hub_config_path() -> Path:
    """Where the qai_hub client reads its token (the client's own rule: QAIHUB_CLIENT_INI, else ~/.qai_hub)."""
    return Path(os.environ.get("QAIHUB_CLIENT_INI", Path.home() / ".qai_hub" / "client.ini"))


class RB5Device(Device):
    settings: RB5Settings

    def toolchain(self) -> dict[str, str]:
        hub = self.settings.aihub
        tools = {"transport": self.settings.transport, "qai-hub": installed_version("qai-hub") or "not installed",
                 "compile_options": hub.compile_options,
                 "aihub_device": ",".join(hub.device_attributes) or hub.device}
        if self.settings.dlc:
            dlc = Path(self.settings.dlc).expanduser()
            if not dlc.is_file():
                raise BadInput(f"{self.profile.source}: runtime.dlc {dlc} is not a file")
            tools["dlc"] = file_sha256(dlc)
        return tools

    def _hub_status(self) -> tuple[bool, str]:
        if installed_version("qai-hub") is None:
            return False, "qai-hub is not installed: pip install -e '.[rb5]'"
        if not hub_config_path().is_file():
            return False, (f"no AI Hub token: {hub_config_path()} not found (qai-hub configure --api_token <token>, "
                           f"or QAIHUB_CLIENT_INI)")
        return True, f"qai-hub {installed_version('qai-hub')}, device {self.toolchain()['aihub_device']}"

    def compile_status(self) -> tuple[bool, str]:
        if self.settings.dlc:
            dlc = Path(self.settings.dlc).expanduser()
            return (True, f"precompiled DLC {dlc}") if dlc.is_file() else (False, f"runtime.dlc {dlc}: no such file")
        return self._hub_status()

    def availability(self) -> tuple[bool, str]:
        if self.settings.transport == "aihub":
            return self._hub_status()
        if installed_version("adbutils") is None:
            return False, "adbutils is not installed: pip install -e '.[rb5]'"
        try:
            self.settings.adb.sdk_files()
        except BadInput as exc:
            return False, str(exc)
        from bench.devices.rb5.qnn_adb import connect

        try:
            board = connect(self.settings.adb.serial)
        except BenchError as exc:  # no board, several boards and no serial, a board that does not answer
            return False, str(exc)
        return True, f"board {board.serial} over adb, QNN SDK {self.settings.adb.qnn_sdk}"

    def compile(self, exported: ExportedModel, workdir: Path) -> Artifact:
        workdir.mkdir(parents=True, exist_ok=True)
        target = workdir / "model.dlc"
        details: dict[str, Any] = {"output_shapes": output_shapes(exported.onnx_path),
                                   "input_name": exported.input_name, "input_shape": list(exported.input_shape)}
        if self.settings.dlc:
            ok, reason = self.compile_status()
            if not ok:
                raise BadInput(reason)
            shutil.copyfile(Path(self.settings.dlc).expanduser(), target)
            details["compiled_by"] = "precompiled DLC (runtime.dlc)"
        else:
            details.update(self._aihub_compile(exported, target))
        return Artifact(target, file_sha256(target), self.profile.precision, self.toolchain(), exported.sha256,
                        json.loads(json.dumps(details, default=str)))

    def _aihub_compile(self, exported: ExportedModel, target: Path) -> dict[str, Any]:
        ok, reason = self._hub_status()
        if not ok:
            raise BadInput(f"compiling for {self.profile.name} needs AI Hub: {reason}")
        hub, settings = load_hub(), self.settings.aihub
        specs = {exported.input_name: (tuple(exported.input_shape), "float32")}
        job = submitted(hub.submit_compile_job, "compile", settings, model=str(exported.onnx_path),
                        device=device(hub, settings), name=f"edge-ad-bench {exported.sha256[:12]}",
                        input_specs=specs, options=settings.compile_options)
        finished(job, "compile", settings)
        model = job.get_target_model()
        if model is None:
            raise AIHubError(f"AI Hub compile job {job.job_id} succeeded but has no target model ({job.url})")
        written = Path(model.download(str(target)))
        if written != target:
            shutil.move(written, target)
        return {"compiled_by": "AI Hub", "compile_job_id": job.job_id, "compile_job_url": job.url,
                "target_model_id": model.model_id, "aihub_device": getattr(job.device, "name", None),
                "hub_version": getattr(job, "hub_version", None), "qai_hub": installed_version("qai-hub"),
                "options": settings.compile_options}

    def _open(self, artifact: Artifact) -> Session:
        shapes = {name: tuple(dims) for name, dims in (artifact.details.get("output_shapes") or {}).items()}
        input_name = str(artifact.details.get("input_name", "image"))
        options = str(artifact.details.get("options") or "")  # what the DLC was compiled with; none for runtime.dlc
        if self.settings.transport == "adb":
            from bench.devices.rb5.qnn_adb import QnnBoardSession

            return QnnBoardSession(artifact.path, input_name, tuple(artifact.details.get("input_shape") or ()), shapes,
                                   self.settings.adb, options)
        from bench.devices.rb5.aihub_session import AIHubSession

        hub, settings = load_hub(), self.settings.aihub
        model_id = artifact.details.get("target_model_id")
        model = None
        if model_id:
            try:
                model = submitted(hub.get_model, "model lookup", settings, model_id=model_id)
            except (AIHubError, AIHubRefused) as exc:  # expired or not visible to this account: the DLC is here
                print(f"warning: {exc}; uploading {artifact.path} instead", file=sys.stderr)
        if model is None:
            model = submitted(hub.upload_model, "model upload", settings, model=str(artifact.path))
            model_id = model.model_id
        return AIHubSession(hub, model, str(model_id), device(hub, settings), input_name, shapes, settings,
                            cache_dir() / "aihub-outputs", options)

    def environment(self) -> dict[str, Any]:
        hub = self.settings.aihub
        ok, reason = self.availability()
        return {
            "os": platform.platform(), "machine": platform.machine(), "python": platform.python_version(),
            "transport": self.settings.transport,
            "runtime": {"qai-hub": installed_version("qai-hub"), "adbutils": installed_version("adbutils")},
            "settings": {"aihub_device": hub.device, "device_attributes": list(hub.device_attributes),
                         "compile_options": hub.compile_options, "profile_options": hub.profile_options,
                         "chunk_images": hub.chunk_images if self.settings.transport == "aihub"
                         else self.settings.adb.chunk_images},
            "token": f"from {hub_config_path()} (never recorded)" if self.settings.transport == "aihub" else None,
            "available_here": "ok" if ok else reason,
            "power_mode": None,
            "warnings": [],
        }
