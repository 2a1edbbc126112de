"""The HTML report: summary and verdicts, drift, efficiency, plots, provenance, trends; one file.

Plots are embedded as base64 PNG and styles are inline, so the file opens from a CI artifact
with no network and no sibling files. The same tables go beside it as CSV and Markdown.
Every figure is rendered with one formatting rule (``fmt``) and tagged with its run, category
and metric, so tests can check each against metrics.json.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from bench import __version__
from bench.comparison import left_out_text, quantization_info, saturation_text
from bench.devices.base import TIMING_SOURCES
from bench.errors import BadInput
from bench.metrics.latency import CV_LIMIT, DRIFT_LIMIT
from bench.records import RunRecord, load_run
from bench.reports import plots
from bench.reports.collect import Report, collect
from bench.reports.exports import drift_frame, write_tables
from bench.reports.published import mask_convention

ACCURACY_COLUMNS = [("image_auroc", "Image AUROC", 100), ("image_ap", "Image AP", 100),
                    ("image_f1_max", "Image F1-max", 100), ("pixel_auroc", "Pixel AUROC", 100),
                    ("aupro", "AUPRO@0.3", 100)]
LATENCY_COLUMNS = [("p50_ms", "p50 ms", 1), ("p90_ms", "p90 ms", 1), ("p99_ms", "p99 ms", 1),
                   ("mean_ms", "mean ms", 1), ("fps", "FPS", 1), ("timed_inferences", "timed", 1),
                   ("gmac_per_inference", "GMAC", 1)]
LATENCY_CI_COLUMNS = [("p50_ci_ms", "p50 95% CI"), ("p90_ci_ms", "p90 95% CI"), ("p99_ci_ms", "p99 95% CI")]
EFFICIENCY_COLUMNS = [("gmac_per_inference", "GMAC/inf", 1), ("p50_ms", "p50 ms", 1), ("p90_ms", "p90 ms", 1),
                      ("p99_ms", "p99 ms", 1), ("fps", "FPS", 1), ("avg_power_w", "avg W", 1),
                      ("energy_mj_per_inference", "mJ/inf", 1), ("gmac_per_j", "GMAC/J", 1),
                      ("image_auroc", "image AUROC %", 100), ("params", "params", 1)]


def fmt(value: Any, scale: float = 1) -> str:
    """One formatting rule for every number, so the tests can find the metrics.json values in the HTML."""
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) and scale == 1:
        return str(value)
    return f"{float(value) * scale:.2f}"


def interval(bounds: list[float | None] | None) -> str:
    """A ``[low, high]`` interval of metrics.json, each side with ``fmt`` (n/a: no bound)."""
    if not bounds:
        return "n/a"
    return f"[{fmt(bounds[0])}, {fmt(bounds[1])}]"


def _spread(values: list[float], unit: str) -> str:
    low, high = min(values), max(values)
    return f"{low:.0f} {unit}" if low == high else f"{low:.0f}-{high:.0f} {unit}"


def state_text(snapshot: dict[str, Any] | None) -> str:
    """One line for a state snapshot (``progress.<category>.state``): power mode, clocks, hottest zone."""
    if not snapshot:
        return "not readable"
    parts = []
    for where, state in (("", snapshot.get("machine", {})), ("device ", snapshot.get("device", {}))):
        jetson = state.get("jetson", {})
        if jetson.get("power_mode"):
            parts.append(f"{where}power mode {jetson['power_mode']}")
        if state.get("cpu_freq_khz"):
            governors = sorted(set(state.get("cpu_governor", {}).values()))
            line = f"{where}CPU {_spread([v / 1000 for v in state['cpu_freq_khz'].values()], 'MHz')}"
            parts.append(line + (f" ({', '.join(governors)})" if governors else ""))
        parts.extend(f"{where}{name} {hz / 1e6:.0f} MHz" for name, hz in state.get("devfreq_hz", {}).items())
        if jetson.get("emc_clock_hz"):
            parts.append(f"{where}EMC {jetson['emc_clock_hz'] / 1e6:.0f} MHz")
        if state.get("thermal_c"):
            name, temp = max(state["thermal_c"].items(), key=lambda item: item[1])
            parts.append(f"{where}hottest {name} {temp:.1f} °C")
    return "; ".join(parts) or "not readable"


def device_states(manifest: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Per category with a recorded state: the snapshots before and after its timed window, one line each."""
    out = {}
    for category, progress in sorted(manifest.get("progress", {}).items()):
        state = progress.get("state")
        if state is not None:
            out[category] = {"before": state_text(state.get("before")),
                             "after": state_text(state.get("after")) if "after" in state else "not recorded"}
    return out


def timing(source: str | None) -> str:
    """Which clock a run's latency figures come from, in words (metrics.json's ``timing_source``)."""
    if source is None:
        return "n/a"
    return f"{source.replace('_', ' ')}: {TIMING_SOURCES[source]}"


def find_runs(paths: list[Path]) -> list[Path]:
    """Run folders given directly or found one level below a results folder."""
    runs: list[Path] = []
    for path in paths:
        if (path / "manifest.json").is_file():
            runs.append(path)
        elif path.is_dir():
            runs.extend(sorted(p for p in path.iterdir() if (p / "manifest.json").is_file()))
        else:
            raise BadInput(f"{path}: no such results folder")
    if not runs:
        raise BadInput(f"no run records found in {', '.join(map(str, paths))}")
    return runs


def int8_provenance(manifest: dict[str, Any]) -> dict[str, str]:
    """Per category with an INT8 artifact: its calibration mode and score-output rail, as one line."""
    out = {}
    for category in manifest.get("model", {}).get("categories", {}):
        info = quantization_info(manifest, category)
        if info:
            line = f"calibration {info['calibration'] or 'not recorded'}"
            if info["output_rail"] is not None:
                line += f" · output rail {info['output_rail']:.6g} ({info['output']})"
            out[category] = line
    return out


def _run_view(record: RunRecord) -> dict[str, Any]:
    metrics = record.metrics or {"categories": {}, "mean": {}}
    return {"id": record.run_id, "status": record.status, "manifest": record.manifest, "metrics": metrics,
            "categories": sorted(metrics["categories"]), "power_png": plots.power_trace(record),
            "mask_convention": mask_convention(record.manifest) or "not recorded",
            "int8": int8_provenance(record.manifest), "states": device_states(record.manifest),
            "timeline_png": plots.latency_timeline(record), "images": len(record.images),
            "note": (record.manifest.get("request") or {}).get("note"),
            "resume": f"python -m bench run --resume {record.run_id} --out {record.path.parent}"}


def _published_groups(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The published-vs-measured rows per model, with the card's source stated once per table."""
    groups: dict[str, dict[str, Any]] = {}
    for row in rows:
        group = groups.setdefault(row["model"], {"model": row["model"], "rows": [], "sources": []})
        group["rows"].append(row)
        if row["published_source"] not in group["sources"]:
            group["sources"].append(row["published_source"])
    return list(groups.values())


def render(report: Report, max_drift: float | None) -> str:
    env = Environment(loader=PackageLoader("bench.reports", "templates"), undefined=StrictUndefined,
                      autoescape=select_autoescape(["html", "j2"]))
    env.filters["fmt"] = fmt
    env.filters["timing"] = timing
    env.filters["interval"] = interval
    runs = report.runs
    manifests = [r.manifest for r in runs]
    drift_views = [{**item, "png": plots.roc_and_scatter(item["ref"], item["dev"]),
                    "warnings": [saturation_text(w) for w in item["result"]["saturation"]]
                    + left_out_text(item["result"])} for item in report.drift]
    return env.get_template("report.html.j2").render(
        runs=[_run_view(r) for r in runs], drift=drift_views, unpaired=report.unpaired,
        drift_rows=drift_frame(report).to_dict("records"), efficiency=report.efficiency, emulated=report.emulated,
        trends=report.trends, max_drift=max_drift, published=_published_groups(report.published),
        timing_sources={r.run_id: (r.metrics or {}).get("mean", {}).get("timing_source") for r in runs},
        accuracy_columns=ACCURACY_COLUMNS, latency_columns=LATENCY_COLUMNS, efficiency_columns=EFFICIENCY_COLUMNS,
        latency_ci_columns=LATENCY_CI_COLUMNS, cv_limit=CV_LIMIT, drift_limit_pct=f"{DRIFT_LIMIT * 100:g}",
        latency_png=plots.latency_cdf([r for r in runs if not r.manifest["device"].get("emulated")]),
        pareto_png=plots.pareto(report.efficiency), trend_png=plots.trend_plot(report.trends),
        devices=sorted({m["device"]["profile"] for m in manifests}),
        models=sorted({m["model"]["name"] for m in manifests}),
        datasets=sorted({m["dataset"]["name"] for m in manifests}),
        first=min(m["created_at"] for m in manifests), last=max(m["created_at"] for m in manifests),
        version=__version__, generated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def write_report(paths: list[Path], out: Path, max_drift: float | None = None,
                 references: list[Path] | None = None) -> Path:
    """The report; ``max_drift`` gates every device run, None: each run's model card gate. ``references``:
    run folders pinned as the reference of their model, dataset, categories and checkpoints."""
    records = [load_run(p) for p in find_runs(paths)]
    pinned = {p.resolve() for p in references or []}
    by_path = {r.path.resolve(): r for r in records}
    report = collect(records, max_drift, [by_path.get(p) or load_run(p) for p in pinned])
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(report, max_drift), encoding="utf-8")
        write_tables(report, out)
    except OSError as exc:
        raise BadInput(f"--out {out}: cannot write the report ({exc.strerror or exc})") from exc
    return out
