"""The report's figures, rendered with matplotlib and embedded as base64 PNG (no external files)."""

from __future__ import annotations

import base64
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from bench.metrics.latency import authoritative_ms, in_time_order, timed_rows
from bench.pairing import pair_images
from bench.records import RunRecord

MAX_ROC_CATEGORIES = 6


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FPR and TPR at every distinct threshold (ties grouped), from (0, 0) to (1, 1)."""
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tp, fp = np.cumsum(y)[last], np.cumsum(1 - y)[last]
    return np.r_[0, fp / max(fp[-1], 1)], np.r_[0, tp / max(tp[-1], 1)]


def roc_and_scatter(ref: RunRecord, dev: RunRecord) -> str:
    paired = pair_images(ref, dev)[:MAX_ROC_CATEGORIES]
    fig, (roc, scatter) = plt.subplots(1, 2, figsize=(10, 4))
    for i, item in enumerate(paired):
        color = f"C{i}"
        labels = item.frame["label"].to_numpy()
        for column, style, who in (("score_ref", "-", "host"), ("score_dev", "--", "device")):
            fpr, tpr = roc_curve(labels, item.frame[column].to_numpy(dtype=float))
            roc.plot(fpr, tpr, style, color=color, label=f"{item.category} {who}")
        scatter.scatter(item.frame["score_ref"], item.frame["score_dev"], s=8, color=color, label=item.category)
    roc.plot([0, 1], [0, 1], ":", color="grey")
    roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC: host (solid) vs device (dashed)")
    roc.legend(fontsize=6)
    lo = min(float(p.frame[["score_ref", "score_dev"]].min().min()) for p in paired) if paired else 0
    hi = max(float(p.frame[["score_ref", "score_dev"]].max().max()) for p in paired) if paired else 1
    scatter.plot([lo, hi], [lo, hi], ":", color="grey")
    scatter.set(xlabel="host score", ylabel="device score", title="image scores, host vs device")
    scatter.legend(fontsize=6)
    return _png(fig)


def latency_cdf(runs: list[RunRecord]) -> str | None:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    drawn = False
    for run in runs:
        progress = run.manifest.get("progress", {})
        values = [authoritative_ms(timed_rows(run.latency, c, progress[c].get("timed_attempt"))) for c in progress]
        values = [v for v in values if len(v)]
        if not values:
            continue
        lat = np.sort(np.concatenate(values))
        ax.step(lat, np.arange(1, len(lat) + 1) / len(lat), where="post",
                label=f"{run.manifest['device']['profile']} {run.manifest['model']['name']} ({run.run_id})")
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set(xlabel="latency per inference (ms, each run's timing source)", ylabel="share of timed inferences",
           title="latency CDF")
    ax.legend(fontsize=7)
    return _png(fig)


def latency_timeline(run: RunRecord) -> str | None:
    """Each category's timed latencies in the order they were taken, with the medians of the first and the last
    third of the window (the drift the stability verdict reads)."""
    progress = run.manifest.get("progress", {})
    series = {c: authoritative_ms(in_time_order(timed_rows(run.latency, c, progress[c].get("timed_attempt"))))
              for c in sorted(progress)}
    series = {c: v for c, v in series.items() if len(v)}
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(7, 3))
    for i, (category, values) in enumerate(list(series.items())[:MAX_ROC_CATEGORIES]):
        color = f"C{i}"
        ax.plot(np.arange(len(values)), values, ".", ms=2, color=color, label=category)
        third = len(values) // 3
        if third:
            for lo, hi in ((0, third), (len(values) - third, len(values))):
                ax.hlines(np.median(values[lo:hi]), lo, hi - 1, color=color, lw=2)
    ax.set(xlabel="timed inference (in order)", ylabel="latency (ms)",
           title=f"latency over the timed window, medians of first and last third: {run.run_id}")
    ax.legend(fontsize=6, markerscale=4)
    return _png(fig)


def power_trace(run: RunRecord) -> str | None:
    if run.power.empty:
        return None
    fig, ax = plt.subplots(figsize=(7, 3))
    t0 = int(run.power["t_ns"].min())
    for rail, rows in run.power.groupby("rail"):
        ax.plot((rows["t_ns"] - t0) / 1e9, rows["watts"], label=str(rail), lw=0.8)
    timed = run.latency[run.latency["phase"] == "timed"]
    for _, rows in timed.groupby("category"):
        ax.axvspan((rows["t_start_ns"].min() - t0) / 1e9, (rows["t_end_ns"].max() - t0) / 1e9, color="C2", alpha=0.15)
    ax.set(xlabel="time (s)", ylabel="power (W)", title=f"power trace, timed windows shaded: {run.run_id}")
    ax.legend(fontsize=7)
    return _png(fig)


def pareto(rows: list[dict[str, Any]]) -> str | None:
    points = [r for r in rows if r.get("energy_mj_per_inference") is not None and r.get("image_auroc") is not None]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    xs = np.array([p["energy_mj_per_inference"] for p in points])
    ys = np.array([p["image_auroc"] * 100 for p in points])
    ax.scatter(xs, ys)
    for p, x, y in zip(points, xs, ys, strict=True):
        ax.annotate(f"{p['device']}/{p['model']}", (x, y), fontsize=7)
    order = np.argsort(xs)
    front, best = [], -np.inf
    for i in order:
        if ys[i] > best:
            front.append(i)
            best = ys[i]
    ax.plot(xs[front], ys[front], "-", color="C3", label="Pareto front")
    ax.set(xlabel="energy per inference (mJ)", ylabel="mean image AUROC (%)", title="accuracy vs energy")
    ax.legend(fontsize=7)
    return _png(fig)


def trend_plot(rows: list[dict[str, Any]]) -> str | None:
    """Mean image AUROC and p50 latency over time per (device, model, dataset), regressions marked."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(f"{row['device']}/{row['model']}/{row['dataset']} [{row['image_set']}]", []).append(row)
    groups = {k: v for k, v in groups.items() if len(v) >= 2}
    if not groups:
        return None
    fig, (acc, lat) = plt.subplots(1, 2, figsize=(10, 3.5))
    for name, items in groups.items():
        x = np.arange(len(items))
        for ax, key, scale in ((acc, "image_auroc", 100), (lat, "p50_ms", 1)):
            y = [r[key] * scale if r[key] is not None else np.nan for r in items]
            ax.plot(x, y, "o-", label=name)
            flagged = [i for i, r in enumerate(items) if r["flags"]]
            ax.plot(x[flagged], np.asarray(y)[flagged], "x", color="red", ms=10)
    for ax in (acc, lat):  # runs are counted: no fractional ticks
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    acc.set(xlabel="run (oldest first)", ylabel="mean image AUROC (%)", title="accuracy history")
    lat.set(xlabel="run (oldest first)", ylabel="p50 latency (ms)", title="latency history (x: regression)")
    acc.legend(fontsize=6)
    return _png(fig)
