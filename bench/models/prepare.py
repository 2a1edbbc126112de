"""Host-side model preparation: checkpoint -> PyTorch module -> checked, cached ONNX export.

This is the only part of a run that needs torch; a device given an exported graph does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import BadInput
from bench.models.cards import ModelCard
from bench.models.checkpoints import resolve_checkpoint
from bench.models.export import ExportInfo, exported_model
from bench.models.families import Family, family
from bench.util import file_sha256, source_revision


def require_torch() -> None:
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError as exc:
        raise BadInput(
            f"exporting a model needs the 'export' extra ({exc.name} is missing): pip install -e '.[export]'"
        ) from exc


@dataclass(frozen=True)
class PreparedModel:
    category: str
    checkpoint: Path
    checkpoint_sha256: str
    backbone: Path
    backbone_sha256: str
    export: ExportInfo
    params: int
    macs: int
    module: Any = None  # the loaded PyTorch module, for toolchains that quantize from it


def load_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise BadInput(f"{path}: cannot read checkpoint ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise BadInput(f"{path}: checkpoint is a {type(data).__name__}, expected a dict")
    return data


def backbone_for(fam: Family, checkpoint: dict[str, Any], given: Path | None, source: Path) -> Path:
    """--backbone-weights, else the weights the checkpoint was fitted on, else the family's default."""
    meta = checkpoint.get("meta") or {}
    if given is None and meta.get("backbone_weights"):
        recorded = Path(meta["backbone_weights"])
        given = recorded if recorded.is_absolute() else source.parent / recorded
    path = fam.resolve_backbone(given)
    expected = meta.get("backbone_sha256")
    if expected and file_sha256(path) != expected:
        raise BadInput(f"{source}: fitted on backbone weights {expected[:12]}…, but {path} differs")
    return path


def model_code_revision() -> str:
    """Source revision of the networks, backbones and exporter (``bench.models``): part of the export's cache
    key, so an edited network never reuses an old ONNX, nor the device artifacts keyed on its sha256."""
    return source_revision("bench.models")


def prepare(card: ModelCard, checkpoint_arg: Path, category: str, backbone_arg: Path | None,
            parity_inputs: list[np.ndarray], export_root: Path) -> PreparedModel:
    require_torch()
    fam = family(card.family)
    ckpt_path = resolve_checkpoint(card, checkpoint_arg, category)
    checkpoint = load_checkpoint(ckpt_path)
    backbone = backbone_for(fam, checkpoint, backbone_arg, ckpt_path)
    model = fam.build(backbone)
    fam.load(model, checkpoint, str(ckpt_path))
    ckpt_sha, backbone_sha = file_sha256(ckpt_path), file_sha256(backbone)
    export = card.data["export"]
    info = exported_model(
        model,
        {"card": card.fingerprint(), "checkpoint": ckpt_sha, "backbone": backbone_sha, "code": model_code_revision()},
        card.recipe.input_shape, int(export.get("opset", 18)), export.get("tolerance", {}), parity_inputs,
        export_root,
    )
    from bench.models.complexity import graph_complexity

    params = sum(p.numel() for p in model.parameters())
    macs = graph_complexity(info.exported.onnx_path).macs
    return PreparedModel(category, ckpt_path, ckpt_sha, backbone, backbone_sha, info, params, macs, model)
