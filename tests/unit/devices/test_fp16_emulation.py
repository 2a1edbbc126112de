"""FP16 emulation (``bench.devices.emulation.fp16``): real exported graphs converted, loaded and compared with FP32."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from support.extras import need

onnx = need("export", "onnx")
torch = need("export", "torch")
need("emulate", "onnxconverter_common")
import torch.nn.functional as F  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from torch import nn  # noqa: E402

from bench.devices.emulation import fp16  # noqa: E402
from bench.devices.emulation.fp16 import FP16_TOLERANCE, Fp16ConversionError, to_fp16  # noqa: E402
from bench.errors import BadInput  # noqa: E402

OUTPUTS = ["score", "patch_scores"]
POLICIES = ("qnn_gpu_fp16", "tensorrt_fp16")  # the tensorrt and rb5 families' policies


class ConvNet(nn.Module):
    """Conv/BN/ReLU, a bilinear Resize and a sigmoid head: (image score, patch map), like TinyGLASS."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32)
        self.head = nn.Conv2d(32, 1, 1)
        for bn in (self.bn1, self.bn2):
            bn.running_mean.normal_(0, 0.5)
            bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = F.interpolate(y, size=(32, 32), mode="bilinear", align_corners=False)
        patches = torch.sigmoid(self.head(y))
        return patches.amax(dim=(1, 2, 3)), patches


class TransformerBlock(nn.Module):
    """Pre-norm attention and GELU MLP on tokens, sigmoid per token: (score, token scores)."""

    def __init__(self, dim: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        self.out = nn.Linear(dim, 1)
        for ln in (self.ln1, self.ln2):
            nn.init.normal_(ln.weight, 1.0, 0.1)
            nn.init.normal_(ln.bias, 0.0, 0.1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attention = torch.softmax(q @ k.transpose(-2, -1) / (d // self.heads) ** 0.5, dim=-1)
        x = x + self.proj((attention @ v).transpose(1, 2).reshape(b, n, d))
        x = x + self.fc2(F.gelu(self.fc1(self.ln2(x))))
        tokens = torch.sigmoid(self.out(x)[..., 0])
        return tokens.amax(dim=1), tokens


def _export(module: nn.Module, shape: tuple[int, ...], path: Path) -> Path:
    torch.onnx.export(module.eval(), (torch.zeros(shape),), str(path), dynamo=True, opset_version=18,
                      external_data=False, input_names=["image"], output_names=OUTPUTS)
    return path


def _session(path: Path, level: str = "basic") -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _worst(reference: Path, candidate: Path, shape: tuple[int, ...], count: int = 6) -> dict[str, float]:
    """Max |candidate - reference| per output over random inputs."""
    ref, cand = _session(reference), _session(candidate)
    worst = dict.fromkeys(OUTPUTS, 0.0)
    for seed in range(count):
        x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
        for name, a, b in zip(OUTPUTS, ref.run(OUTPUTS, {"image": x}), cand.run(OUTPUTS, {"image": x}), strict=True):
            worst[name] = max(worst[name], float(np.max(np.abs(a.astype(np.float64) - b))))
    return worst


def _weights_rounded(src: Path, dst: Path) -> Path:
    """The FP32 graph with only its weights rounded to FP16: what an FP16 graph reduces to when ONNX Runtime's
    CPU provider computes it in FP32 and drops the activation rounding."""
    model = onnx.load(str(src))
    for init in model.graph.initializer:
        if init.data_type == TensorProto.FLOAT:
            values = numpy_helper.to_array(init).astype(np.float16).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(values, init.name))
    onnx.save(model, str(dst))
    return dst


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output}


def _weight_types(model: onnx.ModelProto, op_type: str) -> set[int]:
    """Data types of the float initializers that nodes of ``op_type`` read, directly or through one Cast."""
    inits = {init.name: init.data_type for init in model.graph.initializer}
    producers = _producers(model)
    found = set()
    for node in model.graph.node:
        if node.op_type != op_type:
            continue
        for name in node.input:
            if name in producers and producers[name].op_type == "Cast":
                name = producers[name].input[0]
            if inits.get(name) in (TensorProto.FLOAT, TensorProto.FLOAT16):
                found.add(inits[name])
    return found


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fp16")
    torch.manual_seed(0)
    return {"conv": _export(ConvNet(), (1, 3, 32, 32), folder / "conv.onnx"),
            "block": _export(TransformerBlock(), (1, 16, 64), folder / "block.onnx")}


SHAPES = {"conv": (1, 3, 32, 32), "block": (1, 16, 64)}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("graph", ["conv", "block"])
def test_converted_graph_runs_fp16_numerics(graphs: dict[str, Path], tmp_path: Path, graph: str, policy: str) -> None:
    src = graphs[graph]
    dst = tmp_path / "fp16.onnx"
    summary = to_fp16(src, dst, policy)

    original, converted = onnx.load(str(src)), onnx.load(str(dst), load_external_data=False)
    assert summary["policy"] == policy
    assert summary["converter"] == "onnxconverter-common" and summary["converter_version"]
    assert json.loads(json.dumps(summary)) == summary  # goes into the run record as is
    assert [(o.domain, o.version) for o in converted.opset_import] == [(o.domain, o.version)
                                                                        for o in original.opset_import]
    assert converted.ir_version == original.ir_version
    assert not any(init.data_location == TensorProto.EXTERNAL for init in converted.graph.initializer)

    session = _session(dst, "all")  # loads with every ONNX Runtime optimisation, not only the runner's "basic"
    assert [i.type for i in session.get_inputs()] == ["tensor(float)"]
    assert [o.type for o in session.get_outputs()] == ["tensor(float)", "tensor(float)"]

    sizes = {TensorProto.FLOAT: [], TensorProto.FLOAT16: []}
    for init in converted.graph.initializer:
        sizes.get(init.data_type, []).append(int(np.prod(init.dims)))
    assert summary["fp16_initializers"] == len(sizes[TensorProto.FLOAT16]) > len(sizes[TensorProto.FLOAT])
    assert sum(sizes[TensorProto.FLOAT16]) >= 0.95 * sum(sizes[TensorProto.FLOAT] + sizes[TensorProto.FLOAT16])

    drift = _worst(src, dst, SHAPES[graph])
    assert all(drift[name] <= FP16_TOLERANCE[name] for name in OUTPUTS), drift
    assert max(drift.values()) > 0, "bit-identical to FP32: no FP16 arithmetic ran"
    # Rounding the weights alone does not explain the drift: activations were stored in FP16 too.
    weights_only = _worst(_weights_rounded(src, tmp_path / "weights.onnx"), dst, SHAPES[graph])
    assert max(weights_only.values()) > 2e-5, weights_only


def test_tensorrt_keeps_layernorm_fp32_and_qnn_does_not(graphs: dict[str, Path], tmp_path: Path) -> None:
    trt = to_fp16(graphs["block"], tmp_path / "trt.onnx", "tensorrt_fp16")
    qnn = to_fp16(graphs["block"], tmp_path / "qnn.onnx", "qnn_gpu_fp16")

    assert trt["fp32_ops"] == {"LayerNormalization": 2}
    assert trt["fp32_nodes_by_reason"]["policy"] == {"LayerNormalization": 2}
    assert qnn["fp32_ops"] == {}
    assert qnn["fp16_risky_ops"]["LayerNormalization"] == 2
    assert trt["fp16_risky_ops"]["Softmax"] == qnn["fp16_risky_ops"]["Softmax"] == 1

    trt_model, qnn_model = onnx.load(str(tmp_path / "trt.onnx")), onnx.load(str(tmp_path / "qnn.onnx"))
    assert _weight_types(trt_model, "LayerNormalization") == {TensorProto.FLOAT}
    assert _weight_types(qnn_model, "LayerNormalization") == {TensorProto.FLOAT16}
    for model in (trt_model, qnn_model):
        assert _weight_types(model, "MatMul") == {TensorProto.FLOAT16}
    # A blocked op computes on FP32 tensors: every float input of LayerNormalization is typed FLOAT.
    inferred = onnx.shape_inference.infer_shapes(trt_model).graph.value_info
    types = {v.name: v.type.tensor_type.elem_type for v in inferred}
    types.update({i.name: i.data_type for i in trt_model.graph.initializer})
    types.update({i.name: TensorProto.FLOAT for i in trt_model.graph.input})
    for node in trt_model.graph.node:
        if node.op_type == "LayerNormalization":
            assert {types[name] for name in node.input if name} == {TensorProto.FLOAT}


def _graph(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], shape: list[int],
           out_shape: list[int] | None = None) -> onnx.ModelProto:
    model = helper.make_model(
        helper.make_graph(nodes, "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape or shape)], inits),
        opset_imports=[helper.make_opsetid("", 18)], ir_version=10)
    onnx.checker.check_model(model, full_check=True)
    return model


def test_every_stored_tensor_is_rounded_to_fp16(tmp_path: Path) -> None:
    """y = x * 1.7 + 0.3 must equal FP16 storage of x, of the product and of the sum, with FP32 arithmetic;
    a product past 65504 overflows to inf as on the device."""
    model = _graph([helper.make_node("Mul", ["image", "a"], ["t"], name="mul"),
                    helper.make_node("Add", ["t", "b"], ["y"], name="add")],
                   [numpy_helper.from_array(np.array(1.7, np.float32), "a"),
                    numpy_helper.from_array(np.array(0.3, np.float32), "b")], [1, 1000])
    onnx.save(model, str(tmp_path / "axb.onnx"))
    assert to_fp16(tmp_path / "axb.onnx", tmp_path / "axb16.onnx", "qnn_gpu_fp16")["weights_clamped_to_fp16_max"] == 0

    x = (np.random.default_rng(0).standard_normal((1, 1000)) * 300).astype(np.float32)
    x[0, :3] = [40000.0, -40000.0, 1e-6]

    def r(v: np.ndarray) -> np.ndarray:
        return v.astype(np.float16).astype(np.float32)

    with np.errstate(over="ignore"):
        expected = r(r(r(x) * r(np.float32(1.7))) + r(np.float32(0.3)))
    for level in ("basic", "all"):
        got = _session(tmp_path / "axb16.onnx", level).run(["y"], {"image": x})[0]
        np.testing.assert_array_equal(got, expected)
    assert np.isposinf(got[0, 0]) and np.isneginf(got[0, 1])
    assert np.isfinite(_session(tmp_path / "axb.onnx").run(["y"], {"image": x})[0]).all()


def test_weights_beyond_fp16_range_are_clamped_and_counted(tmp_path: Path) -> None:
    model = _graph([helper.make_node("Mul", ["image", "w"], ["y"], name="mul")],
                   [numpy_helper.from_array(np.array([1.0, 7e4, -1e5, 3e-9], np.float32), "w")], [1, 4])
    onnx.save(model, str(tmp_path / "big.onnx"))
    summary = to_fp16(tmp_path / "big.onnx", tmp_path / "big16.onnx", "tensorrt_fp16")
    assert summary["weights_clamped_to_fp16_max"] == 1
    got = _session(tmp_path / "big16.onnx").run(["y"], {"image": np.full((1, 4), 0.5, np.float32)})[0]
    np.testing.assert_allclose(got[0, :3], [0.5, 32752.0, -32752.0])


def test_shape_arithmetic_and_fp32_only_inputs_stay_fp32(tmp_path: Path) -> None:
    """Resize with float scales, Range, float shape arithmetic, Cast(to=FLOAT) and ConstantOfShape: the
    places where a plain conversion yields graphs ONNX Runtime rejects, or rounds a size."""
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    inits = [numpy_helper.from_array(np.array(v, dtype), name) for name, v, dtype in [
        ("two", 2.0, np.float32), ("start", 0.0, np.float32), ("limit", 8.0, np.float32), ("delta", 1.0, np.float32),
        ("lo", [0], np.int64), ("mid", [2], np.int64), ("hi", [4], np.int64), ("step", 0.01, np.float32),
        ("scales", [1.0, 1.0, 2.0, 2.0], np.float32)]]
    nodes = [
        helper.make_node("Shape", ["image"], ["shape"], name="shape"),
        helper.make_node("Slice", ["shape", "lo", "mid"], ["nc"], name="slice_nc"),
        helper.make_node("Slice", ["shape", "mid", "hi"], ["hw"], name="slice_hw"),
        helper.make_node("Cast", ["hw"], ["hw_f"], to=f32, name="hw_to_float"),
        helper.make_node("Mul", ["hw_f", "two"], ["hw2_f"], name="hw_times_two"),
        helper.make_node("Cast", ["hw2_f"], ["hw2"], to=i64, name="hw_to_int"),
        helper.make_node("Concat", ["nc", "hw2"], ["sizes"], axis=0, name="sizes"),
        helper.make_node("Resize", ["image", "", "", "sizes"], ["up_sizes"], mode="linear", name="resize_sizes"),
        helper.make_node("Resize", ["image", "", "scales"], ["up_scales"], mode="linear", name="resize_scales"),
        helper.make_node("Range", ["start", "limit", "delta"], ["ramp"], name="range"),
        helper.make_node("Mul", ["ramp", "step"], ["ramp_small"], name="ramp_scale"),
        helper.make_node("Shape", ["up_sizes"], ["up_shape"], name="up_shape"),
        helper.make_node("ConstantOfShape", ["up_shape"], ["half"], name="half",
                         value=helper.make_tensor("v", f32, [1], [0.5])),
        helper.make_node("Add", ["up_sizes", "up_scales"], ["s1"], name="add1"),
        helper.make_node("Add", ["s1", "ramp_small"], ["s2"], name="add2"),
        helper.make_node("Add", ["s2", "half"], ["y"], name="add3"),
    ]
    onnx.save(_graph(nodes, inits, [1, 2, 4, 4], [1, 2, 8, 8]), str(tmp_path / "shapes.onnx"))
    summary = to_fp16(tmp_path / "shapes.onnx", tmp_path / "shapes16.onnx", "tensorrt_fp16")

    reasons = summary["fp32_nodes_by_reason"]
    assert reasons["schema"] == {"Range": 1, "Resize": 1}  # Range has no float16; Resize scales is float only
    assert reasons["type_attribute"] == {"Cast": 1}
    assert reasons["shape"] == {"Cast": 1, "Mul": 1}
    x = np.random.default_rng(1).standard_normal((1, 2, 4, 4)).astype(np.float32)
    ref = _session(tmp_path / "shapes.onnx").run(["y"], {"image": x})[0]
    for level in ("basic", "all"):
        got = _session(tmp_path / "shapes16.onnx", level).run(["y"], {"image": x})[0]
        assert got.shape == ref.shape == (1, 2, 8, 8)
        np.testing.assert_allclose(got, ref, rtol=2e-3, atol=2e-3)


def test_unknown_policy_lists_the_valid_ones(graphs: dict[str, Path], tmp_path: Path) -> None:
    expected = r"unknown FP16 policy 'tensorrt_int8'; valid policies: qnn_gpu_fp16, tensorrt_fp16"
    with pytest.raises(BadInput, match=expected):
        to_fp16(graphs["conv"], tmp_path / "x.onnx", "tensorrt_int8")
    assert not (tmp_path / "x.onnx").exists()


def test_an_fp16_graph_is_not_converted_again(graphs: dict[str, Path], tmp_path: Path) -> None:
    to_fp16(graphs["conv"], tmp_path / "once.onnx", "tensorrt_fp16")
    with pytest.raises(Fp16ConversionError, match="already holds FLOAT16"):
        to_fp16(tmp_path / "once.onnx", tmp_path / "twice.onnx", "tensorrt_fp16")


def test_a_node_that_does_not_load_is_kept_fp32_then_named(graphs: dict[str, Path], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    sigmoid = next(n.name for n in onnx.load(str(graphs["conv"])).graph.node if n.op_type == "Sigmoid")
    error = f"Type Error: Type (tensor(float16)) of output arg (x) of node ({sigmoid}) does not match"
    real = fp16._validate
    calls: list[int] = []

    def fails_once(model: onnx.ModelProto) -> str | None:
        calls.append(1)
        return error if len(calls) == 1 else real(model)

    monkeypatch.setattr(fp16, "_validate", fails_once)
    summary = to_fp16(graphs["conv"], tmp_path / "retry.onnx", "qnn_gpu_fp16")
    assert summary["fp32_nodes_by_reason"]["load"] == {"Sigmoid": 1}
    assert summary["fp32_ops"] == {"Sigmoid": 1}
    assert _session(tmp_path / "retry.onnx").get_outputs()[0].type == "tensor(float)"

    monkeypatch.setattr(fp16, "_validate", lambda model: error)
    with pytest.raises(Fp16ConversionError, match=rf"node '{sigmoid}' \(Sigmoid\)"):
        to_fp16(graphs["conv"], tmp_path / "never.onnx", "qnn_gpu_fp16")
    assert not (tmp_path / "never.onnx").exists()


@pytest.mark.slow
def test_tinyglass_fp16_score_parity(tmp_path: Path) -> None:
    from bench.models import tinyglass
    from bench.models.export import export_onnx

    torch.manual_seed(0)
    export_onnx(tinyglass.build(None), (1, 3, 256, 256), tmp_path / "tinyglass.onnx", 18)
    for policy in POLICIES:
        summary = to_fp16(tmp_path / "tinyglass.onnx", tmp_path / f"{policy}.onnx", policy)
        assert summary["fp16_initializers"] > 0
        drift = _worst(tmp_path / "tinyglass.onnx", tmp_path / f"{policy}.onnx", (1, 3, 256, 256), count=3)
        assert 0 < drift["score"] <= FP16_TOLERANCE["score"], drift
        assert drift["patch_scores"] <= FP16_TOLERANCE["patch_scores"], drift
