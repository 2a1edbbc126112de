"""``bench compare``: pairing rules, the drift table, and the three-way gate (exit 3 exceeds, 4 inconclusive)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from support import paths
from support.run_records import make_run

from bench.cli import main
from bench.comparison import EXCEEDS, INCONCLUSIVE, WITHIN, Gate, compare, images_to_decide, judge
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


def _masked_maps(labels: np.ndarray, seed: int, rows: slice, cols: slice) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Masks with a block on each defective image, maps with that block raised, and the image ids make_run gives.
    The maps are multiples of 1/64 in [0, 2]: these (and the same plus 0.25) are exact in float16, as records
    store maps."""
    masks = np.zeros((len(labels), 8, 8), dtype=bool)
    masks[labels == 1, rows, cols] = True
    maps = (np.round((np.random.default_rng(seed).random(masks.shape) + masks) * 64) / 64).astype(np.float16)
    return masks, maps, [f"cat/test/{i:03d}.png" for i in range(len(labels))]


def test_pixel_level_drift_with_maps_and_masks(tmp_path: Path, data: tuple) -> None:
    labels, scores = data
    masks, maps, ids = _masked_maps(labels, 2, slice(2, 5), slice(2, 5))
    ref = make_run(tmp_path, "ref", scores, labels, maps=maps)
    dev = make_run(tmp_path, "dev", scores, labels, maps=maps + np.float16(0.25))
    result = compare(ref, dev, {"cat": dict(zip(ids, masks, strict=True))})
    pixel = result["categories"]["cat"]["pixel"]
    # a shift keeps every pixel's order, so the pixel AUROC is exactly unchanged
    assert pixel["auroc_dev"] == pixel["auroc_ref"] and pixel["delta_points"] == 0.0
    assert pixel["max_abs_error"] == 0.25


def test_one_reference_read_once_gives_what_each_pair_alone_gives(tmp_path: Path, data: tuple) -> None:
    """The report hands compare() its records and the reference's pixel AUROC from the previous pair: the
    figures must be those of a fresh compare of each pair."""
    labels, scores = data
    masks, maps, ids = _masked_maps(labels, 3, slice(1, 6), slice(2, 4))
    rng = np.random.default_rng(4)
    ref = make_run(tmp_path, "ref", scores, labels, maps=maps)
    devs = [make_run(tmp_path, f"dev{i}", scores, labels, device="jetson",
                     maps=(maps + rng.normal(0, 0.3 * i, maps.shape)).astype(np.float16)) for i in (1, 2)]
    cat_masks = {"cat": dict(zip(ids, masks, strict=True))}
    reference, known = load_run(ref), {}
    shared = [compare(reference, load_run(dev), cat_masks, known) for dev in devs]
    assert list(known) == [("cat", tuple(ids))]
    alone = [compare(ref, dev, cat_masks) for dev in devs]
    assert shared == alone
    assert shared[0]["categories"]["cat"]["pixel"]["auroc_dev"] != shared[1]["categories"]["cat"]["pixel"]["auroc_dev"]


def test_compare_unknown_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", str(tmp_path / "nope"), str(tmp_path / "nada")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_gate_from_the_card_only_when_asked(tmp_path: Path, data: tuple, capsys: pytest.CaptureFixture) -> None:
    labels, scores = data
    gates = yaml.safe_load((REPO / "models" / "tinyglass.yaml").read_text())["drift_gate"]
    # the same ranking as the host: the interval is the floor, 6 of the 2400 pairs (0.25 points; test_metrics_drift
    # checks the quantile 6 by brute-force resampling): inside the card's IMX500 gate, straddling the default one
    same = 2.0 * scores + 1.0
    floor = 100 * 6 / 2400
    assert gates["default"] < floor < gates["imx500"]
    ref = make_run(tmp_path, "ref", scores, labels)
    imx = make_run(tmp_path, "imx", same, labels, device="imx500")
    jetson = make_run(tmp_path, "jet", same, labels, device="jetson")
    drift = compare(ref, imx)["dataset_drift"]
    assert (drift["delta_points"], drift["ci_low_points"], drift["ci_high_points"]) == (0.0, -floor, floor)
    assert main(["compare", str(ref), str(imx), "--no-pixel"]) == 0  # no gate unless asked
    assert "gate" not in capsys.readouterr().out
    assert main(["compare", str(ref), str(imx), "--no-pixel", "--max-drift", "card"]) == 0
    assert f"within the {gates['imx500']:.2f}-point gate (card tinyglass, imx500)" in capsys.readouterr().out
    assert main(["compare", str(ref), str(jetson), "--no-pixel", "--max-drift", "card"]) == 4
    captured = capsys.readouterr()
    assert f"inconclusive for the {gates['default']:.2f}-point gate (card tinyglass, default)" in captured.out
    assert "(card tinyglass, default)" in captured.err and "images would decide" in captured.err
    assert main(["compare", str(ref), str(imx), "--no-pixel", "--max-drift", "0.2"]) == 4
    assert "0.20-point gate (--max-drift)" in capsys.readouterr().err
    assert main(["compare", str(ref), str(imx), "--no-pixel", "--max-drift", "card", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["gate"] == {
        "points": gates["imx500"], "source": "card tinyglass, imx500", "verdict": "within", "exceeded": False,
        "ci_points": [-floor, floor], "images": 100, "images_needed": None}
    with pytest.raises(SystemExit) as bad:
        main(["compare", str(ref), str(imx), "--max-drift", "cards"])
    assert bad.value.code == 2 and "expected a number of points or 'card'" in capsys.readouterr().err


def separated(normal: int, anomalous: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores that separate the classes perfectly (host AUROC 1)."""
    return np.array([0] * normal + [1] * anomalous), np.r_[np.linspace(0, 1, normal), np.linspace(2, 3, anomalous)]


def test_each_verdict_and_its_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # within: 400 + 400 images ranked alike; the one-pair floor is at most 40 of 160,000 pairs (Markov: the pair
    # is drawn A * N times with E[A N] = 1, so P(A N >= 40) <= 1/40), 0.025 points, well inside 0.2
    labels, scores = separated(400, 400)
    ref = make_run(tmp_path, "ref", scores, labels)
    same = make_run(tmp_path, "same", scores ** 3, labels, device="jetson")
    result = compare(ref, same)
    assert -0.025 <= result["dataset_drift"]["ci_low_points"] < 0 < result["dataset_drift"]["ci_high_points"] <= 0.025
    assert judge(result, Gate(0.2, "test")).outcome == WITHIN
    assert main(["compare", str(ref), str(same), "--no-pixel", "--max-drift", "0.2"]) == 0
    assert "within the 0.20-point gate (--max-drift)" in capsys.readouterr().out
    # exceeds: the device reverses the order, AUROC 0 in every resample: [-100 - floor, -100 + floor]
    flipped = make_run(tmp_path, "flipped", -scores, labels, device="jetson")
    result = compare(ref, flipped)
    assert result["dataset_drift"]["delta_points"] == -100.0
    assert result["dataset_drift"]["ci_high_points"] <= -100 + 0.025
    assert judge(result, Gate(99.9, "test")).outcome == EXCEEDS
    assert main(["compare", str(ref), str(flipped), "--no-pixel", "--max-drift", "0.2"]) == 3
    captured = capsys.readouterr()
    assert "EXCEEDS the 0.20-point gate (--max-drift)" in captured.out
    assert "exceeds the 0.20-point gate (--max-drift)" in captured.err
    # inconclusive: seven images, both runs perfect; one pair of 12 alone is 8.3 points, so the interval
    # straddles 0.2 whatever the resampling
    few_labels, few = separated(3, 4)
    host = make_run(tmp_path / "few", "host", few, few_labels)
    jetson = make_run(tmp_path / "few", "jetson", few + 0.01 * np.arange(7), few_labels, device="jetson")
    result = compare(host, jetson)
    drift = result["dataset_drift"]
    assert drift["delta_points"] == 0.0 and drift["ci_low_points"] <= -100 / 12 and drift["ci_high_points"] >= 100 / 12
    verdict = judge(result, Gate(0.2, "test"))
    half = (drift["ci_high_points"] - drift["ci_low_points"]) / 2
    assert verdict.outcome == INCONCLUSIVE and verdict.images_needed == int(np.ceil(7 * (half / 0.2) ** 2))
    assert main(["compare", str(host), str(jetson), "--no-pixel", "--max-drift", "0.2"]) == 4
    captured = capsys.readouterr()
    assert "inconclusive for the 0.20-point gate (--max-drift)" in captured.out
    assert f"about {verdict.images_needed:,} images would decide" in captured.out
    assert "error: image AUROC drift +0.00 points" in captured.err and "straddles the 0.20-point gate" in captured.err


def test_verdict_boundaries_and_images_to_decide() -> None:
    def result(low: float, high: float, delta: float) -> dict:
        return {"dataset_drift": {"delta_points": delta, "ci_low_points": low, "ci_high_points": high, "images": 100}}

    limit = Gate(0.2, "test")
    assert judge(result(-0.2, 0.2, 0.0), limit).outcome == WITHIN  # inside includes the limits
    assert judge(result(0.21, 0.9, 0.5), limit).outcome == EXCEEDS
    assert judge(result(-0.9, -0.21, -0.5), limit).outcome == EXCEEDS
    assert judge(result(0.2, 0.9, 0.5), limit).outcome == INCONCLUSIVE  # touching the limit is not outside it
    # straddling from inside: half-width 0.3 must shrink to 0.2 - 0.1 = 0.1, so 100 * (0.3 / 0.1)^2 = 900 images
    verdict = judge(result(-0.2, 0.4, 0.1), limit)
    assert verdict.outcome == INCONCLUSIVE and verdict.images_needed == 900
    assert "about 900 images would decide (an estimate at the observed variance; 100 now)" in verdict.text()
    # straddling from outside: half-width 0.5 to 0.4 - 0.2 = 0.2: 100 * 2.5^2 = 625
    assert judge(result(-0.9, 0.1, -0.4), limit).images_needed == 625
    assert images_to_decide(100, -0.5, 0.1, -0.2, 0.2) is None  # a drift on the limit: nothing decides
    assert "no number of images would decide" in judge(result(-0.5, 0.1, -0.2), limit).text()


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


def test_an_image_left_out_of_the_drift_is_named(tmp_path: Path, data: tuple, capsys: pytest.CaptureFixture) -> None:
    """Issue 20: an image that errored in one run left the pair silently (n 27 vs 28)."""
    labels, scores = data
    ref = make_run(tmp_path, "ref", scores, labels)
    dev = make_run(tmp_path, "dev", scores, labels, device="jetson", errors={3: "truncated PNG file"})
    assert main(["compare", str(ref), str(dev), "--max-drift", "5"]) == 0
    out = capsys.readouterr().out
    assert ("warning: cat: 1 image(s) left out of the drift, compared on 99: cat/test/003.png: error in the device "
            "run (truncated PNG file)") in out
    result = compare(ref, dev)
    assert result["categories"]["cat"]["excluded"] == 1 and result["categories"]["cat"]["images"] == 99
