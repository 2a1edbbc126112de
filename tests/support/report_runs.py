"""Complete run records with every manifest field the report shows, built directly (no device)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.metrics.summary import summarize
from bench.records import RunWriter, load_run

NS = 1_000_000_000
CATEGORIES = ("bottle", "cable")


def make_run(root: Path, run_id: str, device: str, kind: str, created: str, noise: float = 0.0,
             emulated: bool = False, latency_ms: float = 20.0, watts: float | None = None,
             categories: tuple[str, ...] = CATEGORIES, perturb: Callable | None = None,
             model: dict | None = None, artifact: dict | None = None, pixel: bool = False,
             role: str | None = None, status: str = "complete", error: str | None = None,
             dataset: dict | None = None) -> Path:
    """A complete run; ``perturb(scores, labels)`` alters a category's scores, ``model`` adds manifest fields,
    ``artifact`` is every category's artifact details, ``pixel`` adds maps and masks for pixel metrics; ``role``
    defaults to the shipped profiles' (reference for ``host``, else device). Another ``status`` (failed,
    interrupted) ends it as the harness ends a run that broke: the first category's rows recorded, ``error``
    given, no metrics."""
    rng = np.random.default_rng(zlib.crc32(run_id.encode()))
    entry = {"onnx_sha256": "o" * 64} | ({"artifact_details": artifact} if artifact is not None else {})
    manifest = {
        "command": "synthetic", "created_at": created,
        "device": {"profile": device, "kind": kind, "emulated": emulated, "precision": "fp32",
                   "role": role or ("reference" if device == "host" else "device"),
                   "environment": {"os": "linux", "runtime": {"onnxruntime": "1.31"}, "settings": {},
                                   "power_mode": "MAXN" if kind == "jetson" else None}},
        "model": {"name": "tinyglass", "params": 3_129_280, "macs": 2_201_000_000, "backbone_weights": "r18.pth",
                  "backbone_sha256": "b" * 64,
                  "categories": {c: {"checkpoint_sha256": c[0] * 64, **entry} for c in categories}, **(model or {})},
        "dataset": {"name": "mvtec", "root": str(root / "nowhere"), "categories": list(categories), "image_count": 80,
                    "index_sha256": "i" * 64, **(dataset or {})},
        "measurement": {"warmup": 1}, "harness": {"version": "0.1.0", "commit": "abc", "dirty": False},
    }
    writer = RunWriter.create(root, manifest, run_id)
    base = np.random.default_rng(7)
    t = NS
    maps: dict[str, dict[str, np.ndarray]] = {}
    masks: dict[str, dict[str, np.ndarray]] = {}
    for number, category in enumerate(categories):
        if status != "complete" and number > 0:
            break
        labels = np.array([0] * 20 + [1] * 20)
        scores = base.normal(0, 1, 40) + 1.2 * labels + rng.normal(0, noise, 40)
        scores = perturb(scores, labels) if perturb else scores
        if pixel:
            truth = np.zeros((40, 8, 8), dtype=bool)
            truth[labels == 1, 2:5, 2:5] = True
            heat = np.random.default_rng(zlib.crc32(category.encode())).random((40, 8, 8)) + 0.6 * truth
            masks[category] = {f"{category}/{i:03d}.png": truth[i] for i in range(40)}
            maps[category] = {f"{category}/{i:03d}.png": heat[i] for i in range(40)}
        writer.append("images", [{"image_id": f"{category}/{i:03d}.png", "category": category, "defect_type": "x",
                                  "label": int(labels[i]), "input_sha256": f"{category}{i}", "score": float(scores[i]),
                                  "error": None} for i in range(40)])
        rows = []
        for _ in range(30):
            dur = int(latency_ms * 1e6 * rng.uniform(0.9, 1.1))
            rows.append({"category": category, "attempt": 0, "phase": "timed", "t_start_ns": t, "t_end_ns": t + dur,
                         "latency_ms": dur / 1e6, "device_ms": None})
            t += dur + 1000
        writer.append("latency", rows)
        writer.set_progress(category, timed_attempt=0)
        if watts is not None:
            ts = np.arange(rows[0]["t_start_ns"] - 10**7, t + 10**7, 10**6)
            writer.append("power", [{"t_ns": int(x), "rail": "VDD_IN", "volts": None, "amps": None, "watts": watts}
                                    for x in ts])
    if status != "complete":
        writer.finish(status, None, error=error)
        return root / run_id
    writer.finish("complete", None)
    record = load_run(root / run_id)
    metrics = summarize(record.images, record.latency, maps, masks or dict.fromkeys(categories),
                        dict.fromkeys(categories, 0),
                        gmac=2.201, power=record.power if watts else None, rails=["VDD_IN"] if watts else None)
    (root / run_id / "metrics.json").write_text(json.dumps(metrics))
    return root / run_id


RAIL = 255 / 512
INT8 = {"quantization": {"quantizer_nodes": {"ActivationPOTQuantizer": 9}, "calibration": {"mode": "train-normal"},
                         "output_rails": {"score": RAIL, "patch_scores": 0.99609375}}}
