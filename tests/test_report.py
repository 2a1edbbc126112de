"""The HTML report from synthetic run records: tables, verdicts, emulated runs apart, trends, exports,
and every figure equal to the run's metrics.json."""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.cli import main
from bench.metrics.summary import summarize
from bench.records import RunWriter, load_run
from bench.reports.html import ACCURACY_COLUMNS, EFFICIENCY_COLUMNS, LATENCY_COLUMNS, fmt

NS = 1_000_000_000
CATEGORIES = ("bottle", "cable")


def make_run(root: Path, run_id: str, device: str, kind: str, created: str, noise: float = 0.0,
             emulated: bool = False, latency_ms: float = 20.0, watts: float | None = None) -> Path:
    rng = np.random.default_rng(zlib.crc32(run_id.encode()))
    manifest = {
        "command": "synthetic", "created_at": created,
        "device": {"profile": device, "kind": kind, "emulated": emulated, "precision": "fp32",
                   "environment": {"os": "linux", "runtime": {"onnxruntime": "1.31"}, "settings": {},
                                   "power_mode": "MAXN" if kind == "jetson" else None}},
        "model": {"name": "tinyglass", "params": 3_129_280, "macs": 2_201_000_000, "backbone_weights": "r18.pth",
                  "backbone_sha256": "b" * 64,
                  "categories": {c: {"checkpoint_sha256": c[0] * 64, "onnx_sha256": "o" * 64} for c in CATEGORIES}},
        "dataset": {"name": "mvtec", "root": str(root / "nowhere"), "categories": list(CATEGORIES), "image_count": 80,
                    "index_sha256": "i" * 64},
        "measurement": {"warmup": 1}, "harness": {"version": "0.1.0", "commit": "abc", "dirty": False},
    }
    writer = RunWriter.create(root, manifest, run_id)
    writer.manifest["created_at"] = created
    base = np.random.default_rng(7)
    t = NS
    for category in CATEGORIES:
        labels = np.array([0] * 20 + [1] * 20)
        scores = base.normal(0, 1, 40) + 1.2 * labels + rng.normal(0, noise, 40)
        writer.append("images", [{"image_id": f"{category}/{i:03d}.png", "category": category, "defect_type": "x",
                                  "label": int(labels[i]), "input_sha256": f"{category}{i}", "score": float(scores[i]),
                                  "error": None} for i in range(40)])
        rows = []
        for _ in range(30):
            dur = int(latency_ms * 1e6 * rng.uniform(0.9, 1.1))
            rows.append({"category": category, "attempt": 0, "phase": "timed", "t_start_ns": t, "t_end_ns": t + dur,
                         "latency_ms": dur / 1e6, "device_ms": None})
            t += dur + 1000
        writer.append("latency", rows)
        writer.set_progress(category, timed_attempt=0)
        if watts is not None:
            ts = np.arange(rows[0]["t_start_ns"] - 10**7, t + 10**7, 10**6)
            writer.append("power", [{"t_ns": int(x), "rail": "VDD_IN", "volts": None, "amps": None, "watts": watts}
                                    for x in ts])
    writer.finish("complete", None)
    record = load_run(root / run_id)
    metrics = summarize(record.images, record.latency, {}, dict.fromkeys(CATEGORIES), dict.fromkeys(CATEGORIES, 0),
                        gmac=2.201, power=record.power if watts else None, rails=["VDD_IN"] if watts else None)
    (root / run_id / "metrics.json").write_text(json.dumps(metrics))
    return root / run_id


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


def test_report_sections_and_numbers(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "site" / "index.html"
    assert main(["report", str(results), "--out", str(out), "--max-drift", "0.2"]) == 0
    html = out.read_text()
    for table in ("runs", "drift-table", "efficiency-table", "emulated-table", "trends-table"):
        assert f'id="{table}"' in html
    # every figure shown equals metrics.json, with the one formatting rule
    for run_dir in results.iterdir():
        record = load_run(run_dir)
        for category, figures in [*record.metrics["categories"].items(), ("mean", record.metrics["mean"])]:
            for key, _, scale in ACCURACY_COLUMNS:
                assert cell(html, record.run_id, key, category) == fmt(figures[key], scale)
            if category != "mean":
                for key, _, scale in LATENCY_COLUMNS:
                    assert cell(html, record.run_id, key, category) == fmt(figures[key], scale)
    jetson = load_run(results / "jetson-2").metrics["mean"]
    for key, _, scale in EFFICIENCY_COLUMNS:
        if key != "params":
            assert cell(html, "jetson-2", key, "mean") == fmt(jetson[key], scale)
    assert jetson["energy_mj_per_inference"] is not None and jetson["gmac_per_j"] is not None
    # emulated runs are kept out of the efficiency ranking
    efficiency = html[html.index('id="efficiency-table"'):html.index("</table>", html.index('id="efficiency-table"'))]
    assert "imx500-emu" not in efficiency and "jetson-2" in efficiency
    # verdicts: jetson within the gate, the noisy emulated IMX500 not
    verdicts = html[html.index('id="verdicts"'):html.index("</ul>", html.index('id="verdicts"'))]
    assert verdicts.count("within the 0.20-point gate") >= 2 and "EXCEEDS the 0.20-point gate" in verdicts
    # trends: the slower second jetson run is flagged
    assert "p50 latency +" in html
    assert html.count("data:image/png;base64,") >= 4 and "http://" not in html and "https://" not in html


def test_report_exports_csv_and_markdown(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "index.html"
    assert main(["report", str(results), "--out", str(out)]) == 0
    drift = pd.read_csv(tmp_path / "index-drift.csv")
    assert set(drift["device"]) == {"jetson", "imx500"} and len(drift) == 3 * len(CATEGORIES)
    efficiency = pd.read_csv(tmp_path / "index-efficiency.csv")
    assert set(efficiency["run_id"]) == {"host-1", "jetson-1", "jetson-2"}
    jetson = load_run(results / "jetson-2").metrics["mean"]
    row = efficiency.set_index("run_id").loc["jetson-2"]
    assert row["energy_mj_per_inference"] == pytest.approx(jetson["energy_mj_per_inference"])
    assert "| device" in (tmp_path / "index-efficiency.md").read_text()
    trends = pd.read_csv(tmp_path / "index-trends.csv")
    assert trends.set_index("run_id").loc["jetson-2", "flags"].startswith("p50 latency +")
