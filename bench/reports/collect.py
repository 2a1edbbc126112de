"""The report's content: which runs pair with which reference, and the rows of every table.

Device runs (emulated ones included, marked) pair with their reference run by ``bench.pairing``'s
rule (a profile with ``role: reference``, or a run the user pins); drift comes from ``bench.comparison`` and
each pair is judged by its own gate (``--max-drift``, else the model card's for the device): within,
exceeds, or inconclusive (``bench.comparison.judge``).
Efficiency and trend tables use only real device runs: emulated timing is the host's.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bench.comparison import compare, judge, masks_for, resolve_gate
from bench.errors import BadInput
from bench.pairing import pair_runs
from bench.records import RunRecord
from bench.reports.published import published_rows

PAIR_WORKERS = min(4, os.cpu_count() or 1)  # each holds one device run's maps (~220 MB at MVTec AD scale)
ACCURACY_DROP_POINTS = 0.5
TIME_RISE = 0.10
ENERGY_RISE = 0.10


@dataclass
class Report:
    runs: list[RunRecord]
    drift: list[dict[str, Any]] = field(default_factory=list)        # one per device run with a reference
    unpaired: list[dict[str, Any]] = field(default_factory=list)     # device runs without one, and why
    efficiency: list[dict[str, Any]] = field(default_factory=list)
    emulated: list[dict[str, Any]] = field(default_factory=list)
    trends: list[dict[str, Any]] = field(default_factory=list)
    published: list[dict[str, Any]] = field(default_factory=list)   # card figures beside measured ones


def collect(runs: list[RunRecord], max_drift: float | None, pinned: list[RunRecord] | None = None) -> Report:
    """``max_drift`` (points) gates every device run; None: each run's model card gate. ``pinned``: reference
    runs the user named, which take precedence over the newest run of a reference profile (``bench.pairing``)."""
    report = Report(runs)
    complete = [r for r in runs if r.status == "complete" and r.metrics]
    pinned = pinned or []
    pairing = pair_runs(complete, pinned)
    for run, reason in pairing.unpaired:
        report.unpaired.append({"run": run, "reason": reason})
    for (ref, run), (result, error) in zip(pairing.pairs, compare_pairs(pairing.pairs), strict=True):
        if error is not None:
            report.unpaired.append({"run": run, "reason": error})
            continue
        limit = resolve_gate(run.manifest, max_drift)
        report.drift.append({"ref": ref, "dev": run, "result": result, "gate": limit,
                             "verdict": judge(result, limit)})
    report.published = published_rows(pairing.references, report.drift)
    listed = {id(r) for r in complete}
    for run in complete + [r for r in pinned if id(r) not in listed]:
        row = efficiency_row(run)
        (report.emulated if run.manifest["device"].get("emulated") else report.efficiency).append(row)
    report.trends = trends([r for r in complete if not r.manifest["device"].get("emulated")])
    return report


def compare_pairs(pairs: list[tuple[RunRecord, RunRecord]]) -> list[tuple[dict[str, Any] | None, str | None]]:
    """``compare`` of every pair, as (result, None) or (None, the reason it cannot pair), in order.

    A reference's masks, maps and pixel AUROC are read or computed once however many runs pair with it, and
    the pairs run on up to ``PAIR_WORKERS`` threads (numpy's sorts and casts release the GIL): at MVTec AD
    scale each pair is seconds of pixel metrics. A device run's maps are dropped once its pair is done.
    """
    references = {id(ref): ref for ref, _ in pairs}
    masks = {key: masks_for(ref) for key, ref in references.items()}
    known: dict[int, dict[Any, float]] = {key: {} for key in references}
    for ref in references.values():  # read before the threads share them
        for category in ref.manifest["dataset"]["categories"]:
            ref.maps(category)

    def one(pair: tuple[RunRecord, RunRecord]) -> tuple[dict[str, Any] | None, str | None]:
        ref, run = pair
        try:
            return compare(ref, run, masks[id(ref)], known[id(ref)]), None
        except BadInput as exc:
            return None, str(exc)
        finally:
            if id(run) not in references:
                run.drop_maps()

    with ThreadPoolExecutor(max_workers=PAIR_WORKERS) as pool:
        return list(pool.map(one, pairs))


EFFICIENCY_COLUMNS = (
    "run_id", "device", "model", "dataset", "emulated", "params", "gmac_per_inference", "image_auroc", "p50_ms",
    "p90_ms", "p99_ms", "fps", "avg_power_w", "energy_mj_per_inference", "gmac_per_j", "power_mode",
)


def efficiency_row(run: RunRecord) -> dict[str, Any]:
    m, mean = run.manifest, run.metrics["mean"]
    return {
        "run_id": run.run_id, "device": m["device"]["profile"], "model": m["model"]["name"],
        "dataset": m["dataset"]["name"], "emulated": bool(m["device"].get("emulated")),
        "params": m["model"].get("params"), "gmac_per_inference": mean.get("gmac_per_inference"),
        "image_auroc": mean.get("image_auroc"), "p50_ms": mean.get("p50_ms"), "p90_ms": mean.get("p90_ms"),
        "p99_ms": mean.get("p99_ms"), "fps": mean.get("fps"), "avg_power_w": mean.get("avg_power_w"),
        "energy_mj_per_inference": mean.get("energy_mj_per_inference"), "gmac_per_j": mean.get("gmac_per_j"),
        "power_mode": m["device"].get("environment", {}).get("power_mode"),
    }


def image_set(manifest: dict[str, Any]) -> str:
    """A short name of the run's image set: its image count and index hash (a --limit run has its own)."""
    dataset = manifest["dataset"]
    return f"{dataset.get('image_count', '?')} images {str(dataset.get('index_sha256') or '')[:8]}".strip()


def trends(runs: list[RunRecord]) -> list[dict[str, Any]]:
    """History per (device, model, dataset), oldest first, with regressions against the previous run flagged."""
    groups: dict[tuple, list[RunRecord]] = {}
    for run in runs:
        m = run.manifest
        # the image set too: a --limit smoke run is not the next point of a full run's history
        key = (m["device"]["profile"], m["model"]["name"], m["dataset"]["name"], image_set(m))
        groups.setdefault(key, []).append(run)
    rows = []
    for _, items in sorted(groups.items()):
        previous = None
        for run in sorted(items, key=lambda r: r.manifest["created_at"]):
            row = {**efficiency_row(run), "date": run.manifest["created_at"], "image_set": image_set(run.manifest),
                   "flags": []}
            if previous is not None:
                row["flags"] = _regressions(previous, row)
            rows.append(row)
            previous = row
    return rows


def _regressions(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    flags = []
    if _both(before, now, "image_auroc") and (before["image_auroc"] - now["image_auroc"]) * 100 > ACCURACY_DROP_POINTS:
        flags.append(f"image AUROC -{(before['image_auroc'] - now['image_auroc']) * 100:.2f} points")
    for key, label, limit in (("p50_ms", "p50 latency", TIME_RISE),
                              ("energy_mj_per_inference", "energy per inference", ENERGY_RISE)):
        if _both(before, now, key) and now[key] > before[key] * (1 + limit):
            flags.append(f"{label} +{(now[key] / before[key] - 1) * 100:.1f} %")
    return flags


def _both(a: dict[str, Any], b: dict[str, Any], key: str) -> bool:
    return a.get(key) is not None and b.get(key) is not None
