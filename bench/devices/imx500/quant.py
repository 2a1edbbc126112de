"""The IMX500's INT8 numerics on the host: MCT post-training quantization, exported as MCTQ ONNX.

The IMX500 converter does not quantize; it takes a model that Sony's Model Compression Toolkit
(MCT) has already quantized with the IMX500 target platform capabilities (TPC). Running that
same quantized model in ONNX Runtime (with the mct_quantizers custom ops) therefore predicts the
device's drift from FP32 before any hardware is involved, and the file written here is the one
the converter receives later, so predicted and measured drift refer to one model.

MCT and mct_quantizers are the ``imx500`` extra; they are imported inside the functions so the
rest of the harness works without them.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.devices.base import ExportedModel
from bench.errors import BadInput, BenchError
from bench.models.export import INPUT_NAME, OUTPUT_NAMES
from bench.records.atomic import replace_atomically, write_json
from bench.util import file_sha256

# TPC 5.0 is the newest IMX500 TPC that MCT 2.6.1 maps to a converter release (sdspconv 3.17/3.18,
# see mct.get_target_platform_capabilities_sdsp); later converters accept it too.
TPC_VERSION = "5.0"
MIN_MCT = (2, 6)
ONNX_NAME = "model_mctq.onnx"
REPORT_NAME = "model_mctq.json"
MCT_LOG = "mct.log"  # MCT's own output while it quantizes and exports
MCT_LOGGER = "Model Compression Toolkit"  # model_compression_toolkit.logger.LOGGER_NAME (MCT 2.6.1)
CUSTOM_DOMAIN = "mct_quantizers"
INSTALL_HINT = "pip install -e '.[imx500]'"

# MCT errors whose cause is known but whose message does not say it.
_HINTS = {
    "in_channels must be divisible by groups": (
        "MCT 2.6 rebuilds a functional grouped F.conv2d as nn.Conv2d with in_channels=weight.shape[1]; "
        "hold the grouped convolution in an nn.Conv2d module instead"
    ),
}


class QuantizationUnavailable(BenchError):
    """MCT, mct_quantizers or the ONNX Runtime custom-op library is missing or too old."""


class QuantizationFailed(BenchError):
    """MCT could not quantize or export the model, or the exported model does not run."""


@dataclass(frozen=True)
class QuantizationReport:
    """What was quantized, with what, and how it came out; written beside the ONNX as JSON.

    ``quantizer_nodes`` counts the mct_quantizers custom ops by type (each activation quantizer
    and each quantized weight tensor is one node); ``bit_widths`` lists the bit widths they use.
    ``int8_vs_fp32`` is the largest absolute difference per output between ONNX Runtime on the
    MCTQ model and the FP32 module, on the first representative image (a smoke check, not a metric).
    """

    mct_version: str
    mct_quantizers_version: str
    torch_version: str
    tpc: str
    representative_images: int
    calibration_batches: int
    onnx_path: Path
    onnx_sha256: str
    opset: int
    input_name: str
    input_shape: tuple[int | str, ...]
    output_names: tuple[str, ...]
    quantizer_nodes: dict[str, int]
    bit_widths: dict[str, list[int]]
    int8_vs_fp32: dict[str, float]
    ptq_seconds: float
    export_seconds: float
    seconds: float
    input: str = "normalised tensor"
    normalization: dict[str, list[float]] | None = None
    calibration: dict[str, Any] | None = None
    output_rails: dict[str, float] | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["onnx_path"] = str(self.onnx_path)
        return data


@dataclass(frozen=True)
class Normalization:
    """The preprocessing's per-channel mean and std: normalised = (pixels in [0, 1] - mean) / std."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def to_json(self) -> dict[str, list[float]]:
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_json(cls, data: dict[str, list[float]]) -> Normalization:
        return cls(tuple(data["mean"]), tuple(data["std"]))


def to_pixels(image: np.ndarray, normalization: Normalization) -> np.ndarray:
    """A normalised [1, 3, H, W] tensor back to RGB in [0, 1] (clipped: the sensor cannot see beyond)."""
    mean = np.asarray(normalization.mean, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(normalization.std, np.float32).reshape(1, 3, 1, 1)
    return np.clip(image * std + mean, 0.0, 1.0).astype(np.float32)


def pixel_input(module: Any, normalization: Normalization) -> Any:
    """``module`` behind a fixed per-channel affine layer, so the network takes RGB in [0, 1].

    The affine is a depthwise 1x1 ``nn.Conv2d`` (weight 1/std, bias -mean/std): an op the IMX500 TPC
    quantizes like any convolution, kept in a module so MCT rebuilds it as one.
    """
    import torch
    from torch import nn

    class PixelInput(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.normalize = nn.Conv2d(3, 3, kernel_size=1, groups=3, bias=True)
            std = torch.tensor(normalization.std, dtype=torch.float32)
            mean = torch.tensor(normalization.mean, dtype=torch.float32)
            with torch.no_grad():
                self.normalize.weight.copy_((1.0 / std).reshape(3, 1, 1, 1))
                self.normalize.bias.copy_(-mean / std)
            self.model = module

        def forward(self, pixels: Any) -> Any:
            return self.model(self.normalize(pixels))

    return PixelInput().eval()


def quantize_for_imx500(
    module: Any, representative: list[np.ndarray], out_dir: Path, n_iter: int | None = None, *,
    tpc_version: str = TPC_VERSION, output_names: tuple[str, ...] = OUTPUT_NAMES,
    normalization: Normalization | None = None, calibration: dict[str, Any] | None = None,
) -> QuantizationReport:
    """MCT PTQ of ``module`` with the IMX500 TPC, exported as MCTQ ONNX to ``out_dir/model_mctq.onnx``.

    ``representative`` are normal training images, each [1, 3, H, W] float32, preprocessed exactly
    as at inference (the input quantizer's range is calibrated on them). MCT sees ``n_iter``
    calibration batches (default: each image once; fewer uses the first ``n_iter`` images, more
    cycles through them). The graph input is named ``image`` and the outputs ``output_names``, as
    in the FP32 export. ``tpc_version`` picks the IMX500 TPC (MCT offers 1.0, 4.0, 5.0, 6.0). The
    report is also written to ``out_dir/model_mctq.json``.

    With ``normalization`` (the preprocessing's mean and std) the quantized network takes the image
    as RGB in [0, 1], the sensor's own input, and normalises inside (:class:`PixelInput`); the
    representative images are mapped back to [0, 1] for calibration. That is the form the IMX500
    runs: its input tensor is the camera image (or an injected one) quantized from [0, 1].
    """
    started = time.perf_counter()
    mct, mct_quantizers = _require_mct()
    import torch

    if normalization is not None:
        module = pixel_input(module, normalization)
        representative = [to_pixels(image, normalization) for image in representative]
    batches = calibration_batches(representative, n_iter)
    module = module.eval()
    reference = _fp32_outputs(module, batches[0])
    if len(reference) != len(output_names):
        raise BadInput(f"the module returns {len(reference)} outputs but {len(output_names)} names were given "
                       f"({', '.join(output_names)})")

    def representative_data_gen() -> Iterator[list[np.ndarray]]:
        for batch in batches:
            yield [batch]

    def export_data_gen() -> Iterator[list[np.ndarray]]:
        yield [batches[0]]

    tpc = _imx500_tpc(mct, tpc_version)
    tick = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"quantizing with MCT {mct.__version__} (IMX500 TPC v{tpc_version}, {len(batches)} calibration batches; "
          f"its output goes to {out_dir / MCT_LOG}) ...", file=sys.stderr, flush=True)
    try:
        with _mct_output_to(out_dir / MCT_LOG):
            quantized, _ = mct.ptq.pytorch_post_training_quantization(
                module, representative_data_gen, target_platform_capabilities=tpc)
    except Exception as exc:
        raise QuantizationFailed(f"MCT post-training quantization failed: {_one_line(exc)}") from exc
    ptq_seconds = time.perf_counter() - tick

    onnx_path = out_dir / ONNX_NAME
    tick = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".mctq-") as tmp:
        raw = Path(tmp) / ONNX_NAME
        try:
            with _torchscript_onnx_export(), _mct_output_to(out_dir / MCT_LOG):
                mct.exporter.pytorch_export_model(
                    quantized.eval(), str(raw), export_data_gen,
                    serialization_format=mct.exporter.PytorchExportSerializationFormat.ONNX,
                    quantization_format=mct.exporter.QuantizationFormat.MCTQ,
                    output_names=list(output_names))
        except Exception as exc:
            raise QuantizationFailed(f"MCT could not export the quantized model as MCTQ ONNX: {_one_line(exc)}") \
                from exc
        graph = _rename_input(raw, INPUT_NAME)
    replace_atomically(onnx_path, lambda target: target.write_bytes(graph.SerializeToString()))
    export_seconds = time.perf_counter() - tick

    session = ort_session(onnx_path)
    try:
        got = session.run(list(output_names), {INPUT_NAME: batches[0]})
    except Exception as exc:
        raise QuantizationFailed(f"the MCTQ model does not run in ONNX Runtime: {_one_line(exc)}") from exc
    diffs = {name: float(np.max(np.abs(out.astype(np.float64) - ref.reshape(out.shape))))
             for name, out, ref in zip(output_names, got, reference, strict=True)}

    nodes, bits = _quantizer_summary(graph)
    report = QuantizationReport(
        mct_version=mct.__version__,
        mct_quantizers_version=mct_quantizers.__version__,
        torch_version=torch.__version__,
        tpc=f"{tpc.name} v{tpc.tpc_minor_version}.{tpc.tpc_patch_version} "
            f"({tpc.tpc_platform_type}, schema {tpc.SCHEMA_VERSION})",
        representative_images=min(len(representative), len(batches)),
        calibration_batches=len(batches),
        onnx_path=onnx_path,
        onnx_sha256=file_sha256(onnx_path),
        opset=next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), 0),
        input_name=INPUT_NAME,
        input_shape=_input_shape(graph),
        output_names=tuple(o.name for o in graph.graph.output),
        quantizer_nodes=nodes,
        bit_widths=bits,
        int8_vs_fp32=diffs,
        ptq_seconds=round(ptq_seconds, 3),
        export_seconds=round(export_seconds, 3),
        seconds=round(time.perf_counter() - started, 3),
        input="rgb in [0, 1], normalised inside the network" if normalization else "normalised tensor",
        normalization=normalization.to_json() if normalization else None,
        calibration=calibration,
        output_rails=output_rails(graph),
    )
    write_json(out_dir / REPORT_NAME, report.to_json())
    return report


def quantize_exported(exported: ExportedModel, workdir: Path, count: int, device_name: str) -> QuantizationReport:
    """MCT INT8 of the exported model's module with pixels in [0, 1] in: shared by the device and ``--emulate``."""
    if exported.module is None or exported.representative is None:
        raise BadInput(f"{device_name}: INT8 quantization needs the PyTorch module and representative images "
                       f"(compile it on the host that exports the model)")
    normalization = Normalization(*exported.normalization) if exported.normalization else None
    return quantize_for_imx500(exported.module, exported.representative(count), workdir,
                               normalization=normalization, tpc_version=exported.tpc_version or TPC_VERSION,
                               output_names=tuple(exported.output_names), calibration=exported.calibration)


def ort_session(onnx_path: Path, threads: int | None = None, *, basic: bool = False) -> Any:
    """An ONNX Runtime CPU session with the mct_quantizers custom ops registered (needed for MCTQ models);
    ``basic``: basic graph optimisation only, as the emulation runs."""
    _require_mct_quantizers()
    import mct_quantizers
    import onnxruntime as ort

    try:
        options = mct_quantizers.get_ort_session_options()
    except Exception as exc:
        raise QuantizationUnavailable(
            f"ONNX Runtime cannot load the mct_quantizers custom ops ({_one_line(exc)}); {INSTALL_HINT}") from exc
    if threads is not None:
        options.intra_op_num_threads = threads
    if basic:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    try:
        return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise QuantizationFailed(f"{onnx_path}: ONNX Runtime cannot load the MCTQ model: {_one_line(exc)}") from exc


def calibration_batches(representative: list[np.ndarray], n_iter: int | None = None) -> list[np.ndarray]:
    """The batches MCT calibrates on, checked: one [1, 3, H, W] float32 image each, all the same shape."""
    if not representative:
        raise BadInput("MCT quantization needs at least one representative image")
    if n_iter is not None and n_iter < 1:
        raise BadInput(f"n_iter must be at least 1, got {n_iter}")
    images = [np.ascontiguousarray(image, dtype=np.float32) for image in representative]
    first = images[0].shape
    for i, image in enumerate(images):
        if image.ndim != 4 or image.shape[0] != 1 or image.shape[1] != 3:
            raise BadInput(f"representative image {i} has shape {list(image.shape)}; expected [1, 3, H, W]")
        if image.shape != first:
            raise BadInput(f"representative image {i} has shape {list(image.shape)}, image 0 has {list(first)}")
    count = len(images) if n_iter is None else n_iter
    return [images[i % len(images)] for i in range(count)]


def _require_mct() -> tuple[Any, Any]:
    """MCT and mct_quantizers, or a one-line error saying how to install them."""
    try:
        import model_compression_toolkit as mct
    except ImportError as exc:
        raise QuantizationUnavailable(
            f"model-compression-toolkit is not installed (IMX500 quantization); {INSTALL_HINT}") from exc
    found = tuple(int(part) for part in mct.__version__.split(".")[:2] if part.isdigit())
    if found < MIN_MCT:
        raise QuantizationUnavailable(
            f"model-compression-toolkit {mct.__version__} is too old (need >= {'.'.join(map(str, MIN_MCT))}); "
            f"{INSTALL_HINT}")
    return mct, _require_mct_quantizers()


def _require_mct_quantizers() -> Any:
    try:
        import mct_quantizers
    except ImportError as exc:
        raise QuantizationUnavailable(f"mct-quantizers is not installed (IMX500 quantization); {INSTALL_HINT}") \
            from exc
    return mct_quantizers


def _imx500_tpc(mct: Any, tpc_version: str) -> Any:
    try:
        return mct.get_target_platform_capabilities(tpc_version=tpc_version, device_type="imx500")
    except (AssertionError, ValueError) as exc:
        raise BadInput(f"IMX500 TPC version '{tpc_version}': {_one_line(exc)}") from exc


def _fp32_outputs(module: Any, batch: np.ndarray) -> list[np.ndarray]:
    """The FP32 module's outputs on one image, taken before MCT touches anything."""
    import torch

    device = next((p.device for p in module.parameters()), torch.device("cpu"))
    with torch.inference_mode():
        out = module(torch.from_numpy(batch).to(device))
    outputs = out if isinstance(out, (tuple, list)) else (out,)
    return [t.detach().float().cpu().numpy() for t in outputs]


@contextlib.contextmanager
def _mct_output_to(log: Path) -> Iterator[None]:
    """MCT's progress bars (tqdm on stderr) and its logger's warnings ("representative_data_gen generates a
    batch size of 1 ...", "DepthwiseConv2D is not in model.") appended to ``log`` beside the artifact instead
    of the user's terminal: kept for whoever traces the artifact, out of a run's one-line-per-step output."""
    import logging

    logger = logging.getLogger(MCT_LOGGER)
    handler = logging.FileHandler(log, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    level, propagate, handlers = logger.level, logger.propagate, logger.handlers
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(min(level or logging.WARNING, logging.WARNING))
    try:
        with open(log, "a", encoding="utf-8") as sink, contextlib.redirect_stderr(sink):
            yield
    finally:
        logger.handlers, logger.propagate = handlers, propagate
        logger.setLevel(level)
        handler.close()


@contextlib.contextmanager
def _torchscript_onnx_export() -> Iterator[None]:
    """Route MCT's ``torch.onnx.export`` call to the TorchScript exporter for its duration.

    MCT 2.6.1 passes ``dynamic_axes`` and emits its quantizers through ``autograd.Function.symbolic``;
    only the TorchScript exporter honours both, and torch >= 2.9 defaults to the dynamo exporter,
    which rejects the call. The deprecation and tracer warnings of that path are expected here.
    """
    import torch

    original: Callable[..., Any] = torch.onnx.export
    if "dynamo" not in inspect.signature(original).parameters:
        yield
        return
    torch.onnx.export = functools.partial(original, dynamo=False)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(torch\.onnx|model_compression)")
            yield
    finally:
        torch.onnx.export = original


def _rename_input(path: Path, name: str) -> Any:
    """The exported graph with its single input renamed from MCT's fixed ``input`` to the harness's name."""
    import onnx

    graph = onnx.load(str(path))
    old = graph.graph.input[0].name
    if old != name:
        graph.graph.input[0].name = name
        for node in graph.graph.node:
            for i, value in enumerate(node.input):
                if value == old:
                    node.input[i] = name
    return graph


def output_rails(graph: Any) -> dict[str, float]:
    """The largest value each graph output can take, where an activation quantizer feeds it.

    MCT's power-of-two and symmetric activation quantizers represent ``[0, threshold)`` (unsigned) or
    ``[-threshold, threshold)`` (signed) in ``num_bits`` steps; the top step, ``threshold * (1 - 2**-bits)``
    unsigned, is the rail a saturated output sits on (the demo's 0.498047 = 255/512 for threshold 0.5).
    """
    from onnx import helper

    producers = {out: node for node in graph.graph.node for out in node.output}
    rails: dict[str, float] = {}
    for output in graph.graph.output:
        node, hops = producers.get(output.name), 0
        while node is not None and node.domain != CUSTOM_DOMAIN and node.input and hops < 8:
            node, hops = producers.get(node.input[0]), hops + 1
        if node is None or node.domain != CUSTOM_DOMAIN or node.op_type.startswith("Weights"):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if "threshold" not in attrs or "num_bits" not in attrs:
            continue
        threshold = float(np.max(np.asarray(attrs["threshold"], dtype=np.float64)))
        bits = int(attrs["num_bits"]) - (1 if attrs.get("signed") else 0)
        rails[output.name] = threshold * (1.0 - 2.0 ** -bits)
    return rails


def _input_shape(graph: Any) -> tuple[int | str, ...]:
    dims = graph.graph.input[0].type.tensor_type.shape.dim
    return tuple(d.dim_value if d.HasField("dim_value") else d.dim_param for d in dims)


def _quantizer_summary(graph: Any) -> tuple[dict[str, int], dict[str, list[int]]]:
    """Custom quantizer nodes by op type, and the bit widths of weight and activation quantizers."""
    from onnx import helper

    nodes: Counter[str] = Counter()
    bits: dict[str, set[int]] = {"activation": set(), "weights": set()}
    for node in graph.graph.node:
        if node.domain != CUSTOM_DOMAIN:
            continue
        nodes[node.op_type] += 1
        kind = "weights" if node.op_type.startswith("Weights") else "activation"
        for attr in node.attribute:
            if attr.name == "num_bits":
                bits[kind].add(int(helper.get_attribute_value(attr)))
    return dict(sorted(nodes.items())), {kind: sorted(values) for kind, values in bits.items()}


def _one_line(exc: BaseException) -> str:
    """An exception as one short line, with a hint where the cause is known."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    hint = next((hint for key, hint in _HINTS.items() if key in text), None)
    text = f"{type(exc).__name__}: {text[:300]}"
    return f"{text} ({hint})" if hint else text

