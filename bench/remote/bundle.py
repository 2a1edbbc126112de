"""The job bundle a remote run ships to the device: what to run, on what, with which settings.

Layout of the bundle folder::

    job.json                  profile, measurement, postprocess, attempt, done image ids, categories
    <category>.npz            the preprocessed input tensors of the category's images (float32)
    <category>.onnx           the exported model (the device compiles it) - or
    <category>.artifact/      an artifact compiled on the host (toolchains the device lacks, e.g. IMX500)

Inputs are preprocessed on the host, so the device runs exactly the tensors a local run would,
and needs no dataset reader or image decoder: the lean install is enough.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.data.loader import Loaded
from bench.data.samples import Sample
from bench.devices.base import Artifact, ExportedModel
from bench.devices.profiles import profile_data
from bench.run.measure import Job, Measurement, Workload

JOB_FILE = "job.json"


@dataclass(frozen=True)
class Bundle:
    """A bundle as the device reads it: the profile, the jobs and their inputs, how to measure them."""

    profile: dict[str, Any]
    attempt: int
    jobs: list[Job]
    inputs: dict[str, Loaded]
    postprocess: dict[str, Any]
    measurement: Measurement
    done: frozenset[str]

    def library(self, sample: Sample) -> Loaded:
        """The sample library on the device: tensors from the bundle instead of image files."""
        return self.inputs[sample.image_id]


def write_bundle(folder: Path, work: Workload, inputs: dict[str, dict[str, Loaded]], attempt: int) -> Path:
    """Write the bundle of ``work``; ``inputs`` maps category -> image id -> loaded tensor (or its error).

    Every sample of a category travels (the warm-up and timed pool come from the first ones, as in a
    local run); ``done`` lists those already in the record, which the worker does not evaluate again."""
    folder.mkdir(parents=True, exist_ok=True)
    categories = []
    for job in work.jobs:
        loaded = inputs[job.category]
        arrays = {f"t{i}": loaded[s.image_id].tensor for i, s in enumerate(job.samples)
                  if loaded[s.image_id].tensor is not None}
        np.savez(folder / f"{job.category}.npz", **arrays)
        entry: dict[str, Any] = {
            "category": job.category,
            "samples": [{"image_id": s.image_id, "defect_type": s.defect_type, "label": s.label,
                         "sha256": loaded[s.image_id].sha256, "error": loaded[s.image_id].error}
                        for s in job.samples],
            "exported": {"sha256": job.exported.sha256, "input_name": job.exported.input_name,
                         "input_shape": list(job.exported.input_shape),
                         "output_names": list(job.exported.output_names)},
        }
        if job.artifact is not None:
            target = folder / f"{job.category}.artifact"
            target.mkdir()
            shutil.copyfile(job.artifact.path, target / job.artifact.path.name)
            record = asdict(job.artifact)
            record["path"] = job.artifact.path.name
            entry["artifact"] = record
        else:
            shutil.copyfile(job.exported.onnx_path, folder / f"{job.category}.onnx")
        categories.append(entry)
    job_spec = {"profile": profile_data(work.device.profile), "measurement": asdict(work.measurement),
                "postprocess": work.postprocess, "attempt": attempt, "categories": categories,
                "done": sorted(work.done & {s.image_id for job in work.jobs for s in job.samples})}
    (folder / JOB_FILE).write_text(json.dumps(job_spec, default=str), encoding="utf-8")
    return folder


def read_bundle(folder: Path) -> Bundle:
    """The bundle as written by ``write_bundle`` (device side); host-compiled artifacts come with their jobs."""
    spec = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
    jobs, inputs = [], {}
    for entry in spec["categories"]:
        category = entry["category"]
        ex = entry["exported"]
        exported = ExportedModel(folder / f"{category}.onnx", ex["sha256"], ex["input_name"],
                                 tuple(ex["input_shape"]), tuple(ex["output_names"]))
        samples = []
        with np.load(folder / f"{category}.npz") as tensors:
            for i, s in enumerate(entry["samples"]):
                samples.append(Sample(s["image_id"], Path(s["image_id"]), category, "test", s["defect_type"],
                                      int(s["label"]), None))
                key = f"t{i}"
                inputs[s["image_id"]] = Loaded(tensors[key] if key in tensors.files else None, s["sha256"], s["error"])
        artifact = None
        if "artifact" in entry:
            record = dict(entry["artifact"])
            record["path"] = folder / f"{category}.artifact" / record["path"]
            artifact = Artifact(**record)
        jobs.append(Job(category, samples, exported, artifact, cached=artifact is not None))
    return Bundle(spec["profile"], int(spec["attempt"]), jobs, inputs, spec["postprocess"],
                  Measurement(**spec["measurement"]), frozenset(spec["done"]))
