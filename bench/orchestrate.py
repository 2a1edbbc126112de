"""``bench run``: resolve names to a device, a model and inputs, then drive the runner into a record.

Everything that can be checked is checked before any work starts (names, folders, the
output's writability); a failure after that leaves a record whose status says what happened.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from bench.clock import clock_info
from bench.data.calibration import DEFAULT_CALIBRATION, choose
from bench.data.datasets import Dataset, checked, open_dataset
from bench.data.loader import InputLoader
from bench.data.preprocess import Recipe, Recipes, preprocess_mask
from bench.data.samples import Sample
from bench.data.tensor_cache import TensorCache
from bench.devices.base import Device, ExportedModel
from bench.devices.cache import compiled_artifact
from bench.devices.profiles import load_profile
from bench.devices.registry import create_device
from bench.errors import BadInput
from bench.execution import execute_jobs
from bench.models.cards import ModelCard, load_card
from bench.models.prepare import PreparedModel, prepare
from bench.paths import cache_dir, results_dir
from bench.power import meter_name, rate_hz
from bench.provenance import command_line, harness_info, index_sha256
from bench.records import RunWriter, ensure_writable, load_run, new_run_id, read_manifest
from bench.records.writer import lock_run, unlock_run
from bench.remote.host import is_remote
from bench.runner import CategoryJob, Measurement

PARITY_IMAGES = 2


@dataclass(frozen=True)
class RunRequest:
    """Everything that defines a run; stored in the manifest so ``--resume`` needs nothing else."""

    device: str
    model: str
    dataset: str
    data_root: Path
    checkpoint: Path
    categories: list[str] | None = None
    limit: int | None = None
    backbone_weights: Path | None = None
    skip_bad: bool = False
    tensor_cache: bool = False
    emulate: bool = False
    mask_convention: str | None = None
    calibration: str | None = None  # INT8 representative set (bench.data.calibration); None: the profile's
    measurement: Measurement = field(default_factory=Measurement)

    def to_manifest(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("data_root", "checkpoint", "backbone_weights"):
            data[key] = str(Path(data[key]).resolve()) if data[key] is not None else None
        return data

    @classmethod
    def from_manifest(cls, data: dict[str, Any]) -> RunRequest:
        data = dict(data)
        for key in ("data_root", "checkpoint", "backbone_weights"):
            data[key] = Path(data[key]) if data[key] is not None else None
        data["measurement"] = Measurement(**data["measurement"])
        return cls(**data)


def _test_samples(dataset: Dataset, categories: list[str], limit: int | None,
                  skip_bad: bool) -> dict[str, list[Sample]]:
    out = {}
    for category in categories:
        samples = dataset.samples(category, "test")
        if not samples:
            raise BadInput(f"{dataset.root / category / 'test'}: no test images")
        out[category] = checked(_spread(samples, limit), skip_bad)
    return out


def _spread(samples: list[Sample], limit: int | None) -> list[Sample]:
    """The first ``limit`` images of a label-balanced interleaving, so a small limit still has both classes."""
    if limit is None or limit >= len(samples):
        return samples
    good = [s for s in samples if s.label == 0]
    bad = [s for s in samples if s.label == 1]
    mixed = [s for pair in zip(good, bad, strict=False) for s in pair] + good[len(bad):] + bad[len(good):]
    chosen = {s.image_id for s in mixed[:limit]}
    return [s for s in samples if s.image_id in chosen]


def _prepare_models(card: ModelCard, request: RunRequest, samples: dict[str, list[Sample]]) -> dict[str, PreparedModel]:
    prepared = {}
    loader = InputLoader(card.recipes, skip_bad=True)
    for category, cat_samples in samples.items():
        parity_inputs = []
        for sample in cat_samples:
            tensor = loader(sample).tensor
            if tensor is not None:
                parity_inputs.append(tensor)
            if len(parity_inputs) == PARITY_IMAGES:
                break
        print(f"preparing {card.name} for {category} ...", file=sys.stderr)
        prepared[category] = prepare(card, request.checkpoint, category, request.backbone_weights, parity_inputs,
                                     cache_dir() / "exports")
    return prepared


def _manifest(request: RunRequest, device: Device, card: ModelCard, recipes: Recipes, dataset: Dataset,
              samples: dict[str, list[Sample]], prepared: dict[str, PreparedModel]) -> dict[str, Any]:
    all_samples = [s for group in samples.values() for s in group]
    first = next(iter(prepared.values()))
    return {
        "command": command_line(),
        "request": request.to_manifest(),
        "harness": harness_info(),
        "clock": clock_info(),
        "device": device.describe(),
        "model": {
            "name": card.name, "family": card.family, "card": str(card.source), "card_sha256": card.fingerprint(),
            "precision": device.profile.precision, "input_shape": list(card.recipe.input_shape),
            "preprocessing": asdict(recipes.default), "mask_convention": recipes.default.mask,
            "postprocess": card.data.get("postprocess", {}),
            "params": first.params, "macs": first.macs, "macs_source": "exported ONNX graph (bench.models.complexity)",
            "backbone_weights": str(first.backbone), "backbone_sha256": first.backbone_sha256,
            "categories": {
                cat: {"checkpoint": str(p.checkpoint), "checkpoint_sha256": p.checkpoint_sha256,
                      "onnx_sha256": p.export.exported.sha256, "export_parity_max_abs": p.export.parity,
                      "preprocessing": asdict(recipes.for_category(cat))}
                for cat, p in prepared.items()
            },
        },
        "dataset": {"name": dataset.name, "root": str(dataset.root.resolve()), "categories": list(samples),
                    "split": "test", "image_count": len(all_samples), "index_sha256": index_sha256(all_samples)},
        "measurement": {**request.measurement.to_manifest(),
                        "timing": "skipped: emulated numerics on the host" if device.emulated else "single-stream",
                        "power_meter": "none (emulated)" if device.emulated else meter_name(device.profile.power),
                        "power_sample_hz": None if device.emulated or meter_name(device.profile.power) == "none"
                        else rate_hz(device.profile.power)},
    }


def _for_device(device: Device, prepared: PreparedModel, dataset: Dataset, recipe: Recipe,
                calibration: str | None = None) -> ExportedModel:
    """The exported model, plus the PyTorch module and representative images for toolchains that quantize."""
    exported = prepared.export.exported
    if device.quantization_images() == 0:
        return exported
    category = prepared.category
    mode = calibration or device.profile.runtime.get("calibration") or DEFAULT_CALIBRATION

    def split(name: str, normal_only: bool) -> list[Sample]:
        try:  # a dataset without this split gives none; choose() says when the chosen set needs it
            samples = dataset.samples(category, name)
        except BadInput:
            return []
        return [s for s in samples if not s.problem and (s.label == 0 or not normal_only)]

    loader = InputLoader(recipe)
    chosen = choose(mode, split("train", True), split("test", False), lambda s: loader(s).tensor,
                    str(dataset.root / category))
    return replace(exported, module=prepared.module, representative=chosen.images, representative_key=chosen.key,
                   normalization=(recipe.mean, recipe.std), calibration=chosen.record(device.quantization_images()),
                   tpc_version=chosen.tpc_version)


def category_masks(recipe: Recipe, samples: list[Sample], evaluated: set[str]) -> dict[str, np.ndarray] | None:
    """Masks of the evaluated images on the input grid; None when a defective one has no mask,
    so pixel metrics are marked not available rather than computed on empty masks."""
    chosen = [s for s in samples if s.image_id in evaluated]
    if any(s.label == 1 and s.mask_path is None for s in chosen):
        return None
    return {s.image_id: preprocess_mask(s.mask_path, recipe, s.path) for s in chosen}


class Inputs(NamedTuple):
    """What a request resolves to before any device work: the card, the dataset, its samples, the models."""

    card: ModelCard
    dataset: Dataset
    categories: list[str]
    samples: dict[str, list[Sample]]
    prepared: dict[str, PreparedModel]


def _inputs(request: RunRequest, skip_bad: bool) -> Inputs:
    card = load_card(request.model)
    if request.data_root is None or not request.data_root.exists():
        raise BadInput(f"--data-root {request.data_root}: no such folder")
    dataset = open_dataset(request.dataset, request.data_root)
    categories = dataset.select(request.categories)
    samples = _test_samples(dataset, categories, request.limit, skip_bad)
    return Inputs(card, dataset, categories, samples, _prepare_models(card, request, samples))


def execute(request: RunRequest, out: Path | None = None, resume: str | None = None) -> Path:
    """Run (or resume, with the request from ``resumed_request``) a benchmark; returns the run folder."""
    out = out or results_dir()
    ensure_writable(out)
    if resume:  # refuse a run another process is writing before preparing anything
        unlock_run(out / resume, lock_run(out / resume))
    profile = load_profile(request.device)
    meter_name(profile.power)
    device = create_device(profile, request.emulate)
    if device.emulated:
        # Host timing of emulated numerics is not the device's: no warm-up, no timed pass.
        request = replace(request, measurement=replace(request.measurement, warmup=0, min_count=0,
                                                       min_duration_s=0.0))
    card, dataset, categories, samples, prepared = _inputs(request, request.skip_bad)
    recipes = card.recipes.with_mask(request.mask_convention)
    manifest = _manifest(request, device, card, recipes, dataset, samples, prepared)
    if resume:
        writer = RunWriter.reopen(out / resume, manifest["command"])
        writer.manifest["attempts"][-1]["measurement"] = manifest["measurement"]
        writer.update(request=manifest["request"], measurement=manifest["measurement"])
        done = set(load_run(out / resume).images["image_id"])
    else:
        writer = RunWriter.create(out, manifest, new_run_id(profile.name, card.name))
        done = set()
    print(f"run {writer.run_dir}", file=sys.stderr)
    if not is_remote(device):  # a remote device reports its own environment (and warnings) when it starts
        for warning in manifest["device"]["environment"].get("warnings") or []:
            print(f"warning: {warning}", file=sys.stderr)
    jobs = [CategoryJob(cat, _for_device(device, prepared[cat], dataset, recipes.for_category(cat),
                                         request.calibration), samples[cat])
            for cat in categories]
    first_macs = next(iter(prepared.values())).macs
    cache = TensorCache(cache_dir() / "tensors", recipes.default) if request.tensor_cache else None
    loader = InputLoader(recipes, request.skip_bad, cache)

    def masks(evaluated: set[str]) -> dict[str, dict[str, np.ndarray] | None]:
        return {cat: category_masks(recipes.for_category(cat), group, evaluated) for cat, group in samples.items()}

    return execute_jobs(device, writer, jobs, loader, card.data.get("postprocess", {}), request.measurement,
                        cache_dir() / "artifacts", masks, done, gmac=first_macs / 1e9)


def compile_models(request: RunRequest) -> list[dict[str, Any]]:
    """``bench compile``: each category's artifact built (or found) in the artifact cache, nothing run.

    The dataset is read only for the export's parity inputs and, for toolchains that quantize,
    the representative images, so the artifact is exactly the one ``bench run`` would use.
    """
    profile = load_profile(request.device)
    device = create_device(profile, request.emulate)
    card, dataset, categories, _, prepared = _inputs(request, skip_bad=True)
    rows = []
    for category in categories:
        exported = _for_device(device, prepared[category], dataset, card.recipes.for_category(category),
                              request.calibration)
        print(f"compiling {card.name}/{category} for {profile.name} ...", file=sys.stderr)
        artifact, cached = compiled_artifact(exported, device, cache_dir() / "artifacts")
        rows.append({"category": category, "device": profile.name, "emulated": device.emulated,
                     "artifact": str(artifact.path), "sha256": artifact.sha256, "cached": cached,
                     "precision": artifact.precision, "toolchain": artifact.toolchain,
                     "source_onnx_sha256": artifact.source_sha256, "details": artifact.details})
    return rows


def resumed_request(out: Path | None, run_id: str) -> RunRequest:
    """The request an unfinished run was started with, read from its manifest."""
    run_dir = (out or results_dir()) / run_id
    if not run_dir.is_dir():
        raise BadInput(f"--resume {run_id}: no such run in {run_dir.parent}")
    return RunRequest.from_manifest(read_manifest(run_dir)["request"])


def with_measurement(request: RunRequest, **overrides: Any) -> RunRequest:
    values = {k: v for k, v in overrides.items() if v is not None}
    return replace(request, measurement=replace(request.measurement, **values))
