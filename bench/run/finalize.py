"""The finalize step: read the measured record once, import an external meter's trace, write metrics.json.

The record's status is written last, by ``RunWriter.finish``: a run killed while finishing stays
readable and not ``complete``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from bench.metrics.energy import timed_window
from bench.metrics.summary import summarize
from bench.power import LIVE_METERS, meter_name, open_trace
from bench.records import RecordSink, RunRecord, load_run
from bench.records.journal import to_frame
from bench.records.schema import POWER
from bench.records.writer import RunWriter
from bench.run.plan import Plan


def finalize(plan: Plan, writer: RunWriter) -> None:
    """Compute the metrics of every planned category from the record and finish it as complete."""
    record = load_run(writer.run_dir)
    categories = [job.category for job in plan.jobs]
    attempts = {c: record.progress(c).get("timed_attempt") for c in categories}
    power = plan.device.profile.power
    samples = record.power
    if not plan.device.emulated and meter_name(power) == "csv":
        samples = pd.concat([samples, _import_trace(power, record, attempts, writer)], ignore_index=True)
    rails, note = _energy_basis(plan, record, samples)
    evaluated = set(record.images.loc[record.images["error"].isna(), "image_id"])
    interval_rails = {rail for c in categories
                      for rail in record.progress(c).get("power", {}).get("interval_rails", [])}
    metrics = summarize(record.images, record.latency, {c: record.maps(c) for c in categories},
                        plan.masks(evaluated), attempts, plan.gmac, samples, rails, power.get("idle_w"), note,
                        interval_rails)
    writer.finish("complete", metrics)


def _import_trace(power: dict[str, Any], record: RunRecord, attempts: Mapping[str, int | None],
                  sink: RecordSink) -> pd.DataFrame:
    """An external meter's CSV trace (``meter: csv``): its samples around each timed window go into the record."""
    trace = open_trace(power)
    rows = []
    for category, attempt in attempts.items():
        window = timed_window(record.latency, category, attempt)
        if window is not None:
            rows.extend(trace.rows(window[0], window[1]))
    sink.append("power", rows)
    return to_frame(rows, POWER)


def _energy_basis(plan: Plan, record: RunRecord, samples: pd.DataFrame) -> tuple[list[str] | None, str | None]:
    """The rails energy is summed over (None: no power was recorded) and the note shown without them.

    ``energy_rails``, else the sampled ``rails``, else every rail recorded: a Jetson samples VDD_IN and its
    parts (VDD_CPU_GPU_CV, VDD_SOC) but its energy is VDD_IN alone, which already contains them."""
    power = plan.device.profile.power
    measurement = record.manifest.get("measurement", {})
    name = meter_name(power)
    if plan.device.emulated or name not in (*LIVE_METERS, "csv"):
        return None, power.get("note")
    if measurement.get("power_status") == "unavailable":
        return None, f"power meter unavailable: {measurement.get('power_reason')}"
    rails = power.get("energy_rails") or power.get("rails") or sorted(samples["rail"].unique())
    return list(rails) or None, None
