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
from bench.util import file_sha256


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


def load_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise BadInput(f"{path}: cannot read checkpoint ({str(exc).splitlines()[0]})") from exc
    if not isinstance(data, dict):
        raise BadInput(f"{path}: checkpoint is a {type(data).__name__}, expected a dict")
    return data


def backbone_for(checkpoint: dict[str, Any], given: Path | None, source: Path) -> Path:
    """--backbone-weights, else the weights the checkpoint was fitted on, else the hub cache."""
    from bench.models.backbones import resolve_resnet18_weights

    meta = checkpoint.get("meta") or {}
    if given is None and meta.get("backbone_weights"):
        recorded = Path(meta["backbone_weights"])
        given = recorded if recorded.is_absolute() else source.parent / recorded
    path = resolve_resnet18_weights(given)
    expected = meta.get("backbone_sha256")
    if expected and file_sha256(path) != expected:
        raise BadInput(f"{source}: fitted on backbone weights {expected[:12]}…, but {path} differs")
    return path


def prepare(card: ModelCard, checkpoint_arg: Path, category: str, backbone_arg: Path | None,
            parity_inputs: list[np.ndarray], export_root: Path) -> PreparedModel:
    require_torch()
    from bench.models import tinyglass

    if card.family != "tinyglass":
        raise BadInput(f"{card.source}: model family '{card.family}' is not built in this version")
    ckpt_path = resolve_checkpoint(card, checkpoint_arg, category)
    checkpoint = load_checkpoint(ckpt_path)
    backbone = backbone_for(checkpoint, backbone_arg, ckpt_path)
    model = tinyglass.build(backbone)
    tinyglass.load_heads(model, checkpoint, str(ckpt_path))
    ckpt_sha, backbone_sha = file_sha256(ckpt_path), file_sha256(backbone)
    export = card.data["export"]
    info = exported_model(
        model,
        {"card": card.fingerprint(), "checkpoint": ckpt_sha, "backbone": backbone_sha},
        card.recipe.input_shape, int(export.get("opset", 18)), export.get("tolerance", {}), parity_inputs,
        export_root,
    )
    params = sum(p.numel() for p in model.parameters())
    return PreparedModel(category, ckpt_path, ckpt_sha, backbone, backbone_sha, info, params)
