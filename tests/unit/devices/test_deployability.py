"""The deployability lint on small hand-built graphs (ir_version 10, opset 18)."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from support.extras import need

onnx = need("export", "onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from bench.devices.deployability import Finding, lint, lint_targets  # noqa: E402
from bench.devices.registry import family  # noqa: E402

FLOAT = TensorProto.FLOAT


def model(nodes, inputs, outputs, initializers=(), extra_opsets=()) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    opsets = [helper.make_opsetid("", 18), *(helper.make_opsetid(domain, 1) for domain in extra_opsets)]
    built = helper.make_model(graph, opset_imports=opsets, ir_version=10)
    if not extra_opsets:
        onnx.checker.check_model(built, full_check=True)
    return built


def tensor(name, shape):
    return helper.make_tensor_value_info(name, FLOAT, shape)


def init(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def cnn(input_shape=(1, 3, 8, 8)) -> onnx.ModelProto:
    weight = init("w", np.zeros((4, 3, 3, 3), np.float32))
    nodes = [
        helper.make_node("Conv", ["image", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["score"], name="gap"),
    ]
    batch = input_shape[0]
    return model(nodes, [tensor("image", list(input_shape))], [tensor("score", [batch, 4, 1, 1])], [weight])


def keys(findings: list[Finding]) -> list[tuple[str, str, str, str]]:
    return [(f.target, f.severity, f.op_type, f.node) for f in findings]


def test_plain_cnn_is_clean_on_every_target():
    assert lint(cnn()) == {"imx500": [], "tensorrt": [], "rb5": []}


def test_resize_is_an_error_on_rb5_only():
    scales = init("scales", np.array([1, 1, 2, 2], np.float32))
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode="linear")
    result = lint(model([node], [tensor("x", [1, 4, 8, 8])], [tensor("y", [1, 4, 16, 16])], [scales]))
    assert result["imx500"] == []
    assert result["tensorrt"] == []
    assert keys(result["rb5"]) == [("rb5", "error", "Resize", "up")]
    assert "Resize" in result["rb5"][0].message


def test_cubic_resize_is_rejected_by_tensorrt():
    scales = init("scales", np.array([1, 1, 2, 2], np.float32))
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], name="up", mode="cubic")
    result = lint(model([node], [tensor("x", [1, 4, 8, 8])], [tensor("y", [1, 4, 16, 16])], [scales]))
    assert keys(result["tensorrt"]) == [("tensorrt", "error", "Resize", "up")]
    assert "cubic" in result["tensorrt"][0].message


def gather(indices) -> onnx.ModelProto:
    index = init("idx", np.asarray(indices, np.int64))
    out_shape = [1, *np.shape(indices), 4, 4]
    node = helper.make_node("Gather", ["x", "idx"], ["y"], name="pick", axis=1)
    return model([node], [tensor("x", [1, 8, 4, 4])], [tensor("y", out_shape)], [index])


def test_multi_index_gather_is_an_error_on_imx500():
    result = lint(gather([0, 2, 4]))
    assert keys(result["imx500"]) == [("imx500", "error", "Gather", "pick")]
    assert "3 indices" in result["imx500"][0].message
    assert result["tensorrt"] == []
    assert result["rb5"] == []


def test_scalar_index_gather_is_fine_on_imx500():
    assert lint(gather(2)) == {"imx500": [], "tensorrt": [], "rb5": []}


def test_dynamic_batch_is_an_error_for_imx500_and_rb5_and_a_warning_for_tensorrt():
    result = lint(cnn(("N", 3, 8, 8)))
    assert keys(result["imx500"]) == [("imx500", "error", "input", "image")]
    assert keys(result["rb5"]) == [("rb5", "error", "input", "image")]
    assert keys(result["tensorrt"]) == [("tensorrt", "warning", "input", "image")]
    assert "[N, 3, 8, 8]" in result["imx500"][0].message


def test_batch_two_is_an_error_on_imx500_only():
    result = lint(cnn((2, 3, 8, 8)))
    assert keys(result["imx500"]) == [("imx500", "error", "input", "image")]
    assert "batch size 2" in result["imx500"][0].message
    assert result["tensorrt"] == []
    assert result["rb5"] == []


def test_reshape_into_the_batch_dimension_is_an_error_on_imx500():
    shape = init("shape", np.array([4, 4], np.int64))
    node = helper.make_node("Reshape", ["x", "shape"], ["y"], name="fold")
    result = lint(model([node], [tensor("x", [1, 4, 2, 2])], [tensor("y", [4, 4])], [shape]))
    assert keys(result["imx500"]) == [("imx500", "error", "Reshape", "fold")]
    assert result["tensorrt"] == []
    assert result["rb5"] == []


def test_custom_domain_op_is_a_warning_everywhere():
    node = helper.make_node("FancyOp", ["x"], ["y"], name="fancy", domain="com.example")
    result = lint(model([node], [tensor("x", [1, 4])], [tensor("y", [1, 4])], extra_opsets=["com.example"]))
    assert {t: keys(f) for t, f in result.items()} == {
        t: [(t, "warning", "FancyOp", "fancy")] for t in ("imx500", "tensorrt", "rb5")
    }


def test_einsum_is_unknown_on_imx500_and_rb5_but_documented_for_tensorrt():
    weight = init("w", np.ones((1, 3, 4), np.float32))
    node = helper.make_node("Einsum", ["x", "w"], ["y"], name="mix", equation="bij,bjk->bik")
    result = lint(model([node], [tensor("x", [1, 2, 3])], [tensor("y", [1, 2, 4])], [weight]))
    assert keys(result["imx500"]) == [("imx500", "warning", "Einsum", "mix")]
    assert keys(result["rb5"]) == [("rb5", "warning", "Einsum", "mix")]
    assert result["tensorrt"] == []


def test_documented_tensorrt_rejection_is_an_error():
    node = helper.make_node("Det", ["x"], ["y"], name="det")
    result = lint(model([node], [tensor("x", [1, 3, 3])], [tensor("y", [1])]))
    assert keys(result["tensorrt"]) == [("tensorrt", "error", "Det", "det")]
    assert keys(result["imx500"]) == [("imx500", "warning", "Det", "det")]
    assert keys(result["rb5"]) == [("rb5", "warning", "Det", "det")]


def test_tensorrt_needs_reduce_axes_as_an_initializer():
    axes = helper.make_tensor_value_info("axes", TensorProto.INT64, [1])
    node = helper.make_node("ReduceMean", ["x", "axes"], ["y"], name="mean", keepdims=0)
    result = lint(model([node], [tensor("x", [1, 4, 8, 8]), axes], [tensor("y", [1, 8, 8])]), ["tensorrt"])
    assert keys(result["tensorrt"]) == [("tensorrt", "error", "ReduceMean", "mean")]


def test_qnn_converter_rejects_training_mode_batch_norm():
    params = [init(n, np.ones(4, np.float32)) for n in ("scale", "bias", "mean", "var")]
    node = helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["y", "rm", "rv"],
                            name="bn", training_mode=1)
    outputs = [tensor("y", [1, 4, 2, 2]), tensor("rm", [4]), tensor("rv", [4])]
    result = lint(model([node], [tensor("x", [1, 4, 2, 2])], outputs, params))
    assert keys(result["rb5"]) == [("rb5", "error", "BatchNormalization", "bn")]
    assert result["imx500"] == []
    assert result["tensorrt"] == []


def test_unknown_target_raises_listing_the_valid_ones():
    with pytest.raises(ValueError, match=r"'jetson'.*valid targets: imx500, rb5, tensorrt$"):
        lint(cnn(), ["tensorrt", "jetson"])


def test_targets_subset_and_path_input(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(cnn((2, 3, 8, 8)), path)
    assert list(lint(path, ["rb5", "imx500"])) == ["rb5", "imx500"]
    assert keys(lint(str(path), "imx500")["imx500"]) == [("imx500", "error", "input", "image")]


def test_targets_are_the_families_with_rules_and_each_names_its_sources_and_op_list():
    assert lint_targets() == ["imx500", "rb5", "tensorrt"]  # host has no rules
    for target in lint_targets():
        rules = importlib.import_module(family(target).lint.partition(":")[0])
        assert rules.SOURCES and rules.SUPPORTED
