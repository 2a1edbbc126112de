"""The nightly gate: every device run of a results folder against its host reference, all gates at once.

``python -m bench.nightly RESULTS [--max-drift POINTS]`` pairs each complete device run with the newest
complete host run of the same model, dataset and categories, prints ``bench compare``'s table and the
gate for each pair, and exits 3 if any pair exceeds its gate (after comparing them all, so one night's
report shows every failure), 2 if a device run has no reference. Each device run's gate is its model
card's ``drift_gate`` for the device (an INT8 sensor drifts more than an FP16 GPU); ``--max-drift``
sets one gate for all.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.comparison import compare, format_table, gate, gate_line, masks_for, resolve_gate
from bench.errors import BadInput, GateFailed
from bench.records import load_run
from bench.records.reader import read_manifest


def _key(manifest: dict[str, Any]) -> tuple[str, str, tuple[str, ...]]:
    dataset = manifest.get("dataset", {})
    return (manifest.get("model", {}).get("name", ""), dataset.get("name", ""),
            tuple(sorted(dataset.get("categories", []))))


def pairs(results: Path) -> list[tuple[Path, Path]]:
    """(host reference, device run) for every complete device run under ``results`` (searched recursively)."""
    runs = []
    for manifest_path in sorted(results.rglob("manifest.json")):
        manifest = read_manifest(manifest_path.parent)
        if manifest.get("status") == "complete":
            runs.append((manifest_path.parent, manifest))
    hosts: dict[tuple, tuple[str, Path]] = {}
    for path, manifest in runs:
        if manifest["device"].get("kind") == "host":
            key = _key(manifest)
            stamp = str(manifest.get("created_at", ""))
            if key not in hosts or stamp > hosts[key][0]:
                hosts[key] = (stamp, path)
    found = []
    for path, manifest in runs:
        if manifest["device"].get("kind") == "host":
            continue
        key = _key(manifest)
        if key not in hosts:
            raise BadInput(f"{path.name}: no complete host reference for {key[0]} on {key[1]} "
                           f"({', '.join(key[2])}) under {results}")
        found.append((hosts[key][1], path))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.nightly", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path, help="folder holding the night's run records (any depth)")
    parser.add_argument("--max-drift", type=float, metavar="POINTS", help="one gate for every device run "
                        "(default: each model card's drift_gate for the device, else 0.2)")
    parser.add_argument("--no-pixel", action="store_true", help="skip pixel-level drift")
    args = parser.parse_args(argv)
    failures = []
    try:
        found = pairs(args.results)
        for ref, dev in found:
            result = compare(ref, dev, None if args.no_pixel else masks_for(load_run(ref)))
            limit = resolve_gate(read_manifest(dev), args.max_drift)
            print(format_table(result), gate_line(result, limit), sep="\n", end="\n\n")
            try:
                gate(result, limit)
            except GateFailed as exc:
                failures.append(str(exc))
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    for failure in failures:
        print(f"gate failed: {failure}", file=sys.stderr)
    gates = f"the {args.max_drift:.2f}-point gate (--max-drift)" if args.max_drift is not None else "their card gates"
    print(f"{len(found)} device runs compared, {len(failures)} over {gates}", file=sys.stderr)
    return GateFailed.exit_code if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
