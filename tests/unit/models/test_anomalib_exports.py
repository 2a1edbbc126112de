"""anomalib 2.x exports: recognised from the graph alone, on real anomalib 2.7.0 exports and hand-built graphs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.extras import need, requires

onnx = need("export", "onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from bench.errors import BadInput  # noqa: E402
from bench.models.anomalib_exports import recognise  # noqa: E402

needs_anomalib = requires("anomalib", "anomalib", "onnxruntime")
MODELS = ("Padim", "Patchcore", "Stfpm", "EfficientAd")


@pytest.fixture(scope="session")
def exports_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.getbasetemp() / "anomalib-exports"


def _exported(root: Path, name: str, dynamic: bool = False) -> Path:
    from support.anomalib_models import export_anomalib

    return export_anomalib(name, root, image_size=64, dynamic=dynamic)


def _images(onnx_path: Path) -> list[Path]:
    from support.anomalib_models import dataset_of

    data = dataset_of(onnx_path)
    return sorted((data / "test" / "good").glob("*.png"))[:2] + sorted((data / "test" / "defect").glob("*.png"))[:2]


@pytest.mark.slow
@needs_anomalib
@pytest.mark.parametrize("name", MODELS)
def test_the_harness_run_equals_anomalibs_own_inference(exports_root: Path, tmp_path: Path, name: str) -> None:
    """``bench run --model <anomalib export>`` with no card: every recorded score (and map, where it is at the
    input size) equals anomalib's own inference on the same image and file."""
    from support.anomalib_models import anomalib_reference, dataset_of

    from bench.cli import main
    from bench.records import load_run

    path = _exported(exports_root, name)
    data = dataset_of(path)
    assert main(["run", "--device", "host", "--model", str(path), "--data-root", str(data.parent), "--categories",
                 data.name, "--out", str(tmp_path), "--min-count", "1", "--min-duration", "0"]) == 0
    (run_dir,) = tmp_path.iterdir()
    record = load_run(run_dir)
    assert record.manifest["model"]["family"] == "onnx" and record.manifest["model"]["name"] == f"{name.lower()}-64"
    images = [data.parent / image_id for image_id in record.images["image_id"]]
    maps = record.maps(data.name)
    for image_id, image, score, (ref_score, ref_map) in zip(record.images["image_id"], images, record.images["score"],
                                                           anomalib_reference(path, images), strict=True):
        assert 0.0 <= ref_score <= 1.0
        np.testing.assert_allclose(score, ref_score, rtol=0, atol=1e-6, err_msg=str(image))
        if ref_map.shape == maps[image_id].shape:  # EfficientAd's map is at 256: the harness resamples it to 64
            np.testing.assert_allclose(maps[image_id], ref_map, rtol=0, atol=2e-3)  # maps are stored as float16


@pytest.mark.slow
@needs_anomalib
@pytest.mark.parametrize(("name", "working_size"), [("Padim", 64), ("EfficientAd", 256)])
def test_a_dynamic_export_takes_its_size_from_the_in_graph_resize(
    exports_root: Path, name: str, working_size: int
) -> None:
    card = recognise(_exported(exports_root, name, dynamic=True))
    assert card is not None
    assert card["input"]["resize"] == [working_size, working_size]


def _graph(normalised: bool | None, outputs: tuple[str, ...] = ("pred_score",), channels: int = 3,
           producer: str = "pytorch") -> onnx.ModelProto:
    """pred_score = where(has_range, clip((max(x) - t) / r + 0.5, 0, 1), max(x)) as anomalib's exporter folds it."""
    consts = {"t": 2.0, "r": 4.0, "half": 0.5, "lo": 0.0, "hi": 1.0}
    inits = [numpy_helper.from_array(np.array(v, dtype=np.float32), k) for k, v in consts.items()]
    nodes = [helper.make_node("ReduceMax", ["input"], ["raw"], keepdims=0),
             helper.make_node("Unsqueeze", ["raw", "axis"], ["raw1"])]
    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "axis"))
    if normalised is None:
        nodes.append(helper.make_node("Identity", ["raw1"], ["pred_score"]))
    else:
        inits.append(numpy_helper.from_array(np.array(normalised), "has_range"))
        nodes += [helper.make_node("Sub", ["raw1", "t"], ["d"]), helper.make_node("Div", ["d", "r"], ["q"]),
                  helper.make_node("Add", ["q", "half"], ["a"]), helper.make_node("Clip", ["a", "lo", "hi"], ["c"]),
                  helper.make_node("Where", ["has_range", "c", "raw1"], ["pred_score"])]
    values = [helper.make_tensor_value_info("pred_score", TensorProto.FLOAT, ["batch_size", 1])]
    for extra in (name for name in outputs if name != "pred_score"):
        nodes.append(helper.make_node("Identity", ["input"], [extra]))
        values.append(helper.make_tensor_value_info(extra, TensorProto.FLOAT, ["batch_size", channels, 8, 8]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "input", TensorProto.FLOAT, ["batch_size", channels, 8, 8])], values, inits)
    ordered = sorted(graph.output, key=lambda value: outputs.index(value.name))
    del graph.output[:]
    graph.output.extend(ordered)
    model = helper.make_model(graph, producer_name=producer, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    return model


def _write(tmp_path: Path, model: onnx.ModelProto) -> Path:
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(("has_range", "score_range"), [(True, [0.0, 1.0]), (False, None), (None, None)])
def test_score_range_follows_the_folded_post_processor(tmp_path: Path, has_range: bool | None, score_range) -> None:
    card = recognise(_write(tmp_path, _graph(has_range, ("pred_score", "anomaly_map"))))
    assert card is not None
    assert card["outputs"]["score_range"] == score_range
    assert card["input"]["resize"] == [8, 8]
    assert ("raw threshold 2, raw range 4" in card["normalisation"]) is bool(has_range)


def test_a_graph_without_an_anomaly_map_has_no_map(tmp_path: Path) -> None:
    card = recognise(_write(tmp_path, _graph(True)))
    assert card is not None and card["outputs"]["map"] is None


@pytest.mark.parametrize("change", [
    {"producer": "other"},
    {"channels": 1},
    {"outputs": ("pred_score", "heatmap")},
    {"outputs": ("anomaly_map", "pred_score")},
])
def test_other_graphs_are_not_anomalib_exports(tmp_path: Path, change: dict) -> None:
    assert recognise(_write(tmp_path, _graph(True, **change))) is None


def test_a_file_that_is_not_onnx_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_text("not a graph")
    with pytest.raises(BadInput, match="not a readable ONNX model"):
        recognise(path)
