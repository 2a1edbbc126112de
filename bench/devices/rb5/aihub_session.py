"""Running a compiled model on an AI Hub device: inference jobs per chunk, a profile job for timing.

The host cannot time a cloud device (it would time the upload and the queue), so the session is
``timing_source = "device_profiler"``: latency comes from an AI Hub profile job (``device_timing``), every
iteration's time where AI Hub gives them, else its single estimate. AI Hub reports no power. Inputs and
outputs are channel-last only where the options the DLC was compiled with say so (``compile_options``).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

from bench.devices.base import DeviceTiming, InferenceResult, Session
from bench.devices.rb5 import HubSettings
from bench.devices.rb5.aihub import (
    AIHubError,
    cached_outputs,
    channel_last_names,
    chunk_key,
    finished,
    profile_times_ms,
    store_outputs,
    submitted,
    to_channel_last,
    to_model_layout,
)


class AIHubSession(Session):
    timing_source = "device_profiler"

    def __init__(self, hub: Any, model: Any, model_id: str, device: Any, input_name: str,
                 output_shapes: dict[str, tuple[int, ...]], settings: HubSettings, cache: Path,
                 compile_options: str = "") -> None:
        self.hub = hub
        self.model = model
        self.model_id = model_id
        self.device = device
        self.input_name = input_name
        self.output_shapes = output_shapes
        self.settings = settings
        self.cache = cache
        self.chunk = max(1, settings.chunk_images)
        self.input_channel_last = input_name in channel_last_names(compile_options, "--force_channel_last_input")
        self.output_channel_last = channel_last_names(compile_options, "--force_channel_last_output")
        self.jobs: list[dict[str, Any]] = []

    def _inference_job(self, inputs: Any, options: str, profile: bool) -> Any:
        submit = self.hub.submit_inference_job
        kwargs: dict[str, Any] = {"model": self.model, "device": self.device, "inputs": inputs, "options": options,
                                  "name": f"edge-ad-bench {'profile' if profile else 'inference'}"}
        if "profile" in inspect.signature(submit).parameters:
            kwargs["profile"] = profile
        elif profile:  # clients before inference jobs could profile
            kwargs.pop("inputs")
            submit = self.hub.submit_profile_job
        return submitted(submit, "profile" if profile else "inference", self.settings, **kwargs)

    def _sent(self, batch: np.ndarray) -> np.ndarray:
        return to_channel_last(batch) if self.input_channel_last else batch

    def infer_many(self, batches: list[np.ndarray]) -> list[InferenceResult]:
        if not batches:
            return []
        key = chunk_key(batches, self.model_id)
        outputs = cached_outputs(self.cache, key)
        if outputs is None:
            # uploaded once, however often the job is retried
            dataset = submitted(self.hub.upload_dataset, "dataset upload", self.settings,
                                data={self.input_name: [self._sent(b) for b in batches]}, name=f"edge-ad-bench {key}")
            job = self._inference_job(dataset, self.settings.profile_options, False)
            self.jobs.append({"job_id": job.job_id, "kind": "inference", "images": len(batches), "url": job.url,
                              "dataset_id": getattr(dataset, "dataset_id", None)})
            finished(job, "inference", self.settings)
            outputs = job.download_output_data()
            if not outputs:
                raise AIHubError(f"AI Hub inference job {job.job_id} finished without output data ({job.url})")
            short = {name: len(values) for name, values in outputs.items() if len(values) != len(batches)}
            if short:
                raise AIHubError(f"AI Hub inference job {job.job_id} returned a partial result ({short} of "
                                 f"{len(batches)} images); finished chunks are kept, rerun to resume")
            store_outputs(self.cache, key, outputs)
        else:
            self.jobs.append({"kind": "inference", "images": len(batches), "cached": key})
        missing = [name for name in self.output_shapes if name not in outputs]
        if missing:
            raise AIHubError(f"AI Hub outputs {sorted(outputs)} lack the model's {missing}")
        return [InferenceResult({name: to_model_layout(outputs[name][i], shape, name in self.output_channel_last)
                                 for name, shape in self.output_shapes.items()})
                for i in range(len(batches))]

    def infer(self, batch: np.ndarray) -> InferenceResult:
        return self.infer_many([batch])[0]

    def device_timing(self, pool: list[np.ndarray], count: int) -> DeviceTiming:
        iterations = max(count, self.settings.max_profiler_iterations)
        options = f"{self.settings.profile_options} --max_profiler_iterations {iterations}".strip()
        job = self._inference_job({self.input_name: [self._sent(pool[0])]}, options, True)
        finished(job, "profile", self.settings)
        profile = job.download_profile()
        times, field = profile_times_ms(profile)
        summary = profile.get("execution_summary") or {}
        details = {"job_id": job.job_id, "url": job.url, "iterations_requested": iterations,
                   "peak_memory_bytes": summary.get("estimated_inference_peak_memory"),
                   "device": getattr(getattr(job, "device", None), "name", None)}
        self.jobs.append({"job_id": job.job_id, "kind": "profile", "url": job.url})
        return DeviceTiming(times, f"AI Hub profile job {job.job_id} ({field})", details)

    def audit(self) -> dict[str, Any]:
        return {"aihub_jobs": self.jobs, "aihub_device": getattr(self.device, "name", None) or
                getattr(self.device, "attributes", None)}

    def _close(self) -> None:
        self.model = None
