"""``bench inspect model``: parameters, MACs, input, ops and deployability, from the exported graph.

Complexity does not depend on the weights, so the architecture is exported with random
weights (no checkpoint or backbone file needed) and measured as the devices will see it;
torch's FlopCounterMode on the same module cross-checks the MAC count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.models.cards import ModelCard
from bench.models.export import exported_model
from bench.models.families import family
from bench.models.prepare import require_torch
from bench.paths import cache_dir
from bench.util import file_sha256

MAC_AGREEMENT = 0.01  # graph count and torch count must agree within 1 %


def inspect_exported(card: ModelCard) -> dict[str, Any]:
    """An exported model's figures from its graph alone (the first file, for a folder of per-category graphs)."""
    return inspect_graph(card.default_checkpoint(), card.name)


def inspect_graph(model: Path, name: str | None = None) -> dict[str, Any]:
    """Params, MACs, ops, outputs and deployability of an exported ONNX (file, or the first in a folder); no card
    is needed, since none of these depends on the preprocessing."""
    from bench.devices.deployability import lint
    from bench.models.cards import EXPORTED_FAMILY
    from bench.models.complexity import graph_complexity
    from bench.models.exported import export_name, graph_facts, onnx_files

    path = onnx_files(model)[0]
    facts = graph_facts(path)
    graph = graph_complexity(path)
    findings = lint(path)
    return {
        "model": name or export_name(path),
        "family": EXPORTED_FAMILY,
        "source": str(path),
        "input_shape": list(facts.input_shape),
        "params": {"graph": graph.params, "torch_module": None},
        "macs": graph.macs,
        "gmac": graph.macs / 1e9,
        "torch_macs": None,
        "macs_agree": None,
        "macs_by_op": graph.macs_by_op,
        "ops": graph.ops,
        "outputs": {name: list(shape) for name, shape in facts.outputs.items()},
        "onnx_sha256": file_sha256(path),
        "deployability": {target: [f.__dict__ for f in items] for target, items in findings.items()},
    }


def inspect_model(card: ModelCard, batch: int = 1) -> dict[str, Any]:
    if card.exported:
        return inspect_exported(card)
    require_torch()
    import torch

    from bench.devices.deployability import lint
    from bench.models.complexity import graph_complexity, torch_macs

    torch.manual_seed(0)
    model = family(card.family).build(None).eval()
    shape = (batch, *card.recipe.input_shape[1:])
    probe = [np.random.default_rng(0).standard_normal(shape).astype(np.float32)]
    export = card.data["export"]
    info = exported_model(model, {"card": card.fingerprint(), "weights": "random-seed0"}, shape,
                          int(export.get("opset", 18)), export.get("tolerance", {}), probe,
                          cache_dir() / "exports")
    graph = graph_complexity(info.exported.onnx_path)
    with torch.inference_mode():
        counted = torch_macs(model, torch.from_numpy(probe[0]))
    findings = lint(info.exported.onnx_path)
    return {
        "model": card.name,
        "family": card.family,
        "input_shape": list(shape),
        "params": {"graph": graph.params, "torch_module": sum(p.numel() for p in model.parameters())},
        "macs": graph.macs,
        "gmac": graph.macs / 1e9,
        "torch_macs": counted,
        "macs_agree": abs(graph.macs - counted) <= MAC_AGREEMENT * counted,
        "macs_by_op": graph.macs_by_op,
        "ops": graph.ops,
        "onnx_sha256": info.exported.sha256,
        "deployability": {target: [f.__dict__ for f in items] for target, items in findings.items()},
    }


def format_model_report(report: dict[str, Any]) -> str:
    from bench.devices.deployability import target_label

    if report["torch_macs"] is None:  # an exported model: the graph is all there is
        lines = [
            f"{report['model']} ({report['family']}: {report['source']}), input {report['input_shape']}",
            f"params: {report['params']['graph']:,} (graph)",
            f"MACs:   {report['gmac']:.3f} G per inference (graph)",
            "outputs: " + ", ".join(f"{name} {shape}" for name, shape in report["outputs"].items()),
        ]
    else:
        lines = [
            f"{report['model']} ({report['family']}), input {report['input_shape']}",
            f"params: {report['params']['torch_module']:,} (module), {report['params']['graph']:,} (graph)",
            f"MACs:   {report['gmac']:.3f} G per inference (graph), torch FlopCounterMode "
            f"{report['torch_macs'] / 1e9:.3f} G ({'agree' if report['macs_agree'] else 'DISAGREE'})",
        ]
    lines.append("ops:    " + ", ".join(f"{op} {n}" for op, n in sorted(report["ops"].items())))
    for target, findings in report["deployability"].items():
        label = target_label(target)
        if not findings:
            lines.append(f"{label}: ok")
        groups: dict[tuple[str, str], list[dict]] = {}
        for f in findings:
            groups.setdefault((f["severity"], f["op_type"]), []).append(f)
        for (severity, op), items in sorted(groups.items()):
            more = f" (and {len(items) - 1} more)" if len(items) > 1 else ""
            lines.append(f"{label}: {severity} {op} at {items[0]['node']}{more}: {items[0]['message']}")
    return "\n".join(lines)
