"""The report's latency statistics: intervals, spread, drift and stability as in metrics.json, a warning for an
unstable category, and the device state around each timed window."""

from __future__ import annotations

import json
import re
from html import unescape
from pathlib import Path

from support.report_runs import make_run

from bench.cli import main
from bench.reports.html import state_text

JETSON_BEFORE = {"machine": {"cpu_freq_khz": {"cpu0": 729600, "cpu1": 1728000},
                             "cpu_governor": {"cpu0": "schedutil", "cpu1": "schedutil"},
                             "devfreq_hz": {"17000000.gpu": 1020000000},
                             "thermal_c": {"cpu-thermal": 48.5, "tj-thermal": 51.25},
                             "jetson": {"power_mode": "MAXN_SUPER", "emc_clock_hz": 3199000000}}}


def cell(html: str, run: str, key: str, category: str) -> str:
    found = re.search(rf'data-run="{run}" data-key="{key}" data-category="{category}"[^>]*>([^<]*)<', html)
    assert found is not None, (run, key, category)
    return unescape(found.group(1))


def test_state_line() -> None:
    assert state_text(JETSON_BEFORE) == ("power mode MAXN_SUPER; CPU 730-1728 MHz (schedutil); 17000000.gpu 1020 MHz; "
                                         "EMC 3199 MHz; hottest tj-thermal 51.2 °C")
    assert state_text({}) == "not readable"
    assert state_text({"device": {"thermal_c": {"soc": 40.0}}}) == "device hottest soc 40.0 °C"


def test_latency_statistics_warning_and_state(tmp_path: Path) -> None:
    root = tmp_path / "results"
    run_dir = make_run(root, "jetson-1", "jetson", "jetson", "2026-11-20T02:00:00+00:00", latency_ms=12)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    bottle, cable = metrics["categories"]["bottle"], metrics["categories"]["cable"]
    assert bottle["latency_stability"] == "stable"  # 30 inferences within +-10 % of 12 ms
    cable.update(latency_stability="unstable: median +8.0 % from the first to the last third of the timed window",
                 latency_drift_ratio=1.08, latency_cv=0.123456, p99_ci_ms=[12.5, None])
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    manifest["progress"]["bottle"]["state"] = {"before": JETSON_BEFORE, "after": {}}
    (run_dir / "manifest.json").write_text(json.dumps(manifest))

    out = tmp_path / "report.html"
    assert main(["report", str(root), "--out", str(out)]) == 0
    html = out.read_text()
    for cat, figures in (("bottle", bottle), ("cable", cable)):
        for key in ("p50_ci_ms", "p90_ci_ms", "p99_ci_ms"):
            low, high = figures[key]
            shown = [None if part == "n/a" else float(part) for part in cell(html, "jetson-1", key, cat)[1:-1]
                     .split(", ")]
            for value, text in zip((low, high), shown, strict=True):
                assert (text is None) if value is None else abs(text - value) <= 0.005, (cat, key)
        assert float(cell(html, "jetson-1", "latency_cv", cat)) == round(figures["latency_cv"], 2)
        assert cell(html, "jetson-1", "latency_stability", cat) == figures["latency_stability"]
    assert cell(html, "jetson-1", "p99_ci_ms", "cable").endswith(", n/a]")
    assert cell(html, "jetson-1", "latency_drift_ratio", "cable") == "1.08"
    warnings = re.findall(r'class="bad latency-warning"[^>]*>([^<]*)<', html)
    assert warnings == ["Warning: latency of cable is unstable: median +8.0 % from the first to the last third of "
                        "the timed window. Its percentiles depend on when the timed window fell; see the device "
                        "state below."]
    state = html[html.index('class="device-state"'):]
    state = state[:state.index("</table>")]
    assert f"<td>bottle</td><td class=\"note\">{state_text(JETSON_BEFORE)}</td><td class=\"note\">not readable</td>" \
        in unescape(state)
    assert "cable" not in state  # no state recorded for it: no row
    assert 'alt="latency over the timed window of jetson-1"' in html
