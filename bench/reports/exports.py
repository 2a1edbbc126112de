"""The report's tables as CSV and Markdown beside the HTML, for diffs, spreadsheets and PR comments."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.reports.collect import EFFICIENCY_COLUMNS, Report
from bench.reports.published import PUBLISHED_COLUMNS


def saturation_cell(warning: dict | None) -> str:
    """A drift-table cell: how many device scores sit on the top value, empty when not saturated."""
    if not warning:
        return ""
    return f"{warning['count']} at {warning['value']:.6g} ({warning['share'] * 100:.0f} %)"


DRIFT_COLUMNS = (
    "model", "dataset", "device", "emulated", "category", "images", "host_image_auroc_pct", "device_image_auroc_pct",
    "delta_points", "ci_low_points", "ci_high_points", "ci_floor_points", "p_value", "spearman", "kendall",
    "flipped_pairs", "verdict_flips", "pixel_delta_points", "score_saturation", "gate_points", "gate_source",
    "gate_verdict", "images_to_decide", "host_run", "device_run",
)


def drift_frame(report: Report) -> pd.DataFrame:
    """One row per category of each device run; the gate columns judge the run's mean over categories."""
    rows = []
    for item in report.drift:
        result = item["result"]
        saturated = {w["category"]: w for w in result.get("saturation", [])}
        for category, c in result["categories"].items():
            img, pix = c["image"], c.get("pixel")
            rows.append({
                "model": result["model"], "dataset": result["dataset"], "device": result["device"]["device"],
                "emulated": result["device"]["emulated"], "category": category, "images": c["images"],
                "host_image_auroc_pct": img["auroc_ref"] * 100, "device_image_auroc_pct": img["auroc_dev"] * 100,
                "delta_points": img["delta_points"], "ci_low_points": img["ci_low_points"],
                "ci_high_points": img["ci_high_points"], "ci_floor_points": img["ci_floor_points"],
                "p_value": img["p_value"], "spearman": img["spearman"],
                "kendall": img["kendall"], "flipped_pairs": img["flipped_pairs"], "verdict_flips": img["verdict_flips"],
                "pixel_delta_points": pix["delta_points"] if pix else None,
                "score_saturation": saturation_cell(saturated.get(category)),
                "gate_points": item["gate"].points, "gate_source": item["gate"].source,
                "gate_verdict": item["verdict"].outcome, "images_to_decide": item["verdict"].images_needed,
                "host_run": result["reference"]["run_id"], "device_run": result["device"]["run_id"],
            })
    return pd.DataFrame(rows, columns=list(DRIFT_COLUMNS))  # the header also when no run has a reference


def write_tables(report: Report, html_path: Path) -> list[Path]:
    """``<stem>-drift``, ``-published``, ``-efficiency``, ``-emulated`` and ``-trends`` as .csv and .md
    beside the HTML; every AUROC in percent, in a column named ``..._pct``."""
    tables: dict[str, pd.DataFrame] = {
        "drift": drift_frame(report),
        "published": pd.DataFrame(report.published, columns=list(PUBLISHED_COLUMNS)),
        "efficiency": pd.DataFrame(report.efficiency, columns=list(EFFICIENCY_COLUMNS)),
        "emulated": pd.DataFrame(report.emulated, columns=list(EFFICIENCY_COLUMNS)),
        "trends": pd.DataFrame([{**r, "flags": "; ".join(r["flags"])} for r in report.trends],
                               columns=[*EFFICIENCY_COLUMNS, "date", "image_set", "flags"]),
    }
    for name in ("efficiency", "emulated", "trends"):  # AUROC in percent, as the HTML and the other tables show it
        frame = tables[name]
        frame["image_auroc"] = frame["image_auroc"] * 100
        tables[name] = frame.rename(columns={"image_auroc": "image_auroc_pct"})
    written = []
    for name, frame in tables.items():
        base = html_path.with_name(f"{html_path.stem}-{name}")
        frame.to_csv(base.with_suffix(".csv"), index=False)
        base.with_suffix(".md").write_text(_markdown(frame) + "\n", encoding="utf-8")
        written += [base.with_suffix(".csv"), base.with_suffix(".md")]
    return written


def _markdown(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=".4g") if not frame.empty else "(no rows)"
