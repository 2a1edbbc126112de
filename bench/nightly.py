"""``bench nightly``: every device run of a results folder against its reference, all gates at once.

Each complete device run pairs with its reference by ``bench.pairing``'s rule (the newest run of a
``role: reference`` profile with the same model, dataset, categories and checkpoints, or a run pinned
with ``--reference``). It prints ``bench compare``'s table and the gate's verdict for each pair and,
after comparing them all (so one night's report shows every failure), exits 3 if any pair's 95 %
interval lies wholly outside its gate, else 5 if a device run did not complete (failed or interrupted:
a night whose device broke never passes), else 4 if any interval straddles its gate (more images would
decide), 2 if a device run has no reference. A broken device run that a later complete run of the same
device profile and signature replaced is named, not counted. Each device run's gate is its model
card's ``drift_gate`` for the device (an INT8 sensor drifts more than an FP16 GPU); ``--max-drift``
sets one gate for all.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.comparison import compare, format_table, gate, gate_line, masks_for, resolve_gate
from bench.errors import BadInput, DeviceFailure, GateFailed, GateInconclusive
from bench.pairing import is_reference, pair_runs, signature
from bench.records import load_run
from bench.records.reader import read_manifest


@dataclass
class _Run:
    path: Path
    manifest: dict[str, Any]


def _runs(results: Path) -> list[_Run]:
    if not results.is_dir():
        raise BadInput(f"{results}: no such results folder")
    return [_Run(p.parent, read_manifest(p.parent)) for p in sorted(results.rglob("manifest.json"))]


def pairs(results: Path, references: list[Path] | None = None) -> list[tuple[Path, Path]]:
    """(reference, device run) for every complete device run under ``results`` (searched recursively)."""
    pinned = [_Run(p, read_manifest(p)) for p in references or []]
    pairing = pair_runs(_runs(results), pinned)
    if pairing.unpaired:
        run, reason = pairing.unpaired[0]
        raise BadInput(f"{run.path.name}: {reason} under {results}")
    return [(ref.path, dev.path) for ref, dev in pairing.pairs]


def broken_runs(results: Path) -> tuple[list[_Run], list[_Run]]:
    """Device runs under ``results`` that did not complete: (still broken, replaced by a later complete run of
    the same device profile, emulation and signature)."""
    runs = _runs(results)

    def key(run: _Run) -> tuple:
        device = run.manifest.get("device", {})
        return device.get("profile"), bool(device.get("emulated")), signature(run.manifest)

    done = {}
    for run in runs:
        if run.manifest.get("status") == "complete":
            done[key(run)] = max(done.get(key(run), ""), str(run.manifest.get("created_at")))
    broken, replaced = [], []
    for run in runs:
        if run.manifest.get("status") == "complete" or is_reference(run.manifest):
            continue
        later = done.get(key(run), "") > str(run.manifest.get("created_at"))
        (replaced if later else broken).append(run)
    return broken, replaced


def run_nightly(results: Path, max_drift: float | None = None, no_pixel: bool = False,
                references: list[Path] | None = None) -> int:
    """Compares every pair, prints each table and verdict; the exit code (0; 3 a gate exceeded; else 5 a device
    run that did not complete; else 4 a gate inconclusive)."""
    failed: list[GateFailed] = []
    inconclusive: list[GateInconclusive] = []
    found = pairs(results, references)
    for ref, dev in found:
        result = compare(ref, dev, None if no_pixel else masks_for(load_run(ref)))
        limit = resolve_gate(read_manifest(dev), max_drift)
        print(format_table(result), gate_line(result, limit), sep="\n", end="\n\n")
        try:
            gate(result, limit)
        except GateFailed as exc:
            failed.append(exc)
        except GateInconclusive as exc:
            inconclusive.append(exc)
    for exc in failed:
        print(f"gate failed: {exc}", file=sys.stderr)
    for exc in inconclusive:
        print(f"gate inconclusive: {exc}", file=sys.stderr)
    broken, replaced = broken_runs(results)
    for run in replaced:
        print(f"note: device run {run.path.name} {run.manifest.get('status')}, a later complete run replaces it",
              file=sys.stderr)
    for run in broken:
        print(f"device run {run.manifest.get('status')}: {run.path.name} "
              f"({run.manifest.get('error') or 'no error recorded'})", file=sys.stderr)
    gates = f"the {max_drift:.2f}-point gate (--max-drift)" if max_drift is not None else "their card gates"
    print(f"{len(found)} device runs compared against {gates}: {len(failed)} exceed, {len(inconclusive)} "
          f"inconclusive, {len(found) - len(failed) - len(inconclusive)} within; {len(broken)} did not complete",
          file=sys.stderr)
    if failed:
        return GateFailed.exit_code
    if broken:
        return DeviceFailure.exit_code
    return GateInconclusive.exit_code if inconclusive else 0
