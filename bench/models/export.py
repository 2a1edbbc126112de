"""ONNX export with static shapes, checked against PyTorch on real inputs before it is used.

Exported graphs are cached by (model card, checkpoint, backbone weights, torch version,
opset); the parity figures travel with the graph into every run's manifest.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.devices.base import ExportedModel
from bench.errors import BenchError
from bench.records.atomic import replace_atomically, write_json
from bench.util import file_sha256

INPUT_NAME = "image"
OUTPUT_NAMES = ("score", "patch_scores")


class ExportParityError(BenchError):
    """The ONNX graph does not reproduce PyTorch within the card's tolerance."""


@dataclass(frozen=True)
class ExportInfo:
    exported: ExportedModel
    parity: dict[str, float]
    cached: bool


def export_key(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def export_onnx(module: Any, input_shape: tuple[int, ...], path: Path, opset: int) -> None:
    """Write ``module`` as a self-contained ONNX file (weights inside, no external data)."""
    import torch

    example = torch.zeros(input_shape, dtype=torch.float32)

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            # timm's TinyViT fills a per-device attention-bias cache on its first eval forward; torch.export
            # says so in a paragraph of module paths. The bias is a constant of the graph either way, and the
            # parity check below compares the export with PyTorch.
            warnings.filterwarnings("ignore", message=r"The tensor attributes .* were assigned during export",
                                    category=UserWarning)
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                external_data=False,
                verbose=False,
            )
        program.save(str(tmp), external_data=False)

    replace_atomically(path, write)


def parity(module: Any, onnx_path: Path, inputs: list[np.ndarray]) -> dict[str, float]:
    """Max absolute difference per output between PyTorch and ONNX Runtime on the given inputs."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst = dict.fromkeys(OUTPUT_NAMES, 0.0)
    with torch.inference_mode():
        for batch in inputs:
            reference = [t.numpy() for t in module(torch.from_numpy(batch))]
            got = session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch})
            for name, ref, out in zip(OUTPUT_NAMES, reference, got, strict=True):
                worst[name] = max(worst[name], float(np.max(np.abs(ref.astype(np.float64) - out))))
    return worst


def exported_model(
    module: Any, key_parts: dict[str, Any], input_shape: tuple[int, ...], opset: int,
    tolerance: dict[str, float], parity_inputs: list[np.ndarray], root: Path,
) -> ExportInfo:
    """The cached export for these key parts, or a fresh one that passed the parity check."""
    import torch

    key = export_key({**key_parts, "torch": torch.__version__, "opset": opset, "shape": input_shape})
    folder = root / key
    onnx_path, info_path = folder / "model.onnx", folder / "export.json"
    if info_path.exists() and onnx_path.exists():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        if file_sha256(onnx_path) == info["sha256"]:
            return ExportInfo(exported_graph(onnx_path, info["sha256"], input_shape), info["parity"], True)
    module = module.eval()
    export_onnx(module, input_shape, onnx_path, opset)
    diffs = parity(module, onnx_path, parity_inputs)
    for name, diff in diffs.items():
        limit = float(tolerance.get(name, 1e-4))
        if not diff <= limit:
            onnx_path.unlink(missing_ok=True)
            raise ExportParityError(f"ONNX export differs from PyTorch on '{name}': max |diff| {diff:.3g} > {limit:g}")
    sha = file_sha256(onnx_path)
    write_json(info_path, {"sha256": sha, "parity": diffs, "parity_images": len(parity_inputs), "key": key_parts})
    return ExportInfo(exported_graph(onnx_path, sha, input_shape), diffs, False)


def exported_graph(path: Path, sha: str, input_shape: tuple[int, ...]) -> ExportedModel:
    """The graph this exporter writes, as a device receives it: its input and output names are fixed here."""
    return ExportedModel(path, sha, INPUT_NAME, tuple(input_shape), OUTPUT_NAMES)
