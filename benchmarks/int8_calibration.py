"""What each INT8 calibration choice does to the emulated IMX500 drift of TinyGLASS (issue: INT8 saturation).

On the demo data and checkpoints (generated and fitted into the cache when missing), runs the host
FP32 reference and one emulated IMX500 run per ``--calibration`` choice, then compares each against
the reference: mean image AUROC of both, the drift with its 95 % interval, and how many scores sit on
one value (``score_saturation``) per category. Prints a Markdown table and writes the JSON beside it.

    python benchmarks/int8_calibration.py [--small] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.data.calibration import CALIBRATIONS
from bench.data.demo import DemoSpec
from bench.demo import DEMO_SEED, demo_backbone, demo_checkpoints, demo_data
from bench.records import load_run


def bench(args: list[str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True, text=True,
                          env=os.environ.copy())
    if done.returncode not in (0, 3, 4):
        raise SystemExit(f"bench {' '.join(args[:3])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the small demo (smoke test)")
    parser.add_argument("--out", type=Path, default=None, help="keep the run records here")
    args = parser.parse_args()
    spec = DemoSpec(size=128, n_train=6, n_test_good=3, n_test_per_defect=2) if args.small else DemoSpec()
    data = demo_data(spec)
    backbone = demo_backbone(DEMO_SEED, data, spec)
    checkpoints = demo_checkpoints(data, spec, backbone, None)
    work = args.out or Path(tempfile.mkdtemp(prefix="int8-calibration-"))
    results = work / "results"
    common = ["--model", "tinyglass", "--dataset", "mvtec", "--data-root", str(data), "--checkpoint",
              str(checkpoints), "--backbone-weights", str(backbone), "--out", str(results)]
    before = set(results.iterdir()) if results.is_dir() else set()
    bench(["run", "--device", "host", *common, "--warmup", "0", "--min-count", "1", "--min-duration", "0"], work)
    reference = next(iter(set(results.iterdir()) - before))
    rows = []
    for mode in CALIBRATIONS:
        before = set(results.iterdir())
        tick = time.perf_counter()
        bench(["run", "--device", "imx500", "--emulate", "--calibration", mode, *common], work)
        seconds = time.perf_counter() - tick
        run_dir = next(iter(set(results.iterdir()) - before))
        result = json.loads(bench(["compare", str(reference), str(run_dir), "--json", "--no-pixel"], work))
        metrics = load_run(run_dir).metrics
        saturation = {cat: c["score_saturation"] for cat, c in metrics["categories"].items()}
        rows.append({"calibration": mode, "run": run_dir.name, "seconds": round(seconds, 1),
                     "host_image_auroc": load_run(reference).metrics["mean"]["image_auroc"],
                     "int8_image_auroc": metrics["mean"]["image_auroc"],
                     "drift_points": result["mean_delta_points"], "ci_points": [
                         result["dataset_drift"]["ci_low_points"], result["dataset_drift"]["ci_high_points"]],
                     "saturation": saturation})
    print("| calibration | host image AUROC | INT8 image AUROC | drift (points) [95 % CI] | scores on the top value "
          "per category | seconds |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        sat = ", ".join(f"{cat} {s['count']}/{round(s['count'] / s['share']) if s['share'] else 0}"
                        f"{' saturated' if s['saturated'] else ''}" for cat, s in r["saturation"].items())
        print(f"| {r['calibration']} | {100 * r['host_image_auroc']:.2f} | {100 * r['int8_image_auroc']:.2f} | "
              f"{r['drift_points']:+.2f} [{r['ci_points'][0]:+.2f}, {r['ci_points'][1]:+.2f}] | {sat} | "
              f"{r['seconds']} |")
    (work / "int8_calibration.json").write_text(json.dumps(rows, indent=2))
    print(f"records and JSON in {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
