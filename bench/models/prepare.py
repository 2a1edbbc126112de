"""Host-side model preparation: checkpoint -> PyTorch module -> checked, cached ONNX export.

This is the only part of a run that needs torch; a device given an exported graph does not.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.devices.base import ExportedModel
from bench.errors import BadInput
from bench.models.cards import ModelCard
from bench.models.checkpoints import resolve_checkpoint
from bench.models.export import ExportInfo, export_key, exported_graph, exported_model
from bench.models.families import Family, family
from bench.records.atomic import write_json
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
    backbone: Path | None  # None for an exported model: its weights are inside the graph
    backbone_sha256: str | None
    export: ExportInfo
    params: int
    macs: int
    module: Any = None  # the loaded PyTorch module, for toolchains that quantize from it
    module_revision: str = ""  # what the module's code is (sources or file sha256); "" when there is no module


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The checkpoint's dict; a file torch cannot read is named by what it looks like, not by torch's error."""
    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        raise BadInput(f"{path}: {unreadable_checkpoint(path, exc)}") from exc
    if not isinstance(data, dict):
        raise BadInput(f"{path}: checkpoint is a {type(data).__name__}, expected a dict (torch.save of a dict, as "
                       "bench fit and the official TinyGLASS code write)")
    return data


def unreadable_checkpoint(path: Path, error: Exception) -> str:
    """What a file that torch.load refused looks like, and what a checkpoint is."""
    expected = "expected a PyTorch checkpoint (torch.save's zip archive)"
    with open(path, "rb") as fh:
        head = fh.read(64)
    reason = next(iter(str(error).splitlines()), "").split(". ")[0] or type(error).__name__
    if not head:
        return f"the file is empty (0 bytes); {expected}"
    if head.startswith(b"PK\x03\x04"):
        return f"a zip archive torch.load cannot read (truncated or not torch.save's: {reason})"
    if head.startswith(b"\x80"):
        return f"a pickle torch.load cannot read with weights_only=True ({reason})"
    if path.suffix == ".onnx" or (head.startswith(b"\x08") and b"pytorch" in head):
        return "an ONNX model, not a checkpoint; run an exported model with --model PATH (no --checkpoint)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"not a PyTorch checkpoint (starts with bytes {head[:8].hex(' ')}); {expected}"
    if text.isprintable() or text.strip().isprintable():
        return f"a text file (starts {text.strip()[:30]!r}); {expected}"
    return f"not a PyTorch checkpoint ({reason}); {expected}"


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
            parity_inputs: list[np.ndarray] | Callable[[], list[np.ndarray]], export_root: Path,
            need_module: bool = True) -> PreparedModel:
    """The category's checked export. Without ``need_module`` (a device that runs the ONNX, not one that
    quantizes the PyTorch module) an export this checkpoint already passed is found without torch: importing
    it and building the network cost ~7 s plus 0.3 s a category, a fifth of a warm run on MVTec AD.
    ``parity_inputs`` may be a function giving them, called only when they are used."""
    if card.exported:
        return prepare_exported(card, checkpoint_arg, category, _given(parity_inputs), export_root)
    ckpt_path = resolve_checkpoint(card, checkpoint_arg, category)
    ckpt_sha, revision = file_sha256(ckpt_path), model_code_revision()
    key = _known_key(card, ckpt_sha, backbone_arg, revision)
    if not need_module and (known := _known_export(card, category, ckpt_path, ckpt_sha, revision, key, export_root)):
        return known
    parity_inputs = _given(parity_inputs)
    require_torch()
    fam = family(card.family)
    from bench.models.checkpoint_layouts import EXPECTED, refuse_foreign

    checkpoint = load_checkpoint(ckpt_path)
    if card.family in EXPECTED:  # what the file is, before looking for the backbone it was fitted on
        refuse_foreign(checkpoint, str(ckpt_path), card.family)
    backbone = backbone_for(fam, checkpoint, backbone_arg, ckpt_path)
    model = fam.build(backbone)
    fam.load(model, checkpoint, str(ckpt_path))
    backbone_sha = file_sha256(backbone)
    export = card.data["export"]
    info = exported_model(
        model,
        {"card": card.fingerprint(), "checkpoint": ckpt_sha, "backbone": backbone_sha, "code": revision},
        card.recipe.input_shape, int(export.get("opset", 18)), export.get("tolerance", {}), parity_inputs,
        export_root,
    )
    from bench.models.complexity import graph_complexity

    params = sum(p.numel() for p in model.parameters())
    macs = graph_complexity(info.exported.onnx_path).macs
    prepared = PreparedModel(category, ckpt_path, ckpt_sha, backbone, backbone_sha, info, params, macs, model,
                             revision)
    _remember_export(prepared, key, export_root)
    return prepared


def _given(inputs: list[np.ndarray] | Callable[[], list[np.ndarray]]) -> list[np.ndarray]:
    return inputs() if callable(inputs) else inputs


def _known_key(card: ModelCard, checkpoint_sha: str, backbone_arg: Path | None, revision: str) -> str | None:
    """What decides a torch-free hit: the card, the checkpoint's bytes, the backbone asked for, the model code and
    the installed torch (its version from package metadata: importing it is the cost being saved). None when
    torch is not installed: the slow path then says which extra is missing."""
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None
    return export_key({"card": card.fingerprint(), "checkpoint": checkpoint_sha, "code": revision,
                       "backbone_arg": str(backbone_arg.resolve()) if backbone_arg else None, "torch": torch_version})


def _known_export(card: ModelCard, category: str, ckpt_path: Path, ckpt_sha: str, revision: str, key: str | None,
                  export_root: Path) -> PreparedModel | None:
    """The export an earlier run prepared from these inputs, when its backbone and graph are unchanged on disk."""
    entry = export_root / "prepared" / f"{key}.json"
    if key is None or not entry.is_file():
        return None
    try:
        known = json.loads(entry.read_text(encoding="utf-8"))
        backbone, onnx = Path(known["backbone"]), Path(known["onnx"])
        if file_sha256(backbone) != known["backbone_sha256"] or file_sha256(onnx) != known["onnx_sha256"]:
            return None
        exported = exported_graph(onnx, known["onnx_sha256"], tuple(card.recipe.input_shape))
        return PreparedModel(category, ckpt_path, ckpt_sha, backbone, known["backbone_sha256"],
                             ExportInfo(exported, known["parity"], True), int(known["params"]), int(known["macs"]),
                             None, revision)
    except (OSError, ValueError, KeyError, TypeError):  # a damaged entry is a miss, never an error
        return None


def _remember_export(prepared: PreparedModel, key: str | None, export_root: Path) -> None:
    if key is None or prepared.backbone is None:
        return
    exported = prepared.export.exported
    with contextlib.suppress(OSError):  # an unwritable cache only costs the next run torch's import
        write_json(export_root / "prepared" / f"{key}.json", {
            "backbone": str(prepared.backbone.resolve()), "backbone_sha256": prepared.backbone_sha256,
            "onnx": str(exported.onnx_path.resolve()), "onnx_sha256": exported.sha256,
            "parity": prepared.export.parity, "params": prepared.params, "macs": prepared.macs})


def prepare_exported(card: ModelCard, checkpoint_arg: Path, category: str, parity_inputs: list[np.ndarray],
                     export_root: Path) -> PreparedModel:
    """An exported model as it is: the category's ONNX checked against the card and run on the first images
    (``bench.models.exported``); its sha256 is the checkpoint's, since the weights are inside."""
    import onnxruntime as ort

    from bench.models.complexity import graph_complexity
    from bench.models.exported import (
        check_graph,
        check_outputs,
        export_sha256,
        external_files,
        graph_facts,
        load_graph,
        load_module,
        module_path,
        normalises_input,
        prepared_graph,
    )
    from bench.models.postprocess import decode

    path = resolve_checkpoint(card, checkpoint_arg, category)
    model = load_graph(path)
    facts = graph_facts(path, model)
    input_shape = card.recipes.for_category(category).input_shape
    check_graph(card, facts, input_shape)
    data_files = external_files(model, path)
    sha = export_sha256(path, data_files)
    graph = prepared_graph(path, facts, input_shape, export_root / "exported", data_files, sha)
    try:
        session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        decoded = [decode(dict(zip(names, session.run(names, {facts.input_name: batch}), strict=True)),
                          card.postprocess) for batch in parity_inputs]
    except Exception as exc:  # onnxruntime's own errors: an op it lacks, a graph that fails on real input
        raise BadInput(f"{path}: ONNX Runtime cannot run it on the first images ({str(exc).splitlines()[0]})") \
            from exc
    check_outputs(card, path, decoded, normalises_input(model if graph == path else load_graph(graph), facts))
    complexity = graph_complexity(graph)
    exported = ExportedModel(graph, file_sha256(graph), facts.input_name, tuple(input_shape), tuple(facts.outputs))
    module = module_path(card)
    return PreparedModel(category, path, sha, None, None,
                         ExportInfo(exported, {}, graph != path), complexity.params, complexity.macs,
                         load_module(card), file_sha256(module) if module else "")
