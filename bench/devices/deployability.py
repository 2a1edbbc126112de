"""Deployability lint: the exported ONNX graph checked against what each device family's toolchain accepts.

Why: a compile for the IMX500 (MCT + imxconv-pt), for TensorRT on the Jetson or for QNN on AI Hub
takes minutes to hours and fails late, often with a message that names neither the layer nor the
reason. Reading the graph takes milliseconds, so this runs first and names the op type, the node
and why, per target.

It is a conservative pre-check, not a verdict:

- ``error``: the graph uses something a source documents as rejected (see each family's ``SOURCES``),
  or a fact observed in public deployment code (TinyGLASS on the IMX500, EdgeZSAD on QNN's GPU backend).
- ``warning``: the op is not in the known-supported list derived from the sources, or the target
  handles the property only with extra work (dynamic shapes on TensorRT). Unknown is not
  unsupported: the lists are only as complete as their sources.
  A warning means "confirm with the real toolchain", never "will fail".

A clean result does not promise a successful compile either: the checks are static (no value
ranges, no quantisation, no memory or latency limits).

This module is the engine: it reads the graph once into a :class:`Context` and runs every family's
rules on it. The rules, op lists and sources of a family are in its package
(``bench/devices/<family>/deployability.py``, named by ``FAMILY.lint``); a target is a family name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import onnx
import onnx.inliner
from onnx import numpy_helper

from bench.devices.family import load_attribute
from bench.devices.registry import family, family_names

Severity = Literal["error", "warning"]

INPUT = "input"
OPSET = "opset_import"
DEFAULT_DOMAINS = frozenset({"", "ai.onnx"})


@dataclass(frozen=True)
class Finding:
    """One reason a target may not accept the graph; ``node`` is the node (or input) name."""

    target: str
    severity: Severity
    op_type: str
    node: str
    message: str


@dataclass(frozen=True)
class Const:
    """A constant tensor's shape and values (an initializer or a Constant node's output)."""

    shape: tuple[int, ...]
    values: tuple


@dataclass
class Context:
    """The model once, pre-digested for every rule: real inputs, constants, nodes with labels, shapes."""

    model: onnx.ModelProto
    inputs: list[onnx.ValueInfoProto]
    consts: dict[str, Const]
    nodes: list[tuple[str, onnx.NodeProto]]
    _shapes: dict[str, list[int | str | None]] | None = field(default=None, repr=False)

    def const(self, name: str) -> Const | None:
        return self.consts.get(name) if name else None

    def shape(self, name: str) -> list[int | str | None] | None:
        """Static shape information from ONNX shape inference (None where inference gives nothing)."""
        if self._shapes is None:
            self._shapes = {}
            try:
                inferred = onnx.shape_inference.infer_shapes(self.model)
            except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, ValueError):
                inferred = self.model
            graph = inferred.graph
            for info in (*graph.input, *graph.value_info, *graph.output):
                dims = dims_of(info)
                if dims is not None:
                    self._shapes[info.name] = dims
        return self._shapes.get(name)


NodeRule = Callable[[Context, str, onnx.NodeProto], list[Finding]]  # (context, node label, node) -> findings


def lint_targets() -> list[str]:
    """The families that have deployability rules (``FAMILY.lint``), by name."""
    return [name for name in family_names() if family(name).lint]


def target_label(target: str) -> str:
    """How a target is shown to people: its family's ``lint_label``, else its name."""
    return family(target).lint_label or target


def lint(model: onnx.ModelProto | str | Path, targets: Iterable[str] | None = None) -> dict[str, list[Finding]]:
    """Findings per target (an empty list means no known obstacle); unknown targets raise ValueError."""
    chosen = _chosen(targets)
    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    ctx = _context(proto)
    return {target: _rules(target)(ctx) for target in chosen}


def _chosen(targets: Iterable[str] | None) -> list[str]:
    valid = lint_targets()
    if targets is None:
        return valid
    requested = [targets] if isinstance(targets, str) else list(targets)
    unknown = [t for t in requested if t not in valid]
    if unknown:
        raise ValueError(f"unknown target(s) {', '.join(map(repr, unknown))}; valid targets: {', '.join(valid)}")
    return list(dict.fromkeys(requested))


def _rules(target: str) -> Callable[[Context], list[Finding]]:
    return load_attribute(family(target).lint, f"deployability rules of '{target}'")


def _context(model: onnx.ModelProto) -> Context:
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    graph = model.graph
    initializer_names = {init.name for init in graph.initializer}
    consts: dict[str, Const] = {}
    nodes = list(_walk(graph, ""))
    for init in _all_initializers(graph):
        consts[init.name] = _tensor_const(init)
    for _, node in nodes:
        if node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS and node.output:
            value = _constant_node_value(node)
            if value is not None:
                consts[node.output[0]] = value
    inputs = [info for info in graph.input if info.name not in initializer_names]
    return Context(model=model, inputs=inputs, consts=consts, nodes=nodes)


def _walk(graph: onnx.GraphProto, prefix: str) -> Iterator[tuple[str, onnx.NodeProto]]:
    """Every node with a readable label, subgraphs (If/Loop/Scan bodies) included."""
    for index, node in enumerate(graph.node):
        label = prefix + (node.name or f"{node.op_type}#{index}")
        yield label, node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _walk(attr.g, f"{label}/{attr.name}/")
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for i, sub in enumerate(attr.graphs):
                    yield from _walk(sub, f"{label}/{attr.name}[{i}]/")


def _all_initializers(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            subgraphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for sub in subgraphs:
                yield from _all_initializers(sub)


def _tensor_const(tensor: onnx.TensorProto) -> Const:
    array = numpy_helper.to_array(tensor)
    return Const(shape=tuple(array.shape), values=tuple(array.ravel().tolist()))


def _constant_node_value(node: onnx.NodeProto) -> Const | None:
    for attr in node.attribute:
        if attr.name == "value":
            return _tensor_const(attr.t)
        if attr.name in ("value_float", "value_int"):
            return Const(shape=(), values=(onnx.helper.get_attribute_value(attr),))
        if attr.name in ("value_floats", "value_ints"):
            values = tuple(onnx.helper.get_attribute_value(attr))
            return Const(shape=(len(values),), values=values)
    return None


def dims_of(info: onnx.ValueInfoProto) -> list[int | str | None] | None:
    """Dims of a tensor value: an int if static, the symbol if named, None if unknown; None for no shape."""
    kind = info.type
    if not kind.HasField("tensor_type") or not kind.tensor_type.HasField("shape"):
        return None
    dims: list[int | str | None] = []
    for dim in kind.tensor_type.shape.dim:
        if dim.HasField("dim_value") and dim.dim_value > 0:
            dims.append(dim.dim_value)
        elif dim.HasField("dim_param") and dim.dim_param:
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return dims


def shape_text(dims: list[int | str | None] | None) -> str:
    if dims is None:
        return "unknown"
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def attribute(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for attr in node.attribute:
        if attr.name == name:
            value = onnx.helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default


def input_at(node: onnx.NodeProto, index: int) -> str:
    return node.input[index] if len(node.input) > index else ""


def default_opset(model: onnx.ModelProto) -> int | None:
    for opset in model.opset_import:
        if opset.domain in DEFAULT_DOMAINS:
            return opset.version
    return None


# ---------------------------------------------------------------------------------------------------------------
# What families' rules share
# ---------------------------------------------------------------------------------------------------------------


def dynamic_inputs(ctx: Context) -> Iterator[tuple[onnx.ValueInfoProto, list[int | str | None] | None]]:
    for info in ctx.inputs:
        dims = dims_of(info)
        if dims is None or not all(isinstance(d, int) for d in dims):
            yield info, dims


def run_node_rules(ctx: Context, target: str, supported: frozenset[str], rejected: dict[str, str],
                   rules: dict[str, NodeRule]) -> list[Finding]:
    """Every node checked against the target's op lists, then by the target's rule for its op type."""
    findings: list[Finding] = []
    for label, node in ctx.nodes:
        findings += _op_membership(target, label, node, supported, rejected)
        rule = rules.get(node.op_type) if node.domain in DEFAULT_DOMAINS else None
        if rule is not None:
            findings += rule(ctx, label, node)
    return findings


def _op_membership(target: str, label: str, node: onnx.NodeProto, supported: frozenset[str],
                   rejected: dict[str, str]) -> list[Finding]:
    """Custom domains and unlisted ops are warnings; documented rejections are errors."""
    if node.domain not in DEFAULT_DOMAINS:
        return [Finding(target, "warning", node.op_type, label,
                        f"op from domain '{node.domain}' is not in the known-supported list for {target}; "
                        "it needs a plugin or custom op on the target, or a rewrite to standard ONNX ops")]
    if node.op_type in rejected:
        return [Finding(target, "error", node.op_type, label, rejected[node.op_type])]
    if node.op_type not in supported:
        return [Finding(target, "warning", node.op_type, label,
                        f"not in the known-supported list for {target} (see SOURCES); confirm with the toolchain")]
    return []
