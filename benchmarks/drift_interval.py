"""The drift interval at MVTec AD scale: the vectorised paired bootstrap against a plain resampling loop.

``auroc_difference_interval`` draws 2000 label-stratified resamples and scores each by sorting once and
summing counts (O(B n)). The baseline, measured in the same run, is the straightforward bootstrap:
resample the image indices and call scikit-learn's ``roc_auc_score`` twice per resample (timed on
``--loop-resamples`` resamples and scaled to 2000). Cases: one category of 1,725 images (1,000
normal, 725 anomalous; the worst case for one call), and MVTec AD's 15 test sets (467 normal and
1,258 anomalous images) as ``bench compare`` runs them, one call per category plus the mean. Goal:
the interval of a whole MVTec AD comparison in well under a second, and both standard deviations of
the resampled differences within Monte Carlo error of each other.

    python benchmarks/drift_interval.py [--loop-resamples 200]
"""

from __future__ import annotations

import argparse
import time
import zlib

import numpy as np
from sklearn.metrics import roc_auc_score

from bench.metrics.drift import BOOTSTRAP_RESAMPLES, auroc_difference_interval, mean_interval

# MVTec AD test sets: (normal, anomalous) images per category, 1,725 in all
MVTEC = {"bottle": (20, 63), "cable": (58, 92), "capsule": (23, 109), "carpet": (28, 89), "grid": (21, 57),
         "hazelnut": (40, 70), "leather": (32, 92), "metal_nut": (22, 93), "pill": (26, 141), "screw": (41, 119),
         "tile": (33, 84), "toothbrush": (12, 30), "transistor": (60, 40), "wood": (19, 60), "zipper": (32, 119)}


def pair(normal: int, anomalous: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.r_[np.zeros(normal, int), np.ones(anomalous, int)]
    ref = rng.normal(size=labels.size) + 1.5 * labels
    return labels, ref, ref + rng.normal(scale=0.1, size=labels.size)


def loop_bootstrap(labels: np.ndarray, ref: np.ndarray, dev: np.ndarray, resamples: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    out = np.empty(resamples)
    for b in range(resamples):
        idx = np.r_[rng.choice(pos, pos.size), rng.choice(neg, neg.size)]
        out[b] = roc_auc_score(labels[idx], dev[idx]) - roc_auc_score(labels[idx], ref[idx])
    return out


def timed(fn, *args) -> tuple[object, float]:
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop-resamples", type=int, default=200)
    args = parser.parse_args()
    scale = BOOTSTRAP_RESAMPLES / args.loop_resamples

    labels, ref, dev = pair(1000, 725, 0)
    interval, fast = timed(auroc_difference_interval, labels, ref, dev)
    loop, slow = timed(loop_bootstrap, labels, ref, dev, args.loop_resamples)
    print(f"one category, 1,725 images: vectorised {fast:.3f} s; loop {slow * scale:.1f} s for "
          f"{BOOTSTRAP_RESAMPLES} resamples ({slow:.2f} s for {args.loop_resamples}); "
          f"speed-up {slow * scale / fast:.0f}x")
    print(f"  sd of the resampled difference: vectorised {np.std(interval.replicates) * 100:.4f} points, "
          f"loop {np.std(loop) * 100:.4f} points; "
          f"interval [{interval.ci_low * 100:+.3f}, {interval.ci_high * 100:+.3f}]")

    cases = {name: pair(normal, anomalous, zlib.crc32(name.encode())) for name, (normal, anomalous) in MVTEC.items()}
    start = time.perf_counter()
    intervals = [auroc_difference_interval(*case, seed=[0, zlib.crc32(name.encode())]) for name, case in cases.items()]
    mean = mean_interval(intervals)
    fast = time.perf_counter() - start
    start = time.perf_counter()
    for case in cases.values():
        loop_bootstrap(*case, args.loop_resamples)
    slow = (time.perf_counter() - start) * scale
    print(f"MVTec AD, 15 categories, {mean.images} images: vectorised {fast:.3f} s; loop {slow:.1f} s "
          f"(scaled); speed-up {slow / fast:.0f}x; mean interval [{mean.ci_low * 100:+.3f}, {mean.ci_high * 100:+.3f}] "
          f"points, floor {mean.floor * 100:.3f}")


if __name__ == "__main__":
    main()
