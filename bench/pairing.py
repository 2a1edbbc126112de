"""The one rule that pairs a device run with its reference run (DESIGN.md), for compare, report and nightly.

A reference is a role, not a kind of device: the profile says ``role: reference`` (the host FP32 CPU
profile) and the manifest records it, so a GPU FP32 run of ``kind: host`` never becomes the reference
by being newest. A device run pairs with a reference of the same model, dataset, categories and
checkpoint sha256 per category; among several, the newest complete one, unless the user pins one.
Image by image, the pair must hold the same images fed the same bytes (``input_sha256``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from bench.errors import BadInput

REFERENCE_ROLE = "reference"


class HasManifest(Protocol):
    path: Path
    manifest: dict[str, Any]


def is_reference(manifest: dict[str, Any]) -> bool:
    """A complete-or-not run recorded by a profile whose role is reference, on the real device (not emulated)."""
    device = manifest.get("device", {})
    return device.get("role") == REFERENCE_ROLE and not device.get("emulated")


def signature(manifest: dict[str, Any]) -> tuple:
    """What a device run and its reference must share: model, dataset, categories, checkpoint sha256s, and
    the image set (``index_sha256``; a ``--limit`` smoke run of the reference profile pairs with its like)."""
    model, dataset = manifest.get("model", {}), manifest.get("dataset", {})
    checkpoints = tuple(sorted((c, v.get("checkpoint_sha256")) for c, v in model.get("categories", {}).items()))
    return (model.get("name"), dataset.get("name"), tuple(sorted(dataset.get("categories", []))), checkpoints,
            dataset.get("index_sha256"))


def describe(key: tuple) -> str:
    return f"{key[0]} on {key[1]} ({', '.join(key[2])})"


def mismatch(ref: dict[str, Any], dev: dict[str, Any]) -> str | None:
    """The first thing that keeps two runs from pairing, as a phrase; None when they pair."""
    if ref.get("run_id") is not None and ref.get("run_id") == dev.get("run_id"):
        return f"both are run {ref['run_id']}; compare a device run with its reference, not with itself"
    checks = [("model", ref["model"]["name"], dev["model"]["name"]),
              ("dataset", ref["dataset"]["name"], dev["dataset"]["name"]),
              ("categories", sorted(ref["dataset"]["categories"]), sorted(dev["dataset"]["categories"]))]
    for what, a, b in checks:
        if a != b:
            return f"runs differ in {what}: reference {a!r}, device {b!r}; drift needs the same {what}"
    if ref["dataset"].get("index_sha256") != dev["dataset"].get("index_sha256"):
        return ("runs differ in their image set (dataset index_sha256; e.g. another --limit); drift needs the "
                "same images")
    for category in ref["dataset"]["categories"]:
        a = ref["model"].get("categories", {}).get(category, {}).get("checkpoint_sha256")
        b = dev["model"].get("categories", {}).get(category, {}).get("checkpoint_sha256")
        if a != b:
            return (f"runs differ in checkpoint sha256 of '{category}': reference {a!r}, device {b!r}; "
                    f"drift needs the same checkpoint sha256 of '{category}'")
    return None


def check(ref: dict[str, Any], dev: dict[str, Any]) -> None:
    problem = mismatch(ref, dev)
    if problem:
        raise BadInput(problem)


@dataclass
class Pairing:
    """Every device run with its reference, and the device runs left without one (with the reason)."""

    pairs: list[tuple[Any, Any]]
    unpaired: list[tuple[Any, str]]
    references: list[Any]


def pair_runs(runs: Sequence[HasManifest], pinned: Iterable[HasManifest] = ()) -> Pairing:
    """Pairs the complete runs in ``runs``: references by role, devices with the newest matching reference.

    ``pinned`` references (any complete run the user names, e.g. ``--reference RUN``) take precedence over
    the role for their signature: a device run whose signature a pinned run has pairs with that run alone.
    """
    complete = [r for r in runs if r.manifest.get("status") == "complete"]
    pinned = list(pinned)
    for run in pinned:
        if run.manifest.get("status") != "complete":
            raise BadInput(f"{run.path}: the pinned reference is {run.manifest.get('status')}, not complete")
    chosen: dict[tuple, Any] = {}
    references = [r for r in complete if is_reference(r.manifest)]
    for run in sorted(references, key=lambda r: str(r.manifest.get("created_at"))):
        chosen[signature(run.manifest)] = run
    for run in pinned:
        chosen[signature(run.manifest)] = run
    pinned_paths = {Path(r.path).resolve() for r in pinned}
    pairs, unpaired = [], []
    for run in complete:
        if is_reference(run.manifest) or Path(run.path).resolve() in pinned_paths:
            continue
        key = signature(run.manifest)
        ref = chosen.get(key)
        if ref is None:
            unpaired.append((run, f"no complete reference run (a profile with role: reference) of {describe(key)} "
                                  f"with the same checkpoints and images"))
        else:
            pairs.append((ref, run))
    return Pairing(pairs, unpaired, list(chosen.values()))


@dataclass
class PairedCategory:
    category: str
    frame: pd.DataFrame  # image_id, label, score_ref, score_dev
    excluded: int
    left_out: list[str] = field(default_factory=list)  # why each excluded image is out, one phrase per image


def pair_images(ref: Any, dev: Any) -> list[PairedCategory]:
    """The two runs' scores side by side, per category, on ``image_id``; refuses differing inputs."""
    check(ref.manifest, dev.manifest)
    paired = []
    for category in ref.manifest["dataset"]["categories"]:
        a = ref.images[ref.images["category"] == category].set_index("image_id")
        b = dev.images[dev.images["category"] == category].set_index("image_id")
        only = sorted(set(a.index) ^ set(b.index))
        if only:
            side = "reference" if only[0] in a.index else "device"
            raise BadInput(f"image {only[0]} is only in the {side} run; drift needs the same images")
        b = b.loc[a.index]
        differs = a.index[(a["input_sha256"] != b["input_sha256"]) & a["input_sha256"].notna()
                          & b["input_sha256"].notna()]
        if len(differs):
            raise BadInput(f"image {differs[0]}: input_sha256 differs between the runs (the device was fed "
                           f"other bytes); drift refused")
        ok = a["error"].isna() & b["error"].isna() & a["score"].notna() & b["score"].notna()
        frame = pd.DataFrame({"image_id": a.index[ok], "label": a["label"][ok].to_numpy(),
                              "score_ref": a["score"][ok].to_numpy(), "score_dev": b["score"][ok].to_numpy()})
        left_out = [f"{image_id}: {_why(a.loc[image_id], b.loc[image_id])}" for image_id in a.index[~ok]]
        paired.append(PairedCategory(category, frame, int((~ok).sum()), left_out))
    return paired


def _why(ref: pd.Series, dev: pd.Series) -> str:
    """Why an image has no pair: which run errored (with its error) or gave no score."""
    for side, row in (("reference", ref), ("device", dev)):
        if isinstance(row["error"], str):
            return f"error in the {side} run ({row['error']})"
    return "no score in the " + ("reference" if pd.isna(ref["score"]) else "device") + " run"
