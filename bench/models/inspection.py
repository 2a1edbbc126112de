"""``bench inspect model``: parameters, MACs, input, ops and deployability, from the exported graph.

Complexity does not depend on the weights, so the architecture is exported with random
weights (no checkpoint or backbone file needed) and measured as the devices will see it;
torch's FlopCounterMode on the same module cross-checks the MAC count.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.models.cards import ModelCard
from bench.models.export import exported_model
from bench.models.families import family
from bench.models.prepare import require_torch
from bench.paths import cache_dir

MAC_AGREEMENT = 0.01  # graph count and torch count must agree within 1 %


def inspect_model(card: ModelCard, batch: int = 1) -> dict[str, Any]:
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

    lines = [
        f"{report['model']} ({report['family']}), input {report['input_shape']}",
        f"params: {report['params']['torch_module']:,} (module), {report['params']['graph']:,} (graph)",
        f"MACs:   {report['gmac']:.3f} G per inference (graph), torch FlopCounterMode "
        f"{report['torch_macs'] / 1e9:.3f} G ({'agree' if report['macs_agree'] else 'DISAGREE'})",
        "ops:    " + ", ".join(f"{op} {n}" for op, n in sorted(report["ops"].items())),
    ]
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
