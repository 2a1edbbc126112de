"""metrics.json: per category and the mean over categories, as MVTec AD / VisA papers report them."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from bench.metrics.accuracy import aupro, average_precision, f1_max, image_auroc, pixel_auroc
from bench.metrics.energy import energy_over_window, timed_window
from bench.metrics.latency import DEVICE_PROFILER, latency_summary, timed_rows
from bench.power import NO_METER_REASON

PROFILER_ENERGY_NOTE = ("not available: the device's profiler timed these inferences, so there is no timed window "
                        "on the host clock to integrate power over")

MEAN_KEYS = ("image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "aupro", "p50_ms", "p90_ms", "p99_ms",
             "mean_ms", "fps", "energy_mj_per_inference", "avg_power_w", "gmac_per_inference", "gmac_per_j")


SATURATION_MIN_COUNT = 3
SATURATION_MIN_SHARE = 0.1


def score_saturation(scores: np.ndarray) -> dict[str, Any]:
    """How many scores sit on the top value: a saturated output (an INT8 quantizer's rail, a float sigmoid's
    1.0) ties every image beyond it, so they can no longer be ranked. ``saturated`` when at least
    ``SATURATION_MIN_COUNT`` images and ``SATURATION_MIN_SHARE`` of them share the maximum exactly."""
    if len(scores) == 0:
        return {"value": None, "count": 0, "share": None, "saturated": False}
    top = float(np.max(scores))
    count = int(np.count_nonzero(scores == top))
    share = count / len(scores)
    return {"value": top, "count": count, "share": share,
            "saturated": count >= SATURATION_MIN_COUNT and share >= SATURATION_MIN_SHARE}


def _image_level(images: pd.DataFrame) -> dict[str, Any]:
    ok = images[images["error"].isna() & images["score"].notna()]
    labels = ok["label"].to_numpy(dtype=np.int64)
    scores = ok["score"].to_numpy(dtype=np.float64)
    out: dict[str, Any] = {"images": len(images), "errors": int(images["error"].notna().sum()),
                           "good": int((labels == 0).sum()), "defective": int((labels == 1).sum()),
                           "score_saturation": score_saturation(scores)}
    if len(np.unique(labels)) < 2:
        out.update(image_auroc=None, image_ap=None, image_f1_max=None, f1_threshold=None,
                   image_note="needs good and defective images")
        return out
    best = f1_max(labels, scores)
    out.update(image_auroc=image_auroc(labels, scores), image_ap=average_precision(labels, scores),
               image_f1_max=best.f1, f1_threshold=best.threshold)
    return out


def _pixel_level(maps: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray] | None) -> dict[str, Any]:
    if not maps:
        return {"pixel_auroc": None, "aupro": None, "pixel_note": "the model produces no anomaly map"}
    if masks is None:
        return {"pixel_auroc": None, "aupro": None, "pixel_note": "not every defective image has a mask"}
    ids = [i for i in maps if i in masks]
    stacked_masks = np.stack([masks[i] for i in ids])
    if not stacked_masks.any():
        return {"pixel_auroc": None, "aupro": None, "pixel_note": "no anomalous pixel in the masks"}
    stacked_maps = np.stack([maps[i].astype(np.float32) for i in ids])
    return {"pixel_auroc": pixel_auroc(stacked_masks, stacked_maps), "aupro": aupro(stacked_masks, stacked_maps)}


def _efficiency(power: pd.DataFrame | None, rails: Sequence[str] | None, idle_power_w: float | None,
                window: tuple[int, int, int] | None, source: str | None, gmac: float | None,
                no_meter_note: str | None = None, interval_rails: Collection[str] = ()) -> dict[str, Any]:
    """Energy over exactly the timed window on the host clock (for device-clock rows too: the device's
    own times have no position on the power meter's clock); without a meter, samples or a host window
    the figures are null with the reason."""
    empty = {"energy_mj_per_inference": None, "avg_power_w": None, "gmac_per_inference": gmac, "gmac_per_j": None,
             "energy_complete": False, "power_coverage": None, "idle_power_w": None}
    if not rails or power is None:
        return {**empty, "energy_note": no_meter_note or NO_METER_REASON}
    if source == DEVICE_PROFILER:
        return {**empty, "energy_note": PROFILER_ENERGY_NOTE}
    if window is None:
        return {**empty, "energy_note": "no timed inferences"}
    start, end, count = window
    result = energy_over_window(power, start, end, rails, count, idle_power_w=idle_power_w, gmac=gmac,
                                interval_rails=interval_rails)
    return {
        "energy_mj_per_inference": result.energy_mj_per_inference,
        "avg_power_w": result.avg_power_w,
        "gmac_per_inference": gmac,
        "gmac_per_j": result.gmac_per_j,
        "energy_complete": result.complete,
        "power_coverage": result.coverage,
        "idle_power_w": result.idle_power_w,
        "energy_note": result.note,
    }


def summarize(
    images: pd.DataFrame,
    latency: pd.DataFrame,
    maps: Mapping[str, Mapping[str, np.ndarray]],
    masks: Mapping[str, Mapping[str, np.ndarray] | None],
    timed_attempts: Mapping[str, int | None],
    gmac: float | None = None,
    power: pd.DataFrame | None = None,
    rails: Sequence[str] | None = None,
    idle_power_w: float | None = None,
    no_meter_note: str | None = None,
    interval_rails: Collection[str] = (),
) -> dict[str, Any]:
    categories: dict[str, dict[str, Any]] = {}
    for category in sorted(images["category"].unique()):
        cat_images = images[images["category"] == category]
        attempt = timed_attempts.get(category)
        lat = latency_summary(timed_rows(latency, category, attempt))
        categories[category] = {
            **_image_level(cat_images),
            **_pixel_level(maps.get(category, {}), masks.get(category)),
            **lat,
            **_efficiency(power, rails, idle_power_w, timed_window(latency, category, attempt),
                          lat["timing_source"], gmac, no_meter_note, interval_rails),
        }
    mean: dict[str, Any] = {}
    for key in MEAN_KEYS:
        values = [c[key] for c in categories.values() if c.get(key) is not None]
        mean[key] = float(np.mean(values)) if values and len(values) == len(categories) else None
    sources = {c["timing_source"] for c in categories.values()}
    mean["timing_source"] = sources.pop() if len(sources) == 1 else None
    mean["latency_stability"] = _overall_stability(categories)
    return {"categories": categories, "mean": mean,
            "notes": {"mean": "unweighted mean over categories; null unless every category has the figure",
                      "latency": "p50/p90/p99/mean and fps from each category's timing_source: the host clock "
                                 "around each call, else the device's own latency (device_ms)",
                      "latency_stability": "p50/p90/p99 95 % intervals from order statistics (binomial ranks; "
                                           "null: too few inferences for that side), coefficient of variation, "
                                           "median of the last third of the timed window over the first's"}}


def _overall_stability(categories: Mapping[str, Mapping[str, Any]]) -> str | None:
    """``stable`` when every timed category is, else which are not; None without timed categories."""
    verdicts = {name: c.get("latency_stability") for name, c in categories.items()}
    unstable = sorted(name for name, v in verdicts.items() if v is not None and v != "stable")
    if unstable:
        return f"unstable: {', '.join(unstable)}"
    return "stable" if any(v is not None for v in verdicts.values()) else None
