"""Pixel metrics at MVTec AD scale: exact pixel AUROC against scikit-learn, AUPRO time and memory.

1,725 maps of 256x256 (about 113 M pixels, the size of MVTec AD's test set at 256), float32,
with masks holding one to four blobs on a quarter of the images and none on the rest.
Measured in one run: scikit-learn's roc_auc_score (the baseline), ``pixel_auroc`` (goal >= 20x
faster, identical value), ``aupro`` (goal < 10 s) and the peak memory of each (tracemalloc, which
sees numpy's buffers). anomalib's AUPRO is not included: anomalib and its Lightning stack do not
install beside this project's torch pin.

    python benchmarks/pixel_metrics.py [--images 1725] [--skip-sklearn]
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc

import numpy as np

from bench.metrics.accuracy import aupro, pixel_auroc


def make(images: int, size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    masks = np.zeros((images, size, size), dtype=bool)
    for i in range(0, images, 4):
        for _ in range(rng.integers(1, 5)):
            cy, cx = rng.integers(20, size - 20, 2).tolist()
            r = int(rng.integers(3, 18))
            masks[i] |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    maps = rng.random((images, size, size), dtype=np.float32) * 0.8 + masks * rng.random(dtype=np.float32) * 0.6
    return masks, maps


def measure(fn, *args) -> tuple[float, float, float]:
    """(value, seconds, peak MiB above the inputs)."""
    tracemalloc.start()
    start = time.perf_counter()
    value = fn(*args)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return float(value), seconds, peak


def sklearn_auroc(masks: np.ndarray, maps: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(masks.ravel(), maps.ravel())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1725)
    parser.add_argument("--skip-sklearn", action="store_true")
    args = parser.parse_args()
    masks, maps = make(args.images)
    print(f"{args.images} maps of 256x256 = {maps.size / 1e6:.1f} M pixels, {masks.mean() * 100:.2f} % anomalous")
    ours, t_ours, m_ours = measure(pixel_auroc, masks, maps)
    print(f"pixel_auroc        {t_ours:7.2f} s  peak {m_ours:7.0f} MiB  value {ours:.12f}")
    pro, t_pro, m_pro = measure(aupro, masks, maps)
    print(f"aupro (FPR 0.3)    {t_pro:7.2f} s  peak {m_pro:7.0f} MiB  value {pro:.6f}  goal < 10 s: "
          f"{'met' if t_pro < 10 else 'MISSED'}")
    if args.skip_sklearn:
        return 0
    ref, t_ref, m_ref = measure(sklearn_auroc, masks, maps)
    print(f"sklearn roc_auc    {t_ref:7.2f} s  peak {m_ref:7.0f} MiB  value {ref:.12f}")
    ratio = t_ref / t_ours
    print(f"pixel_auroc speed-up {ratio:.1f}x (goal >= 20x: {'met' if ratio >= 20 else 'MISSED'}), "
          f"|difference| {abs(ours - ref):.2e}")
    return 0 if ratio >= 20 and t_pro < 10 and abs(ours - ref) < 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
