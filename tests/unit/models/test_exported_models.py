"""Bring your own model: exported ONNX graphs with a card, run through the harness (issue 18)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from support.exported_models import anomaly_onnx, exported_card
from support.extras import need
from support.tiny_model import write_mvtec_tree

from bench.cli import main
from bench.data.preprocess import Recipe, to_tensor
from bench.models.postprocess import decode
from bench.records import load_run


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    return write_mvtec_tree(tmp_path / "data", size=32)


def run(tmp_path: Path, tree: Path, model: Path | str, *extra: str) -> int:
    return main(["run", "--device", "host", "--model", str(model), "--data-root", str(tree), "--out",
                 str(tmp_path / "results"), "--min-count", "2", "--min-duration", "0", *extra])


def error_line(capsys: pytest.CaptureFixture) -> str:
    """The one error line on stderr (progress lines aside)."""
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    return errors[0]


def only_run(tmp_path: Path):  # type: ignore[no-untyped-def]
    (run_dir,) = (tmp_path / "results").iterdir()
    return load_run(run_dir)


def test_a_card_file_runs_an_exported_graph_end_to_end(tmp_path: Path, tree: Path) -> None:
    onnx_path = anomaly_onnx(tmp_path / "model" / "model.onnx", normalise_inside=True)
    card = exported_card(tmp_path / "byo.yaml", Path("model/model.onnx"))  # relative to the card
    assert run(tmp_path, tree, card) == 0
    record = only_run(tmp_path)
    assert record.status == "complete"
    figures = record.metrics["categories"]["widget"]
    assert figures["image_auroc"] == 1.0 and figures["pixel_auroc"] is not None
    model = record.manifest["model"]
    assert model["family"] == "onnx" and model["card"] == str(card.resolve())
    assert model["categories"]["widget"]["checkpoint"] == str(onnx_path.resolve())
    assert model["categories"]["widget"]["onnx_sha256"] == model["categories"]["widget"]["checkpoint_sha256"]
    assert model["macs"] >= 0 and model["backbone_weights"] is None
    # the score the harness recorded is the graph's own on the exact tensor it fed
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    row = record.images.iloc[0]
    image = Image.open(tree / row["image_id"]).convert("RGB")
    tensor = to_tensor(image, Recipe.from_card({"resize": 32, "mean": None, "std": None}))
    assert float(session.run(["pred_score"], {"input": tensor})[0]) == pytest.approx(row["score"], abs=1e-6)


def test_an_onnx_without_a_card_is_refused_with_the_way_to_write_one(tmp_path: Path, tree: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    onnx_path = anomaly_onnx(tmp_path / "plain.onnx")
    assert run(tmp_path, tree, onnx_path) == 2
    err = error_line(capsys)
    assert "not a recognised anomalib export" in err and "--card" in err


def test_inspect_writes_a_starting_card_and_reports_the_graph(tmp_path: Path, tree: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    onnx_path = anomaly_onnx(tmp_path / "plain.onnx")
    assert main(["inspect", "model", str(onnx_path)]) == 0  # the graph's figures need no card
    assert "plain (onnx" in capsys.readouterr().out
    assert main(["inspect", "model", str(onnx_path), "--card"]) == 0
    text = capsys.readouterr().out
    card = yaml.safe_load(text)
    assert card["family"] == "onnx" and card["input"]["resize"] == [32, 32]
    assert card["outputs"] == {"score": "pred_score", "map": "anomaly_map", "score_range": None}
    assert "CHECK input.mean/std" in text
    written = tmp_path / "start.yaml"
    card["input"].update(mean=None, std=None)
    written.write_text(yaml.safe_dump(card))
    assert main(["inspect", "model", str(written), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["family"] == "onnx" and report["input_shape"] == [1, 3, 32, 32]
    assert report["ops"]["ReduceMean"] == 1 and set(report["outputs"]) == {"pred_score", "anomaly_map"}
    assert run(tmp_path, tree, written) == 0  # the edited starting card runs


@pytest.mark.parametrize("graph, card, words", [
    ({"normalise_inside": True}, {"normalise": True}, ["normalises its input", "set input.mean and input.std to null"]),
    ({}, {"score_range": [0.0, 0.1]}, ["outside the declared score_range [0, 0.1]", "check input.mean/std"]),
    ({"constant_map": True}, {}, ["anomaly map is one constant value"]),
    ({}, {"input": {"resize": 64, "mean": None, "std": None}},
     ["input 'input' is [1, 3, 32, 32] but the card's recipe gives [1, 3, 64, 64]", "input.resize/crop"]),
    ({}, {"map": "heatmap"}, ["names output 'heatmap', which the graph lacks", "pred_score, anomaly_map"]),
    ({"inputs": 2}, {}, ["the graph has 2 inputs (input, extra1)"]),
])
def test_pre_and_post_processing_mismatches_are_one_line(tmp_path: Path, tree: Path, capsys: pytest.CaptureFixture,
                                                        graph: dict, card: dict, words: list[str]) -> None:
    onnx_path = anomaly_onnx(tmp_path / "model.onnx", **graph)
    card_path = exported_card(tmp_path / "byo.yaml", onnx_path, **card)
    assert run(tmp_path, tree, card_path) == 2
    err = error_line(capsys)
    assert str(onnx_path) in err and all(w in err for w in words), err


def test_one_graph_per_category_found_by_pattern(tmp_path: Path, tree: Path, capsys: pytest.CaptureFixture) -> None:
    write_mvtec_tree(tree, category="gadget", size=32)
    models = tmp_path / "per-category"
    anomaly_onnx(models / "widget" / "model.onnx")
    card = exported_card(tmp_path / "byo.yaml", models)
    assert run(tmp_path, tree, card) == 2
    assert "no checkpoint for category 'gadget' (tried gadget/*.onnx" in capsys.readouterr().err
    anomaly_onnx(models / "gadget" / "model.onnx")
    assert run(tmp_path, tree, card, "--out", str(tmp_path / "second")) == 0
    (run_dir,) = (tmp_path / "second").iterdir()
    cats = load_run(run_dir).manifest["model"]["categories"]
    assert cats["gadget"]["checkpoint"].endswith("gadget/model.onnx")
    assert cats["widget"]["checkpoint"].endswith("widget/model.onnx")


def test_emulated_fp16_runs_an_exported_model_and_the_imx500_says_what_it_needs(
        tmp_path: Path, tree: Path, capsys: pytest.CaptureFixture) -> None:
    onnx_path = anomaly_onnx(tmp_path / "model.onnx", normalise_inside=True)
    card = exported_card(tmp_path / "byo.yaml", onnx_path)
    assert run(tmp_path, tree, card) == 0
    assert main(["run", "--device", "jetson", "--emulate", "--model", str(card), "--data-root", str(tree),
                 "--out", str(tmp_path / "results")]) == 0
    host, emulated = sorted((tmp_path / "results").iterdir(), key=lambda d: load_run(d).manifest["device"]["profile"])
    assert load_run(emulated).metrics["categories"]["widget"]["image_auroc"] == 1.0
    # compare and the report treat it as any model: the drift gate is the card's default, the tables list it
    capsys.readouterr()
    # (a handful of images cannot decide a 0.2-point gate: inconclusive, exit 4)
    assert main(["compare", str(host), str(emulated), "--json", "--max-drift", "card"]) == 4
    compared = json.loads(capsys.readouterr().out)
    assert compared["gate"]["source"].startswith("default (card byo") and compared["gate"]["verdict"] == "inconclusive"
    report = tmp_path / "report.html"
    assert main(["report", str(tmp_path / "results"), "--out", str(report)]) == 0
    html = report.read_text()
    assert "byo" in html and "jetson" in html
    assert main(["run", "--device", "imx500", "--emulate", "--model", str(card), "--data-root", str(tree),
                 "--out", str(tmp_path / "int8")]) == 2
    err = error_line(capsys)
    assert "quantizes from a PyTorch module" in err and "'module'" in err


def test_an_emulated_run_warns_when_the_device_would_reject_the_model(tmp_path: Path, tree: Path,
                                                                      capsys: pytest.CaptureFixture) -> None:
    """Issue 20: ``run --device rb5 --emulate`` gave figures for a model QNN's GPU backend rejects, silently."""
    card = exported_card(tmp_path / "byo.yaml", anomaly_onnx(tmp_path / "model.onnx", resize=True))
    assert main(["run", "--device", "rb5", "--emulate", "--model", str(card), "--data-root", str(tree),
                 "--out", str(tmp_path / "results")]) == 0
    warning = ("warning: RB5 (QNN GPU) would reject this model (Resize at Resize#1: QNN's GPU backend rejects Resize")
    assert warning in capsys.readouterr().err
    (run_dir,) = (tmp_path / "results").iterdir()
    assert any(w.startswith(warning.removeprefix("warning: "))
               for w in load_run(run_dir).manifest["device"]["environment"]["warnings"])  # and recorded
    assert main(["run", "--device", "jetson", "--emulate", "--model", str(card), "--data-root", str(tree),
                 "--out", str(tmp_path / "trt")]) == 0
    assert "would reject" not in capsys.readouterr().err  # TensorRT takes Resize


def test_recipe_channel_order_and_value_range() -> None:
    pixels = np.zeros((4, 4, 3), np.uint8)
    pixels[..., 0], pixels[..., 2] = 255, 51
    image = Image.fromarray(pixels)
    rgb = to_tensor(image, Recipe.from_card({"resize": 4, "mean": None, "std": None}))
    bgr = to_tensor(image, Recipe.from_card({"resize": 4, "mean": None, "std": None, "channel_order": "BGR"}))
    raw = to_tensor(image, Recipe.from_card({"resize": 4, "mean": None, "std": None, "value_range": [0, 255]}))
    assert rgb[0, :, 0, 0].tolist() == pytest.approx([1.0, 0.0, 0.2])
    assert bgr[0, :, 0, 0].tolist() == pytest.approx([0.2, 0.0, 1.0])
    assert raw[0, :, 0, 0].tolist() == [255.0, 0.0, 51.0]
    # ImageNet recipes are unchanged: bit-identical to the float32 operations they always were
    default = to_tensor(image, Recipe.from_card({"resize": 4}))
    expected = (np.float32(1.0) - np.float32(0.485)) / np.float32(0.229)
    assert default[0, 0, 0, 0] == expected


def test_decode_reads_the_named_outputs_and_takes_the_maps_maximum_without_a_score() -> None:
    amap = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    score, out = decode({"anomaly_map": amap, "pred_score": np.array([0.5])},
                        {"score_output": "pred_score", "map_output": "anomaly_map"})
    assert score == 0.5 and out.shape == (4, 4) and out[3, 3] == 15
    score, out = decode({"anomaly_map": amap[0]},
                        {"score_output": None, "map_output": "anomaly_map", "map_size": [8, 8]})
    assert score == 15.0 and out.shape == (8, 8)


def test_external_weights_and_a_dynamic_batch_are_prepared_once_and_recorded(tmp_path: Path, tree: Path) -> None:
    """anomalib 2.7.0 writes its weights to model.onnx.data beside the graph and exports a dynamic batch: the
    devices get a self-contained copy with the batch pinned to 1; the record keeps the user's file, and its
    checksum covers the weights too."""
    import onnx

    source = anomaly_onnx(tmp_path / "src.onnx", normalise_inside=True, dynamic=True)
    model = onnx.load(str(source))
    export = tmp_path / "export" / "model.onnx"
    export.parent.mkdir()
    onnx.save(model, str(export), save_as_external_data=True, all_tensors_to_one_file=True,
              location="model.onnx.data", size_threshold=0)
    card = exported_card(tmp_path / "byo.yaml", export)
    assert run(tmp_path, tree, card) == 0
    entry = only_run(tmp_path).manifest["model"]["categories"]["widget"]
    assert entry["checkpoint"] == str(export.resolve())
    assert entry["onnx_sha256"] != entry["checkpoint_sha256"]  # the pinned, self-contained copy the devices run
    data = export.parent / "model.onnx.data"
    data.write_bytes(data.read_bytes()[:-4] + np.float32(0.5).tobytes())  # another weight, same graph file
    assert run(tmp_path, tree, card, "--out", str(tmp_path / "again")) == 0
    (again,) = (tmp_path / "again").iterdir()
    assert load_run(again).manifest["model"]["categories"]["widget"]["checkpoint_sha256"] != entry["checkpoint_sha256"]
    data.unlink()
    assert run(tmp_path, tree, card, "--out", str(tmp_path / "third")) == 2


def test_the_imx500_quantizes_from_a_torch_export_program_the_card_names(tmp_path: Path, tree: Path) -> None:
    """MCT needs a PyTorch module: a card naming a torch.export program gets an emulated IMX500 (INT8) run."""
    torch = need("export", "torch")
    need("imx500", "model_compression_toolkit")

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 1, 3, padding=1)

        def forward(self, x):  # type: ignore[no-untyped-def]
            amap = torch.sigmoid(self.conv(x))
            return amap.amax(dim=(1, 2, 3)), amap

    torch.manual_seed(0)
    net, example = Net().eval(), torch.rand(1, 3, 32, 32)
    torch.export.save(torch.export.export(net, (example,)), str(tmp_path / "net.pt2"))
    torch.onnx.export(net, (example,), dynamo=True, input_names=["input"],
                      output_names=["pred_score", "anomaly_map"]).save(str(tmp_path / "net.onnx"))
    card = yaml.safe_load(exported_card(tmp_path / "byo.yaml", Path("net.onnx")).read_text())
    card["module"] = "net.pt2"
    (tmp_path / "byo.yaml").write_text(yaml.safe_dump(card))
    assert main(["run", "--device", "imx500", "--emulate", "--model", str(tmp_path / "byo.yaml"), "--data-root",
                 str(tree), "--out", str(tmp_path / "int8")]) == 0
    (run_dir,) = (tmp_path / "int8").iterdir()
    record = load_run(run_dir)
    assert record.status == "complete" and record.images["score"].notna().all()
    assert record.manifest["model"]["categories"]["widget"]["checkpoint"] == str((tmp_path / "net.onnx").resolve())
