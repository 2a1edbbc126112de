"""``bench compare``: drift of a device run against its reference run of the same inputs.

Which runs pair, and image by image how, is ``bench.pairing``'s one rule; different inputs make
drift meaningless, so pairing refuses and names the first image that differs. A gate judges the
mean drift over categories three ways (:func:`judge`): within, exceeds, or inconclusive when its
95 % interval straddles the limit.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from bench.data.preprocess import Recipe
from bench.errors import BadInput, GateFailed, GateInconclusive
from bench.metrics.drift import BOOTSTRAP_SEED, auroc_difference_interval, drift_summary, mean_interval
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
    """The maps as stored (float16): the drift metrics widen them once, exactly."""
    maps = run.maps(category)
    if not ids or any(i not in maps for i in ids):
        return None
    return np.stack([maps[i] for i in ids])


def _delong_mean(images: list[dict[str, Any]]) -> dict[str, float | None]:
    """DeLong's p-value and 95 % CI of the mean delta: categories hold disjoint images, so its variance is
    the sum of theirs over K^2. None where a category has too few images for DeLong."""
    if any(img["se_points"] is None for img in images):
        return dict.fromkeys(("p_value", "se_points", "delong_ci_low_points", "delong_ci_high_points"))
    mean = float(np.mean([img["delta_points"] for img in images]))
    se = math.sqrt(sum(img["se_points"] ** 2 for img in images)) / len(images)
    z = float(stats.norm.ppf(0.975))
    p_value = float(2 * stats.norm.sf(abs(mean) / se)) if se > 0 else (1.0 if mean == 0 else 0.0)
    return {"p_value": p_value, "se_points": se, "delong_ci_low_points": mean - z * se,
            "delong_ci_high_points": mean + z * se}


def compare(ref_run: Path | RunRecord, dev_run: Path | RunRecord,
            masks: dict[str, dict[str, np.ndarray]] | None = None,
            reference_pixel_auroc: dict[tuple[str, tuple[str, ...]], float] | None = None) -> dict[str, Any]:
    """Drift of ``dev_run`` against ``ref_run`` (folders, or records already read: a report comparing many
    runs with one reference reads that reference's maps once). ``reference_pixel_auroc``: the reference's
    pixel AUROC per (category, image ids), filled and reused across calls with the same reference and masks."""
    ref = ref_run if isinstance(ref_run, RunRecord) else load_run(ref_run)
    dev = dev_run if isinstance(dev_run, RunRecord) else load_run(dev_run)
    known = reference_pixel_auroc if reference_pixel_auroc is not None else {}
    categories: dict[str, Any] = {}
    intervals = []
    for item in pair_images(ref, dev):
        ids = item.frame["image_id"].tolist()
        labels = item.frame["label"].to_numpy()
        scores_ref, scores_dev = item.frame["score_ref"].to_numpy(), item.frame["score_dev"].to_numpy()
        maps_ref, maps_dev = _maps(ref, item.category, ids), _maps(dev, item.category, ids)
        cat_masks = None
        if masks and item.category in masks and maps_ref is not None:
            cat_masks = np.stack([masks[item.category][i] for i in ids])
        # each category its own resamples (seeded by its name), so the mean over categories resamples them
        # independently, as they are
        interval = auroc_difference_interval(labels, scores_ref, scores_dev,
                                             seed=[BOOTSTRAP_SEED, zlib.crc32(item.category.encode())])
        intervals.append(interval)
        evaluated = (item.category, tuple(ids))
        summary = drift_summary(labels, scores_ref, scores_dev, maps_ref if cat_masks is not None else None,
                                maps_dev if cat_masks is not None else None, cat_masks, interval=interval,
                                pixel_auroc_ref=known.get(evaluated))
        if summary["pixel"] and summary["pixel"]["auroc_ref"] is not None:
            known[evaluated] = summary["pixel"]["auroc_ref"]
        categories[item.category] = {"images": len(ids), "excluded": item.excluded, "left_out": item.left_out,
                                     **summary}
    deltas = [c["image"]["delta_points"] for c in categories.values()]
    mean = mean_interval(intervals)
    dataset = {"delta_points": mean.delta * 100.0, "ci_low_points": mean.ci_low * 100.0,
               "ci_high_points": mean.ci_high * 100.0, "ci_floor_points": mean.floor * 100.0, "images": mean.images,
               **_delong_mean([c["image"] for c in categories.values()])}
    return {
        "reference": {"run_id": ref.run_id, "device": ref.manifest["device"]["profile"],
                      "emulated": ref.manifest["device"].get("emulated", False)},
        "device": {"run_id": dev.run_id, "device": dev.manifest["device"]["profile"],
                   "emulated": dev.manifest["device"].get("emulated", False)},
        "model": ref.manifest["model"]["name"],
        "dataset": ref.manifest["dataset"]["name"],
        "categories": categories,
        "mean_delta_points": dataset["delta_points"],
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


WITHIN, EXCEEDS, INCONCLUSIVE = "within", "exceeds", "inconclusive"


def images_to_decide(images: int, ci_low: float, ci_high: float, delta: float, limit: float) -> int | None:
    """Estimated images for the interval to clear the gate: its half-width shrunk by ``sqrt(images / needed)``.

    The interval must shrink to ``| |delta| - limit |`` on each side (inside the gate, or past it), so
    ``needed = images * (half_width / that) ** 2``, at the observed variance and class mix. None when the
    drift sits exactly on the limit: no number of images decides it.
    """
    distance = abs(abs(delta) - limit)
    if distance == 0.0:
        return None
    return math.ceil(round(images * ((ci_high - ci_low) / 2.0 / distance) ** 2, 6))  # 9.000000000000002 is 9


@dataclass(frozen=True)
class Verdict:
    """A gate applied to the mean drift's 95 % interval (points): within, exceeds, or inconclusive."""

    outcome: str
    gate: Gate
    delta_points: float
    ci_low_points: float
    ci_high_points: float
    images: int
    images_needed: int | None  # inconclusive only: the estimate of :func:`images_to_decide`

    def text(self) -> str:
        if self.outcome == WITHIN:
            return f"within the {self.gate.describe()}"
        if self.outcome == EXCEEDS:
            return f"EXCEEDS the {self.gate.describe()}"
        return f"inconclusive for the {self.gate.describe()}: the 95% CI straddles the limit; {self.to_decide()}"

    def to_decide(self) -> str:
        if self.images_needed is None:
            return "no number of images would decide at this drift"
        return (f"about {self.images_needed:,} images would decide (an estimate at the observed variance; "
                f"{self.images:,} now)")

    def css(self) -> str:
        return {WITHIN: "ok", EXCEEDS: "bad"}.get(self.outcome, "warn")

    def to_json(self) -> dict[str, Any]:
        return {**self.gate.to_json(), "verdict": self.outcome, "exceeded": self.outcome == EXCEEDS,
                "ci_points": [self.ci_low_points, self.ci_high_points], "images": self.images,
                "images_needed": self.images_needed}


def judge(result: dict[str, Any], limit: Gate) -> Verdict:
    """Within only when the 95 % interval lies inside +-gate, exceeds only when it lies wholly outside."""
    d = result["dataset_drift"]
    low, high, g = d["ci_low_points"], d["ci_high_points"], limit.points
    if -g <= low and high <= g:
        outcome = WITHIN
    elif high < -g or low > g:
        outcome = EXCEEDS
    else:
        outcome = INCONCLUSIVE
    needed = images_to_decide(d["images"], low, high, d["delta_points"], g) if outcome == INCONCLUSIVE else None
    return Verdict(outcome, limit, d["delta_points"], low, high, d["images"], needed)


def gate(result: dict[str, Any], limit: Gate | None) -> None:
    """Exit code 3 when the drift exceeds the gate, 4 when the data cannot tell (none: no gate)."""
    if limit is None:
        return
    verdict = judge(result, limit)
    where = f"{result['device']['device']} vs {result['reference']['device']}, {result['model']} on {result['dataset']}"
    drift = (f"image AUROC drift {verdict.delta_points:+.2f} points, 95% CI [{verdict.ci_low_points:+.2f}, "
             f"{verdict.ci_high_points:+.2f}]")
    if verdict.outcome == EXCEEDS:
        raise GateFailed(f"{drift} exceeds the {limit.describe()}: {where}")
    if verdict.outcome == INCONCLUSIVE:
        raise GateInconclusive(f"{drift} straddles the {limit.describe()}, {verdict.to_decide()}: {where}")


def gate_line(result: dict[str, Any], limit: Gate) -> str:
    verdict = judge(result, limit)
    return (f"gate: drift {verdict.delta_points:+.2f} points, 95% CI [{verdict.ci_low_points:+.2f}, "
            f"{verdict.ci_high_points:+.2f}], {verdict.text()}")


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


def _p(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


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
            f"{img['delta_points']:>+8.2f}{ci:>18}{_p(img['p_value']):>8}{img['spearman']:>10.4f}"
            f"{img['flipped_pairs']:>7.3f}{img['verdict_flips']:>9d}{pixel:>10}")
    d = result["dataset_drift"]
    lines.append(f"dataset (mean over categories): image AUROC drift {d['delta_points']:+.3f} points, 95% CI "
                 f"[{d['ci_low_points']:+.3f}, {d['ci_high_points']:+.3f}] (paired bootstrap), DeLong p "
                 f"{_p(d['p_value'])} "
                 f"(max |delta| {result['max_abs_delta_points']:.3f})")
    lines += [f"warning: {saturation_text(w)}" for w in result.get("saturation", [])]
    lines += [f"warning: {text}" for text in left_out_text(result)]
    return "\n".join(lines)


def left_out_text(result: dict[str, Any]) -> list[str]:
    """One line per category whose drift leaves images out (an image errored or has no score in either run)."""
    out = []
    for name, c in result["categories"].items():
        if c.get("excluded"):
            reasons = c.get("left_out") or []
            shown = "; ".join(reasons[:3]) + (f"; and {len(reasons) - 3} more" if len(reasons) > 3 else "")
            out.append(f"{name}: {c['excluded']} image(s) left out of the drift, compared on {c['images']}: {shown}")
    return out
