"""Model complexity (parameters, multiply-accumulates) read from the exported ONNX graph.

Reports state GMAC per inference and GMAC/J, so the figure must describe what the device
actually executes: the exported graph, after BatchNorm folding and whatever else the exporter
did, at the graph's fixed input shape. Counting the PyTorch module instead would silently
describe a different program. ``torch_macs`` exists only to cross-check the graph count.

Conventions (those of torchvision's, timm's and the papers' GMAC figures):

* One MAC is one multiply-accumulate of a contraction: Conv, ConvTranspose, Gemm, MatMul,
  two-operand Einsum and the opset-23 ``Attention`` op. Biases, elementwise ops, activations,
  pooling, normalisation, softmax, resizing and reductions are not MACs and count zero.
* Attention exported from PyTorch appears as MatMul nodes (QK^T and PV), already counted.
* Ops that multiply-accumulate but are not modelled here (recurrent cells, integer and
  quantised convolutions/matmuls, Einsum with three or more operands, ops from non-ONNX
  domains) are listed in ``Complexity.not_counted``; when it is not empty ``macs`` is a lower
  bound.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.inliner
from onnx import TensorProto

_FLOAT_TYPES = frozenset(
    getattr(TensorProto, name)
    for name in ("FLOAT", "DOUBLE", "FLOAT16", "BFLOAT16", "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2",
                 "FLOAT8E5M2FNUZ", "FLOAT4E2M1", "FLOAT8E8M0")
    if hasattr(TensorProto, name)
)
_DEFAULT_DOMAINS = ("", "ai.onnx")
_COUNTED = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum", "Attention"})
_NOT_MODELLED = frozenset({"RNN", "LSTM", "GRU", "ConvInteger", "QLinearConv", "MatMulInteger", "QLinearMatMul",
                           "DeformConv"})


@dataclass(frozen=True)
class Complexity:
    """Complexity of one exported graph at its static input shapes.

    ``params``: elements of the floating-point tensors that the graph stores (as initializers or
    ``Constant`` nodes) and that some node reads. That is every weight the device holds, learned
    or not: folded Conv weights and biases, Gemm/MatMul weights, normalisation scales and shifts,
    attention bias tables read through Gather/GatherND (learned parameters, included in the
    published counts), and float constant kernels such as one-hot patch-extraction convolutions.
    Not counted: integer tensors (shapes, index tables such as TinyViT's ``attention_bias_idxs``),
    unread tensors, and single-element scalars (attention scales, epsilons) unless a MAC op reads
    them (the bias of a one-channel Conv). The exporter folds BatchNorm into the preceding Conv,
    so a trained model's graph holds C fewer elements per folded C-channel BatchNorm than its
    PyTorch ``parameters()`` (2C when that Conv already had a bias). Untrained, default-initialised
    models differ further: the exporter drops all-zero folded biases and merges bit-identical
    initializers (e.g. fresh LayerNorm weights).

    ``macs``: multiply-accumulates per inference at the graph's batch size (see module docstring).
    ``macs_by_op``: the same, per counted op type. ``ops``: op-type histogram of the main graph
    (non-ONNX domains prefixed ``domain.``). ``not_counted``: op type -> node count of ops whose
    MACs are not modelled. ``input_shapes`` / ``output_shapes``: the graph's inputs (initializers
    excluded) and outputs.
    """

    params: int
    macs: int
    macs_by_op: dict[str, int]
    ops: dict[str, int]
    input_shapes: dict[str, list[int]]
    output_shapes: dict[str, list[int]]
    not_counted: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict (copies, so callers cannot mutate this record)."""
        return asdict(self)


def graph_complexity(model: onnx.ModelProto | str | Path) -> Complexity:
    """Parameters and MACs of an ONNX model with fully static shapes.

    Shapes come from ``onnx.shape_inference`` (strict mode). A counted node whose operand or
    result shape is unknown or symbolic, or a dynamic graph input/output, raises ``ValueError``
    naming the node and tensor: a MAC figure for "some" batch size is not one a report can use.
    Model-local functions are inlined first. Loop/If/Scan bodies are not counted; if one contains
    a MAC op the call fails rather than under-report.
    """
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model), load_external_data=False)
    if model.functions:
        model = onnx.inliner.inline_local_functions(model)
    try:
        model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except onnx.shape_inference.InferenceError as err:
        raise ValueError(f"ONNX shape inference failed: {err}") from err
    graph = model.graph
    shapes = _known_shapes(graph)

    ops: Counter[str] = Counter()
    macs_by_op: Counter[str] = Counter()
    not_counted: Counter[str] = Counter()
    for index, node in enumerate(graph.node):
        label = _op_label(node)
        ops[label] += 1
        _reject_counted_ops_in_subgraphs(node, index)
        if node.domain not in _DEFAULT_DOMAINS or node.op_type in _NOT_MODELLED:
            not_counted[label] += 1
        elif node.op_type in _COUNTED:
            macs = _node_macs(node, index, shapes)
            if macs is None:
                not_counted[label] += 1
            else:
                macs_by_op[label] += macs

    initializer_names = {init.name for init in graph.initializer}
    inputs = {vi.name: _static(shapes, vi.name, f"graph input {vi.name!r}")
              for vi in graph.input if vi.name not in initializer_names}
    outputs = {vi.name: _static(shapes, vi.name, f"graph output {vi.name!r}") for vi in graph.output}
    return Complexity(
        params=_count_params(graph),
        macs=sum(macs_by_op.values()),
        macs_by_op=dict(macs_by_op),
        ops=dict(ops),
        input_shapes=inputs,
        output_shapes=outputs,
        not_counted=dict(not_counted),
    )


def torch_macs(module: Any, example_input: Any) -> int:
    """MACs of one forward pass as PyTorch counts them (``FlopCounterMode`` FLOPs / 2).

    An independent cross-check of ``graph_complexity``: it counts conv, mm/addmm/bmm/baddbmm and
    scaled-dot-product attention at dispatch level, the same convention. ``FlopCounterMode`` has
    no formula for the CPU flash-attention kernel that ``scaled_dot_product_attention`` uses on
    CPU, so one is supplied here. ``example_input`` is a tensor or a tuple of positional inputs;
    the module runs in its current train/eval mode, without autograd.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    def sdpa_flops(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, out_shape: Any = None,
                   **kwargs: Any) -> int:
        batch, heads, q_len, head_dim = query_shape
        kv_len, v_dim = key_shape[-2], value_shape[-1]
        return 2 * batch * heads * q_len * kv_len * (head_dim + v_dim)

    custom = {}
    cpu_sdpa = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_sdpa is not None:
        custom[cpu_sdpa] = sdpa_flops
    inputs = example_input if isinstance(example_input, tuple) else (example_input,)
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=custom) as counter:
        module(*inputs)
    return counter.get_total_flops() // 2


def _op_label(node: onnx.NodeProto) -> str:
    return node.op_type if node.domain in _DEFAULT_DOMAINS else f"{node.domain}.{node.op_type}"


def _node_name(node: onnx.NodeProto, index: int) -> str:
    return f"{node.op_type} node {node.name or f'#{index}'!r}"


def _known_shapes(graph: onnx.GraphProto) -> dict[str, list[int | str | None] | None]:
    """Name -> shape (``None`` dims unknown, str dims symbolic); ``None`` when even the rank is unknown."""
    shapes: dict[str, list[int | str | None] | None] = {}
    for vi in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = vi.type.tensor_type
        if not tensor_type.HasField("shape"):
            shapes.setdefault(vi.name, None)
            continue
        dims: list[int | str | None] = []
        for dim in tensor_type.shape.dim:
            kind = dim.WhichOneof("value")
            dims.append(dim.dim_value if kind == "dim_value" else dim.dim_param if kind == "dim_param" else None)
        shapes[vi.name] = dims
    for init in graph.initializer:
        shapes[init.name] = list(init.dims)
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in _DEFAULT_DOMAINS:
            for attr in node.attribute:
                if attr.name == "value":
                    shapes[node.output[0]] = list(attr.t.dims)
    return shapes


def _static(shapes: dict[str, list[int | str | None] | None], name: str, where: str) -> list[int]:
    shape = shapes.get(name)
    if shape is None or not all(isinstance(d, int) for d in shape):
        described = "unknown" if shape is None else str(["?" if d is None else d for d in shape])
        raise ValueError(f"{where}: shape of tensor {name!r} is {described}; model complexity needs static shapes "
                         "(export with fixed input sizes)")
    return [int(d) for d in shape]


def _node_macs(node: onnx.NodeProto, index: int, shapes: dict[str, list[int | str | None] | None]) -> int | None:
    """MACs of one counted node, or ``None`` when the op's form is not modelled (Einsum, 3+ operands)."""
    where = _node_name(node, index)

    def shape(position: int, outputs: bool = False) -> list[int]:
        names = node.output if outputs else node.input
        return _static(shapes, names[position], where)

    attrs = {attr.name: onnx.helper.get_attribute_value(attr) for attr in node.attribute}
    op = node.op_type
    if op == "Conv":
        return math.prod(shape(0, outputs=True)) * math.prod(shape(1)[1:])
    if op == "ConvTranspose":
        return math.prod(shape(0)) * math.prod(shape(1)[1:])
    if op == "Gemm":
        a, b = shape(0), shape(1)
        m, k = reversed(a) if attrs.get("transA", 0) else a
        n = b[0] if attrs.get("transB", 0) else b[1]
        return m * n * k
    if op == "MatMul":
        return _matmul_macs(shape(0), shape(1), where)
    if op == "Einsum":
        operands = [shape(i) for i in range(len(node.input))]
        return _einsum_macs(attrs["equation"].decode(), operands, where)
    return _attention_macs(node, attrs, shape)


def _matmul_macs(a: list[int], b: list[int], where: str) -> int:
    """numpy.matmul semantics: 1-D operands are promoted to matrices, batch dims broadcast."""
    if not a or not b:
        raise ValueError(f"{where}: MatMul operands must have rank >= 1, got {a} and {b}")
    a = [1, *a] if len(a) == 1 else a
    b = [*b, 1] if len(b) == 1 else b
    try:
        batch = np.broadcast_shapes(tuple(a[:-2]), tuple(b[:-2]))
    except ValueError as err:
        raise ValueError(f"{where}: batch dims of {a} and {b} do not broadcast") from err
    return math.prod(batch) * a[-2] * b[-1] * a[-1]


def _einsum_macs(equation: str, operands: list[list[int]], where: str) -> int | None:
    """One MAC per point of the index space of a two-operand contraction, as torch and numpy run it.

    Labels that occur in one operand only and not in the output are summed out first (a
    reduction, not a MAC), so they do not multiply the count. A single operand (transpose,
    trace, reduction) is 0, as is a product with no shared summed label (an elementwise or
    outer product is a Mul). Three or more operands depend on the contraction order: ``None``,
    reported as not counted.
    """
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise ValueError(f"{where}: Einsum equation {equation!r} does not match {len(operands)} operands")
    if len(terms) == 1:
        return 0
    if len(terms) > 2:
        return None
    sizes: dict[str, int] = {}
    counts: Counter[str] = Counter()
    for term, dims in zip(terms, operands, strict=True):
        head, ellipsis, tail = term.partition("...")
        free = len(dims) - len(head) - len(tail)
        if free < 0 or (free > 0 and not ellipsis):
            raise ValueError(f"{where}: Einsum term {term!r} does not fit operand shape {dims}")
        labels = [*head, *(f"...{free - i}" for i in range(free)), *tail]
        for label, size in zip(labels, dims, strict=True):
            known = sizes.get(label, 1)
            if size != known and 1 not in (size, known):
                raise ValueError(f"{where}: Einsum label {label!r} has sizes {known} and {size}")
            sizes[label] = max(known, size)
        counts.update(set(labels))
    broadcast = {label for label in sizes if label.startswith("...")}
    if arrow:
        kept = set(rhs.replace("...", "")) | (broadcast if "..." in rhs else set())
    else:
        kept = broadcast | {label for label in sizes if counts[label] == 1}
    shared = {label for label in sizes if counts[label] == 2}
    if shared <= kept:
        return 0
    return math.prod(size for label, size in sizes.items() if label in kept or label in shared)


def _attention_macs(node: onnx.NodeProto, attrs: dict[str, Any], shape: Any) -> int:
    """ONNX ``Attention`` (opset 23): QK^T plus PV, dense (masks and causality do not reduce it)."""
    q, k, v = shape(0), shape(1), shape(2)
    if len(q) == 4:
        batch, q_heads, q_len, head_dim = q
    else:
        batch, q_len, hidden = q
        q_heads = attrs["q_num_heads"]
        head_dim = hidden // q_heads
    kv_len = k[2] if len(k) == 4 else k[1]
    if len(node.input) > 4 and node.input[4]:
        kv_len += shape(4)[2]
    v_dim = v[3] if len(v) == 4 else v[2] // attrs["kv_num_heads"]
    return batch * q_heads * q_len * kv_len * (head_dim + v_dim)


def _reject_counted_ops_in_subgraphs(node: onnx.NodeProto, index: int) -> None:
    for attr in node.attribute:
        subgraphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
        for subgraph in subgraphs:
            for inner_index, inner in enumerate(subgraph.node):
                if inner.op_type in _COUNTED | _NOT_MODELLED:
                    raise ValueError(
                        f"{_node_name(node, index)}: its {attr.name!r} subgraph contains "
                        f"{_node_name(inner, inner_index)}; MACs inside control flow are not counted"
                    )
                _reject_counted_ops_in_subgraphs(inner, inner_index)


def _consumers(graph: onnx.GraphProto, found: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    """Tensor name -> op types reading it, in ``graph`` and its subgraphs (outer-scope reads included)."""
    found = {} if found is None else found
    for node in graph.node:
        for name in node.input:
            found.setdefault(name, set()).add(node.op_type)
        for attr in node.attribute:
            for subgraph in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else attr.graphs:
                _consumers(subgraph, found)
    return found


def _count_params(graph: onnx.GraphProto) -> int:
    """See ``Complexity``: stored float tensors that some node reads, single-element scalars aside."""
    consumers = _consumers(graph)

    def counted(name: str, data_type: int, size: int) -> int:
        readers = consumers.get(name, set())
        is_weight = size > 1 or bool(readers & (_COUNTED | _NOT_MODELLED))
        return size if data_type in _FLOAT_TYPES and readers and is_weight else 0

    total = sum(counted(init.name, init.data_type, math.prod(init.dims)) for init in graph.initializer)
    for node in graph.node:
        if node.op_type != "Constant" or node.domain not in _DEFAULT_DOMAINS:
            continue
        for attr in node.attribute:
            if attr.name == "value":
                total += counted(node.output[0], attr.t.data_type, math.prod(attr.t.dims))
            elif attr.name == "value_floats":
                total += counted(node.output[0], TensorProto.FLOAT, len(attr.floats))
    return total
