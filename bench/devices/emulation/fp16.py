"""FP16 device numerics on the host: the exported FP32 graph converted the way an FP16 device runs it.

``--emulate`` for TensorRT FP16 (Jetson) and QNN GPU FP16 (RB5) runs :func:`to_fp16`'s graph on the
host CPU to predict score drift before any hardware is touched. The conversion is
onnxconverter-common's ``convert_float_to_float16`` (IO kept FP32, so the host's input tensors feed
both runs) with a per-device policy of the op types the device keeps in FP32 (``fp16_policy``: each family
defines its own).

Two findings shape the implementation:

* ONNX Runtime's CPU execution provider does not run an FP16 graph in FP16. Ops without an FP16
  kernel are computed in FP32 behind inserted Casts, and ``RemoveDuplicateCastTransformer``
  (onnxruntime/core/optimizer/insert_cast_transformer.cc) then deletes the FP32->FP16->FP32 pairs
  between such ops, including the graph's own rounding Casts. Measured on onnxruntime 1.31: a
  converted conv net deviated from FP32-with-FP16-weights by 1e-5, i.e. only the weights were
  rounded. So the written graph makes the FP16 storage explicit: every op the converter left in FP16
  reads its FP16 inputs through ``Cast(to=FLOAT)``, computes in FP32 and writes its outputs through
  ``Cast(to=FLOAT16)``. ONNX Runtime keeps a lossy Cast that feeds a Cast of the graph (only the
  pairs it inserted itself count as precision-free), so every stored tensor is rounded to FP16:
  11 significant bits, subnormal below 6.1e-5, inf above 65504. Weights stay FLOAT16 initializers.
  The emulated numerics are therefore "FP16 storage, FP32 arithmetic inside each op": QNN GPU's
  HYBRID precision exactly, and TensorRT's FP16 kernels with FP32 accumulation. A device kernel that
  accumulates in FP16, or a fused kernel that keeps intermediates in registers, differs from it.
* The converter produces graphs ONNX Runtime rejects in known ways, handled here before and after
  it runs: a graph output also consumed inside the graph, an initializer shared by a blocked and an
  unblocked node (onnxconverter-common#304), ``Cast(to=FLOAT)`` nodes it does not retarget (#320),
  inputs whose ONNX schema has no float16 (Resize ``scales``, Range; #208, onnxruntime#8327), and
  float shape arithmetic (rounding a scale factor to FP16 would change output shapes). Those nodes
  stay FP32. The result must pass ``onnx.checker`` (full check) and load in ONNX Runtime; a node
  that still fails is blocked and the conversion retried, and a graph that still does not load
  raises :class:`Fp16ConversionError` naming the node and its op type.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from bench.devices.emulation import fp16_policy
from bench.devices.emulation.fp16_policy import Fp16Policy
from bench.errors import BenchError
from bench.records.atomic import replace_atomically

FLOAT = 1  # onnx.TensorProto.FLOAT
FLOAT16 = 10  # onnx.TensorProto.FLOAT16
FP16_MAX = 65504.0
FP16_MIN_SUBNORMAL = 2.0**-24

# Expected |FP16 emulation - FP32| on the model's outputs, in output units. TinyGLASS's outputs are
# sigmoid probabilities in [0, 1]; FP16 spacing just below 1.0 is 2**-11 = 4.9e-4, so storing the output
# alone moves a score by up to 2.4e-4, and every stored activation adds to that along the network.
# Measured with this module (onnxruntime 1.31, onnxconverter-common 1.16), max over 16 random inputs
# (standard normal, and uniform pixels normalised with the ImageNet mean/std), score / patch_scores:
#   TinyGLASS 1x3x256x256, random-init weights: 3.2e-4 / 4.0e-4 (both policies)
#   Conv/BN/ReLU/Resize/Sigmoid net:             2.6e-4 / 2.8e-4 (both policies)
#   LayerNorm/attention/GELU block, sigmoid head: 2.6e-4 / 3.7e-4 (tensorrt_fp16), 2.9e-4 / 3.6e-4 (qnn_gpu_fp16)
# The same graphs with only their weights rounded to FP16 (what ONNX Runtime's CPU provider makes of a
# plain FP16 graph) drift by at most 8.7e-5. The limit is 5x the largest measurement, for trained weights,
# real images and device kernels that accumulate in FP16 (not emulated). A larger drift is a finding
# (overflow, a saturating layer, a fragile op in ``fp16_risky_ops``), not noise.
FP16_TOLERANCE: dict[str, float] = {"score": 2e-3, "patch_scores": 2e-3}


class Fp16ConversionError(BenchError):
    """The FP16 conversion produced a graph that ONNX or ONNX Runtime rejects."""


# Inputs that carry shapes, axes or scale factors: the float arithmetic that computes them stays FP32.
SHAPE_INPUTS: dict[str, tuple[int, ...]] = {
    "Reshape": (1,), "Expand": (1,), "Tile": (1,), "ConstantOfShape": (0,), "Range": (0, 1, 2),
    "Slice": (1, 2, 3, 4), "Pad": (1, 3), "Resize": (1, 2, 3), "Upsample": (1,), "Squeeze": (1,),
    "Unsqueeze": (1,), "TopK": (1,), "OneHot": (1,), "Split": (1,), "CumSum": (1,), "Trilu": (1,),
    **dict.fromkeys(("ReduceMax", "ReduceMin", "ReduceMean", "ReduceSum", "ReduceProd", "ReduceL1", "ReduceL2",
                     "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"), (1,)),
}
CONTROL_FLOW = frozenset({"If", "Loop", "Scan", "SequenceMap"})
# Nodes the explicit-storage pass leaves alone: their output type is set by the graph, not by the op's inputs.
UNWRAPPED = frozenset({"Cast", "CastLike", "Constant", "ConstantOfShape"})
MAX_RETRIES = 6
VALIDATION_LEVELS = ("basic", "all")  # ONNX Runtime graph optimisation levels the result must load at


def to_fp16(src: Path, dst: Path, policy: str, explicit_storage: bool = True) -> dict[str, Any]:
    """Write ``src`` converted to FP16 under ``policy`` to ``dst`` and return what was converted.

    ``explicit_storage`` wraps every FP16 op in Casts so ONNX Runtime's CPU provider keeps the rounding
    (emulation); a device compiler that runs FP16 kernels itself (TensorRT's strongly typed networks)
    gets the plain converted graph with ``explicit_storage=False``.

    ``dst`` is self-contained (weights inside), keeps the opset and IR version, and keeps FP32 graph
    inputs and outputs. The summary has the policy, the op types computed in FP32 with counts (all
    reasons) and per reason, the FP16 and FP32 initializer counts, the fragile ops left in FP16, how many
    weight tensors exceeded the FP16 range (clamped to +-65504), and the converter's version.
    """
    import onnx
    import onnxconverter_common

    chosen = fp16_policy.policy(policy)
    source = onnx.load(str(src))
    if _has_fp16(source):
        raise Fp16ConversionError(f"{src}: the graph already holds FLOAT16 tensors; convert the FP32 export")
    prepared = _prepare(source)
    types = _elem_types(prepared)
    reasons = _fp32_reasons(prepared, types, chosen)
    failures: dict[str, str] = {}
    while True:
        blocked = {name for names in reasons.values() for name in names} | set(failures)
        converted, clamped = _convert(prepared, blocked, chosen, explicit_storage)
        problem = _validate(converted)
        if problem is None:
            break
        culprit = _culprit(problem, prepared)
        if culprit is None or culprit in blocked or len(failures) >= MAX_RETRIES:
            raise Fp16ConversionError(_failure_message(src, policy, problem, culprit, blocked, prepared))
        failures[culprit] = problem
    reasons["load"] = set(failures)

    replace_atomically(Path(dst), lambda tmp: onnx.save(converted, str(tmp), save_as_external_data=False))
    ops = {node.name: node.op_type for node in prepared.graph.node}
    fp32_names = {name for names in reasons.values() for name in names}
    kept = Counter(ops[name] for name in fp32_names if name in ops)
    present = Counter(op for name, op in ops.items() if name not in fp32_names and op in chosen.risky_ops)
    initializers = Counter(init.data_type for init in converted.graph.initializer)
    return {
        "policy": policy,
        "device": chosen.device,
        "fp32_ops": dict(sorted(kept.items())),
        "fp32_nodes_by_reason": {reason: dict(sorted(Counter(ops[n] for n in names if n in ops).items()))
                                 for reason, names in reasons.items() if names},
        "fp16_initializers": initializers.get(FLOAT16, 0),
        "fp32_initializers": initializers.get(FLOAT, 0),
        "fp16_risky_ops": dict(sorted(present.items())),
        "weights_clamped_to_fp16_max": clamped,
        "numerics": "FP16 storage of weights and activations, FP32 arithmetic inside each op" if explicit_storage
        else "FP16 graph; the device compiler chooses the kernels",
        "opset": {imp.domain or "ai.onnx": imp.version for imp in converted.opset_import},
        "converter": "onnxconverter-common",
        "converter_version": onnxconverter_common.__version__,
        "load_failures_blocked": failures,
    }


def _has_fp16(model: Any) -> bool:
    graph = model.graph
    infos = [*graph.input, *graph.output, *graph.value_info]
    return (any(i.data_type == FLOAT16 for i in graph.initializer)
            or any(v.type.tensor_type.elem_type == FLOAT16 for v in infos))


def _prepare(model: Any) -> Any:
    """A copy the converter handles: functions inlined, unique node names, outputs not consumed inside."""
    import onnx
    import onnx.inliner
    from onnx import helper

    prepared = onnx.ModelProto()
    prepared.CopyFrom(model)
    if prepared.functions:
        prepared = onnx.inliner.inline_local_functions(prepared)
    graph = prepared.graph
    taken: set[str] = set()
    for index, node in enumerate(graph.node):
        name = node.name or f"{node.op_type}_{index}"
        while name in taken:
            name = f"{name}_{index}"
        node.name = name
        taken.add(name)
    consumed = {name for node in graph.node for name in node.input}
    for output in graph.output:
        if output.name not in consumed:
            continue
        inner = f"{output.name}__inner"
        for node in graph.node:
            node.input[:] = [inner if name == output.name else name for name in node.input]
            node.output[:] = [inner if name == output.name else name for name in node.output]
        graph.node.append(helper.make_node("Identity", [inner], [output.name], name=f"{output.name}__output"))
    prepared = onnx.shape_inference.infer_shapes(prepared, data_prop=True)
    # The converter retypes every value_info to FLOAT16, and one naming an initializer makes it cast a
    # blocked node's weights through FP16.
    weights = {init.name for init in prepared.graph.initializer}
    kept = [info for info in prepared.graph.value_info if info.name not in weights]
    del prepared.graph.value_info[:]
    prepared.graph.value_info.extend(kept)
    return prepared


def _elem_types(model: Any) -> dict[str, int]:
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.value_info, *graph.output]}
    types.update({init.name: init.data_type for init in graph.initializer})
    return types


def _ranks(model: Any) -> dict[str, int]:
    graph = model.graph
    ranks = {}
    for info in [*graph.input, *graph.value_info, *graph.output]:
        if info.type.tensor_type.HasField("shape"):
            ranks[info.name] = len(info.type.tensor_type.shape.dim)
    ranks.update({init.name: len(init.dims) for init in graph.initializer})
    return ranks


def _fp32_reasons(model: Any, types: dict[str, int], policy: Fp16Policy) -> dict[str, set[str]]:
    """Node names that stay FP32, by reason: the device policy, ONNX typing, shape arithmetic."""
    import onnx

    graph = model.graph
    opsets = {imp.domain or "": imp.version for imp in model.opset_import}
    subgraphs = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    reasons: dict[str, set[str]] = {"policy": set(), "schema": set(), "shape": set(), "type_attribute": set(),
                                    "control_flow": set()}
    for node in graph.node:
        if node.op_type in policy.fp32_ops:
            reasons["policy"].add(node.name)
        elif node.op_type in CONTROL_FLOW or any(a.type in subgraphs for a in node.attribute):
            reasons["control_flow"].add(node.name)
        elif _float_by_attribute(node):
            reasons["type_attribute"].add(node.name)
        elif _schema_excludes_fp16(node, types, opsets):
            reasons["schema"].add(node.name)
    reasons["shape"] = _shape_arithmetic(model, types) - set().union(*reasons.values())
    return reasons


def _float_by_attribute(node: Any) -> bool:
    """Cast(to=FLOAT), RandomNormal(dtype=FLOAT)...: the converter does not retarget these attributes (#320)."""
    return any(attr.name in ("to", "dtype") and attr.i == FLOAT for attr in node.attribute)


def _schema_excludes_fp16(node: Any, types: dict[str, int], opsets: dict[str, int]) -> bool:
    """True when a float input or output of the node is typed so that float16 is not allowed (Resize scales)."""
    import onnx

    domain = "" if node.domain in ("", "ai.onnx") else node.domain
    try:
        schema = onnx.defs.get_schema(node.op_type, opsets.get(domain, 1), domain)
    except onnx.defs.SchemaError:
        return True  # an op ONNX does not know: leave it as exported
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    for names, formals in ((node.input, schema.inputs), (node.output, schema.outputs)):
        for index, name in enumerate(names):
            if not name or types.get(name) != FLOAT:
                continue
            if not formals:
                return True
            formal = formals[min(index, len(formals) - 1)]
            if "tensor(float16)" not in allowed.get(formal.type_str, {formal.type_str}):
                return True
    return False


def _shape_arithmetic(model: Any, types: dict[str, int]) -> set[str]:
    """Nodes computing shape, axis or scale inputs from small (rank <= 1) tensors, back to Shape/Size."""
    graph = model.graph
    producers = {out: node for node in graph.node for out in node.output}
    ranks = _ranks(model)
    pending = [node.input[i] for node in graph.node for i in SHAPE_INPUTS.get(node.op_type, ())
               if i < len(node.input) and node.input[i]]
    seen: set[str] = set()
    found: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen or name not in producers or ranks.get(name, 99) > 1:
            continue
        seen.add(name)
        node = producers[name]
        if node.op_type in ("Shape", "Size"):
            continue
        if any(types.get(n) == FLOAT for n in [*node.input, *node.output] if n):
            found.add(node.name)
        pending.extend(n for n in node.input if n)
    return found


def _split_shared_initializers(model: Any, blocked: set[str]) -> None:
    """An FP32 copy of each float initializer that both a blocked and an unblocked node read (#304)."""
    graph = model.graph
    readers: dict[str, set[bool]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, set()).add(node.name in blocked)
    copies = {}
    for init in list(graph.initializer):
        if init.data_type == FLOAT and readers.get(init.name) == {True, False}:
            copy = graph.initializer.add()
            copy.CopyFrom(init)
            copy.name = f"{init.name}__fp32"
            copies[init.name] = copy.name
    for node in graph.node:
        if node.name in blocked:
            node.input[:] = [copies.get(name, name) for name in node.input]


def _convert(prepared: Any, blocked: set[str], policy: Fp16Policy, explicit_storage: bool) -> tuple[Any, int]:
    """onnxconverter-common with these nodes blocked, then explicit FP16 storage; and how many weight tensors
    had values beyond +-65504 (clamped there; TensorRT warns about such weights when it converts them)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    from onnxconverter_common import float16

    model = onnx.ModelProto()
    model.CopyFrom(prepared)
    _split_shared_initializers(model, blocked)
    fp16_readers = {name for node in model.graph.node if node.name not in blocked
                    and node.op_type not in policy.fp32_ops for name in node.input}
    clamped = sum(1 for init in model.graph.initializer if init.data_type == FLOAT and init.name in fp16_readers
                  and bool(np.any(np.abs(numpy_helper.to_array(init)) > FP16_MAX)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns per clamped tensor, counted above
        converted = float16.convert_float_to_float16(
            model, min_positive_val=FP16_MIN_SUBNORMAL, max_finite_val=FP16_MAX, keep_io_types=True,
            disable_shape_infer=True, op_block_list=sorted(policy.fp32_ops), node_block_list=sorted(blocked),
            check_fp16_ready=False)
    return (_explicit_storage(converted) if explicit_storage else converted), clamped


def _explicit_storage(model: Any) -> Any:
    """Every op with FP16 tensors reads them through Cast(FLOAT) and writes them through Cast(FLOAT16)."""
    from onnx import AttributeProto, helper, numpy_helper

    graph = model.graph
    types = _elem_types(model)
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.type == AttributeProto.TENSOR and attr.t.data_type == FLOAT16 and node.output[0] not in types:
                    types[node.output[0]] = FLOAT16
    taken = {name for node in graph.node for name in [*node.input, *node.output]}

    def fresh(base: str) -> str:
        name, index = base, 0
        while name in taken:
            index += 1
            name = f"{base}_{index}"
        taken.add(name)
        return name

    loads: dict[str, str] = {}
    rebuilt = []
    for node in graph.node:
        fp16 = [n for n in [*node.input, *node.output] if n and types.get(n) == FLOAT16]
        if node.op_type in UNWRAPPED or node.domain not in ("", "ai.onnx") or not fp16:
            rebuilt.append(node)
            continue
        for index, name in enumerate(node.input):
            if name and types.get(name) == FLOAT16:
                if name not in loads:
                    loads[name] = fresh(f"{name}__fp32")
                    rebuilt.append(helper.make_node("Cast", [name], [loads[name]], to=FLOAT,
                                                    name=fresh(f"{node.name}__load{index}")))
                node.input[index] = loads[name]
        for attr in node.attribute:
            if attr.type == AttributeProto.TENSOR and attr.t.data_type == FLOAT16:  # follows the compute type
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype("float32"),
                                                        attr.t.name))
        stores = []
        for index, name in enumerate(node.output):
            if name and types.get(name) == FLOAT16:
                wide = fresh(f"{name}__fp32out")
                node.output[index] = wide
                stores.append(helper.make_node("Cast", [wide], [name], to=FLOAT16,
                                               name=fresh(f"{node.name}__store{index}")))
        rebuilt.append(node)
        rebuilt.extend(stores)
    del graph.node[:]
    graph.node.extend(rebuilt)
    return model


def _validate(model: Any) -> str | None:
    """None when ONNX's full check passes and ONNX Runtime (CPU) loads the graph, else the error text."""
    import onnx
    import onnxruntime as ort

    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        return f"onnx.checker: {exc}"
    levels = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    data = model.SerializeToString()
    for level in VALIDATION_LEVELS:
        options = ort.SessionOptions()
        options.graph_optimization_level = levels[level]
        options.log_severity_level = 3
        try:
            ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises several pybind error types for an invalid graph
            return f"onnxruntime {ort.__version__} ({level} optimisation): {exc}"
    return None


_NODE_PATTERNS = (r"node name: ([^),\s]+)", r"[Nn]ode \(([^)]+)\)", r"for node: ([^\s]+)", r"\(([^()\s]+)\)")


def _culprit(message: str, prepared: Any) -> str | None:
    """The original node an error message points at: named directly, by a Cast the conversion added, or by
    a tensor it reads or writes."""
    nodes = {node.name: node for node in prepared.graph.node}
    producers = {out: node.name for node in prepared.graph.node for out in node.output}
    consumers = {}
    for node in prepared.graph.node:
        for name in node.input:
            consumers.setdefault(name, node.name)
    for pattern in _NODE_PATTERNS:
        for match in re.findall(pattern, message):
            candidate = match.strip().strip("'\"")
            if candidate in nodes:
                return candidate
            stems = sorted((n for n in nodes if candidate.startswith(n) or candidate.endswith(f"_cast_to_{n}")),
                           key=len, reverse=True)
            if stems:
                return stems[0]
            base = re.sub(r"(__fp32(out)?(_\d+)?|__inner)$", "", candidate)
            if base in producers:
                return producers[base]
            if base in consumers:
                return consumers[base]
    return None


def _failure_message(src: Path, policy: str, problem: str, culprit: str | None, blocked: set[str],
                     prepared: Any) -> str:
    lines = problem.strip().splitlines()
    detail = lines[0][:400] if lines else "no message"
    head = f"{src}: the {policy} FP16 conversion does not load"
    if culprit is None:
        return f"{head}, and the error names no node of the graph: {detail}"
    op = {node.name: node.op_type for node in prepared.graph.node}.get(culprit, "unknown op")
    if culprit in blocked:
        return f"{head} at node '{culprit}' ({op}), even with that node kept in FP32: {detail}"
    return f"{head} at node '{culprit}' ({op}) after {MAX_RETRIES} failing nodes were kept in FP32: {detail}"
