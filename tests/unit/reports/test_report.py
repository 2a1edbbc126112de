"""The HTML report from synthetic run records: tables, verdicts, emulated runs apart, trends, exports,
and every figure equal to the run's metrics.json."""

from __future__ import annotations

import json
import re
from html import unescape as html_unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from support import paths
from support.report_runs import CATEGORIES, INT8, RAIL, make_run

from bench.cli import main
from bench.records import load_run


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    make_run(root, "host-1", "host", "host", "2026-11-20T01:00:00+00:00")
    make_run(root, "jetson-1", "jetson", "jetson", "2026-11-20T02:00:00+00:00", noise=0.001, latency_ms=12, watts=6.0)
    make_run(root, "jetson-2", "jetson", "jetson", "2026-11-21T02:00:00+00:00", noise=0.001, latency_ms=16, watts=6.5)
    make_run(root, "imx500-emu", "imx500", "imx500", "2026-11-21T03:00:00+00:00", noise=1.5, emulated=True)
    return root


def cell(html: str, run: str, key: str, category: str) -> str:
    found = re.search(rf'data-run="{re.escape(run)}" data-key="{key}" data-category="{category}">([^<]*)<', html)
    assert found is not None, (run, key, category)
    return found.group(1)


PERCENT = ("image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "aupro")  # fractions shown in percent
LATENCY = ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "fps", "timed_inferences", "gmac_per_inference")
# metrics.json figures set on jetson-2 (its bottle category and mean) and the text the report must show for them
SHOWN = {"image_auroc": (0.987654, "98.77"), "image_ap": (0.5, "50.00"), "image_f1_max": (0.912345, "91.23"),
         "pixel_auroc": (None, "n/a"), "aupro": (None, "n/a"), "p50_ms": (16.3456, "16.35"), "p90_ms": (17.0, "17.00"),
         "p99_ms": (19.994, "19.99"), "mean_ms": (16.5, "16.50"), "fps": (60.6061, "60.61"),
         "timed_inferences": (30, "30"), "gmac_per_inference": (2.201, "2.20"), "avg_power_w": (6.5, "6.50"),
         "energy_mj_per_inference": (106.0759, "106.08"), "gmac_per_j": (20.75, "20.75")}


def test_report_sections_and_numbers(results: Path, tmp_path: Path) -> None:
    metrics_file = results / "jetson-2" / "metrics.json"
    metrics = json.loads(metrics_file.read_text())
    assert metrics["mean"]["energy_mj_per_inference"] is not None and metrics["mean"]["gmac_per_j"] is not None
    for figures in (metrics["categories"]["bottle"], metrics["mean"]):
        figures.update({key: value for key, (value, _) in SHOWN.items()})
    metrics_file.write_text(json.dumps(metrics))
    out = tmp_path / "site" / "index.html"
    assert main(["report", str(results), "--out", str(out), "--max-drift", "0.2"]) == 0
    html = out.read_text()
    for table in ("runs", "drift-table", "efficiency-table", "emulated-table", "trends-table"):
        assert f'id="{table}"' in html
    text = {key: shown for key, (_, shown) in SHOWN.items()}
    for key in (*PERCENT, *LATENCY, "energy_mj_per_inference"):
        assert cell(html, "jetson-2", key, "bottle") == text[key], key
    for key in PERCENT:
        assert cell(html, "jetson-2", key, "mean") == text[key], key
    efficiency = html[html.index('id="efficiency-table"'):html.index("</table>", html.index('id="efficiency-table"'))]
    for key in ("gmac_per_inference", "p50_ms", "p90_ms", "p99_ms", "fps", "avg_power_w", "energy_mj_per_inference",
                "gmac_per_j", "image_auroc"):
        assert f'data-run="jetson-2" data-key="{key}" data-category="mean">{text[key]}<' in efficiency, key
    # every other figure shown is its metrics.json value, rounded to two decimals (accuracy in percent)
    for run_dir in results.iterdir():
        record = load_run(run_dir)
        for category, figures in [*record.metrics["categories"].items(), ("mean", record.metrics["mean"])]:
            keys = PERCENT if category == "mean" else (*PERCENT, *LATENCY)
            for key in keys:
                shown, value = cell(html, record.run_id, key, category), figures[key]
                if value is None:
                    assert shown == "n/a", (record.run_id, category, key)
                else:
                    scale = 100 if key in PERCENT else 1
                    assert abs(float(shown) - value * scale) <= 0.005 + 1e-9, (record.run_id, category, key)
    # emulated runs are kept out of the efficiency ranking
    assert "imx500-emu" not in efficiency and "jetson-2" in efficiency
    # verdicts at 0.2 points: both jetson runs rank the 2 x 40 images as the host does (delta 0), so their interval
    # is the one-pair floor, 6 of 400 pairs per category (checked by brute force in test_metrics_drift), 0.75
    # points for the mean of two: inconclusive; the noisy emulated IMX500's lies wholly below -0.2
    verdicts = html[html.index('id="verdicts"'):html.index("</ul>", html.index('id="verdicts"'))]
    assert verdicts.count("image AUROC drift 0.00 points, 95% CI [-0.75, 0.75]") == 2
    assert verdicts.count("inconclusive for the 0.20-point gate (--max-drift): the 95% CI straddles the limit; "
                          "about 1,125 images would decide") == 2  # 80 images * (0.75 / 0.2)^2
    assert verdicts.count("EXCEEDS the 0.20-point gate") == 1 and verdicts.count('class="warn"') == 2
    # trends: the slower second jetson run is flagged
    assert "p50 latency +" in html
    assert html.count("data:image/png;base64,") >= 4 and "http://" not in html and "https://" not in html


def test_report_verdicts_at_a_wider_gate(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "index.html"
    assert main(["report", str(results), "--out", str(out), "--max-drift", "1.0"]) == 0  # [-0.75, 0.75] inside 1
    html = out.read_text()
    verdicts = html[html.index('id="verdicts"'):html.index("</ul>", html.index('id="verdicts"'))]
    assert verdicts.count("within the 1.00-point gate (--max-drift)") == 2
    assert verdicts.count("EXCEEDS the 1.00-point gate (--max-drift)") == 1 and "inconclusive" not in verdicts


def test_report_exports_csv_and_markdown(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "index.html"
    assert main(["report", str(results), "--out", str(out)]) == 0
    drift = pd.read_csv(tmp_path / "index-drift.csv")
    assert set(drift["device"]) == {"jetson", "imx500"} and len(drift) == 3 * len(CATEGORIES)
    verdicts = drift.drop_duplicates("device_run").set_index("device_run")
    assert verdicts.loc["jetson-2", "gate_verdict"] == "inconclusive"  # card gate 0.2, interval [-0.75, 0.75]
    assert verdicts.loc["jetson-2", "images_to_decide"] == 1125
    assert verdicts.loc["imx500-emu", "gate_verdict"] == "exceeds"  # card gate 0.5
    assert np.isnan(verdicts.loc["imx500-emu", "images_to_decide"])
    assert (drift["ci_floor_points"] == 1.5).all()  # 6 of 400 pairs in every category
    efficiency = pd.read_csv(tmp_path / "index-efficiency.csv")
    assert set(efficiency["run_id"]) == {"host-1", "jetson-1", "jetson-2"}
    jetson = load_run(results / "jetson-2").metrics["mean"]
    row = efficiency.set_index("run_id").loc["jetson-2"]
    assert row["energy_mj_per_inference"] == pytest.approx(jetson["energy_mj_per_inference"])
    # issue 20: AUROC was a percentage in the HTML and a fraction here; every table now says percent, by name
    assert row["image_auroc_pct"] == pytest.approx(jetson["image_auroc"] * 100)
    assert drift["host_image_auroc_pct"].between(50, 100).all()
    assert "| device" in (tmp_path / "index-efficiency.md").read_text()
    trends = pd.read_csv(tmp_path / "index-trends.csv")
    assert trends.set_index("run_id").loc["jetson-2", "flags"].startswith("p50 latency +")


REPO = paths.REPO
CARD = yaml.safe_load((REPO / "models" / "tinyglass.yaml").read_text())
def verdict(html: str, device: str) -> str:
    verdicts = html[html.index('id="verdicts"'):html.index('<table id="runs"')]
    found = [item for item in verdicts.split("\n<li")[1:] if item.split(">", 1)[1].startswith(device)]
    assert len(found) == 1, (device, verdicts)
    return found[0]


def test_each_device_gets_its_card_gate_unless_overridden(tmp_path: Path) -> None:
    root = tmp_path / "results"
    make_run(root, "host-1", "host", "host", "2026-11-20T01:00:00+00:00")
    make_run(root, "jetson-1", "jetson", "jetson", "2026-11-20T02:00:00+00:00", perturb=lambda s, labels: -s)
    make_run(root, "imx500-1", "imx500", "imx500", "2026-11-20T03:00:00+00:00", perturb=lambda s, labels: s + 1)
    gates = CARD["drift_gate"]
    out = tmp_path / "cards" / "index.html"
    assert main(["report", str(root), "--out", str(out)]) == 0
    html = out.read_text()
    # reversed scores: each category's AUROC a becomes 1 - a, so the mean drift is 1 - 2 a (points)
    host = load_run(root / "host-1").metrics["categories"]
    drift = float(np.mean([100 * (1 - 2 * host[c]["image_auroc"]) for c in CATEGORIES]))
    assert f"image AUROC drift {drift:.2f} points" in verdict(html, "jetson")
    assert f"EXCEEDS the {gates['default']:.2f}-point gate (card tinyglass, default)" in verdict(html, "jetson")
    # the same ranking as the host: [-0.75, 0.75] straddles the card's 0.5 for the IMX500
    assert f"inconclusive for the {gates['imx500']:.2f}-point gate (card tinyglass, imx500)" in verdict(html, "imx500")
    rows = pd.read_csv(out.with_name("index-drift.csv")).drop_duplicates("device").set_index("device")
    assert rows.loc["imx500", "gate_points"] == gates["imx500"] and rows.loc["jetson", "gate_points"] == 0.2
    assert rows.loc["imx500", "gate_source"] == "card tinyglass, imx500"
    out = tmp_path / "override" / "index.html"
    assert main(["report", str(root), "--out", str(out), "--max-drift", "1.0"]) == 0
    html = out.read_text()
    assert "within the 1.00-point gate (--max-drift)" in verdict(html, "imx500")
    assert "EXCEEDS the 1.00-point gate (--max-drift)" in verdict(html, "jetson")


def test_published_beside_measured(tmp_path: Path) -> None:
    root = tmp_path / "results"
    cats = ("carpet", "wood", "fabric")  # fabric is no MVTec AD class: the card lists no figure for it
    paper = {"quantization": {**INT8["quantization"], "calibration": {"mode": "paper-test"}}}
    host = make_run(root, "host-1", "host", "host", "2026-11-20T01:00:00+00:00", categories=cats, pixel=True,
                    model={"mask_convention": "bilinear_cast"})
    imx = make_run(root, "imx500-emu", "imx500", "imx500", "2026-11-20T02:00:00+00:00", categories=cats,
                   noise=0.5, emulated=True, artifact=paper, pixel=True, model={"mask_convention": "bilinear_cast"})
    make_run(root, "jetson-1", "jetson", "jetson", "2026-11-20T03:00:00+00:00", categories=cats, noise=0.01)
    out = tmp_path / "index.html"
    assert main(["report", str(root), "--out", str(out)]) == 0
    html = out.read_text()
    table = html[html.index('id="published-tinyglass"'):]
    table = table[:table.index("</table>")]
    rows = pd.read_csv(tmp_path / "index-published.csv").set_index("category")
    assert sorted(rows.index) == ["carpet", "wood"] and "fabric" not in table
    fp32, int8 = CARD["published"]["mvtec"], CARD["published"]["mvtec_int8"]
    measured_host, measured_dev = load_run(host).metrics["categories"], load_run(imx).metrics["categories"]
    for category in ("carpet", "wood"):
        row = rows.loc[category]
        expected = {
            "published_fp32_image_auroc_pct": fp32["fp32_image_auroc"][category],
            "published_fp32_pixel_auroc_pct": fp32["fp32_pixel_auroc"][category],
            "published_int8_image_auroc_pct": int8["int8_image_auroc"][category],
            "published_int8_drop_points": int8["fp32_image_auroc"][category] - int8["int8_image_auroc"][category],
            "host_image_auroc_pct": 100 * measured_host[category]["image_auroc"],
            "host_pixel_auroc_pct": 100 * measured_host[category]["pixel_auroc"],
            "device_image_auroc_pct": 100 * measured_dev[category]["image_auroc"],
            "measured_drop_points": 100 * (measured_host[category]["image_auroc"]
                                           - measured_dev[category]["image_auroc"]),
        }
        assert 0.5 < measured_host[category]["pixel_auroc"] <= 1  # fractions in metrics.json, percent in the table
        line = table[table.index(f'data-category="{category}"'):]
        line = line[:line.index("</tr>")]
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, abs=1e-9), (category, key)
            assert f'data-key="{key}">{value:.2f}<' in line, (category, key)
        assert row["device"] == "imx500" and row["calibration"] == "paper-test"
        assert row["mask_convention"] == "bilinear_cast" and row["device_run"] == "imx500-emu"
    assert "jetson" not in table  # INT8 figures are for IMX500 runs alone
    assert " ".join(CARD["published"]["source"].split()) in html_unescape(html)
    host_only = tmp_path / "host" / "index.html"
    assert main(["report", str(host), "--out", str(host_only)]) == 0
    alone = pd.read_csv(host_only.with_name("index-published.csv")).set_index("category")
    assert alone.loc["wood", "published_fp32_image_auroc_pct"] == fp32["fp32_image_auroc"]["wood"]
    assert alone["device_run"].isna().all() and alone["published_int8_image_auroc_pct"].isna().all()


def test_saturated_device_scores_are_flagged(tmp_path: Path) -> None:
    root = tmp_path / "results"
    tops: list[float] = []  # per category, in CATEGORIES order

    def on_rail(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
        tops.append(float(np.sort(scores)[-6]))  # the six highest scores become one value: 6 of 40, 15 %
        return np.minimum(scores, tops[-1])

    make_run(root, "host-1", "host", "host", "2026-11-20T01:00:00+00:00")
    make_run(root, "imx500-1", "imx500", "imx500", "2026-11-20T02:00:00+00:00", perturb=on_rail, artifact=INT8)
    make_run(root, "jetson-1", "jetson", "jetson", "2026-11-20T03:00:00+00:00", noise=0.01)
    out = tmp_path / "index.html"
    assert main(["report", str(root), "--out", str(out)]) == 0
    html = out.read_text()
    warned = verdict(html, "imx500")
    for category, top in zip(CATEGORIES, tops, strict=True):
        assert f"Warning: {category}: 6 device scores (15 %) sit exactly on {top:.6g}" in warned
    assert f"the INT8 rail of output &#39;score&#39; ({RAIL:.6g}), calibration train-normal" in warned
    assert "calibrated without anomalies (see --calibration)" in warned
    assert "Warning" not in verdict(html, "jetson")
    drift = pd.read_csv(tmp_path / "index-drift.csv", keep_default_na=False)
    flagged = drift.set_index(["device", "category"])["score_saturation"]
    for category, top in zip(CATEGORIES, tops, strict=True):
        assert flagged.loc[("imx500", category)] == f"6 at {top:.6g} (15 %)"
        assert flagged.loc[("jetson", category)] == ""
    section = html[html.index('<section id="imx500-1">'):]
    section = section[:section.index("</section>")]
    assert f"INT8 calibration train-normal · output rail {RAIL:.6g} (score)" in section
    assert "Mask convention</td><td><code>not recorded" in section


@pytest.mark.parametrize("status, error", [
    ("failed", "device 'jetson' failed during cable: link to the device lost"),
    ("interrupted", "interrupted by the user (Ctrl-C)"),
])
def test_a_broken_run_is_in_the_report_as_broken(results: Path, tmp_path: Path, status: str, error: str) -> None:
    """A failed or interrupted run (no metrics.json) beside complete ones: the report is still written, lists it
    with its status and error, and keeps every other run's figures (issue 20: it crashed on 'image_auroc')."""
    before = tmp_path / "before" / "index.html"
    assert main(["report", str(results), "--out", str(before)]) == 0
    make_run(results, "jetson-broken", "jetson", "jetson", "2026-11-22T02:00:00+00:00", status=status, error=error)
    out = tmp_path / "report" / "index.html"
    assert main(["report", str(results), "--out", str(out)]) == 0
    html = html_unescape(out.read_text())
    assert f'<td class="status-{status}">{status}</td>' in html
    assert f"Status {status}: {error}. Figures cover what was recorded." in html
    for run in ("host-1", "jetson-1", "jetson-2"):
        assert cell(html, run, "p50_ms", "mean") == cell(html_unescape(before.read_text()), run, "p50_ms", "mean")
    assert f"python -m bench run --resume jetson-broken --out {results}" in html  # works as printed
    assert "jetson-broken" not in (out.parent / "index-efficiency.csv").read_text()


def test_every_table_has_its_header_and_every_row_key_a_column(results: Path, tmp_path: Path) -> None:
    """Issue 20: with no drift rows the drift CSV was an empty file, which pandas cannot read. The header is
    written for an empty table, and a full report's rows have exactly those columns (none dropped)."""
    from bench.records import load_run
    from bench.reports.collect import collect
    from bench.reports.exports import write_tables

    host_only = tmp_path / "host-only"
    make_run(host_only, "host-1", "host", "host", "2026-11-20T01:00:00+00:00")
    for root, name in ((host_only, "empty"), (results, "full")):
        report = collect([load_run(p) for p in sorted(root.iterdir())], None)
        (tmp_path / name).mkdir()
        for path in write_tables(report, tmp_path / name / "index.html"):
            if path.suffix == ".csv":
                frame = pd.read_csv(path)
                assert len(frame.columns) > 3, path
                table = path.stem.removeprefix("index-")
                rows = {"efficiency": report.efficiency, "emulated": report.emulated, "trends": report.trends,
                        "published": report.published}.get(table, [])
                named = {"image_auroc": "image_auroc_pct"}  # the tables state AUROC in percent
                assert all({named.get(k, k) for k in row} == set(frame.columns) for row in rows), (path, frame.columns)
    assert pd.read_csv(tmp_path / "empty" / "index-drift.csv").empty
    assert not pd.read_csv(tmp_path / "full" / "index-drift.csv").empty


def test_a_limit_run_starts_its_own_history_and_every_row_names_its_run(results: Path, tmp_path: Path) -> None:
    """Issue 20: trends mixed --limit subsets with full runs, and the efficiency table had no run ids."""
    make_run(results, "jetson-smoke", "jetson", "jetson", "2026-11-22T02:00:00+00:00", latency_ms=40,
             dataset={"image_count": 8, "index_sha256": "s" * 64})
    out = tmp_path / "index.html"
    assert main(["report", str(results), "--out", str(out)]) == 0
    trends = pd.read_csv(tmp_path / "index-trends.csv").set_index("run_id")
    assert trends.loc["jetson-smoke", "image_set"] == "8 images ssssssss"
    assert pd.isna(trends.loc["jetson-smoke", "flags"])  # 40 ms is not a regression of the full runs' 16 ms
    assert trends.loc["jetson-2", "flags"].startswith("p50 latency +")  # the full runs' history is unchanged
    html = out.read_text()
    table = html[html.index('id="efficiency-table"'):html.index("</table>", html.index('id="efficiency-table"'))]
    assert all(f'<a href="#{run}">{run}</a>' in table for run in ("host-1", "jetson-1", "jetson-2", "jetson-smoke"))
