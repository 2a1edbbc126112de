"""Input-stream feed rate against a plain PIL loop and against the host TinyGLASS consume rate.

On a generated MVTec-sized category (1024x1024 PNG sources resized to 256), measured in one run:
  1. a plain single-threaded PIL loop (decode, resize, normalise): the baseline;
  2. the harness's prefetching stream (``InputLoader`` in ``prefetch`` workers);
  3. the host device's TinyGLASS consume rate (ONNX Runtime CPU, preloaded tensors);
  4. the stream feeding the device for real: the share of wall time the device waited for input.
Goals (datasets issue): feed / consume >= 1.5, so the host is never starved.

    python benchmarks/stream_rate.py [--images 64] [--workers 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench.data.loader import InputLoader
from bench.data.mvtec import MVTecDataset
from bench.data.preprocess import IMAGENET_MEAN, IMAGENET_STD, Recipe
from bench.data.stream import prefetch
from bench.devices.base import ExportedModel
from bench.devices.host.adapter import HostDevice
from bench.devices.profiles import load_profile
from bench.util import file_sha256

RECIPE = Recipe(resize=(256, 256), crop=(256, 256))


def make_category(root: Path, count: int, size: int = 1024) -> list[Path]:
    """Textured, noisy 1024x1024 PNGs, compressed like MVTec's (about 1-2 MB each)."""
    rng = np.random.default_rng(0)
    folder = root / "widget" / "test" / "good"
    folder.mkdir(parents=True)
    paths = []
    for i in range(count):
        coarse = Image.fromarray(np.clip(rng.normal(128, 40, (64, 64, 3)), 0, 255).astype(np.uint8))
        fine = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC)).astype(np.int16)
        fine = fine + rng.integers(-6, 7, fine.shape)
        path = folder / f"{i:03d}.png"
        Image.fromarray(np.clip(fine, 0, 255).astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def plain_loop(paths: list[Path]) -> float:
    """The baseline a user would write: one thread, PIL then numpy."""
    mean, std = np.asarray(IMAGENET_MEAN, np.float32), np.asarray(IMAGENET_STD, np.float32)
    start = time.perf_counter()
    for path in paths:
        with Image.open(path) as img:
            rgb = img.convert("RGB").resize((256, 256), Image.Resampling.BILINEAR)
        arr = (np.asarray(rgb, np.float32) / np.float32(255.0) - mean) / std
        np.ascontiguousarray(arr.transpose(2, 0, 1)[None])
    return len(paths) / (time.perf_counter() - start)


def stream(samples: list, workers: int) -> float:
    loader = InputLoader(RECIPE)
    start = time.perf_counter()
    for _ in prefetch(samples, loader, workers=workers, depth=8):
        pass
    return len(samples) / (time.perf_counter() - start)


def tinyglass_onnx(folder: Path) -> ExportedModel:
    from bench.models import tinyglass
    from bench.models.backbones import save_random_resnet18
    from bench.models.export import OUTPUT_NAMES, export_onnx

    model = tinyglass.build(save_random_resnet18(folder / "r18.pth", seed=0))
    path = folder / "tinyglass.onnx"
    export_onnx(model, RECIPE.input_shape, path, 18)
    return ExportedModel(path, file_sha256(path), "image", RECIPE.input_shape, OUTPUT_NAMES)


def consume(session, tensors: list[np.ndarray], repeats: int = 2) -> float:
    for t in tensors[:5]:
        session.infer(t)
    start = time.perf_counter()
    for _ in range(repeats):
        for t in tensors:
            session.infer(t)
    return repeats * len(tensors) / (time.perf_counter() - start)


def fed(session, samples: list, workers: int) -> tuple[float, float]:
    """Stream feeding the device: (images/s, share of wall time spent waiting for input)."""
    loader = InputLoader(RECIPE)
    waited = 0.0
    start = time.perf_counter()
    mark = start
    for _, loaded in prefetch(samples, loader, workers=workers, depth=8):
        got = time.perf_counter()
        waited += got - mark
        session.infer(loaded.tensor)
        mark = time.perf_counter()
    total = time.perf_counter() - start
    return len(samples) / total, waited / total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = make_category(root / "data", args.images)
        samples = MVTecDataset(root / "data").samples("widget", "test")
        plain = plain_loop(paths)
        streamed = stream(samples, args.workers)
        device = HostDevice(load_profile("host"))
        artifact = device.compile(tinyglass_onnx(root), root / "artifact")
        session = device.open(artifact)
        tensors = [InputLoader(RECIPE)(s).tensor for s in samples]
        consumed = consume(session, tensors)
        rate, waiting = fed(session, samples, args.workers)
        session.close()
    print(f"images: {args.images} x 1024x1024 PNG -> 256x256, workers: {args.workers}")
    print(f"plain PIL loop      {plain:7.1f} img/s")
    print(f"prefetching stream  {streamed:7.1f} img/s   stream/plain = {streamed / plain:.2f}x")
    print(f"host TinyGLASS      {consumed:7.1f} img/s   feed/consume = {streamed / consumed:.2f}x (goal >= 1.5)")
    print(f"stream -> device    {rate:7.1f} img/s   device waited for input {100 * waiting:.1f} % of the time")
    return 0 if streamed / consumed >= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
