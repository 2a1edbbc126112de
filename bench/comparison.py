"""``bench compare``: drift of a device run against its reference run of the same inputs.

Which runs pair, and image by image how, is ``bench.pairing``'s one rule; different inputs make
drift meaningless, so pairing refuses and names the first image that differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from bench.data.preprocess import Recipe
from bench.errors import BadInput, GateFailed
from bench.metrics.drift import drift_summary
from bench.pairing import pair_images
from bench.paths import results_dir
from bench.records import RunRecord, load_run

SATURATION_INT8 = ("the scores sit on one value, so those images cannot be ranked; likely cause: the INT8 output "
                   "range was calibrated without anomalies (see --calibration)")
SATURATION_OTHER = ("the scores sit on one value, so those images cannot be ranked; the score output saturates "
                    "(a sigmoid rounding to its limit in reduced precision)")


def resolve_run(name: str) -> Path:
    """A run folder, or a run id inside the default results folder."""
    path = Path(name)
    if (path / "manifest.json").is_file():
        return path
    candidate = results_dir() / name
    if (candidate / "manifest.json").is_file():
        return candidate
    raise BadInput(f"{name}: not a run folder or a run id in {results_dir()}")


def _maps(run: RunRecord, category: str, ids: list[str]) -> np.ndarray | None:
    maps = run.maps(category)
    if not ids or any(i not in maps for i in ids):
        return None
    return np.stack([maps[i].astype(np.float32) for i in ids])


def compare(ref_path: Path, dev_path: Path, masks: dict[str, dict[str, np.ndarray]] | None = None) -> dict[str, Any]:
    ref, dev = load_run(ref_path), load_run(dev_path)
    categories: dict[str, Any] = {}
    for item in pair_images(ref, dev):
        ids = item.frame["image_id"].tolist()
        labels = item.frame["label"].to_numpy()
        maps_ref, maps_dev = _maps(ref, item.category, ids), _maps(dev, item.category, ids)
        cat_masks = None
        if masks and item.category in masks and maps_ref is not None:
            cat_masks = np.stack([masks[item.category][i] for i in ids])
        summary = drift_summary(labels, item.frame["score_ref"].to_numpy(), item.frame["score_dev"].to_numpy(),
                                maps_ref if cat_masks is not None else None,
                                maps_dev if cat_masks is not None else None, cat_masks)
        categories[item.category] = {"images": len(ids), "excluded": item.excluded, **summary}
    deltas = [c["image"]["delta_points"] for c in categories.values()]
    # The dataset figure is the mean over categories; categories hold disjoint images, so the
    # variance of the mean delta is the sum of the per-category DeLong variances over K^2.
    se = float(np.sqrt(sum(c["image"]["se_points"] ** 2 for c in categories.values()))) / len(deltas)
    mean = float(np.mean(deltas))
    z = stats.norm.ppf(0.975)
    dataset = {"delta_points": mean, "ci_low_points": mean - z * se, "ci_high_points": mean + z * se,
               "se_points": se, "p_value": float(2 * stats.norm.sf(abs(mean) / se)) if se > 0 else (
                   1.0 if mean == 0 else 0.0)}
    return {
        "reference": {"run_id": ref.run_id, "device": ref.manifest["device"]["profile"],
                      "emulated": ref.manifest["device"].get("emulated", False)},
        "device": {"run_id": dev.run_id, "device": dev.manifest["device"]["profile"],
                   "emulated": dev.manifest["device"].get("emulated", False)},
        "model": ref.manifest["model"]["name"],
        "dataset": ref.manifest["dataset"]["name"],
        "categories": categories,
        "mean_delta_points": mean,
        "dataset_drift": dataset,
        "max_abs_delta_points": float(np.max(np.abs(deltas))),
        "saturation": saturation_warnings(dev),
    }


def masks_for(run: RunRecord) -> dict[str, dict[str, np.ndarray]] | None:
    """The reference run's masks, re-read from its dataset, for pixel-level drift (None when unavailable)."""
    from bench.data.datasets import open_dataset
    from bench.run.plan import category_masks

    m = run.manifest
    try:
        dataset = open_dataset(m["dataset"]["name"], Path(m["dataset"]["root"]))
        default = Recipe.from_manifest(m["model"]["preprocessing"])
        recipes = {cat: Recipe.from_manifest(entry["preprocessing"]) if "preprocessing" in entry else default
                   for cat, entry in m["model"]["categories"].items()}
    except (BadInput, KeyError, TypeError):
        return None
    out = {}
    for category in m["dataset"]["categories"]:
        evaluated = set(run.images.loc[(run.images["category"] == category) & run.images["error"].isna(), "image_id"])
        cat = category_masks(recipes.get(category, default), dataset.samples(category, "test"), evaluated)
        if cat is not None:
            out[category] = cat
    return out


@dataclass(frozen=True)
class Gate:
    """A drift limit in image-AUROC points and where it came from (--max-drift, a model card, the default)."""

    points: float
    source: str

    def describe(self) -> str:
        return f"{self.points:.2f}-point gate ({self.source})"

    def to_json(self) -> dict[str, Any]:
        return {"points": self.points, "source": self.source}


def card_gate(manifest: dict[str, Any]) -> Gate:
    """The model card's gate for the run's device; the fallback when the card cannot be loaded."""
    from bench.models.cards import FALLBACK_GATE_POINTS, card_of_run

    try:
        card = card_of_run(manifest["model"])
    except (BadInput, KeyError):
        return Gate(FALLBACK_GATE_POINTS, "default")
    device = manifest.get("device", {})
    return Gate(*card.drift_gate(str(device.get("profile", "")), str(device.get("kind", ""))))


def resolve_gate(manifest: dict[str, Any], max_drift: float | None) -> Gate:
    """``--max-drift`` for every run when given, else each device run's card gate."""
    return Gate(max_drift, "--max-drift") if max_drift is not None else card_gate(manifest)


def exceeds(result: dict[str, Any], limit: Gate) -> bool:
    return abs(result["mean_delta_points"]) > limit.points


def gate(result: dict[str, Any], limit: Gate | None) -> None:
    """Exit code 3 when the dataset-level image-AUROC drift exceeds the gate (none: no gate)."""
    if limit is not None and exceeds(result, limit):
        raise GateFailed(f"image AUROC drift {result['mean_delta_points']:+.2f} points exceeds the "
                         f"{limit.describe()}: {result['device']['device']} vs {result['reference']['device']}, "
                         f"{result['model']} on {result['dataset']}")


def gate_line(result: dict[str, Any], limit: Gate) -> str:
    verdict = "EXCEEDS" if exceeds(result, limit) else "within"
    return f"gate: |drift| {abs(result['mean_delta_points']):.2f} points, {verdict} the {limit.describe()}"


def quantization_info(manifest: dict[str, Any], category: str) -> dict[str, Any]:
    """The INT8 calibration mode and score-output rail of a category's artifact; empty for other artifacts.

    The IMX500 adapter and its emulation nest MCT's report under ``quantization``; emulated artifacts recorded
    before that stored the report itself, and one older than the calibration record falls back to the run
    request's ``calibration``.
    """
    entry = manifest.get("model", {}).get("categories", {}).get(category, {})
    details = entry.get("artifact_details") or {}
    report = details.get("quantization", details)
    if "quantizer_nodes" not in report and "calibration" not in report:
        return {}
    calibration = (report.get("calibration") or {}).get("mode") or (manifest.get("request") or {}).get("calibration")
    rails = report.get("output_rails") or {}
    name = "score" if "score" in rails else next(iter(rails), None)
    return {"calibration": calibration, "output": name, "output_rail": rails.get(name) if name else None}


def saturation_warnings(run: RunRecord) -> list[dict[str, Any]]:
    """Categories whose scores pile up on their maximum (metrics.json ``score_saturation.saturated``)."""
    warnings = []
    for category, figures in ((run.metrics or {}).get("categories") or {}).items():
        saturation = figures.get("score_saturation") or {}
        if saturation.get("saturated"):
            info = quantization_info(run.manifest, category)
            int8 = bool(info) or run.manifest.get("device", {}).get("precision") == "int8"
            warnings.append({"category": category, "value": saturation["value"], "count": saturation["count"],
                             "share": saturation["share"], "int8": int8, **info})
    return warnings


def saturation_text(warning: dict[str, Any]) -> str:
    text = (f"{warning['category']}: {warning['count']} device scores ({warning['share'] * 100:.0f} %) sit "
            f"exactly on {warning['value']:.6g}")
    if warning.get("output_rail") is not None:
        text += f", the INT8 rail of output '{warning['output']}' ({warning['output_rail']:.6g})"
    if warning.get("calibration"):
        text += f", calibration {warning['calibration']}"
    return f"{text}: {SATURATION_INT8 if warning['int8'] else SATURATION_OTHER}"


def format_table(result: dict[str, Any]) -> str:
    head = (f"{result['model']} on {result['dataset']}: {result['device']['device']} ({result['device']['run_id']})"
            f" vs {result['reference']['device']} ({result['reference']['run_id']})")
    if result["device"]["emulated"]:
        head += "  [device numerics emulated on the host]"
    lines = [head, f"{'category':<14}{'n':>5}{'host':>8}{'device':>8}{'delta':>8}{'95% CI':>18}{'p':>8}"
                   f"{'spearman':>10}{'flips':>7}{'verdicts':>9}{'pix delta':>10}"]
    for name, c in result["categories"].items():
        img = c["image"]
        pix = c.get("pixel")
        ci = f"[{img['ci_low_points']:+.2f}, {img['ci_high_points']:+.2f}]"
        pixel = f"{pix['delta_points']:+.2f}" if pix else "n/a"
        lines.append(
            f"{name:<14}{c['images']:>5}{img['auroc_ref'] * 100:>8.2f}{img['auroc_dev'] * 100:>8.2f}"
            f"{img['delta_points']:>+8.2f}{ci:>18}{img['p_value']:>8.3f}{img['spearman']:>10.4f}"
            f"{img['flipped_pairs']:>7.3f}{img['verdict_flips']:>9d}{pixel:>10}")
    d = result["dataset_drift"]
    lines.append(f"dataset (mean over categories): image AUROC drift {d['delta_points']:+.3f} points, 95% CI "
                 f"[{d['ci_low_points']:+.3f}, {d['ci_high_points']:+.3f}], p {d['p_value']:.3f} "
                 f"(max |delta| {result['max_abs_delta_points']:.3f})")
    lines += [f"warning: {saturation_text(w)}" for w in result.get("saturation", [])]
    return "\n".join(lines)
