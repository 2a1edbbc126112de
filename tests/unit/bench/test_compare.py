"""``bench compare``: pairing rules, the drift table, and the gate's exit code 3."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from support import paths
from support.run_records import drift_of, make_run, swap_pairs

from bench.cli import main
from bench.comparison import compare
from bench.errors import BadInput
from bench.pairing import pair_images
from bench.records import load_run

REPO = paths.REPO


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = np.array([0] * 60 + [1] * 40)
    scores = rng.normal(0, 1, 100) + 1.5 * labels
    return labels, scores


def test_identical_runs_have_no_drift(tmp_path: Path, data: tuple) -> None:
    labels, scores = data
    ref = make_run(tmp_path, "ref", scores, labels)
    dev = make_run(tmp_path, "dev", scores, labels, device="jetson")
    result = compare(ref, dev)
    img = result["categories"]["cat"]["image"]
    assert img["delta_points"] == 0.0 and img["p_value"] == 1.0 and img["verdict_flips"] == 0
    assert result["mean_delta_points"] == 0.0


def test_degraded_device_is_detected_and_gated(tmp_path: Path, data: tuple, capsys: pytest.CaptureFixture) -> None:
    labels, scores = data
    noisy = scores + np.random.default_rng(1).normal(0, 1.5, scores.size)
    ref = make_run(tmp_path, "ref", scores, labels)
    dev = make_run(tmp_path, "dev", noisy, labels, device="jetson")
    result = compare(ref, dev)
    img = result["categories"]["cat"]["image"]
    assert img["delta_points"] < -2 and img["ci_low_points"] < img["delta_points"] < img["ci_high_points"]
    dataset = result["dataset_drift"]  # one category: the dataset figures are that category's
    assert dataset["delta_points"] == pytest.approx(img["delta_points"])
    assert dataset["ci_low_points"] == pytest.approx(img["ci_low_points"])
    assert dataset["p_value"] == pytest.approx(img["p_value"])
    assert main(["compare", str(ref), str(dev), "--no-pixel", "--max-drift", "0.2"]) == 3
    captured = capsys.readouterr()
    assert "cat" in captured.out and "exceeds the 0.20-point gate (--max-drift)" in captured.err
    assert main(["compare", str(ref), str(dev), "--no-pixel", "--max-drift", "50"]) == 0
    capsys.readouterr()
    assert main(["compare", str(ref), str(dev), "--no-pixel", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["categories"]["cat"]["images"] == 100


def test_different_inputs_are_refused_naming_the_image(tmp_path: Path, data: tuple) -> None:
    labels, scores = data
    ids = [f"cat/test/{i:03d}.png" for i in range(100)]
    other = list(ids)
    other[7] = "different bytes"
    ref = make_run(tmp_path, "ref", scores, labels, inputs=ids)
    dev = make_run(tmp_path, "dev", scores, labels, inputs=other)
    with pytest.raises(BadInput, match=r"image cat/test/007\.png: input_sha256 differs"):
        pair_images(load_run(ref), load_run(dev))


def test_different_checkpoint_is_refused(tmp_path: Path, data: tuple) -> None:
    labels, scores = data
    ref = make_run(tmp_path, "ref", scores, labels)
    dev = make_run(tmp_path, "dev", scores, labels, sha="d" * 64)
    with pytest.raises(BadInput, match="checkpoint sha256 of 'cat'"):
        compare(ref, dev)


def test_missing_image_is_named(tmp_path: Path, data: tuple) -> None:
    labels, scores = data
    ref = make_run(tmp_path, "ref", scores, labels)
    dev = make_run(tmp_path, "dev", scores[:-1], labels[:-1])
    with pytest.raises(BadInput, match=r"image cat/test/099\.png is only in the reference run"):
        compare(ref, dev)


def test_pixel_level_drift_with_maps_and_masks(tmp_path: Path, data: tuple) -> None:
    labels, scores = data
    rng = np.random.default_rng(2)
    masks = np.zeros((100, 8, 8), dtype=bool)
    masks[labels == 1, 2:5, 2:5] = True
    # multiples of 1/64 in [0, 2]: these and the same plus 0.25 are exact in float16, as the record stores maps
    maps = (np.round((rng.random((100, 8, 8)) + masks) * 64) / 64).astype(np.float16)
    ref = make_run(tmp_path, "ref", scores, labels, maps=maps)
    dev = make_run(tmp_path, "dev", scores, labels, maps=maps + np.float16(0.25))
    ids = [f"cat/test/{i:03d}.png" for i in range(100)]
    result = compare(ref, dev, {"cat": dict(zip(ids, masks, strict=True))})
    pixel = result["categories"]["cat"]["pixel"]
    # a shift keeps every pixel's order, so the pixel AUROC is exactly unchanged
    assert pixel["auroc_dev"] == pixel["auroc_ref"] and pixel["delta_points"] == 0.0
    assert pixel["max_abs_error"] == 0.25


def test_compare_unknown_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", str(tmp_path / "nope"), str(tmp_path / "nada")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_gate_from_the_card_only_when_asked(tmp_path: Path, data: tuple, capsys: pytest.CaptureFixture) -> None:
    labels, scores = data
    gates = yaml.safe_load((REPO / "models" / "tinyglass.yaml").read_text())["drift_gate"]
    pairs = 6  # 0.25 points with 60 good and 40 defective images: above 0.2, below the card's IMX500 gate
    assert gates["default"] < -drift_of(scores, labels, pairs) < gates["imx500"]
    ref = make_run(tmp_path, "ref", scores, labels)
    imx = make_run(tmp_path, "imx", swap_pairs(scores, labels, pairs), labels, device="imx500")
    jetson = make_run(tmp_path, "jet", swap_pairs(scores, labels, pairs), labels, device="jetson")
    assert compare(ref, imx)["mean_delta_points"] == pytest.approx(drift_of(scores, labels, pairs))
    assert main(["compare", str(ref), str(imx), "--no-pixel"]) == 0  # no gate unless asked
    assert "gate" not in capsys.readouterr().out
    assert main(["compare", str(ref), str(imx), "--no-pixel", "--max-drift", "card"]) == 0
    assert f"within the {gates['imx500']:.2f}-point gate (card tinyglass, imx500)" in capsys.readouterr().out
    assert main(["compare", str(ref), str(jetson), "--no-pixel", "--max-drift", "card"]) == 3
    captured = capsys.readouterr()
    assert f"EXCEEDS the {gates['default']:.2f}-point gate (card tinyglass, default)" in captured.out
    assert "(card tinyglass, default)" in captured.err
    assert main(["compare", str(ref), str(imx), "--no-pixel", "--max-drift", "0.2"]) == 3
    assert "0.20-point gate (--max-drift)" in capsys.readouterr().err
    assert main(["compare", str(ref), str(imx), "--no-pixel", "--max-drift", "card", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gate"] == {"points": gates["imx500"],
                                                           "source": "card tinyglass, imx500", "exceeded": False}
    with pytest.raises(SystemExit) as bad:
        main(["compare", str(ref), str(imx), "--max-drift", "cards"])
    assert bad.value.code == 2 and "expected a number of points or 'card'" in capsys.readouterr().err


def saturation(value: float, count: int, share: float, saturated: bool) -> dict:
    return {"categories": {"cat": {"score_saturation": {"value": value, "count": count, "share": share,
                                                         "saturated": saturated}}}}


def test_saturated_device_scores_are_warned(tmp_path: Path, data: tuple, capsys: pytest.CaptureFixture) -> None:
    labels, scores = data
    rail = 255 / 512
    clipped = np.minimum(1 / (1 + np.exp(-scores)), rail)
    tied = int((clipped == rail).sum())
    assert tied >= 10
    artifact = {"quantization": {"quantizer_nodes": {"ActivationPOTQuantizer": 9}, "calibration":
                                 {"mode": "train-normal"}, "output_rails": {"score": rail, "patch_scores": 1.0}}}
    ref = make_run(tmp_path, "ref", 1 / (1 + np.exp(-scores)), labels)
    dev = make_run(tmp_path, "dev", clipped, labels, device="imx500", artifact=artifact,
                   metrics=saturation(rail, tied, tied / 100, True))
    clean = make_run(tmp_path, "clean", 1 / (1 + np.exp(-scores)), labels, device="imx500", artifact=artifact,
                     metrics=saturation(0.97, 1, 0.01, False))
    assert main(["compare", str(ref), str(dev), "--no-pixel"]) == 0
    out = capsys.readouterr().out
    warning = [line for line in out.splitlines() if line.startswith("warning: cat:")]
    assert len(warning) == 1
    for text in (f"{tied} device scores ({tied:.0f} %)", "0.498047", "output 'score'", "calibration train-normal",
                 "calibrated without anomalies (see --calibration)"):
        assert text in warning[0], text
    assert main(["compare", str(ref), str(dev), "--no-pixel", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["saturation"] == [
        {"category": "cat", "value": rail, "count": tied, "share": tied / 100, "int8": True,
         "calibration": "train-normal", "output": "score", "output_rail": rail}]
    assert main(["compare", str(ref), str(clean), "--no-pixel"]) == 0
    assert "warning" not in capsys.readouterr().out
