"""TinyGLASS as the official code (ETH-PBL/TinyGLASS at 356c7d7) runs it.

The expected values come from running the official code itself, not from this project: the fixture
in tests/data/tinyglass_official holds a small generated MVTec-layout dataset, the checkpoints the
official trainer wrote (released folder layout), and the official ``GLASS._predict`` outputs on it
(benchmarks/official_parity/README.md says how it was made). Foreign layouts are refused by name.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from support import paths
from support.extras import need

torch = need("export", "torch")
need("export", "torchvision")

from bench.data.preprocess import Recipe, preprocess_image, preprocess_mask, tensor_sha256  # noqa: E402
from bench.errors import BadInput  # noqa: E402
from bench.models import tinyglass  # noqa: E402
from bench.models.backbones import save_random_resnet18  # noqa: E402
from bench.models.cards import load_card  # noqa: E402
from bench.models.checkpoints import resolve_checkpoint  # noqa: E402
from bench.models.postprocess import decode  # noqa: E402
from bench.models.prepare import load_checkpoint  # noqa: E402

FIXTURE = paths.DATA / "tinyglass_official"
CARD = load_card("tinyglass")


@pytest.fixture(scope="module")
def official(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The fixture, with the seeded random ResNet-18 it was made with regenerated and checked."""
    meta = json.loads((FIXTURE / "fixture.json").read_text())
    expected = dict(np.load(FIXTURE / "expected.npz"))
    backbone = save_random_resnet18(tmp_path_factory.mktemp("official") / "r18.pth", seed=meta["backbone"]["seed"])
    state = torch.load(backbone, weights_only=True)
    import hashlib

    digest = hashlib.sha256()
    for value in state.values():
        digest.update(value.numpy().tobytes())
    assert digest.hexdigest() == meta["backbone"]["tensor_sha256"], (
        "the seeded ResNet-18 no longer regenerates bit-identically (a torch/torchvision change?): "
        "remake the fixture (benchmarks/official_parity/README.md)")
    ids = [str(i) for i in expected["ids"]]
    return {"meta": meta, "expected": expected, "ids": ids, "backbone": backbone,
            "map_ids": [str(i) for i in expected["map_ids"]],
            "index": {image_id: i for i, image_id in enumerate(ids)}}


def category_of(image_id: str) -> str:
    return image_id.split("/")[0]


def model_for(category: str, backbone: Path) -> tinyglass.TinyGLASS:
    path = resolve_checkpoint(CARD, FIXTURE / "models", category)
    model = tinyglass.build(backbone)
    tinyglass.load_heads(model, load_checkpoint(path), str(path))
    return model


def float16_rounding(reference: np.ndarray) -> np.ndarray:
    """Half a float16 step at each value, plus float32 noise: what storing a map as float16 may change."""
    return np.spacing(np.abs(reference).astype(np.float16)).astype(np.float32) / 2 + 1e-6


def test_the_released_layout_resolves_to_the_best_epoch(tmp_path: Path) -> None:
    found = resolve_checkpoint(CARD, FIXTURE / "models", "wood")
    assert found.parent.name == "mvtec_wood" and found.name.startswith("ckpt_best_")
    folder = tmp_path / "results" / "tinyglass_mvtec" / "models" / "backbone_0" / "mvtec_carpet"
    folder.mkdir(parents=True)
    for epoch in (99, 149, 24):
        (folder / f"ckpt_best_{epoch}.pth").write_bytes(b"x")
    assert resolve_checkpoint(CARD, tmp_path, "carpet").name == "ckpt_best_149.pth"  # numeric, not by name
    other = tmp_path / "results" / "tinyglass_mvtec" / "models" / "backbone_1" / "mvtec_carpet"
    other.mkdir(parents=True)
    (other / "ckpt_best_3.pth").write_bytes(b"x")
    with pytest.raises(BadInput, match="checkpoints for 'carpet' in 2 folders"):
        resolve_checkpoint(CARD, tmp_path, "carpet")


def test_preprocessing_feeds_the_official_bytes(official: dict) -> None:
    """Resize(256) of the shorter side, CenterCrop(256), wood at 292: the very tensor the official code feeds."""
    expected = official["expected"]
    for i, image_id in enumerate(official["ids"]):
        recipe = CARD.recipes.for_category(category_of(image_id))
        tensor = preprocess_image(FIXTURE / "data" / image_id, recipe)
        assert tensor_sha256(tensor) == str(expected["input_sha256"][i]), image_id
    assert CARD.recipes.for_category("wood").resize == (292, 292)
    assert CARD.recipes.for_category("toothbrush").resize == (292, 292)
    assert CARD.recipes.for_category("carpet").resize == (256, 256)


@pytest.mark.parametrize("size", [(301, 274), (275, 300), (1024, 1024), (257, 256)])
def test_shorter_side_resize_and_crop_match_torchvision(size: tuple[int, int]) -> None:
    """torchvision's own transforms on the same image, odd crop offsets included (half-to-even rounding)."""
    from PIL import Image
    from torchvision import transforms

    from bench.data.preprocess import to_tensor

    rng = np.random.default_rng(sum(size))
    img = Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))
    recipe = Recipe((256, 256), (256, 256), resize_mode="shorter")
    pipeline = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(256), transforms.ToTensor(),
                                   transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
    assert np.array_equal(to_tensor(img, recipe)[0], pipeline(img).numpy())


def test_masks_follow_the_official_convention(official: dict) -> None:
    """bilinear_cast equals the official mask as its metrics see it; nearest_nonzero counts more pixels."""
    expected = official["expected"]
    differs = 0
    for i, image_id in enumerate(official["ids"]):
        if int(expected["labels"][i]) == 0:
            continue
        image = FIXTURE / "data" / image_id
        mask = next((FIXTURE / "data" / category_of(image_id) / "ground_truth" / image.parent.name).glob(
            f"{image.stem}_mask.png"))
        recipe = CARD.recipes.for_category(category_of(image_id))
        assert recipe.mask == "bilinear_cast"
        ours = preprocess_mask(mask, recipe, image)
        assert np.array_equal(ours, expected["masks"][i].astype(bool)), image_id
        nearest = preprocess_mask(mask, Recipe(recipe.resize, recipe.crop, resize_mode="shorter"), image)
        assert nearest[ours].all()
        differs += int(nearest.sum() > ours.sum())
    assert differs > 0


def test_scores_and_maps_match_the_official_predict(official: dict) -> None:
    """Image scores within 1e-5 and maps within float16 storage rounding of GLASS._predict."""
    expected = official["expected"]
    for category in sorted({category_of(i) for i in official["ids"]}):
        model = model_for(category, official["backbone"])
        recipe = CARD.recipes.for_category(category)
        for image_id in (i for i in official["ids"] if category_of(i) == category):
            k = official["index"][image_id]
            tensor = preprocess_image(FIXTURE / "data" / image_id, recipe)
            with torch.inference_mode():
                score, patches = model(torch.from_numpy(tensor))
            assert abs(float(score[0]) - float(expected["scores"][k])) < 1e-5, image_id
            np.testing.assert_allclose(patches[0, 0].numpy(), expected["patch_scores"][k], atol=1e-5)
            if image_id in official["map_ids"]:
                _, amap = decode({"score": score.numpy(), "patch_scores": patches.numpy()}, CARD.data["postprocess"])
                stored = amap.astype(np.float16).astype(np.float32)
                reference = expected["maps"][official["map_ids"].index(image_id)]
                assert np.all(np.abs(stored - reference) <= float16_rounding(reference)), image_id


def test_the_fixture_can_tell_networks_apart(official: dict) -> None:
    """Scores are not saturated and patch scores vary well beyond the 1e-5 tolerance, so a wrong network,
    a shifted crop or another resize filter fails the parity test (a one-pixel shift moves them by ~7e-3)."""
    expected = official["expected"]
    assert float(expected["scores"].min()) > 0.02 and float(expected["scores"].max()) < 0.98
    assert all(float(np.std(grid)) > 1e-3 for grid in expected["patch_scores"])


def official_checkpoint() -> dict:
    path = resolve_checkpoint(CARD, FIXTURE / "models", "bottle")
    return load_checkpoint(path)


@pytest.mark.parametrize("prefix", ["", "module."])
def test_official_checkpoint_loads_with_or_without_module_prefix(official: dict, prefix: str) -> None:
    ckpt = official_checkpoint()
    ckpt = {"discriminator": OrderedDict((prefix + k, v) for k, v in ckpt["discriminator"].items())}
    model = tinyglass.build(official["backbone"])
    tinyglass.load_heads(model, ckpt, "c.pth")
    assert torch.equal(model.discriminator.body[0].weight, ckpt["discriminator"][prefix + "body.0.weight"])


def test_linear_shaped_weights_load_as_the_official_quantization_loader_accepts(official: dict) -> None:
    ckpt = official_checkpoint()
    flat = OrderedDict((k, v[:, :, 0, 0] if v.ndim == 4 else v) for k, v in ckpt["discriminator"].items())
    model = tinyglass.build(official["backbone"])
    tinyglass.load_heads(model, {"discriminator": flat}, "linear.pth")
    assert torch.equal(model.discriminator.tail[0].weight, ckpt["discriminator"]["tail.0.weight"])


def glass_checkpoint(dim: int) -> dict:
    """The original GLASS layout (cqylunlun/GLASS model.py: Linear + BatchNorm1d heads, a projection)."""
    return {"discriminator": {"body.block1.0.weight": torch.zeros(512, dim), "body.block1.0.bias": torch.zeros(512),
                              "tail.0.weight": torch.zeros(1, 512)},
            "pre_projection": {"layers.0fc.weight": torch.zeros(dim, dim), "layers.0fc.bias": torch.zeros(dim)}}


@pytest.mark.parametrize(("checkpoint", "message"), [
    (glass_checkpoint(384), r"bad\.pth: the original GLASS layout \(384-d embedding\); use --model glass-r18\. "
                            r"--model tinyglass expects \{'discriminator': \{body\.0\.\*"),
    (glass_checkpoint(1536), r"the original GLASS layout \(1536-d embedding\); use --model glass-wrn50"),
    ({"edgeglr": {"mix": torch.zeros(1)}}, r"an EdgeZSAD checkpoint; use --model edgezsad"),
    ({"conv1.weight": torch.zeros(64, 3, 7, 7), "layer1.0.conv1.weight": torch.zeros(1), "fc.weight": torch.zeros(1)},
     r"a torchvision ResNet state dict .*; pass it as --backbone-weights"),
    ({"state_dict": {}}, r"a training checkpoint with a 'state_dict' entry"),
    ({"weights": torch.zeros(1)}, r"no known layout \(top-level keys: weights\)"),
])
def test_foreign_checkpoints_are_named_with_the_card_that_loads_them(checkpoint: dict, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        tinyglass.load_heads(tinyglass.build(None), checkpoint, "bad.pth")


def test_loading_is_strict(official: dict) -> None:
    model = tinyglass.build(None)
    ckpt = official_checkpoint()
    missing = {"discriminator": OrderedDict(ckpt["discriminator"])}
    del missing["discriminator"]["body.1.running_var"]
    with pytest.raises(BadInput, match=r"lacks 'discriminator\.body\.1\.running_var' \(expected shape \[512\]\)"):
        tinyglass.load_heads(model, missing, "c.pth")
    extra = {"discriminator": OrderedDict(ckpt["discriminator"])}
    extra["discriminator"]["body.2.weight"] = torch.zeros(1)
    with pytest.raises(BadInput, match=r"unexpected key 'discriminator\.body\.2\.weight'"):
        tinyglass.load_heads(model, extra, "c.pth")
    with pytest.raises(BadInput, match=r"unexpected entry 'pre_projection' beside 'discriminator'"):
        tinyglass.load_heads(model, {**ckpt, "pre_projection": {}}, "c.pth")
    wrong = {"discriminator": OrderedDict(ckpt["discriminator"])}
    wrong["discriminator"]["tail.0.weight"] = torch.zeros(1, 256, 1, 1)
    with pytest.raises(BadInput, match=r"'discriminator\.tail\.0\.weight' has shape \[1, 256, 1, 1\], TinyGLASS "
                                       r"expects \[1, 512, 1, 1\]"):
        tinyglass.load_heads(model, wrong, "c.pth")


def test_fit_writes_the_official_checkpoint_format(official: dict, tmp_path: Path) -> None:
    """bench fit's checkpoint has the official trainer's keys, shapes and dtypes, plus a 'meta' entry the
    official loader (GLASS.tester: state_dict['discriminator'] only) ignores."""
    from support.tiny_model import write_mvtec_tree

    from bench.cli import main

    data = write_mvtec_tree(tmp_path / "data", good=3, bad=1)
    out = tmp_path / "ckpts"
    assert main(["fit", "--model", "tinyglass", "--data-root", str(data), "--backbone-weights",
                 str(official["backbone"]), "--steps", "3", "--out", str(out)]) == 0
    ours = load_checkpoint(out / "widget.pth")
    reference = official_checkpoint()
    assert set(ours) == {"discriminator", "meta"} and set(reference) == {"discriminator"}
    assert list(ours["discriminator"]) == list(reference["discriminator"])
    for key, value in reference["discriminator"].items():
        assert ours["discriminator"][key].shape == value.shape and ours["discriminator"][key].dtype == value.dtype
    assert ours["meta"]["fit"]["config"]["steps"] == 3


@pytest.mark.slow
def test_official_checkpoints_run_end_to_end_host_emulated_imx500_and_report(official: dict, tmp_path: Path) -> None:
    """The checkpoints the official trainer wrote, in the released layout, through the harness: the host run
    reproduces GLASS._predict image by image, the emulated IMX500 run completes on the same inputs with its
    calibration and saturation recorded, and the report covers both."""
    need("imx500", "model_compression_toolkit")
    from support.cli import run_cli

    from bench.records import load_run

    common = ["--model", "tinyglass", "--dataset", "mvtec", "--data-root", str(FIXTURE / "data"),
              "--checkpoint", str(FIXTURE / "models"), "--backbone-weights", str(official["backbone"]),
              "--out", str(tmp_path / "results"), "--warmup", "0", "--min-count", "1", "--min-duration", "0"]
    host = run_cli(["run", "--device", "host", *common], cwd=tmp_path)
    assert host.returncode == 0, host.stderr[-2000:]
    emulated = run_cli(["run", "--device", "imx500", "--emulate", *common], cwd=tmp_path)
    assert emulated.returncode == 0, emulated.stderr[-2000:]
    runs = {load_run(p).manifest["device"]["emulated"]: load_run(p) for p in (tmp_path / "results").iterdir()}

    reference = runs[False]
    expected = official["expected"]
    images = reference.images.set_index("image_id")
    for k, image_id in enumerate(official["ids"]):
        assert abs(images.loc[image_id, "score"] - float(expected["scores"][k])) < 1e-5, image_id
        assert images.loc[image_id, "input_sha256"] == str(expected["input_sha256"][k])
    for j, image_id in enumerate(official["map_ids"]):
        stored = np.load(reference.path / "maps" / f"{category_of(image_id)}.npz")[image_id].astype(np.float32)
        assert np.all(np.abs(stored - expected["maps"][j]) <= float16_rounding(expected["maps"][j]))
    model = reference.manifest["model"]
    assert model["mask_convention"] == "bilinear_cast"
    assert model["categories"]["wood"]["preprocessing"]["resize"] == [292, 292]
    assert model["categories"]["bottle"]["checkpoint"].endswith("backbone_0/mvtec_bottle/ckpt_best_1.pth")

    device = runs[True]
    assert device.status == "complete"
    assert list(device.images["input_sha256"]) == list(reference.images["input_sha256"])
    quantization = device.manifest["model"]["categories"]["wood"]["artifact_details"]["quantization"]
    assert quantization["calibration"]["mode"] == "train-synthetic" and quantization["output_rails"]["score"] > 0
    assert "score_saturation" in device.metrics["categories"]["wood"]

    report = run_cli(["report", str(tmp_path / "results"), "--out", str(tmp_path / "report.html")], cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-2000:]
    assert (tmp_path / "report.html").stat().st_size > 0
