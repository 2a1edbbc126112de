"""The plan step: a request resolved into a plain ``Plan`` before any device time is spent.

Names become a device, a model card and a dataset; the test samples are chosen; every category's
model is prepared (checkpoint, export, parity check) and compiled, here and nowhere else (a remote
device whose toolchain is its own compiles what the plan ships it, with ``artifact_for``). Everything
that can be checked is checked here, so a failure after it leaves a record whose status says what
happened.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from bench.clock import clock_info
from bench.data.calibration import DEFAULT_CALIBRATION, choose
from bench.data.datasets import Dataset, checked, open_dataset
from bench.data.loader import InputLoader
from bench.data.mask_cache import MaskCache
from bench.data.preprocess import Recipe, Recipes
from bench.data.samples import Sample, spread
from bench.data.tensor_cache import TensorCache
from bench.devices.base import Device, ExportedModel
from bench.devices.cache import artifact_for
from bench.devices.profiles import load_profile
from bench.devices.registry import create_device
from bench.errors import BadInput
from bench.models.cards import ModelCard, load_model
from bench.models.prepare import PreparedModel, prepare
from bench.paths import cache_dir
from bench.power import meter_name, rate_hz
from bench.provenance import command_line, harness_info, index_sha256
from bench.remote.ssh import is_remote
from bench.run.measure import Job, Measurement, SampleLibrary, Workload
from bench.run.request import RunRequest
from bench.util import release_memory

PARITY_IMAGES = 2


@dataclass(frozen=True)
class Plan:
    """Everything a run needs, resolved: the measure step gets its ``workload``, finalize the rest."""

    device: Device
    remote: bool  # measured on the profile's SSH target
    jobs: list[Job]
    recipes: Recipe | Recipes  # a category's recipe gives its masks
    library: SampleLibrary
    postprocess: dict[str, Any]
    measurement: Measurement
    gmac: float | None
    manifest: dict[str, Any]  # the record's manifest at creation

    def workload(self, done: set[str], timed: set[str]) -> Workload:
        """The jobs with work left, given the image ids the record has and the categories it has timed."""
        pending = [job for job in self.jobs
                   if job.category not in timed or any(s.image_id not in done for s in job.samples)]
        return Workload(self.device, pending, self.library, self.postprocess, self.measurement, frozenset(done))

    def masks(self, evaluated: set[str]) -> dict[str, dict[str, np.ndarray] | None]:
        """Each category's masks of the evaluated images on the input grid (None: pixel metrics n/a)."""
        return {job.category: category_masks(self.recipes.for_category(job.category), job.samples, evaluated)
                for job in self.jobs}


def plan_run(request: RunRequest) -> Plan:
    """Resolve, prepare and compile what ``request`` asks for."""
    profile = load_profile(request.device)
    meter_name(profile.power)
    device = create_device(profile, request.emulate)
    if device.emulated:
        # Host timing of emulated numerics is not the device's: no warm-up, no timed pass.
        request = request.with_measurement(warmup=0, min_count=0, min_duration_s=0.0)
    remote = is_remote(device.profile.location) and not device.emulated
    if not remote:  # before any export or compile: a missing board, camera or runtime costs nothing
        device.require_available()
    card, dataset, categories, samples, prepared = _inputs(request, request.skip_bad,
                                                           need_module=device.quantization_images() > 0)
    recipes = card.recipes.with_mask(request.mask_convention)
    here = not remote or (device.compiles_apart() and device.compile_status()[0])
    jobs = []
    for category in categories:
        exported = _for_device(device, prepared[category], dataset, recipes.for_category(category),
                               request.calibration)
        artifact, cached = artifact_for(device, exported) if here else (None, False)
        if artifact is not None and prepared[category].module is not None:
            # compiled: the module and its representative images are not needed again; fifteen MVTec AD
            # categories' networks held to the end, with MCT's leftovers, took a cold INT8 run past 4 GiB
            exported = replace(exported, module=None, representative=None)
            prepared[category] = replace(prepared[category], module=None)
            release_memory()
        jobs.append(Job(category, samples[category], exported, artifact, cached))
    cache = TensorCache(cache_dir() / "tensors", recipes.default) if request.tensor_cache else None
    manifest = _manifest(request, device, card, recipes, dataset, samples, prepared)
    if device.emulated:
        graph = next(iter(prepared.values())).export.exported.onnx_path
        manifest["device"]["environment"].setdefault("warnings", []).extend(_rejections(device, graph))
    return Plan(device=device, remote=remote, jobs=jobs, recipes=recipes,
                library=InputLoader(recipes, request.skip_bad, cache), postprocess=card.postprocess,
                measurement=request.measurement, gmac=next(iter(prepared.values())).macs / 1e9, manifest=manifest)


def _rejections(device: Device, graph: Path) -> list[str]:
    """What the device's toolchain would reject in the graph (deployability errors), for an emulated run: its
    figures assume a model that may never deploy there."""
    from bench.devices.deployability import lint, lint_targets, target_label

    kind = device.profile.kind
    if kind not in lint_targets():
        return []
    errors = [f for f in lint(graph, [kind])[kind] if f.severity == "error"]
    if not errors:
        return []
    more = f", and {len(errors) - 1} more" if len(errors) > 1 else ""
    return [f"{target_label(kind)} would reject this model ({errors[0].op_type} at {errors[0].node}: "
            f"{errors[0].message}{more}); the emulated figures assume it deploys (see bench inspect model)"]


def compile_models(request: RunRequest) -> list[dict[str, Any]]:
    """``bench compile``: each category's artifact built (or found) in the artifact cache, nothing run.

    The dataset is read only for the export's parity inputs and, for toolchains that quantize,
    the representative images, so the artifact is exactly the one ``bench run`` would use.
    """
    profile = load_profile(request.device)
    device = create_device(profile, request.emulate)
    card, dataset, categories, _, prepared = _inputs(request, skip_bad=True,
                                                     need_module=device.quantization_images() > 0)
    rows = []
    for category in categories:
        exported = _for_device(device, prepared[category], dataset, card.recipes.for_category(category),
                               request.calibration)
        print(f"compiling {card.name}/{category} for {profile.name} ...", file=sys.stderr)
        artifact, cached = artifact_for(device, exported)
        rows.append({"category": category, "device": profile.name, "emulated": device.emulated,
                     "artifact": str(artifact.path), "sha256": artifact.sha256, "cached": cached,
                     "precision": artifact.precision, "toolchain": artifact.toolchain,
                     "source_onnx_sha256": artifact.source_sha256, "details": artifact.details})
    return rows


def category_masks(recipe: Recipe, samples: list[Sample], evaluated: set[str]) -> dict[str, np.ndarray] | None:
    """Masks of the evaluated images on the input grid; None when a defective one has no mask,
    so pixel metrics are marked not available rather than computed on empty masks."""
    chosen = [s for s in samples if s.image_id in evaluated]
    if any(s.label == 1 and s.mask_path is None for s in chosen):
        return None
    cache = MaskCache(cache_dir() / "masks")
    return {s.image_id: cache.mask(s.mask_path, recipe, s.path) for s in chosen}


class Inputs(NamedTuple):
    """What a request resolves to before any device work: the card, the dataset, its samples, the models."""

    card: ModelCard
    dataset: Dataset
    categories: list[str]
    samples: dict[str, list[Sample]]
    prepared: dict[str, PreparedModel]


def _inputs(request: RunRequest, skip_bad: bool, need_module: bool = True) -> Inputs:
    card = load_model(request.model)
    if request.data_root is None or not request.data_root.exists():
        raise BadInput(f"--data-root {request.data_root}: no such folder")
    dataset = open_dataset(request.dataset, request.data_root)
    categories = dataset.select(request.categories)
    samples = _test_samples(dataset, categories, request.limit, skip_bad)
    return Inputs(card, dataset, categories, samples, _prepare_models(card, request, samples, need_module))


def _test_samples(dataset: Dataset, categories: list[str], limit: int | None,
                  skip_bad: bool) -> dict[str, list[Sample]]:
    out = {}
    for category in categories:
        samples = dataset.samples(category, "test")
        if not samples:
            raise BadInput(f"{dataset.root / category / 'test'}: no test images")
        chosen = spread(samples, limit)
        if len({s.label for s in chosen}) < 2:
            kind = "only good images" if chosen[0].label == 0 else "only defective images"
            raise BadInput(f"{dataset.root / category / 'test'}: category '{category}' has {kind} to test; image AUROC "
                           "and drift need both (a --limit too small, or a split without its other class?)")
        out[category] = checked(chosen, skip_bad)
    return out


def _prepare_models(card: ModelCard, request: RunRequest, samples: dict[str, list[Sample]],
                    need_module: bool = True) -> dict[str, PreparedModel]:
    prepared = {}
    loader = InputLoader(card.recipes, skip_bad=True)
    for category, cat_samples in samples.items():
        def parity_inputs(cat_samples: list[Sample] = cat_samples) -> list[np.ndarray]:
            """The first images that decode: only an export or an exported model's check reads them."""
            tensors = []
            for sample in cat_samples:
                tensor = loader(sample).tensor
                if tensor is not None:
                    tensors.append(tensor)
                if len(tensors) == PARITY_IMAGES:
                    break
            return tensors

        print(f"preparing {card.name} for {category} ...", file=sys.stderr)
        prepared[category] = prepare(card, request.checkpoint or card.default_checkpoint(), category,
                                     request.backbone_weights, parity_inputs,
                                     cache_dir() / "exports", need_module)
    return prepared


def _for_device(device: Device, prepared: PreparedModel, dataset: Dataset, recipe: Recipe,
                calibration: str | None = None) -> ExportedModel:
    """The exported model, plus the PyTorch module, the revision of its model code and representative
    images for toolchains that quantize."""
    exported = prepared.export.exported
    if device.quantization_images() == 0:
        return exported
    if prepared.module is None:
        raise BadInput(f"{prepared.checkpoint}: {device.profile.name} quantizes from a PyTorch module (MCT), which an "
                       "exported ONNX alone does not give; name a torch.export program as 'module' in the model card")
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
                   tpc_version=chosen.tpc_version, module_revision=prepared.module_revision)


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
            "postprocess": card.postprocess,
            "params": first.params, "macs": first.macs, "macs_source": "exported ONNX graph (bench.models.complexity)",
            "backbone_weights": str(first.backbone) if first.backbone else None,
            "backbone_sha256": first.backbone_sha256,
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
