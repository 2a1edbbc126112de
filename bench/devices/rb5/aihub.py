"""Qualcomm AI Hub (``qai_hub``) as a transport: compile to a QNN DLC, profile and run on a hosted device.

Jobs are the unit of work and of failure. Every job is submitted through :func:`submitted` (retried
with exponential backoff on transient failures: connection errors, rate limits, "device
unavailable"; never on a user error) and awaited through :func:`finished`, which turns a FAILED
status into one clear line: authentication, quota, an op the target cannot run, or the server's
own failure reason, with the job's URL. The API token stays where the client keeps it
(``~/.qai_hub/client.ini``, ``QAIHUB_CLIENT_INI``); nothing here reads or records it.

The dataset runs as inference jobs over chunks of images (``chunk_images``); each chunk's outputs
are cached on disk by the chunk's input checksum, so a run stopped half-way resumes without
re-submitting finished chunks. AI Hub returns channel-last outputs for a channel-first model's
4-D tensors; they are transposed back to the exported model's shapes.
"""

from __future__ import annotations

import hashlib
import importlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from bench.devices.rb5 import HubSettings
from bench.errors import BadInput, DeviceFailure

T = TypeVar("T")
TRANSIENT = ("could not connect", "timeout occurred", "unavailable right now", "rate", "waiting for device timed out",
             "unexpected device error", "reported errors")
QUOTA = ("quota", "limit exceeded", "too many jobs")
UNSUPPORTED = ("not supported", "unsupported", "no kernel", "does not support", "converter failed")


class AIHubError(DeviceFailure):
    """An AI Hub job or call failed; the message names the job and the reason."""


def load_hub() -> Any:
    try:
        return importlib.import_module("qai_hub")
    except ImportError as exc:
        raise BadInput("qai-hub is not installed: pip install -e '.[rb5]', then qai-hub configure --api_token "
                       "<token>") from exc


def classify(message: str) -> str:
    """auth | quota | unsupported | transient | other, from an AI Hub error or failure reason."""
    text = message.lower()
    if "authenticate" in text or "api token" in text or "client configuration" in text or "configuration file" in text:
        return "auth"
    if any(word in text for word in QUOTA):
        return "quota"
    if any(word in text for word in TRANSIENT):
        return "transient"
    if any(word in text for word in UNSUPPORTED):
        return "unsupported"
    return "other"


def explain(kind: str, message: str) -> str:
    first = " ".join(message.split())
    hints = {
        "auth": "AI Hub authentication failed; configure the token with 'qai-hub configure --api_token <token>' or "
                "QAIHUB_CLIENT_INI",
        "quota": "AI Hub refused the job for quota or rate limits; wait or raise the account's limits",
        "unsupported": "the model uses an op or shape the target cannot run",
    }
    return f"{hints[kind]}: {first}" if kind in hints else first


def submitted(call: Callable[[], T], what: str, settings: HubSettings,
              sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()`` retried with exponential backoff on transient AI Hub failures; other failures raised clearly."""
    hub = load_hub()
    errors = tuple(getattr(hub, name) for name in ("Error",) if hasattr(hub, name))
    attempt = 0
    while True:
        try:
            return call()
        except errors as exc:  # qai_hub.UserError / InternalError / RateLimitedError
            kind = "transient" if type(exc).__name__ in ("InternalError", "RateLimitedError") else classify(str(exc))
            if kind != "transient" or attempt >= settings.retries:
                raise AIHubError(f"AI Hub {what} failed: {explain(kind, str(exc))}") from exc
        wait = settings.backoff_s * 2**attempt
        attempt += 1
        sleep(wait)


def finished(job: Any, what: str, settings: HubSettings) -> Any:
    """Wait for ``job``; a FAILED job raises with its reason and URL. Returns the job."""
    try:
        status = job.wait(timeout=settings.timeout_s)
    except TimeoutError as exc:
        raise AIHubError(f"AI Hub {what} job {job.job_id} did not finish within {settings.timeout_s} s "
                         f"(still running: {job.url})") from exc
    if not status.success:
        reason = status.message or "no reason given"
        raise AIHubError(f"AI Hub {what} job {job.job_id} failed: {explain(classify(reason), reason)} ({job.url})")
    return job


def device(hub: Any, settings: HubSettings) -> Any:
    """The profile's AI Hub device, by name or by chipset attributes (AI Hub's device list changes)."""
    if settings.device_attributes:  # attributes take precedence over the name
        return hub.Device(os=settings.device_os, attributes=list(settings.device_attributes))
    return hub.Device(name=settings.device, os=settings.device_os)


def chunk_key(batches: list[np.ndarray], model_id: str) -> str:
    digest = hashlib.sha256(model_id.encode())
    for batch in batches:
        digest.update(np.ascontiguousarray(batch).tobytes())
    return digest.hexdigest()[:24]


def to_model_layout(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """An AI Hub output in the exported model's shape: NHWC back to NCHW when that is what differs."""
    array = np.asarray(value, dtype=np.float32)
    if array.shape == shape:
        return array
    if array.ndim == 4 and len(shape) == 4 and array.shape == (shape[0], shape[2], shape[3], shape[1]):
        return np.ascontiguousarray(array.transpose(0, 3, 1, 2))
    if array.size == int(np.prod(shape)) and array.squeeze().shape == np.empty(shape).squeeze().shape:
        return array.reshape(shape)
    raise AIHubError(f"AI Hub output of shape {array.shape} does not match the model's {shape}")


def profile_times_ms(profile: dict[str, Any]) -> tuple[list[float], str]:
    """Every inference time of a profile (microseconds in AI Hub's dict), else its single estimate."""
    summary = profile.get("execution_summary") or {}
    times = summary.get("all_inference_times")
    if times:
        return [float(t) / 1e3 for t in times], "all_inference_times"
    estimate = summary.get("estimated_inference_time")
    if estimate is None:
        raise AIHubError("the AI Hub profile has neither all_inference_times nor estimated_inference_time")
    return [float(estimate) / 1e3], "estimated_inference_time"


def cached_outputs(cache: Path, key: str) -> dict[str, list[np.ndarray]] | None:
    path = cache / f"{key}.npz"
    if not path.is_file():
        return None
    with np.load(path) as data:
        names = sorted({k.rsplit("__", 1)[0] for k in data.files})
        count = len([k for k in data.files if k.startswith(f"{names[0]}__")])
        return {name: [data[f"{name}__{i}"] for i in range(count)] for name in names}


def store_outputs(cache: Path, key: str, outputs: dict[str, list[np.ndarray]]) -> None:
    from bench.records.atomic import replace_atomically

    cache.mkdir(parents=True, exist_ok=True)
    arrays = {f"{name}__{i}": value for name, values in outputs.items() for i, value in enumerate(values)}
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    replace_atomically(cache / f"{key}.npz", write)
