"""Qualcomm AI Hub (``qai_hub``) as a transport: compile to a QNN DLC, profile and run on a hosted device.

Jobs are the unit of work and of failure. Every request goes through :func:`submitted`, which owns the
one retry policy: the client's own retry of rate-limited job creation (up to 10 minutes, qai-hub 0.56.0
``Client._api_call_with_retry``) is turned off with ``retry=False``, and only what is transient is retried
here, at most ``retries`` times after ``backoff_s * 2**attempt`` seconds (capped at :data:`MAX_WAIT_S`):
HTTP 429 (``qai_hub.client.RateLimitedError``) and an ``InternalError`` caused by a 5xx or a lost
connection. An ``InternalError`` caused by a 4xx (the client raises one for a 4xx from another service,
such as the storage uploads go to) is not retried. A ``UserError`` (configuration, token, device name,
input) is :class:`AIHubRefused`, a bad input (exit 2); everything else, and a FAILED job awaited through
:func:`finished`, is :class:`AIHubError`, a device failure (exit 5). The API token stays where the client
keeps it (``~/.qai_hub/client.ini``, ``QAIHUB_CLIENT_INI``); nothing here reads or records it.

The dataset runs as inference jobs over chunks of images (``chunk_images``); each chunk's outputs
are cached on disk by the chunk's input checksum, so a run stopped half-way resumes without
re-submitting finished chunks. Tensors are channel-last exactly where the compile options name them
(``--force_channel_last_input`` / ``--force_channel_last_output``): those inputs are sent channel-last and
those outputs turned back to the exported model's layout; every other tensor keeps the model's own shape.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from bench.devices.rb5 import HubSettings
from bench.errors import BadInput, DeviceFailure

T = TypeVar("T")
MAX_WAIT_S = 300.0
QUOTA = ("quota", "limit exceeded", "too many jobs", "too many requests")
UNSUPPORTED = ("not supported", "unsupported", "no kernel", "does not support", "converter failed")


class AIHubError(DeviceFailure):
    """An AI Hub job or call failed; the message names the job and the reason."""


class AIHubRefused(BadInput):
    """AI Hub refused a request as the user's to correct (qai_hub ``UserError``): configuration, token, device."""


def load_hub() -> Any:
    try:
        return importlib.import_module("qai_hub")
    except ImportError as exc:
        raise BadInput("qai-hub is not installed: pip install -e '.[rb5]', then qai-hub configure --api_token "
                       "<token>") from exc


def classify(message: str) -> str:
    """auth | quota | unsupported | other, from an AI Hub error or a job's failure reason."""
    text = message.lower()
    if "authenticate" in text or "api token" in text or "client configuration" in text or "configuration file" in text:
        return "auth"
    if any(word in text for word in QUOTA):
        return "quota"
    if any(word in text for word in UNSUPPORTED):
        return "unsupported"
    return "other"


def explain(kind: str, message: str) -> str:
    first = " ".join(message.split())
    hints = {
        "auth": "AI Hub authentication failed; configure the token with 'qai-hub configure --api_token <token>' or "
                "QAIHUB_CLIENT_INI",
        "quota": "AI Hub refused the job for quota or rate limits (HTTP 429); wait or raise the account's limits",
        "unsupported": "the model uses an op or shape the target cannot run",
    }
    return f"{hints[kind]}: {first}" if kind in hints else first


def _errors(hub: Any) -> tuple[type, type, type, type | None]:
    """Error, UserError, InternalError and RateLimitedError; 0.56.0 keeps the last out of ``qai_hub``'s names."""
    client = importlib.import_module(f"{hub.__name__}.client")
    return hub.Error, hub.UserError, hub.InternalError, getattr(client, "RateLimitedError", None)


def transient(exc: BaseException, internal: type, rate_limited: type | None) -> bool:
    """HTTP 429, or an InternalError the client chained to a 5xx or to a network failure (requests' exceptions
    are OSErrors); never one chained to a 4xx, nor one the client raised itself without a cause."""
    if rate_limited is not None and isinstance(exc, rate_limited):
        return True
    if not isinstance(exc, internal):
        return False
    cause = exc.__cause__
    status = getattr(cause, "status_code", None)
    if isinstance(status, int):
        return status >= 500
    return isinstance(cause, OSError)


def submitted(call: Callable[..., T], what: str, settings: HubSettings,
              sleep: Callable[[float], None] | None = None, **kwargs: Any) -> T:
    """``call(**kwargs)`` under the one retry policy (module docstring), with ``retry=False`` where ``call`` takes
    it so that the client does not retry underneath; a failure that is not retried is raised as one line."""
    hub = load_hub()
    error, user_error, internal, rate_limited = _errors(hub)
    if "retry" in inspect.signature(call).parameters:
        kwargs["retry"] = False
    attempt = 0
    while True:
        try:
            return call(**kwargs)
        except error as exc:
            message = " ".join(str(exc).split())
            if isinstance(exc, user_error):
                raise AIHubRefused(f"AI Hub {what} refused: {explain(classify(message), message)}") from exc
            if not transient(exc, internal, rate_limited):
                raise AIHubError(f"AI Hub {what} failed: {message}") from exc
            if attempt >= settings.retries:
                kind = "quota" if rate_limited is not None and isinstance(exc, rate_limited) else "other"
                raise AIHubError(f"AI Hub {what} failed after {attempt + 1} attempts: "
                                 f"{explain(kind, message)}") from exc
        (sleep or time.sleep)(min(settings.backoff_s * 2**attempt, MAX_WAIT_S))
        attempt += 1


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


def channel_last_names(options: str, flag: str) -> frozenset[str]:
    """The tensor names an AI Hub compile option such as ``--force_channel_last_output a,b`` (or ``=a,b``) lists."""
    try:
        words = shlex.split(options or "")
    except ValueError as exc:
        raise BadInput(f"runtime.aihub.compile_options cannot be parsed ({exc}): {options}") from exc
    lists = [words[i + 1] for i, word in enumerate(words[:-1]) if word == flag]
    lists += [word.split("=", 1)[1] for word in words if word.startswith(f"{flag}=")]
    return frozenset(name for names in lists for name in names.split(",") if name)


def to_channel_last(value: np.ndarray) -> np.ndarray:
    """NCHW (any rank of 3 or more: channels second) to channels last, as the compiled input expects."""
    array = np.asarray(value)
    return np.ascontiguousarray(np.moveaxis(array, 1, -1)) if array.ndim >= 3 else array


def to_model_layout(value: np.ndarray, shape: tuple[int, ...], channel_last: bool = False) -> np.ndarray:
    """An output in the exported model's shape: turned back from channels last exactly when the compile options
    made it so (``channel_last``); otherwise only a size-preserving squeeze/reshape, never a guessed transpose."""
    array = np.asarray(value, dtype=np.float32)
    if channel_last and len(shape) >= 3:
        expected = (shape[0], *shape[2:], shape[1])
        if array.shape != expected:
            raise AIHubError(f"AI Hub channel-last output of shape {array.shape} does not match the model's {shape} "
                             f"(expected {expected})")
        return np.ascontiguousarray(np.moveaxis(array, -1, 1))
    if array.shape == shape:
        return array
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
