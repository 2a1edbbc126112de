"""Graph complexity: exact MACs on hand-built graphs, published figures on exported real models."""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from support.extras import need

onnx = need("export", "onnx")
need("export", "torch")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from bench.models.complexity import Complexity, graph_complexity, torch_macs  # noqa: E402


def tensor(name: str, shape: list[int | str] | None, dtype: int = TensorProto.FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, dtype, shape)


def weight(name: str, shape: list[int], dtype: type = np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.arange(int(np.prod(shape))).reshape(shape).astype(dtype), name)


def model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
          initializers: Sequence[onnx.TensorProto] = (), opset: int = 18, ir_version: int = 10,
          **kwargs: Any) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir_version, **kwargs)


def test_conv_with_groups_padding_stride_dilation() -> None:
    conv = helper.make_node("Conv", ["x", "w", "b"], ["y"], group=4, pads=[1, 2, 1, 2], strides=[2, 1],
                            dilations=[1, 2])
    got = graph_complexity(model([conv], [tensor("x", [2, 8, 10, 12])], [tensor("y", None)],
                                 [weight("w", [16, 2, 3, 5]), weight("b", [16])]))
    # H: (10 + 2 - 3) // 2 + 1 = 5; W: dilated kernel 2 * 4 + 1 = 9, (12 + 4 - 9) // 1 + 1 = 8.
    assert got.output_shapes == {"y": [2, 16, 5, 8]}
    # Each of the 2*16*5*8 = 1280 outputs reads (8 / 4) input channels x 3x5 taps; the bias is not a MAC.
    assert got.macs == 1280 * 2 * 3 * 5 == 38400
    assert got.macs_by_op == {"Conv": 38400}
    assert got.params == 16 * 2 * 3 * 5 + 16
    assert got.ops == {"Conv": 1} and got.not_counted == {}


@pytest.mark.parametrize("a_shape, b_shape, attrs", [
    ([3, 5], [7, 5], {"transB": 1}),
    ([5, 3], [5, 7], {"transA": 1}),
    ([5, 3], [7, 5], {"transA": 1, "transB": 1}),
])
def test_gemm_transposes(a_shape: list[int], b_shape: list[int], attrs: dict[str, int]) -> None:
    gemm = helper.make_node("Gemm", ["a", "b", "c"], ["y"], alpha=2.0, **attrs)
    got = graph_complexity(model([gemm], [tensor("a", a_shape)], [tensor("y", None)],
                                 [weight("b", b_shape), weight("c", [7])]))
    assert got.output_shapes == {"y": [3, 7]}
    assert got.macs == 3 * 7 * 5 == 105
    assert got.params == 35 + 7


@pytest.mark.parametrize("a_shape, b_shape, out_shape, macs", [
    ([2, 1, 4, 3], [5, 3, 6], [2, 5, 4, 6], 2 * 5 * 4 * 6 * 3),  # batch dims broadcast to (2, 5)
    ([3], [2, 3, 4], [2, 4], 2 * 1 * 4 * 3),  # 1-D left operand: a row vector, its dim dropped
    ([2, 4, 3], [3], [2, 4], 2 * 4 * 1 * 3),  # 1-D right operand: a column vector
    ([3], [3], [], 3),  # dot product
])
def test_matmul_broadcasting_and_vectors(a_shape: list[int], b_shape: list[int], out_shape: list[int],
                                         macs: int) -> None:
    node = helper.make_node("MatMul", ["a", "b"], ["y"])
    got = graph_complexity(model([node], [tensor("a", a_shape), tensor("b", b_shape)], [tensor("y", None)]))
    assert got.output_shapes == {"y": out_shape}
    assert got.macs == macs
    assert got.params == 0


def test_conv_transpose_counts_per_input_element() -> None:
    import torch

    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], group=2, strides=[2, 2])
    got = graph_complexity(model([node], [tensor("x", [1, 4, 5, 5])], [tensor("y", None)],
                                 [weight("w", [4, 2, 3, 3])]))
    assert got.output_shapes == {"y": [1, 4, 11, 11]}  # (5 - 1) * 2 + 3 = 11, 2 groups x 2 channels
    # Each of the 1*4*5*5 = 100 inputs is scattered to (4 / 2) output channels x 3x3 taps.
    assert got.macs == 100 * 2 * 9 == 1800
    same = torch.nn.ConvTranspose2d(4, 4, 3, stride=2, groups=2, bias=False)
    assert torch_macs(same, torch.zeros(1, 4, 5, 5)) == 1800


@pytest.mark.parametrize("equation, shapes, macs", [
    ("bij,bjk->bik", [[2, 3, 4], [2, 4, 5]], 2 * 3 * 4 * 5),
    ("...ij,jk", [[7, 2, 3], [3, 4]], 7 * 2 * 3 * 4),
    ("ij,kj->", [[3, 4], [5, 4]], 4),  # i and k are summed out of their own operand first: reductions
    ("ij,ij->", [[3, 4], [3, 4]], 3 * 4),
    ("ij,ij->ij", [[3, 4], [3, 4]], 0),  # elementwise product: a Mul, not a contraction
    ("i,j->ij", [[3], [4]], 0),  # outer product: nothing summed
])
def test_einsum_two_operands(equation: str, shapes: list[list[int]], macs: int) -> None:
    import torch

    names = [f"x{i}" for i in range(len(shapes))]
    node = helper.make_node("Einsum", names, ["y"], equation=equation)
    got = graph_complexity(model([node], [tensor(n, s) for n, s in zip(names, shapes, strict=True)],
                                 [tensor("y", None)]))
    assert got.macs == macs and got.not_counted == {}
    operands = tuple(torch.ones(s) for s in shapes)
    assert torch_macs(lambda *xs: torch.einsum(equation, *xs), operands) == macs


def test_einsum_with_three_operands_is_listed_not_counted() -> None:
    node = helper.make_node("Einsum", ["a", "b", "c"], ["y"], equation="ij,jk,kl->il")
    got = graph_complexity(model([node], [tensor("a", [2, 3]), tensor("b", [3, 4]), tensor("c", [4, 5])],
                                 [tensor("y", None)]))
    assert got.macs == 0 and got.not_counted == {"Einsum": 1}


@pytest.mark.parametrize("q, k, v, attrs, past", [
    ([2, 4, 8, 16], [2, 2, 10, 16], [2, 2, 10, 12], {}, 0),  # 4-D, grouped-query (4 query heads on 2 kv heads)
    ([2, 8, 64], [2, 10, 32], [2, 10, 24], {"q_num_heads": 4, "kv_num_heads": 2}, 0),  # 3-D, same geometry
    ([2, 4, 8, 16], [2, 2, 10, 16], [2, 2, 10, 12], {}, 6),  # with a 6-step KV cache
])
def test_attention_op(q: list[int], k: list[int], v: list[int], attrs: dict[str, int], past: int) -> None:
    inputs = [tensor("q", q), tensor("k", k), tensor("v", v)]
    names = ["q", "k", "v"]
    if past:
        inputs += [tensor("pk", [2, 2, past, 16]), tensor("pv", [2, 2, past, 12])]
        names += ["", "pk", "pv"]
    node = helper.make_node("Attention", names, ["y"], **attrs)
    got = graph_complexity(model([node], inputs, [tensor("y", None)], opset=23, ir_version=11))
    # batch 2 x 4 query heads x 8 queries x (10 + past) keys x (16 for QK^T + 12 for PV).
    assert got.macs == 2 * 4 * 8 * (10 + past) * (16 + 12)
    assert got.macs_by_op == {"Attention": got.macs}


@pytest.mark.parametrize("a_shape, described", [(["N", 4], "['N', 4]"), ([None, 4], "['?', 4]"), (None, "unknown")])
def test_dynamic_operand_names_node_and_tensor(a_shape: list[int | str | None] | None, described: str) -> None:
    node = helper.make_node("MatMul", ["a", "w"], ["y"], name="head_mm")
    graph = model([node], [tensor("a", a_shape)], [tensor("y", None)], [weight("w", [4, 3])])
    with pytest.raises(ValueError, match=r"MatMul node 'head_mm': shape of tensor 'a' is ") as caught:
        graph_complexity(graph)
    assert described in str(caught.value)


def test_dynamic_graph_input_fails_even_without_mac_ops() -> None:
    relu = helper.make_node("Relu", ["x"], ["y"])
    with pytest.raises(ValueError, match=r"graph input 'x': shape of tensor 'x' is \['batch', 3\]"):
        graph_complexity(model([relu], [tensor("x", ["batch", 3])], [tensor("y", None)]))


def branch(nodes: list[onnx.NodeProto], output: str) -> onnx.GraphProto:
    return helper.make_graph(nodes, "branch", [], [tensor(output, None)])


def test_mac_op_inside_control_flow_fails() -> None:
    then = branch([helper.make_node("MatMul", ["x", "w"], ["t"], name="inner_mm")], "t")
    other = branch([helper.make_node("Identity", ["x"], ["e"])], "e")
    node = helper.make_node("If", ["cond"], ["y"], name="choose", then_branch=then, else_branch=other)
    graph = model([node], [tensor("cond", [], TensorProto.BOOL), tensor("x", [3, 3])], [tensor("y", None)],
                  [weight("w", [3, 3])])
    with pytest.raises(ValueError, match=r"If node 'choose'.*'then_branch'.*MatMul node 'inner_mm'"):
        graph_complexity(graph)


def test_control_flow_without_mac_ops_is_fine() -> None:
    then = branch([helper.make_node("Relu", ["x"], ["t"])], "t")
    other = branch([helper.make_node("Neg", ["x"], ["e"])], "e")
    node = helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other)
    got = graph_complexity(model([node], [tensor("cond", [], TensorProto.BOOL), tensor("x", [3, 3])],
                                 [tensor("y", [3, 3])]))
    assert got.macs == 0 and got.ops == {"If": 1}


def test_params_count_stored_float_weights_only() -> None:
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h0"]),  # w: 4x3 = 12, counted
        helper.make_node("Add", ["h0", "bias"], ["h1"]),  # bias: 3, counted
        helper.make_node("Mul", ["h1", "scalar"], ["h2"]),  # rank-0 scale: not a weight
        helper.make_node("Mul", ["h2", "one"], ["h3"]),  # one-element scale read by a Mul: not a weight
        helper.make_node("Constant", [], ["shift"], value=weight("shift_value", [3])),  # Constant node: 3, counted
        helper.make_node("Add", ["h3", "shift"], ["h4"]),
        helper.make_node("Gemm", ["h4", "g"], ["h5"]),  # g: 3x1 = 3, counted
        helper.make_node("Add", ["h5", "tail_bias"], ["h6"]),  # one element, but not read by a MAC op
        helper.make_node("Reshape", ["h6", "shape"], ["h6_img"]),  # int64 shape: not counted
        helper.make_node("Conv", ["h6_img", "cw", "cb"], ["h7"]),  # cw: 1x1x1x1 and cb: [1], both counted
        helper.make_node("Gather", ["table", "idx"], ["emb"]),  # float table 10x2 = 20 counted, int64 idx not
    ]
    inits = [weight("w", [4, 3]), weight("bias", [3]), numpy_helper.from_array(np.float32(0.5), "scalar"),
             weight("one", [1]), weight("g", [3, 1]), weight("tail_bias", [1]), weight("cw", [1, 1, 1, 1]),
             weight("cb", [1]), numpy_helper.from_array(np.array([1, 1, 1, 1], np.int64), "shape"),
             weight("table", [10, 2]), numpy_helper.from_array(np.array([0, 3], np.int64), "idx"),
             weight("unused", [100])]
    got = graph_complexity(model(nodes, [tensor("x", [1, 4])], [tensor("h7", None), tensor("emb", None)], inits))
    assert got.params == 12 + 3 + 3 + 3 + 1 + 1 + 20
    assert got.macs_by_op == {"MatMul": 12, "Gemm": 3, "Conv": 1}
    assert got.output_shapes == {"h7": [1, 1, 1, 1], "emb": [2, 2]}


def test_local_functions_are_inlined_and_counted() -> None:
    body = helper.make_function("local", "Linear", ["x", "w"], ["y"], [helper.make_node("MatMul", ["x", "w"], ["y"])],
                                [helper.make_opsetid("", 18)])
    call = helper.make_node("Linear", ["x", "w"], ["y"], domain="local")
    graph = helper.make_graph([call], "g", [tensor("x", [2, 5])], [tensor("y", None)], [weight("w", [5, 3])])
    built = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("local", 1)],
                              ir_version=10, functions=[body])
    got = graph_complexity(built)
    assert got.macs_by_op == {"MatMul": 2 * 3 * 5} and got.not_counted == {} and got.params == 15


def test_foreign_domain_ops_are_listed_as_not_counted() -> None:
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Fancy", ["x"], ["z"], domain="com.example")]
    graph = helper.make_graph(nodes, "g", [tensor("x", [2, 3])], [tensor("y", None)])
    built = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)],
                              ir_version=10)
    got = graph_complexity(built)
    assert got.ops == {"Relu": 1, "com.example.Fancy": 1}
    assert got.not_counted == {"com.example.Fancy": 1} and got.macs == 0


def test_to_dict_is_json(tmp_path: Path) -> None:
    node = helper.make_node("MatMul", ["a", "w"], ["y"])
    path = tmp_path / "m.onnx"
    onnx.save(model([node], [tensor("a", [2, 4])], [tensor("y", None)], [weight("w", [4, 3])]), path)
    got = graph_complexity(path)
    assert graph_complexity(str(path)) == got
    assert json.loads(json.dumps(got.to_dict())) == {
        "params": 12, "macs": 24, "macs_by_op": {"MatMul": 24}, "ops": {"MatMul": 1},
        "input_shapes": {"a": [2, 4]}, "output_shapes": {"y": [2, 3]}, "not_counted": {},
    }
    assert Complexity(**got.to_dict()) == got


def test_torch_macs_counts_cpu_attention() -> None:
    import torch

    q, k, v = torch.zeros(1, 2, 5, 4), torch.zeros(1, 2, 7, 4), torch.zeros(1, 2, 7, 3)
    sdpa = torch.nn.functional.scaled_dot_product_attention
    assert torch_macs(sdpa, (q, k, v)) == 1 * 2 * 5 * 7 * (4 + 3)


def randomised(module: Any) -> Any:
    """Trained-looking weights: default init gives all-zero folded biases and identical LayerNorm
    weights, which the exporter drops or merges, so the graph would under-count a real checkpoint."""
    import torch

    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.rand(param.shape, generator=generator) * 0.2 - 0.1)
        for norm in module.modules():
            if isinstance(norm, torch.nn.modules.batchnorm._BatchNorm):
                norm.running_mean.copy_(torch.rand(norm.running_mean.shape, generator=generator) - 0.5)
                norm.running_var.copy_(torch.rand(norm.running_var.shape, generator=generator) + 0.5)
    return module.eval()


def exported(module: Any, shape: tuple[int, ...], path: Path) -> tuple[Any, Any, Path]:
    import torch

    x = torch.zeros(shape)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The tensor attributes")  # timm TinyViT's attention-bias cache
        torch.onnx.export(module, (x,), path, dynamo=True, opset_version=18, external_data=False)
    return module, x, path


def torch_param_counts(module: Any) -> tuple[int, int]:
    """(parameters, BatchNorm channels): folding a BatchNorm into a bias-free Conv removes its scale and
    shift and gives the Conv one bias per channel, so the graph holds one element per channel fewer."""
    import torch

    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    return sum(p.numel() for p in module.parameters()), sum(n.num_features for n in norms)


def test_small_exported_module_matches_hand_count_and_torch(tmp_path: Path) -> None:
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Small(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8)
            self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=4)
            self.qkv, self.proj = nn.Linear(8, 24), nn.Linear(8, 8)
            self.up = nn.ConvTranspose2d(8, 4, 2, stride=2, groups=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.dw(torch.relu(self.bn(self.conv(x))))
            b, c, h, w = x.shape
            q, k, v = self.qkv(x.flatten(2).transpose(1, 2)).reshape(b, h * w, 3, 2, c // 2).permute(2, 0, 3, 1, 4)
            attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, h * w, c)
            return self.up(self.proj(attended).transpose(1, 2).reshape(b, c, h, w))

    module, x, path = exported(randomised(Small()), (2, 3, 16, 16), tmp_path / "small.onnx")
    got = graph_complexity(path)
    tokens = 2 * 8 * 8  # batch 2, 8x8 grid after the stride-2 conv
    assert got.macs_by_op == {
        "Conv": tokens * 8 * 3 * 9 + tokens * 8 * 2 * 9,
        "MatMul": tokens * 8 * 24 + 2 * 2 * 64 * 64 * (4 + 4) + tokens * 8 * 8,  # qkv, QK^T + PV (2 heads), proj
        "ConvTranspose": tokens * 8 * 2 * 4,
    }
    assert torch_macs(module, x) == got.macs
    params, bn_channels = torch_param_counts(module)
    assert got.params == params - bn_channels
    assert got.input_shapes == {"x": [2, 3, 16, 16]} and list(got.output_shapes.values()) == [[2, 4, 16, 16]]


@pytest.fixture(scope="module")
def resnet18(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path]:
    import torchvision

    path = tmp_path_factory.mktemp("resnet18") / "resnet18.onnx"
    return exported(randomised(torchvision.models.resnet18(weights=None)), (1, 3, 224, 224), path)


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Path]:
    import timm

    path = tmp_path_factory.mktemp("tiny_vit") / "tiny_vit_21m_512.onnx"
    module = timm.create_model("tiny_vit_21m_512", pretrained=False)
    return exported(randomised(module), (1, 3, 512, 512), path)


@pytest.mark.slow
def test_resnet18_matches_published_figures(resnet18: tuple[Any, Any, Path]) -> None:
    module, x, path = resnet18
    got = graph_complexity(path)
    assert got.macs == 1_814_073_344  # 20 convs + the 512x1000 fc; torchvision's "1.81 GFLOPS"
    assert abs(got.macs / 1.814e9 - 1) < 0.01
    assert abs(got.params / 11.69e6 - 1) < 0.01
    params, bn_channels = torch_param_counts(module)
    assert params == 11_689_512 and got.params == params - bn_channels
    assert got.ops["Conv"] == 20 and "BatchNormalization" not in got.ops and got.not_counted == {}
    assert got.input_shapes == {"x": [1, 3, 224, 224]} and list(got.output_shapes.values()) == [[1, 1000]]
    assert abs(torch_macs(module, x) / got.macs - 1) < 0.01


@pytest.mark.slow
def test_tiny_vit_21m_512_matches_published_figures(tiny_vit: tuple[Any, Any, Path]) -> None:
    module, x, path = tiny_vit
    got = graph_complexity(path)
    assert abs(got.macs / 27.0e9 - 1) < 0.02  # timm model card / TinyViT paper: 27.0 GMACs
    assert abs(got.params / 21.2e6 - 1) < 0.02  # 21.2 M params, attention bias tables included
    params, bn_channels = torch_param_counts(module)
    assert got.params == params - bn_channels
    assert got.macs_by_op.keys() == {"Conv", "MatMul", "Gemm"} and got.not_counted == {}
    assert abs(torch_macs(module, x) / got.macs - 1) < 0.01
