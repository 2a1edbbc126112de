"""Representative data for INT8 post-training quantization: which images calibrate the ranges.

The choice decides whether the quantized output can represent anomalous scores at all: MCT sets
each activation's range from what calibration shows it, so a set of normal images alone caps the
sigmoid output near the normal range and every clear anomaly lands on the same rail (the demo's
fabric put 22 of 28 scores at 255/512). Three choices, recorded with the artifact:

- ``train-synthetic`` (default): normal training images and as many synthetic anomalies made from
  them (image-level synthesis as GLASS does it, ``bench.models.synthetic``); no test image is seen.
- ``train-normal``: normal training images only (what MCT examples do; saturates detectors).
- ``paper-test``: the TinyGLASS paper's protocol (``run_quant_mvtec_all.py``): the first 10 images of a
  ``random_split`` of 20 % of the test set with seed 0, anomalies included, evaluated on that same test
  set, and the IMX500 TPC v1. It reproduces the published INT8 figures and leaks the test set.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.data.samples import Sample
from bench.errors import BadInput

CALIBRATIONS = ("train-synthetic", "train-normal", "paper-test")
DEFAULT_CALIBRATION = "train-synthetic"
PAPER_SPLIT = 0.2   # run_quant_mvtec_all.py: VAL_SPLIT
PAPER_IMAGES = 10   # run_quant_mvtec_all.py: N_CALIB
PAPER_TPC = "1.0"   # run_quant_mvtec_all.py: target_platform_version='v1'
SYNTHETIC_SEED = 0


@dataclass(frozen=True)
class LasConfig:
    """The synthesis settings for calibration anomalies (one per normal image)."""

    las_per_image: int = 1
    las_area: tuple[float, float] = (0.01, 0.06)
    las_blend: tuple[float, float] = (0.3, 0.9)


@dataclass(frozen=True)
class Calibration:
    """A chosen representative set: ``images(count)`` gives the tensors; ``key`` identifies them for caches."""

    mode: str
    key: str
    tpc_version: str | None  # None: the adapter's default TPC
    images: Callable[[int], list[np.ndarray]]
    description: str

    def record(self, count: int) -> dict[str, object]:
        return {"mode": self.mode, "description": self.description, "key": self.key,
                "tpc_version": self.tpc_version, "requested_images": count}


def check_mode(mode: str) -> str:
    if mode not in CALIBRATIONS:
        raise BadInput(f"--calibration: unknown '{mode}' (one of {', '.join(CALIBRATIONS)})")
    return mode


def _key(mode: str, samples: list[Sample]) -> str:
    digest = hashlib.sha256(mode.encode())
    for sample in samples:
        digest.update(sample.image_id.encode() + b"\0")
    return digest.hexdigest()


def paper_test_subset(test: list[Sample]) -> list[Sample]:
    """The images run_quant_mvtec_all.py calibrates on: torch's random_split(seed 0) of 20 %, first 10."""
    import torch

    size = max(1, int(PAPER_SPLIT * len(test)))
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(0)).tolist()
    return [test[i] for i in order[:size][:PAPER_IMAGES]]


def choose(mode: str, train: list[Sample], test: list[Sample],
           load: Callable[[Sample], np.ndarray], where: str) -> Calibration:
    """The representative set of ``mode`` for one category (``train``: its normal training images)."""
    check_mode(mode)
    if mode == "paper-test":
        if not test:
            raise BadInput(f"{where}: --calibration paper-test needs the category's test images")
        chosen = paper_test_subset(test)
        return Calibration(mode, _key(mode, chosen), PAPER_TPC, lambda count: [load(s) for s in chosen],
                           f"{len(chosen)} test images (anomalies included) as the TinyGLASS paper's "
                           f"run_quant_mvtec_all.py draws them, IMX500 TPC v{PAPER_TPC}: leaks the test set")
    if not train:
        raise BadInput(f"{where}: INT8 quantization needs normal training images as representative data")

    def normal(count: int) -> list[np.ndarray]:
        step = max(1, len(train) // count)
        return [load(s) for s in train[::step][:count]]

    if mode == "train-normal":
        return Calibration(mode, _key(mode, train), None, normal, "normal training images only")

    def with_synthetic(count: int) -> list[np.ndarray]:
        from bench.models.synthetic import synthesize

        base = normal(max(1, count - count // 2))
        fakes, _ = synthesize(np.concatenate(base), LasConfig(), np.random.default_rng(SYNTHETIC_SEED))
        mixed = [t for pair in zip(base, fakes[:, None], strict=False) for t in pair]
        return [np.ascontiguousarray(t, dtype=np.float32) for t in mixed[:count]]

    return Calibration(mode, _key(mode, train), None, with_synthetic,
                       "normal training images and as many synthetic anomalies made from them (no test image)")
