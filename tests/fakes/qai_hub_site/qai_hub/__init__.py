"""FAKE ``qai_hub`` client (qai-hub 0.56.0 API), for tests without an AI Hub account (tests/fakes/README.md).

Follows the real client's module-level functions and signatures (``submit_compile_job``,
``submit_inference_job(..., profile=True)``, ``get_model``, ``upload_model``), ``Device``, jobs with
``wait(timeout) -> JobStatus`` (a FAILED job does not raise; ``.success``/``.failure``/``.message``),
``get_target_model``, ``download_output_data`` (name -> one array per input, 4-D outputs channel-last),
``download_profile`` (microseconds), the exception classes and their texts for a missing
configuration, a bad token, an unknown device and a lost connection.

A "DLC" here is the ONNX file itself behind a magic line; inference runs it in ONNX Runtime.
Failure injection by environment: ``FAKE_AIHUB_TRANSIENT=N`` (the first N submits raise
InternalError), ``FAKE_AIHUB_UNSUPPORTED=<op type>`` (compile fails like the QAIRT converter),
``FAKE_AIHUB_FAIL_INFERENCE_AFTER=N`` (inference jobs after the Nth fail), ``FAKE_AIHUB_PARTIAL=1``
(an inference job returns one output fewer than inputs), ``FAKE_AIHUB_WAIT_TIMEOUT=1`` (``wait``
times out), ``FAKE_AIHUB_QUOTA=1`` (submits are refused for quota).
"""

from __future__ import annotations

import enum
import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__version__ = "0.56.0"
_MAGIC = b"FAKEDLC\n"
_DEVICES = {"QCS8550 (Proxy)": "chipset:qualcomm-qcs8550-proxy", "RB5 (Proxy)": "chipset:qualcomm-qcs8250-proxy"}
_ids = itertools.count(1)
_state = {"submits": 0, "inference_jobs": 0}
_models: dict[str, Model] = {}


class Error(Exception):
    pass


class UserError(Error):
    pass


class InternalError(Error):
    pass


class RateLimitedError(Error):
    pass


def _box(text: str) -> str:
    return f"\n┌{'─' * 68}┐\n| {text} |\n└{'─' * 68}┘"


def _config() -> None:
    path = Path(os.environ.get("QAIHUB_CLIENT_INI", Path.home() / ".qai_hub" / "client.ini"))
    if not path.is_file():
        raise UserError("Failed to load client configuration file." + _box(
            f"{path} not found. Please request access at https://aihub.qualcomm.com/. If you have access, please "
            f"refer to https://aihub.qualcomm.com/get-started for instructions on configuring the API key."))
    text = path.read_text()
    if "api_token" not in text:
        raise UserError("Failed to load configuration file." + _box("Your API token is missing."))
    if re.search(r"api_token\s*=\s*bad", text):
        raise UserError("Failed to authenticate." + _box(
            "Failure to authenticate is likely caused by a bad or expired API token."))


def _submit_gate() -> None:
    _config()
    _state["submits"] += 1
    if _state["submits"] <= int(os.environ.get("FAKE_AIHUB_TRANSIENT", "0")):
        raise InternalError("Internal API failure." + _box(
            "Could not connect to Qualcomm AI Hub. Please visit https://workbench.aihub.qualcomm.com to check the "
            "service's status."))
    if os.environ.get("FAKE_AIHUB_QUOTA"):
        raise UserError("Job quota exceeded: too many jobs submitted in the last 24 hours.")


@dataclass
class Device:
    name: str = ""
    os: str = ""
    attributes: str | list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.os and not self.name and not self.attributes:
            raise ValueError("Cannot filter devices when provided only an OS version. Please provide a device name "
                             "and/or attributes.")

    def _resolve(self) -> Device:
        attrs = [self.attributes] if isinstance(self.attributes, str) else list(self.attributes)
        for name, chipset in _DEVICES.items():
            if (not self.name or self.name == name) and all(a == chipset for a in attrs):
                return Device(name, "12", [chipset, "framework:qnn"])
        raise UserError(f"{self} is not available.")


class _State(enum.Enum):
    UNSPECIFIED = 0
    CREATED = 1
    SUCCESS = 10
    FAILED = 30
    OPTIMIZING_MODEL = 50
    MEASURING_PERFORMANCE = 70
    RUNNING_INFERENCE = 80


@dataclass(unsafe_hash=True)
class JobStatus:
    State = _State
    state: _State
    message: str | None = None

    @property
    def code(self) -> str:
        return self.state.name

    @property
    def success(self) -> bool:
        return self.state == _State.SUCCESS

    @property
    def failure(self) -> bool:
        return self.state == _State.FAILED

    @property
    def finished(self) -> bool:
        return self.success or self.failure


class Model:
    def __init__(self, data: bytes, name: str) -> None:
        self.model_id = f"m{next(_ids):05d}"
        self.name = name
        self._data = data
        self.url = f"https://workbench.aihub.qualcomm.com/models/{self.model_id}/"
        _models[self.model_id] = self

    def download(self, filename: str, timeout: int | None = None) -> str:
        path = filename if filename.endswith(".dlc") else f"{filename}.dlc"
        Path(path).write_bytes(self._data)
        print(f"Downloaded model to {path}")
        return path


class _Job:
    kind = ""

    def __init__(self, device: Device, status: JobStatus, options: str) -> None:
        self.job_id = f"j{next(_ids):05d}"
        self.device = device
        self.options = options
        self.hub_version = "aihub-2026.11.1"
        self._status = status

    @property
    def url(self) -> str:
        return f"https://workbench.aihub.qualcomm.com/jobs/{self.job_id}/"

    def get_status(self) -> JobStatus:
        return self._status

    def wait(self, timeout: int | None = None) -> JobStatus:
        if os.environ.get("FAKE_AIHUB_WAIT_TIMEOUT"):
            raise TimeoutError(f"Waiting for {self.kind} job ({self.job_id}) completion timed out after {timeout} "
                               f"seconds.")
        return self._status


class CompileJob(_Job):
    kind = "compile"

    def __init__(self, device: Device, status: JobStatus, options: str, target: Model) -> None:
        super().__init__(device, status, options)
        self._target = target

    def get_target_model(self) -> Model | None:
        return self._target  # 0.56 returns the model even for a failed job


class InferenceJob(_Job):
    kind = "inference"

    def __init__(self, device: Device, status: JobStatus, options: str, outputs: dict | None, profile: dict) -> None:
        super().__init__(device, status, options)
        self._outputs = outputs
        self._profile = profile

    def download_output_data(self, filename: str | None = None) -> dict[str, list[np.ndarray]] | None:
        return self._outputs if self._status.success else None

    def download_profile(self, filename: str | None = None) -> dict:
        return self._profile if self._status.success else {}


ProfileJob = InferenceJob


def _onnx_bytes(model: Any) -> bytes:
    data = model._data if isinstance(model, Model) else Path(model).read_bytes()
    return data[len(_MAGIC):] if data.startswith(_MAGIC) else data


def submit_compile_job(model: Any, device: Device | list[Device], name: str | None = None,
                       input_specs: dict | None = None, options: str = "", single_compile: bool = True,
                       calibration_data: Any = None, retry: bool = True, project: Any = None) -> CompileJob:
    _submit_gate()
    import onnx

    resolved = device._resolve()
    onnx_bytes = _onnx_bytes(model)
    graph = onnx.load_from_string(onnx_bytes).graph
    unsupported = os.environ.get("FAKE_AIHUB_UNSUPPORTED")
    if "--target_runtime qnn_dlc" not in options:
        status = JobStatus(_State.FAILED, "Only --target_runtime qnn_dlc is simulated by this fake")
    elif unsupported and any(node.op_type == unsupported for node in graph.node):
        status = JobStatus(_State.FAILED, f"QAIRT converter failed with exit code 1: op {unsupported} is not "
                                          f"supported on the GPU backend")
    else:
        names = [i.name for i in graph.input]
        status = JobStatus(_State.SUCCESS, "") if input_specs is None or list(input_specs) == names else \
            JobStatus(_State.FAILED, f"input_specs {list(input_specs)} do not match the model's inputs {names}")
    return CompileJob(resolved, status, options, Model(_MAGIC + onnx_bytes, name or "model"))


def _run(onnx_bytes: bytes, inputs: dict[str, list[np.ndarray]]) -> dict[str, list[np.ndarray]]:
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    first = next(iter(inputs))
    results: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for i in range(len(inputs[first])):
        values = session.run(names, {key: np.asarray(inputs[key][i], np.float32) for key in inputs})
        for name, value in zip(names, values, strict=True):
            value = np.asarray(value, np.float32)
            results[name].append(value.transpose(0, 2, 3, 1) if value.ndim == 4 else value)  # channel-last
    return results


class Dataset:
    def __init__(self, data: dict[str, list[np.ndarray]], name: str | None) -> None:
        self.dataset_id = f"d{next(_ids):05d}"
        self.name = name
        self._data = data

    def download(self, filename: str | None = None) -> dict[str, list[np.ndarray]]:
        return self._data


def upload_dataset(data: dict[str, list[np.ndarray]] | str, name: str | None = None, project: Any = None) -> Dataset:
    _config()
    if isinstance(data, str):
        raise UserError('Dataset file must have ".h5" extension.') if not data.endswith(".h5") else \
            UserError("h5 datasets are not simulated by this fake")
    for values in data.values():
        if not isinstance(values, list) or not all(isinstance(v, np.ndarray) for v in values):
            raise UserError("The values in inputs dictionary must be list of numpy arrays with a type in (float16, "
                            "float32, bool, int8, int16, int32, int64, uint8, uint16).")
    if len({len(v) for v in data.values()}) != 1:
        raise UserError("Batchsize of all inputs must be the same.")
    return Dataset(dict(data), name)


def submit_inference_job(model: Any, device: Device | list[Device], inputs: dict | None = None,
                         name: str | None = None, options: str = "", retry: bool = True, profile: bool = True,
                         project: Any = None) -> InferenceJob:
    _submit_gate()
    resolved = device._resolve()
    if inputs is None and not profile:
        raise UserError("Inference requires inputs. Either supply `inputs`, or set `profile=True` to run with "
                        "random data.")
    if isinstance(inputs, Dataset):
        inputs = inputs._data
    if inputs is not None:
        lengths = {len(v) for v in inputs.values()}
        if len(lengths) != 1:
            raise UserError("Batchsize of all inputs must be the same.")
    _state["inference_jobs"] += 1
    fail_after = os.environ.get("FAKE_AIHUB_FAIL_INFERENCE_AFTER")
    if not profile and fail_after is not None and _state["inference_jobs"] > int(fail_after):
        return InferenceJob(resolved, JobStatus(_State.FAILED, "Waiting for device timed out"), options, None, {})
    outputs = _run(_onnx_bytes(model), inputs) if inputs is not None and not profile else None
    if outputs is not None and os.environ.get("FAKE_AIHUB_PARTIAL"):
        outputs = {name: values[:-1] for name, values in outputs.items()}
    iterations = int(re.search(r"--max_profiler_iterations (\d+)", options)[1]) \
        if "--max_profiler_iterations" in options else 100
    times = [4100 + 37 * (i % 7) for i in range(iterations)] if profile else []
    report = {"execution_summary": {"estimated_inference_time": int(np.median(times)) if times else None,
                                    "estimated_inference_peak_memory": 52_428_800, "all_inference_times": times},
              "execution_detail": []} if profile else {}
    return InferenceJob(resolved, JobStatus(_State.SUCCESS, ""), options, outputs, report)


def submit_profile_job(model: Any, device: Device, name: str | None = None, options: str = "", retry: bool = True,
                       project: Any = None) -> InferenceJob:
    return submit_inference_job(model, device, None, name, options, retry, True, project)


def get_model(model_id: str) -> Model:
    _config()
    if model_id not in _models:
        raise UserError(f"ID '{model_id}' could not be found. It may not exist or you may not have permission to "
                        f"view it.")
    return _models[model_id]


def upload_model(model: Any, name: str | None = None, project: Any = None) -> Model:
    _config()
    return Model(Path(model).read_bytes(), name or Path(model).name)
