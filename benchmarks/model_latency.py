"""Host latency of both models: ONNX Runtime CPU against PyTorch eager, and against the MAC floor.

Measured in one run on the same inputs: PyTorch eager (inference mode) and the harness's host
device (ONNX Runtime CPU, FP32, the recorded thread settings), median of repeated single-image
inferences after warm-up. The MAC floor is the model's graph MACs divided by this CPU's
measured FP32 GEMM rate (a large torch.mm), i.e. the latency if every MAC ran at matmul speed.

    python benchmarks/model_latency.py [--repeats 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.devices.host.adapter import HostDevice
from bench.devices.profiles import load_profile
from bench.models.cards import load_card
from bench.models.complexity import graph_complexity
from bench.models.export import exported_model
from bench.models.families import family


def median_ms(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def gemm_macs_per_s(n: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    ms = median_ms(lambda: torch.mm(a, b), repeats, warmup=2)
    return n**3 / (ms / 1000)


def measure(name: str, repeats: int, root: Path) -> dict:
    card = load_card(name)
    torch.manual_seed(0)
    model = family(card.family).build(None).eval()
    shape = card.recipe.input_shape
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    info = exported_model(model, {"bench": name}, shape, 18, card.data["export"].get("tolerance", {}), [x], root)
    macs = graph_complexity(info.exported.onnx_path).macs
    with torch.inference_mode():
        tx = torch.from_numpy(x)
        eager = median_ms(lambda: model(tx), repeats)
    device = HostDevice(load_profile("host"))
    session = device.open(device.compile(info.exported, root / f"{name}-artifact"))
    host = median_ms(lambda: session.infer(x), repeats)
    session.close()
    return {"model": name, "gmac": macs / 1e9, "eager_ms": eager, "ort_ms": host}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--models", default="tinyglass,edgezsad")
    args = parser.parse_args()
    torch.set_num_threads(HostDevice(load_profile("host")).resolved_options()["intra_op_num_threads"])
    peak = gemm_macs_per_s()
    print(f"FP32 GEMM rate (torch.mm 2048^3, {torch.get_num_threads()} threads): {peak / 1e9:.1f} GMAC/s")
    print(f"{'model':<10}{'GMAC':>8}{'eager ms':>10}{'ORT ms':>9}{'eager/ORT':>11}{'floor ms':>10}{'ORT/floor':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            r = measure(name, args.repeats if name == "tinyglass" else max(3, args.repeats // 4), Path(tmp))
            floor = r["gmac"] * 1e9 / peak * 1000
            print(f"{name:<10}{r['gmac']:>8.2f}{r['eager_ms']:>10.1f}{r['ort_ms']:>9.1f}"
                  f"{r['eager_ms'] / r['ort_ms']:>10.2f}x{floor:>10.1f}{r['ort_ms'] / floor:>10.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
