"""INT8 emulation of the IMX500: MCT's mct_quantizers graph (the old path) against its Q/DQ conversion (issue 19).

On the demo data and checkpoints (generated and fitted into the cache when missing), runs
``bench run --device imx500 --emulate`` (which compiles the MCTQ ONNX the converter receives and runs
its Q/DQ conversion), then takes each category's MCTQ artifact from that run and times, image by
image and interleaved on the same preprocessed test images, the old path (mct_quantizers' ops
through onnxruntime-extensions) and the new one (standard QuantizeLinear/DequantizeLinear), both
at basic graph optimisation on the same threads. Prints the speed ratio and the agreement: the
largest per-image score and patch-score difference, the image AUROC of each path per category,
and the largest difference between the run record's scores and the new path's (0: the harness ran
the conversion). Writes the JSON beside the records.

    python benchmarks/int8_emulation.py [--small] [--limit N] [--threads T] [--out DIR]
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

import numpy as np
import onnx

from bench.data.datasets import open_dataset
from bench.data.demo import DemoSpec
from bench.data.preprocess import preprocess_image
from bench.demo import DEMO_SEED, demo_backbone, demo_checkpoints, demo_data
from bench.devices.imx500.emulation import mctq_session, qdq_session
from bench.devices.imx500.quant import Normalization, to_pixels
from bench.metrics.accuracy import image_auroc
from bench.models.cards import load_card
from bench.records import load_run


def bench(args: list[str], cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, capture_output=True, text=True,
                          env=os.environ.copy())
    if done.returncode not in (0, 3, 4):
        raise SystemExit(f"bench {' '.join(args[:3])} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout


def timed(session: object, name: str, image: np.ndarray) -> tuple[float, list[np.ndarray]]:
    tick = time.perf_counter()
    out = session.run(["score", "patch_scores"], {name: image})  # type: ignore[attr-defined]
    return time.perf_counter() - tick, out


def compare_category(run_dir: Path, category: str, data: Path, threads: int) -> dict:
    record = load_run(run_dir)
    details = record.manifest["model"]["categories"][category]["artifact_details"]
    mctq = Path(details["quantization"]["onnx_path"])
    normalization = Normalization.from_json(details["normalization"])
    rows = record.images[record.images["category"] == category]
    samples = {s.image_id: s for s in open_dataset("mvtec", data).samples(category, "test")}
    recipe = load_card("tinyglass").recipes.for_category(category)
    old, new = mctq_session(mctq, threads), qdq_session(onnx.load(str(mctq)), threads)
    name = old.get_inputs()[0].name
    labels, times, scores, patch_diff, record_diff = [], {"old": [], "new": []}, {"old": [], "new": []}, 0.0, 0.0
    for i, row in enumerate(rows.itertuples(index=False)):
        sample = samples[row.image_id]
        pixels = to_pixels(preprocess_image(sample.path, recipe), normalization)
        if i == 0:  # warm-up, untimed
            timed(old, name, pixels), timed(new, name, pixels)
        t_old, out_old = timed(old, name, pixels)
        t_new, out_new = timed(new, name, pixels)
        times["old"].append(t_old)
        times["new"].append(t_new)
        scores["old"].append(float(out_old[0].ravel()[0]))
        scores["new"].append(float(out_new[0].ravel()[0]))
        patch_diff = max(patch_diff, float(np.abs(out_old[1].astype(np.float64) - out_new[1]).max()))
        record_diff = max(record_diff, abs(float(row.score) - scores["new"][-1]))
        labels.append(sample.label)
    old_s, new_s = np.asarray(scores["old"]), np.asarray(scores["new"])
    return {"category": category, "images": len(labels), "mctq_onnx": str(mctq),
            "seconds_old": float(np.sum(times["old"])), "seconds_new": float(np.sum(times["new"])),
            "median_ms_old": 1e3 * float(np.median(times["old"])),
            "median_ms_new": 1e3 * float(np.median(times["new"])),
            "score_max_abs": float(np.abs(old_s - new_s).max()), "patch_max_abs": patch_diff,
            "identical_scores": int(np.sum(old_s == new_s)),
            "auroc_old": image_auroc(labels, old_s), "auroc_new": image_auroc(labels, new_s),
            "record_vs_new_max_abs": record_diff, "compile_agreement": details.get("qdq", {}).get("agreement")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="the small demo (smoke test)")
    parser.add_argument("--limit", type=int, default=None, help="test images per category (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads for both paths")
    parser.add_argument("--out", type=Path, default=None, help="keep the run record and JSON here")
    args = parser.parse_args()
    spec = DemoSpec(size=128, n_train=6, n_test_good=3, n_test_per_defect=2) if args.small else DemoSpec()
    data = demo_data(spec)
    backbone = demo_backbone(DEMO_SEED, data, spec)
    checkpoints = demo_checkpoints(data, spec, backbone, None)
    work = args.out or Path(tempfile.mkdtemp(prefix="int8-emulation-"))
    results = work / "results"
    results.mkdir(parents=True, exist_ok=True)
    before = set(results.iterdir())
    tick = time.perf_counter()
    bench(["run", "--device", "imx500", "--emulate", "--model", "tinyglass", "--dataset", "mvtec", "--data-root",
           str(data), "--checkpoint", str(checkpoints), "--backbone-weights", str(backbone), "--out", str(results),
           *(["--limit", str(args.limit)] if args.limit else [])], work)
    run_seconds = time.perf_counter() - tick
    run_dir = next(iter(set(results.iterdir()) - before))
    categories = list(load_run(run_dir).manifest["model"]["categories"])
    rows = [compare_category(run_dir, c, data, args.threads) for c in categories]
    old, new = sum(r["seconds_old"] for r in rows), sum(r["seconds_new"] for r in rows)
    summary = {"run": str(run_dir), "run_seconds": round(run_seconds, 1), "threads": args.threads,
               "images": sum(r["images"] for r in rows), "seconds_old": old, "seconds_new": new,
               "speedup": old / new, "score_max_abs": max(r["score_max_abs"] for r in rows),
               "patch_max_abs": max(r["patch_max_abs"] for r in rows),
               "mean_auroc_old": float(np.mean([r["auroc_old"] for r in rows])),
               "mean_auroc_new": float(np.mean([r["auroc_new"] for r in rows])), "categories": rows}
    print("| category | images | old ms/img (p50) | new ms/img (p50) | speed-up | score max abs diff | "
          "patch max abs diff | identical scores | AUROC old | AUROC new | record vs new |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['category']} | {r['images']} | {r['median_ms_old']:.0f} | {r['median_ms_new']:.1f} | "
              f"{r['seconds_old'] / r['seconds_new']:.1f}x | {r['score_max_abs']:.3g} | {r['patch_max_abs']:.3g} | "
              f"{r['identical_scores']}/{r['images']} | {100 * r['auroc_old']:.2f} | {100 * r['auroc_new']:.2f} | "
              f"{r['record_vs_new_max_abs']:.3g} |")
    print(f"\nall {summary['images']} images: old {old:.1f} s, new {new:.1f} s, speed-up {summary['speedup']:.1f}x "
          f"(target >= 10x: {'met' if summary['speedup'] >= 10 else 'missed'}); mean image AUROC old "
          f"{100 * summary['mean_auroc_old']:.2f}, new {100 * summary['mean_auroc_new']:.2f}; emulated run "
          f"{run_seconds:.1f} s")
    (work / "int8_emulation.json").write_text(json.dumps(summary, indent=2))
    print(f"record and JSON in {work}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
