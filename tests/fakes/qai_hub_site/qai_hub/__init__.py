"""FAKE ``qai_hub`` client (qai-hub 0.56.0), for tests without an AI Hub account (tests/fakes/README.md).

Follows qai-hub 0.56.0 per call (each names its source in qai_hub/client.py): the module-level functions and
signatures, ``Device``, jobs with ``wait(timeout) -> JobStatus`` (a FAILED job does not raise),
``get_target_model``, ``download_output_data`` (name -> one array per input; ``None`` for a failed job),
``download_profile`` (microseconds), and the errors of ``qai_hub.client``: UserError for configuration,
authentication and hub 4xx; RateLimitedError for HTTP 429 (not exported at the top level, as in 0.56.0);
InternalError for hub 5xx, lost connections and 4xx from another service (the storage uploads go to), chained
to the cause the real client chains. Job creation retries a RateLimitedError for up to 10 minutes unless
``retry=False`` (submit_inference_job always; submit_compile_job only for several devices in one job, as in
0.56.0); tests replace ``qai_hub.client._sleep``.

A "DLC" here is the ONNX file behind a magic line and a layout line naming the inputs and outputs the compile
options made channel-last (``--force_channel_last_input`` / ``--force_channel_last_output``, comma-separated
names); only those tensors are channel-last, whichever way the DLC travels (download, upload, a board).
Failure injection by environment, counted over job-creation requests: ``FAKE_AIHUB_TRANSIENT=N`` (the
first N lose the connection), ``FAKE_AIHUB_UNAVAILABLE=N`` (HTTP 503 from the hub), ``FAKE_AIHUB_RATE_LIMITED=N``
(HTTP 429); ``FAKE_AIHUB_STORAGE_STATUS=<code>`` (model and dataset uploads get that status from the storage
service); ``FAKE_AIHUB_UNSUPPORTED=<op type>`` (compile fails like the QAIRT converter),
``FAKE_AIHUB_FAIL_INFERENCE_AFTER=N`` (inference jobs after the Nth fail), ``FAKE_AIHUB_PARTIAL=1`` (an
inference job returns one output fewer than inputs), ``FAKE_AIHUB_WAIT_TIMEOUT=1`` (``wait`` times out).
"""

from __future__ import annotations

import enum
import itertools
import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import requests

from . import client
from .client import Error as Error  # qai-hub 0.56.0 qai_hub/__init__.py: `from .client import *`
from .client import InternalError as InternalError
from .client import UserError, _visible_textbox
from .public_rest_api import APIException

__version__ = "0.56.0"
_MAGIC = b"FAKEDLC\n"
_STORAGE = "https://fake-aihub-storage.s3.amazonaws.com"
_DEVICES = {"QCS8550 (Proxy)": "chipset:qualcomm-qcs8550-proxy", "RB5 (Proxy)": "chipset:qualcomm-qcs8250-proxy"}
_ids = itertools.count(1)
_state = {"creates": 0, "uploads": 0, "inference_jobs": 0}
_models: dict[str, Model] = {}


def _config() -> None:
    # qai-hub 0.56.0 qai_hub/client.py Client.config and _raise_if_hub_user_error: missing file, token, bad token
    path = Path(os.environ.get("QAIHUB_CLIENT_INI", Path.home() / ".qai_hub" / "client.ini"))
    if not path.is_file():
        raise UserError("Failed to load client configuration file.\n" + _visible_textbox(
            f"{path} not found. Please request access at https://aihub.qualcomm.com/. If you have access, please "
            f"refer to https://aihub.qualcomm.com/get-started for instructions on configuring the API key."))
    text = path.read_text()
    if "api_token" not in text:
        raise UserError("Failed to load configuration file.\n" + _visible_textbox("Your API token is missing."))
    if re.search(r"api_token\s*=\s*bad", text):
        raise UserError("Failed to authenticate.\n" + _visible_textbox(
            "Failure to authenticate is likely caused by a bad or expired API token."))


def _create_job_request() -> None:
    """One job-creation request to the hub: the injected failures, as the hub or the network gives them."""
    _state["creates"] += 1
    count = _state["creates"]
    if count <= int(os.environ.get("FAKE_AIHUB_TRANSIENT", "0")):
        raise requests.exceptions.ConnectionError("Connection refused")
    if count <= int(os.environ.get("FAKE_AIHUB_UNAVAILABLE", "0")):
        raise APIException(None, 503, f"{client.API_URL}/api/v1/jobs/")
    if count <= int(os.environ.get("FAKE_AIHUB_RATE_LIMITED", "0")):
        raise APIException(None, 429, f"{client.API_URL}/api/v1/jobs/")


def _create_job(retry: bool) -> None:
    # qai-hub 0.56.0 qai_hub/client.py submit_inference_job: `if retry: _api_call_with_retry else _api_call`
    _config()
    (client.api_call_with_retry if retry else client.api_call)(_create_job_request)


def _upload_request() -> None:
    """A model or dataset upload: the storage service's injected failure (its URL is not the hub's)."""
    _state["uploads"] += 1
    status = os.environ.get("FAKE_AIHUB_STORAGE_STATUS")
    if status:
        raise APIException(None, int(status), f"{_STORAGE}/uploads/{next(_ids)}")


def _upload() -> None:
    # qai-hub 0.56.0 qai_hub/client.py upload_model / _upload_dataset: _api_call, never the rate-limit retry
    _config()
    client.api_call(_upload_request)


@dataclass
class Device:
    """qai-hub 0.56.0 qai_hub/client.py Device(name, os, attributes); resolved when a job is submitted."""

    name: str = ""
    os: str = ""
    attributes: str | list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.os and not self.name and not self.attributes:
            raise ValueError("Cannot filter devices when provided only an OS version. Please provide a device name "
                             "and/or attributes.")

    def _resolve(self) -> Device:
        # qai-hub 0.56.0 qai_hub/client.py Client._check_devices: UserError(f"{dev} is not available.")
        attrs = [self.attributes] if isinstance(self.attributes, str) else list(self.attributes)
        for name, chipset in _DEVICES.items():
            if (not self.name or self.name == name) and all(a == chipset for a in attrs):
                return Device(name, "12", [chipset, "framework:qnn"])
        raise UserError(f"{self} is not available.")


def _devices(device: Device | list[Device]) -> list[Device]:
    return [d._resolve() for d in ([device] if isinstance(device, Device) else device)]


class _State(enum.Enum):
    # qai-hub 0.56.0 qai_hub/client.py JobStatus.State (names; the values are the fake's own)
    UNSPECIFIED = 0
    CREATED = 1
    SUCCESS = 10
    FAILED = 30
    OPTIMIZING_MODEL = 50
    PROVISIONING_DEVICE = 60
    MEASURING_PERFORMANCE = 70
    RUNNING_INFERENCE = 80
    QUANTIZING_MODEL = 90
    LINKING_MODELS = 100


@dataclass(unsafe_hash=True)
class JobStatus:
    """qai-hub 0.56.0 qai_hub/client.py JobStatus: ``code`` is the state's name ("SUCCESS", "FAILED", ...)."""

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


def _dlc(onnx_bytes: bytes, layout: dict[str, list[str]]) -> bytes:
    return _MAGIC + json.dumps(layout).encode() + b"\n" + onnx_bytes


def _parse_dlc(data: bytes) -> tuple[bytes, dict[str, list[str]]]:
    """The ONNX and the channel-last layout of a fake DLC; a plain ONNX has no layout."""
    if not data.startswith(_MAGIC):
        return data, {}
    header, _, onnx_bytes = data[len(_MAGIC):].partition(b"\n")
    return onnx_bytes, json.loads(header)


class Model:
    """qai-hub 0.56.0 qai_hub/client.py Model: model_id, name, producer (the compile job, or None), download."""

    def __init__(self, data: bytes, name: str, producer: Any = None) -> None:
        self.model_id = f"m{next(_ids):05d}"
        self.name = name
        self.producer = producer
        self._data = data
        self.url = f"https://workbench.aihub.qualcomm.com/models/{self.model_id}/"
        _models[self.model_id] = self

    def download(self, filename: str, timeout: int | None = None) -> str:
        # qai-hub 0.56.0 qai_hub/client.py Model.download: the model type's extension is added when missing
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
        # qai-hub 0.56.0 qai_hub/client.py Job.wait: FAILED is returned, only a client-side timeout raises
        if os.environ.get("FAKE_AIHUB_WAIT_TIMEOUT"):
            raise TimeoutError(f"Waiting for {self.kind} job ({self.job_id}) completion timed out after {timeout} "
                               f"seconds.")
        return self._status


class CompileJob(_Job):
    kind = "compile"

    def __init__(self, device: Device, status: JobStatus, options: str, onnx_bytes: bytes,
                 layout: dict[str, list[str]], name: str) -> None:
        super().__init__(device, status, options)
        self._target = Model(_dlc(onnx_bytes, layout), name, self)

    def get_target_model(self) -> Model | None:
        # qai-hub 0.56.0 qai_hub/client.py CompileJob.get_target_model: the target model is made with the job, so it
        # is returned even for a failed job (None only for jobs of legacy clients)
        return self._target


class InferenceJob(_Job):
    kind = "inference"

    def __init__(self, device: Device, status: JobStatus, options: str, outputs: dict | None, profile: dict) -> None:
        super().__init__(device, status, options)
        self._outputs = outputs
        self._profile = profile

    def download_output_data(self, filename: str | None = None) -> dict[str, list[np.ndarray]] | None:
        # qai-hub 0.56.0 qai_hub/client.py InferenceJob.download_output_data: None when the job failed or had no inputs
        return self._outputs if self._status.success else None

    def download_profile(self, filename: str | None = None) -> dict:
        return self._profile if self._status.success else {}


ProfileJob = InferenceJob


def _model_bytes(model: Any) -> bytes:
    return model._data if isinstance(model, Model) else Path(model).read_bytes()


def _names(options: str, flag: str) -> list[str]:
    """The comma-separated tensor names after ``flag`` in AI Hub compile options."""
    words = shlex.split(options)
    return [n for i, w in enumerate(words[:-1]) if w == flag for n in words[i + 1].split(",") if n]


def _compile_status(graph: Any, input_specs: dict | None, options: str, layout: dict[str, list[str]]) -> JobStatus:
    unsupported = os.environ.get("FAKE_AIHUB_UNSUPPORTED")
    inputs, outputs = [i.name for i in graph.input], [o.name for o in graph.output]
    unknown = [n for n in layout["channel_last_input"] if n not in inputs] + \
        [n for n in layout["channel_last_output"] if n not in outputs]
    if "--target_runtime qnn_dlc" not in options:
        return JobStatus(_State.FAILED, "Only --target_runtime qnn_dlc is simulated by this fake")
    if unknown:  # the fake's own wording: the server refuses a channel-last name the model does not have
        return JobStatus(_State.FAILED, f"channel-last tensors {unknown} are not inputs or outputs of the model")
    if unsupported and any(node.op_type == unsupported for node in graph.node):
        return JobStatus(_State.FAILED, f"QAIRT converter failed with exit code 1: op {unsupported} is not "
                                        f"supported on the GPU backend")
    if input_specs is not None and list(input_specs) != inputs:
        return JobStatus(_State.FAILED, f"input_specs {list(input_specs)} do not match the model's inputs {inputs}")
    return JobStatus(_State.SUCCESS, "")


def submit_compile_job(model: Any, device: Device | list[Device], name: str | None = None,
                       input_specs: dict | None = None, options: str = "", single_compile: bool = True,
                       calibration_data: Any = None, retry: bool = True, project: Any = None
                       ) -> CompileJob | list[CompileJob]:
    """qai-hub 0.56.0 qai_hub/client.py Client.submit_compile_job: devices checked, the model uploaded, then one
    job; the rate-limit retry applies only to a single job for several devices (one device: ``_api_call``)."""
    import onnx

    _config()
    devices = _devices(device)
    if not isinstance(model, Model):
        _upload()
    onnx_bytes, _ = _parse_dlc(_model_bytes(model))
    graph = onnx.load_from_string(onnx_bytes).graph
    options = options.strip()
    layout = {"channel_last_input": _names(options, "--force_channel_last_input"),
              "channel_last_output": _names(options, "--force_channel_last_output")}
    targets = [devices[0]] if single_compile and len(devices) > 1 else devices
    jobs = []
    for target in targets:
        _create_job(retry and single_compile and len(devices) > 1)
        status = _compile_status(graph, input_specs, options, layout)
        jobs.append(CompileJob(target, status, options, onnx_bytes, layout, name or "model"))
    return jobs[0] if len(jobs) == 1 else jobs


def _channel_last(value: np.ndarray) -> np.ndarray:
    return np.moveaxis(value, 1, -1) if value.ndim >= 3 else value


def _run(data: bytes, inputs: dict[str, list[np.ndarray]]) -> dict[str, list[np.ndarray]] | str:
    """Outputs per input, channel-last exactly where the DLC's layout says; a failure reason for a bad input."""
    import onnxruntime as ort

    onnx_bytes, layout = _parse_dlc(data)
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    specs = {i.name: tuple(i.shape) for i in session.get_inputs()}
    expected = {name: (shape[0], *shape[2:], shape[1]) if name in layout.get("channel_last_input", []) else shape
                for name, shape in specs.items()}
    names = [o.name for o in session.get_outputs()]
    results: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for i in range(len(next(iter(inputs.values())))):
        feed = {}
        for key, values in inputs.items():
            value = np.asarray(values[i], np.float32)
            if key not in specs or value.shape != expected[key]:
                return f"input {key} of shape {value.shape} does not match the model's {expected.get(key)}"
            feed[key] = np.moveaxis(value, -1, 1) if key in layout.get("channel_last_input", []) else value
        for name, value in zip(names, session.run(names, feed), strict=True):
            value = np.asarray(value, np.float32)
            results[name].append(_channel_last(value) if name in layout.get("channel_last_output", []) else value)
    return results


class Dataset:
    def __init__(self, data: dict[str, list[np.ndarray]], name: str | None) -> None:
        self.dataset_id = f"d{next(_ids):05d}"
        self.name = name
        self._data = data

    def download(self, filename: str | None = None) -> dict[str, list[np.ndarray]]:
        return self._data


def _check_data_entries(data: Any) -> None:
    # qai-hub 0.56.0 qai_hub/client.py Client._check_data_entries
    if isinstance(data, str):
        raise UserError('Dataset file must have ".h5" extension.') if not data.endswith(".h5") else \
            UserError("h5 datasets are not simulated by this fake")
    for values in data.values():
        if not isinstance(values, list) or not all(isinstance(v, np.ndarray) for v in values):
            raise UserError("The values in inputs dictionary must be list of numpy arrays with a type in (float16, "
                            "float32, bool, int8, int16, int32, int64, uint8, uint16).")
    if len({len(v) for v in data.values()}) != 1:
        raise UserError("Batchsize of all inputs must be the same.")


def upload_dataset(data: dict[str, list[np.ndarray]] | str, name: str | None = None, project: Any = None) -> Dataset:
    """qai-hub 0.56.0 qai_hub/client.py Client.upload_dataset: checked, then uploaded (``_api_call``, no retry)."""
    _check_data_entries(data)
    _upload()
    return Dataset(dict(data), name)


def submit_inference_job(model: Any, device: Device | list[Device], inputs: dict | None = None,
                         name: str | None = None, options: str = "", retry: bool = True, profile: bool = True,
                         project: Any = None) -> InferenceJob | list[InferenceJob]:
    """qai-hub 0.56.0 qai_hub/client.py Client.submit_inference_job: inputs required unless profiling, devices
    checked, model and dataset uploaded, then one job per device, with the rate-limit retry unless retry=False."""
    if inputs is None and not profile:
        raise UserError("Inference requires inputs. Either supply `inputs`, or set `profile=True` to run with "
                        "random data.")
    _config()
    devices = _devices(device)
    if not isinstance(model, Model):
        _upload()
    if inputs is not None and not isinstance(inputs, Dataset):
        _check_data_entries(inputs)
        inputs = upload_dataset(inputs)
    data = inputs._data if isinstance(inputs, Dataset) else None
    jobs = []
    for target in devices:
        _create_job(retry)
        jobs.append(_inference(_model_bytes(model), target, data, options, profile))
    return jobs[0] if len(jobs) == 1 else jobs


def _inference(model: bytes, device: Device, data: dict | None, options: str, profile: bool) -> InferenceJob:
    _state["inference_jobs"] += 1
    fail_after = os.environ.get("FAKE_AIHUB_FAIL_INFERENCE_AFTER")
    if not profile and fail_after is not None and _state["inference_jobs"] > int(fail_after):
        return InferenceJob(device, JobStatus(_State.FAILED, "Waiting for device timed out"), options, None, {})
    outputs = _run(model, data) if data is not None else None
    if isinstance(outputs, str):
        return InferenceJob(device, JobStatus(_State.FAILED, outputs), options, None, {})
    if outputs is not None and os.environ.get("FAKE_AIHUB_PARTIAL"):
        outputs = {name: values[:-1] for name, values in outputs.items()}
    iterations = int(re.search(r"--max_profiler_iterations (\d+)", options)[1]) \
        if "--max_profiler_iterations" in options else 100
    times = [4100 + 37 * (i % 7) for i in range(iterations)] if profile else []
    report = {"execution_summary": {"estimated_inference_time": int(np.median(times)) if times else None,
                                    "estimated_inference_peak_memory": 52_428_800, "all_inference_times": times},
              "execution_detail": []} if profile else {}
    return InferenceJob(device, JobStatus(_State.SUCCESS, ""), options, outputs, report)


def submit_profile_job(model: Any, device: Device | list[Device], name: str | None = None, options: str = "",
                       retry: bool = True, project: Any = None) -> InferenceJob | list[InferenceJob]:
    # qai-hub 0.56.0 qai_hub/client.py Client.submit_profile_job: deprecated, an inference job with profile=True
    print("submit_profile_job is deprecated and will be removed in a future release.")
    return submit_inference_job(model, device, None, name, options, retry, True, project)


def get_model(model_id: str) -> Model:
    # qai-hub 0.56.0 qai_hub/client.py Client.get_model: a 404 is a UserError
    _config()
    if model_id not in _models:
        raise UserError(f"ID '{model_id}' could not be found. It may not exist or you may not have permission to "
                        f"view it.")
    return _models[model_id]


def upload_model(model: Any, name: str | None = None, project: Any = None) -> Model:
    # qai-hub 0.56.0 qai_hub/client.py Client.upload_model: _api_call, no rate-limit retry
    _upload()
    return Model(Path(model).read_bytes(), name or Path(model).name)
