"""The HTML report (first version): per run, accuracy per category and latency, one self-contained file.

Plots are embedded as base64 PNG and styles are inline, so the file opens from a CI artifact
with no network and no sibling files.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from bench import __version__
from bench.errors import BadInput
from bench.metrics.latency import timed_rows
from bench.records import RunRecord, load_run

ACCURACY_COLUMNS = [("image_auroc", "Image AUROC", 100), ("image_ap", "Image AP", 100),
                    ("image_f1_max", "Image F1-max", 100), ("pixel_auroc", "Pixel AUROC", 100),
                    ("aupro", "AUPRO@0.3", 100)]
LATENCY_COLUMNS = [("p50_ms", "p50 ms", 1), ("p90_ms", "p90 ms", 1), ("p99_ms", "p99 ms", 1),
                   ("mean_ms", "mean ms", 1), ("fps", "FPS", 1), ("timed_inferences", "timed", 1),
                   ("gmac_per_inference", "GMAC", 1)]


def fmt(value: Any, scale: float = 1) -> str:
    """One formatting rule for every number, so the tests can find the metrics.json values in the HTML."""
    if value is None:
        return "n/a"
    if isinstance(value, int) and scale == 1:
        return str(value)
    return f"{float(value) * scale:.2f}"


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


def _latency_plot(record: RunRecord) -> str | None:
    progress = record.manifest.get("progress", {})
    fig, ax = plt.subplots(figsize=(6, 3), dpi=100)
    drawn = False
    for category in sorted(progress):
        rows = timed_rows(record.latency, category, progress[category].get("timed_attempt"))
        if rows.empty:
            continue
        ax.hist(rows["latency_ms"], bins=40, histtype="step", label=category)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("latency per inference (ms, host clock)")
    ax.set_ylabel("inferences")
    ax.legend(fontsize=7)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _run_view(record: RunRecord) -> dict[str, Any]:
    m = record.manifest
    metrics = record.metrics or {"categories": {}, "mean": {}}
    return {
        "id": record.run_id, "status": record.status, "manifest": m, "metrics": metrics,
        "categories": sorted(metrics["categories"]), "latency_png": _latency_plot(record),
    }


def render(records: list[RunRecord]) -> str:
    env = Environment(loader=PackageLoader("bench.reports", "templates"), undefined=StrictUndefined,
                      autoescape=select_autoescape(["html", "j2"]))
    env.filters["fmt"] = fmt
    template = env.get_template("report.html.j2")
    return template.render(
        runs=[_run_view(r) for r in records], accuracy_columns=ACCURACY_COLUMNS, latency_columns=LATENCY_COLUMNS,
        version=__version__, generated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )


def write_report(paths: list[Path], out: Path) -> Path:
    records = [load_run(p) for p in find_runs(paths)]
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render(records), encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"--out {out}: cannot write the report ({exc.strerror or exc})") from exc
    return out
