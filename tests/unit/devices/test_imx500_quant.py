"""MCT post-training quantization for the IMX500: MCTQ ONNX export and its INT8 numerics in ONNX Runtime."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from support.extras import need

onnx = need("export", "onnx")
torch = need("export", "torch")
mct = need("imx500", "model_compression_toolkit")
need("imx500", "onnxruntime_extensions")  # runs the mct_quantizers ONNX Runtime ops

import torch.nn.functional as F  # noqa: E402
from support.small_net import images, small_net  # noqa: E402
from torch import nn  # noqa: E402

from bench.devices.imx500 import quant  # noqa: E402
from bench.devices.imx500.quant import (  # noqa: E402
    QuantizationFailed,
    QuantizationUnavailable,
    calibration_batches,
    ort_session,
    quantize_for_imx500,
)
from bench.errors import BadInput  # noqa: E402


def fp32(module: nn.Module, image: np.ndarray) -> list[np.ndarray]:
    with torch.inference_mode():
        return [t.numpy() for t in module(torch.from_numpy(image))]


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory) -> dict:
    net = small_net()
    test_images = images(4, 32, seed=1)
    before = [fp32(net, image) for image in test_images]
    report = quantize_for_imx500(net, images(8, 32), tmp_path_factory.mktemp("mctq"))
    return {"net": net, "report": report, "test_images": test_images, "before": before}


def test_mcts_own_output_goes_to_its_log_not_the_terminal(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    """Issue 20: MCT's progress bars and warnings were stray lines on a run's stderr; they are kept in mct.log
    beside the artifact, and MCT's logger is left as it was."""
    import logging

    logger = logging.getLogger(quant.MCT_LOGGER)
    before = (logger.level, logger.propagate, list(logger.handlers))
    quantize_for_imx500(small_net(), images(2, 32), tmp_path)
    err = capfd.readouterr().err
    assert err.count("quantizing with MCT") == 1 and str(tmp_path / "mct.log") in err
    for stray in ("Statistics Collection", "Calculating quantization parameters", "representative_data_gen"):
        assert stray not in err
    log = (tmp_path / "mct.log").read_text(encoding="utf-8")
    assert "Statistics Collection" in log and "representative_data_gen generates a batch size of 1" in log
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def test_report_records_calibration_versions_and_file(quantized: dict) -> None:
    import mct_quantizers

    report = quantized["report"]
    assert report.representative_images == 8
    assert report.calibration_batches == 8
    assert report.mct_version == mct.__version__
    assert report.mct_quantizers_version == mct_quantizers.__version__
    assert report.torch_version == torch.__version__
    assert report.tpc.startswith("imx500_tpc v5.0")
    assert report.onnx_path.name == "model_mctq.onnx"
    assert report.onnx_sha256 == quant.file_sha256(report.onnx_path)
    assert report.input_name == "image"
    assert report.input_shape[1:] == (3, 32, 32)
    assert report.output_names == ("score", "patch_scores")
    assert report.bit_widths == {"activation": [8], "weights": [8]}
    assert report.quantizer_nodes["WeightsSymmetricQuantizer"] == 4  # one per conv (BN folded into it)
    assert report.seconds >= report.ptq_seconds + report.export_seconds > 0
    sidecar = json.loads((report.onnx_path.parent / "model_mctq.json").read_text(encoding="utf-8"))
    assert sidecar == json.loads(json.dumps(report.to_json()))


def test_onnx_holds_mct_quantizer_custom_ops(quantized: dict) -> None:
    graph = onnx.load(str(quantized["report"].onnx_path))
    custom = [node.op_type for node in graph.graph.node if node.domain == "mct_quantizers"]
    assert "ActivationPOTQuantizer" in custom and "WeightsSymmetricQuantizer" in custom
    assert any(op.domain == "mct_quantizers" for op in graph.opset_import)
    assert {entry.key for entry in graph.metadata_props} >= {"mct_version", "tpc_minor_version"}


def test_int8_model_runs_close_to_fp32_but_not_identical(quantized: dict) -> None:
    report, net = quantized["report"], quantized["net"]
    session = ort_session(report.onnx_path, threads=1)
    assert [o.name for o in session.get_outputs()] == ["score", "patch_scores"]
    worst = {"score": 0.0, "patch_scores": 0.0}
    identical = True
    for image, before in zip(quantized["test_images"], quantized["before"], strict=True):
        score, patches = session.run(["score", "patch_scores"], {"image": image})
        ref_score, ref_patches = fp32(net, image)
        assert all(np.array_equal(a, b) for a, b in zip(before, (ref_score, ref_patches), strict=True))
        assert score.shape == ref_score.shape and patches.shape == ref_patches.shape
        worst["score"] = max(worst["score"], float(np.abs(score - ref_score).max()))
        worst["patch_scores"] = max(worst["patch_scores"], float(np.abs(patches - ref_patches).max()))
        identical = identical and np.array_equal(patches, ref_patches)
    assert worst["score"] < 0.05
    assert worst["patch_scores"] < 0.05
    assert not identical
    assert set(report.int8_vs_fp32) == {"score", "patch_scores"}
    assert 0 < report.int8_vs_fp32["patch_scores"] < 0.05


def test_calibration_batches_follow_n_iter() -> None:
    reps = images(3, 8)
    assert len(calibration_batches(reps)) == 3
    assert [b is r for b, r in zip(calibration_batches(reps, 2), reps, strict=False)] == [True, True]
    cycled = calibration_batches(reps, 7)
    assert len(cycled) == 7 and cycled[6] is reps[0]
    assert calibration_batches([np.zeros((1, 3, 4, 4), dtype=np.float64)])[0].dtype == np.float32


@pytest.mark.parametrize(("reps", "n_iter", "message"), [
    ([], None, "at least one representative image"),
    ([np.zeros((3, 8, 8), dtype=np.float32)], None, "expected [1, 3, H, W]"),
    ([np.zeros((1, 3, 8, 8), dtype=np.float32), np.zeros((1, 3, 4, 4), dtype=np.float32)], None, "image 0 has"),
    ([np.zeros((1, 3, 8, 8), dtype=np.float32)], 0, "n_iter must be at least 1"),
])
def test_bad_representative_data_is_bad_input(reps: list[np.ndarray], n_iter: int | None, message: str,
                                              tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=message.replace("[", r"\[")):
        quantize_for_imx500(small_net(), reps, tmp_path, n_iter)


def test_unknown_tpc_version_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"IMX500 TPC version '9\.9'"):
        quantize_for_imx500(small_net(), images(1, 8), tmp_path, tpc_version="9.9")


def test_missing_mct_tells_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "model_compression_toolkit", None)
    with pytest.raises(QuantizationUnavailable, match=r"pip install -e '\.\[imx500\]'") as info:
        quantize_for_imx500(small_net(), images(1, 8), tmp_path)
    assert "\n" not in str(info.value)


class GroupedFunctionalConv(nn.Module):
    """A fixed depthwise filter through F.conv2d, as TinyGLASS's PatchExtractor does it."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("weight", torch.ones(6, 1, 3, 3) / 9, persistent=False)
        self.head = nn.Conv2d(6, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patches = torch.sigmoid(self.head(F.relu(F.conv2d(x, self.weight, padding=1, groups=3))))
        return patches.amax(dim=(1, 2, 3)), patches


def test_mct_grouped_functional_conv_failure_is_named(tmp_path: Path) -> None:
    """MCT 2.6.1 rebuilds F.conv2d(groups=g) as nn.Conv2d(in_channels=weight.shape[1]): a known MCT bug."""
    with pytest.raises(QuantizationFailed, match=r"in_channels must be divisible by groups.*nn\.Conv2d module") as info:
        quantize_for_imx500(GroupedFunctionalConv().eval(), images(2, 8), tmp_path)
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_tinyglass_quantizes_exports_and_runs(tmp_path: Path, record_property: pytest.RecordProperty) -> None:
    """The official TinyGLASS network: module patch extraction, average pooling, reshape-mean reduction, amax."""
    from bench.models import tinyglass

    torch.manual_seed(0)
    model = tinyglass.build(None).eval()
    probe = images(1, 256, seed=5)[0]
    expected = fp32(model, probe)

    report = quantize_for_imx500(model, images(8, 256), tmp_path)
    record_property("quantize_seconds", report.seconds)
    record_property("ptq_seconds", report.ptq_seconds)
    assert report.representative_images == 8
    assert report.input_shape[1:] == (3, 256, 256)
    assert report.output_names == ("score", "patch_scores")
    assert report.bit_widths == {"activation": [8], "weights": [8]}
    session = ort_session(report.onnx_path)
    score, patches = session.run(["score", "patch_scores"], {"image": probe})
    assert score.shape == (1,) and patches.shape == (1, 1, 16, 16)
    assert abs(float(score[0]) - float(expected[0][0])) < 0.05
    assert float(np.abs(patches - expected[1]).max()) < 0.05
    assert not np.array_equal(patches, expected[1])


def test_pixel_input_model_normalises_inside(tmp_path: Path) -> None:
    """With the preprocessing's mean/std the INT8 network takes RGB in [0, 1] (the sensor's input) and gives
    what the FP32 module gives on the normalised tensor."""
    from bench.devices.imx500.quant import Normalization, to_pixels

    norm = Normalization((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    net = small_net()
    mean = np.asarray(norm.mean, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(norm.std, np.float32).reshape(1, 3, 1, 1)
    normalised = [(image - mean) / std for image in images(8, 32)]
    report = quantize_for_imx500(net, normalised, tmp_path, normalization=norm)
    assert report.input.startswith("rgb in [0, 1]") and report.normalization == norm.to_json()
    session = ort_session(report.onnx_path, threads=1)
    for pixels in images(3, 32, seed=5):
        tensor = (pixels - mean) / std
        np.testing.assert_allclose(to_pixels(tensor, norm), pixels, atol=1e-6)
        score, patches = session.run(["score", "patch_scores"], {"image": pixels})
        ref_score, ref_patches = fp32(net, tensor)
        assert float(np.abs(patches - ref_patches).max()) < 0.05 and float(np.abs(score - ref_score).max()) < 0.05


class Brightness(nn.Module):
    """A detector in miniature whose score grows with brightness: sigmoid(8 * (mean - 0.5)) per 4x4 cell."""

    def __init__(self) -> None:
        super().__init__()
        self.cells = nn.Conv2d(3, 1, 4, stride=4)
        with torch.no_grad():
            self.cells.weight.fill_(8.0 / 48)
            self.cells.bias.fill_(-4.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patches = torch.sigmoid(self.cells(x))
        return patches.amax(dim=(1, 2, 3)), patches


def test_output_rail_is_where_a_saturated_output_sits(tmp_path: Path) -> None:
    """Calibrated on dim images only, a bright image's score is clipped; the value ONNX Runtime returns is
    the rail the report names (the demo's 22 of 28 fabric scores at 255/512 were such a rail)."""
    dim = [np.full((1, 3, 16, 16), v, np.float32) for v in (0.1, 0.2, 0.3, 0.35)]
    torch.manual_seed(0)
    report = quantize_for_imx500(Brightness().eval(), dim, tmp_path)
    rail = report.output_rails["score"]
    with torch.inference_mode():
        assert float(Brightness()(torch.from_numpy(dim[-1]))[0][0]) < rail < 0.99
    session = ort_session(report.onnx_path)
    bright = [session.run(["score"], {"image": np.full((1, 3, 16, 16), v, np.float32)})[0][0] for v in (0.8, 0.9)]
    assert bright[0] == bright[1] == np.float32(rail)


# --- INT8 emulation through standard Q/DQ (issue 19): MCT's own graph is the reference ---


def custom_graph(nodes: list, inits: list, out_shape: list[int], in_shape: list[int] | None = None) -> onnx.ModelProto:
    """A graph of mct_quantizers nodes on one input ``x`` (default [1, 4, 6, 6]), as MCTQ exports them (opset 20)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                         in_shape or [1, 4, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20),
                                                   helper.make_opsetid("mct_quantizers", 1)])


def act_node(inp: str, out: str, threshold: float, signed: int, bits: int) -> onnx.NodeProto:
    from onnx import helper

    return helper.make_node("ActivationPOTQuantizer", [inp], [out], domain="mct_quantizers", threshold=threshold,
                            signed=signed, num_bits=bits)


def run_both(model: onnx.ModelProto, tmp_path: Path, x: np.ndarray) -> tuple[list, list]:
    from bench.devices.imx500.emulation import mctq_session, qdq_session

    path = tmp_path / "g.onnx"
    onnx.save(model, str(path))
    return mctq_session(path, 1).run(None, {"x": x}), qdq_session(model, 1).run(None, {"x": x})


@pytest.mark.parametrize(("threshold", "signed", "bits"), [(1.0, 0, 8), (2.0, 1, 8), (0.5, 1, 4), (4.0, 0, 3)])
def test_activation_quantizer_as_qdq_equals_mct_on_ties_and_rails(tmp_path: Path, threshold: float, signed: int,
                                                                  bits: int) -> None:
    """Every rounding tie (k + 1/2 steps), values far past both rails and random values: bit-identical."""
    step = threshold / 2 ** (bits - signed)
    levels = np.arange(-2 ** bits, 2 ** bits) * step
    ties = levels + 0.5 * step
    rng = np.random.default_rng(3)
    x = np.concatenate([levels, ties, [-10 * threshold, 10 * threshold, threshold, -threshold, threshold - step / 2],
                        rng.uniform(-1.5 * threshold, 1.5 * threshold, 1000)]).astype(np.float32)
    shape = [1, 1, 1, x.size]
    model = custom_graph([act_node("x", "y", threshold, signed, bits)], [], shape, shape)
    (want,), (got,) = run_both(model, tmp_path, x.reshape(shape))
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(got)) == 2 ** bits  # every level is reached, rails included


@pytest.mark.parametrize("per_channel", [True, False])
def test_weight_quantizer_as_int8_dequantize_equals_mct(tmp_path: Path, per_channel: bool) -> None:
    """Per-channel (axis 0, non-power-of-two thresholds below the largest weight, so some clip) and per-tensor."""
    from onnx import helper, numpy_helper

    from bench.devices.imx500.emulation import mctq_to_qdq

    rng = np.random.default_rng(4)
    weight = rng.normal(0, 0.3, (5, 4, 3, 3)).astype(np.float32)
    threshold = (np.abs(weight).reshape(5, -1).max(1) * 0.8 if per_channel else
                 np.array([0.5])).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["t"], value=numpy_helper.from_array(threshold)),
        helper.make_node("WeightsSymmetricQuantizer", ["w", "t"], ["wq"], domain="mct_quantizers", num_bits=8,
                         per_channel=int(per_channel), channel_axis=0, signed=1),
        helper.make_node("Conv", ["x", "wq"], ["c"], pads=[1, 1, 1, 1]),
        act_node("c", "y", 4.0, 1, 8),
    ]
    model = custom_graph(nodes, [numpy_helper.from_array(weight, "w")], [1, 5, 6, 6])
    x = rng.normal(0, 1, (1, 4, 6, 6)).astype(np.float32)
    (want,), (got,) = run_both(model, tmp_path, x)
    np.testing.assert_array_equal(got, want)
    converted, replaced = mctq_to_qdq(model)
    assert replaced == {"ActivationPOTQuantizer": 1, "WeightsSymmetricQuantizer": 1}
    assert not any(n.domain == "mct_quantizers" for n in converted.graph.node)
    assert {o.domain for o in converted.opset_import} == {""}
    ints = {i.name: numpy_helper.to_array(i) for i in converted.graph.initializer}
    q = ints["wq__int"]
    assert q.dtype == np.int8 and q.min() == -128 and q.max() == 127  # some weights clip at both rails
    assert "w" not in ints  # the float weights are gone


def test_unknown_quantizer_is_a_one_line_error() -> None:
    from onnx import helper

    from bench.devices.imx500.emulation import mctq_to_qdq

    node = helper.make_node("ActivationUniformQuantizer", ["x"], ["y"], domain="mct_quantizers", num_bits=8,
                            min_range=-1.0, max_range=1.0)
    with pytest.raises(BadInput, match=r"ActivationUniformQuantizer.*not supported") as info:
        mctq_to_qdq(custom_graph([node], [], [1, 4, 6, 6]))
    assert "\n" not in str(info.value)


def test_qdq_emulation_agrees_with_mct_on_small_nets(quantized: dict, tmp_path: Path) -> None:
    """Exported MCTQ models of real PTQ runs: the Q/DQ graph gives MCT's outputs within one output step (the
    sigmoid's 1/256), and the image AUROC of both agrees with scikit-learn's on MCT's own scores."""
    from sklearn.metrics import roc_auc_score

    from bench.devices.imx500.emulation import agreement, mctq_session, qdq_session

    rng = np.random.default_rng(6)

    def noisy(level: float) -> np.ndarray:
        return np.clip(level + rng.normal(0, 0.25, (1, 3, 16, 16)), 0, 1).astype(np.float32)

    torch.manual_seed(0)
    bright = quantize_for_imx500(Brightness().eval(), [noisy(v) for v in np.linspace(0.1, 0.9, 8)], tmp_path)
    levels = [0.35, 0.65, 0.4, 0.6, 0.45, 0.55, 0.5, 0.5, 0.3, 0.7]
    cases = [(quantized["report"].onnx_path, quantized["test_images"] + images(4, 32, seed=9), [0, 1] * 4),
             (bright.onnx_path, [noisy(v) for v in levels], [int(v > 0.5) for v in levels[:6]] + [0, 1, 0, 1])]
    step = 1 / 256
    for path, test_images, labels in cases:
        reference, fast = mctq_session(path, 1), qdq_session(onnx.load(str(path)), 1)
        want = [reference.run(["score", "patch_scores"], {"image": image}) for image in test_images]
        got = [fast.run(["score", "patch_scores"], {"image": image}) for image in test_images]
        worst = max(float(np.abs(w - g).max()) for pair_w, pair_g in zip(want, got, strict=True)
                    for w, g in zip(pair_w, pair_g, strict=True))
        assert worst <= step
        result = agreement(path, test_images, labels, threads=1)
        assert result["images"] == len(test_images)
        assert result["max_abs_difference"]["score"] == pytest.approx(max(
            abs(float(w[0][0]) - float(g[0][0])) for w, g in zip(want, got, strict=True)), abs=1e-12)
        mct_auroc = roc_auc_score(labels, [float(w[0][0]) for w in want])
        assert result["image_auroc"]["mctq"] == pytest.approx(mct_auroc, abs=1e-12)
        assert result["image_auroc"]["qdq"] == pytest.approx(roc_auc_score(labels, [float(g[0][0]) for g in got]),
                                                             abs=1e-12)
    assert 0.5 < mct_auroc < 1.0  # the brightness net ranks its images, imperfectly: the AUROC is informative
