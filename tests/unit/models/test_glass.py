"""The original GLASS layout (glass-r18): its checkpoints, clear errors for wrong ones, export parity."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from support.extras import need

torch = need("export", "torch")
import torch.nn.functional as F  # noqa: E402
from scipy.ndimage import gaussian_filter  # noqa: E402

from bench.errors import BadInput  # noqa: E402
from bench.models import glass  # noqa: E402
from bench.models.backbones import resnet_trunk, save_random_resnet18  # noqa: E402
from bench.models.patches import PatchExtractor  # noqa: E402
from bench.models.postprocess import anomaly_map, bilinear_matrix  # noqa: E402


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_resnet18(tmp_path_factory.mktemp("bb") / "r18.pth", seed=3)


build = glass.builder("glass-r18")


def public_checkpoint(seed: int, prefix: str = "") -> dict:
    """A checkpoint laid out as cqylunlun/GLASS saves it (model.py: Linear weights, BatchNorm1d), 384-d."""
    g = torch.Generator().manual_seed(seed)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * 0.05

    disc = OrderedDict([
        ("body.block1.0.weight", rnd(512, 384)), ("body.block1.0.bias", rnd(512)),
        ("body.block1.1.weight", 1 + rnd(512)), ("body.block1.1.bias", rnd(512)),
        ("body.block1.1.running_mean", rnd(512)), ("body.block1.1.running_var", 1 + rnd(512).abs()),
        ("body.block1.1.num_batches_tracked", torch.tensor(7)), ("tail.0.weight", rnd(1, 512)),
    ])
    proj = OrderedDict([("layers.0fc.weight", rnd(384, 384)), ("layers.0fc.bias", rnd(384))])
    return {"discriminator": OrderedDict((prefix + k, v) for k, v in disc.items()),
            "pre_projection": OrderedDict((prefix + k, v) for k, v in proj.items())}


def scores(model: glass.GLASS, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model(x)[0]


@pytest.mark.parametrize("prefix", ["", "module."])
def test_public_checkpoint_loads_and_changes_scores(backbone: Path, prefix: str) -> None:
    x = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    model = build(backbone)
    before = scores(model, x)
    ckpt = public_checkpoint(1, prefix)
    glass.load_heads(model, ckpt, "ckpt.pth")
    after = scores(model, x)
    assert not torch.allclose(before, after)
    # the loaded 1x1 convolutions are the checkpoint's Linear weights
    w = model.discriminator.body.block1[0].weight
    assert torch.equal(w[:, :, 0, 0], ckpt["discriminator"][prefix + "body.block1.0.weight"])
    # saving in the public format and loading again reproduces the scores exactly
    other = build(backbone)
    glass.load_heads(other, model.checkpoint(), "again.pth")
    assert torch.equal(scores(other, x), after)


def test_patch_extraction_matches_unfold() -> None:
    x = torch.randn(1, 5, 6, 7)
    extractor = PatchExtractor(5)
    unfolded = F.unfold(x, kernel_size=3, padding=1).reshape(1, 45, 6, 7)
    assert torch.allclose(extractor(x), unfolded)


def test_wrong_shape_names_key_and_both_shapes(backbone: Path) -> None:
    ckpt = public_checkpoint(1)
    ckpt["pre_projection"]["layers.0fc.weight"] = torch.zeros(256, 384)
    with pytest.raises(BadInput, match=r"bad\.pth: 'pre_projection\.layers\.0fc\.weight' has shape \[256, 384\], "
                                       r"glass-r18 expects \[384, 384, 1, 1\]"):
        glass.load_heads(build(backbone), ckpt, "bad.pth")


def test_missing_part_and_missing_key(backbone: Path) -> None:
    model = build(backbone)
    with pytest.raises(BadInput, match=r"x\.pth: a training checkpoint with a 'state_dict' entry .*"
                                       r"--model glass-r18 expects"):
        glass.load_heads(model, {"state_dict": {}}, "x.pth")
    ckpt = public_checkpoint(1)
    del ckpt["discriminator"]["tail.0.weight"]
    with pytest.raises(BadInput, match=r"lacks 'discriminator\.tail\.0\.weight'"):
        glass.load_heads(model, ckpt, "x.pth")


def test_backbone_weights_missing_or_foreign(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="resnet18 weights not found"):
        resnet_trunk("resnet18", tmp_path / "absent.pth")
    foreign = tmp_path / "foreign.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, foreign)
    with pytest.raises(BadInput, match=r"foreign\.pth"):
        resnet_trunk("resnet18", foreign)


def test_export_parity_and_cache(backbone: Path, tmp_path: Path) -> None:
    from bench.models.export import exported_model

    model = build(backbone)
    glass.load_heads(model, public_checkpoint(2), "c.pth")
    inputs = [np.random.default_rng(0).standard_normal((1, 3, 256, 256)).astype(np.float32)]
    info = exported_model(model, {"k": 1}, (1, 3, 256, 256), 18, {"score": 1e-4, "patch_scores": 1e-4}, inputs,
                          tmp_path)
    assert not info.cached and info.parity["score"] < 1e-4
    again = exported_model(model, {"k": 1}, (1, 3, 256, 256), 18, {}, inputs, tmp_path)
    assert again.cached and again.exported.sha256 == info.exported.sha256


def test_postprocess_matches_torch_and_scipy() -> None:
    grid = np.random.default_rng(1).random((32, 32)).astype(np.float32)
    up = F.interpolate(torch.from_numpy(grid)[None, None], size=(256, 256), mode="bilinear", align_corners=False)
    expected = gaussian_filter(up[0, 0].numpy().astype(np.float64), sigma=4)
    assert np.allclose(anomaly_map(grid, (256, 256), 4), expected, atol=1e-6)
    assert np.allclose(bilinear_matrix(7, 19).sum(axis=1), 1.0)


def test_fit_command_writes_the_glass_layout(backbone: Path, tmp_path: Path) -> None:
    from support.tiny_model import write_mvtec_tree

    from bench.cli import main
    from bench.models.prepare import load_checkpoint

    data = write_mvtec_tree(tmp_path / "data", good=3, bad=1)
    out = tmp_path / "ckpts"
    args = ["fit", "--model", "glass-r18", "--data-root", str(data), "--backbone-weights", str(backbone),
            "--steps", "3", "--out", str(out)]
    assert main(args) == 0
    ckpt = load_checkpoint(out / "widget.pth")  # weights_only loading, as for any foreign checkpoint
    assert ckpt["discriminator"]["body.block1.0.weight"].shape == (512, 384)
    assert ckpt["meta"]["fit"]["config"]["steps"] == 3 and ckpt["meta"]["fit"]["train_images"] == 3
    model = build(backbone)
    glass.load_heads(model, ckpt, "widget.pth")
    assert main(args) == 0  # deterministic by seed: the same weights again
    again = load_checkpoint(out / "widget.pth")
    assert all(torch.equal(again["discriminator"][k], ckpt["discriminator"][k]) for k in ckpt["discriminator"])


def _write_truncated(path: Path) -> None:
    torch.save({"discriminator": {"w": torch.zeros(256, 256)}}, path)
    path.write_bytes(path.read_bytes()[:2000])


def _write_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Abs", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph, producer_name="pytorch"), path)


@pytest.mark.parametrize("name, write, message", [
    ("text.pth", lambda p: p.write_text("not a checkpoint\n"), r"text\.pth: a text file \(starts 'not a checkpoint'\); "
     r"expected a PyTorch checkpoint \(torch.save's zip archive\)$"),
    ("empty.pth", lambda p: p.write_bytes(b""), r"empty\.pth: the file is empty \(0 bytes\); expected a PyTorch"),
    ("cut.pth", _write_truncated, r"cut\.pth: a zip archive torch.load cannot read \(truncated or not torch.save's: "
     r"PytorchStreamReader failed reading zip archive: [^.]*\)$"),
    ("binary.pth", lambda p: p.write_bytes(bytes(range(200, 256))), r"binary\.pth: not a PyTorch checkpoint \(starts "
     r"with bytes c8 c9 ca cb cc cd ce cf\)"),
    ("model.onnx", _write_onnx, r"model\.onnx: an ONNX model, not a checkpoint; run an exported model with --model"),
    ("tensor.pth", lambda p: torch.save(torch.zeros(3), p), r"tensor\.pth: checkpoint is a Tensor, expected a dict"),
])
def test_an_unreadable_checkpoint_is_named_by_what_it_is(tmp_path: Path, name: str, write, message: str) -> None:
    """Issue 20: a text file renamed .pth said "cannot read checkpoint (pop from empty list)", an empty one
    crashed with an IndexError: one line naming what was found and what was expected."""
    from bench.models.prepare import load_checkpoint

    path = tmp_path / name
    write(path)
    with pytest.raises(BadInput, match=message) as refused:
        load_checkpoint(path)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 300


def test_a_backbone_given_as_the_checkpoint_is_named_before_any_backbone_is_looked_for(tmp_path: Path) -> None:
    """Issue 20: a ResNet state dict given as a TinyGLASS checkpoint blamed the missing ImageNet weights."""
    import torchvision

    from bench.models.cards import load_card
    from bench.models.prepare import prepare

    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "widget.pth")
    with pytest.raises(BadInput, match=r"widget\.pth: a torchvision ResNet state dict \(backbone weights, not a "
                       r"detector checkpoint\); pass it as --backbone-weights\. --model tinyglass expects"):
        prepare(load_card("tinyglass"), tmp_path, "widget", None, [], tmp_path / "exports")


def test_batch_n_export_scores_each_image(backbone: Path, tmp_path: Path) -> None:
    from bench.models.export import exported_model

    model = build(backbone)
    glass.load_heads(model, public_checkpoint(4), "c.pth")
    batch = np.random.default_rng(1).standard_normal((4, 3, 256, 256)).astype(np.float32)
    info = exported_model(model, {"k": "b4"}, (4, 3, 256, 256), 18, {"score": 1e-4, "patch_scores": 1e-4},
                          [batch], tmp_path)
    import onnxruntime as ort

    session = ort.InferenceSession(str(info.exported.onnx_path), providers=["CPUExecutionProvider"])
    scores, grids = session.run(None, {"image": batch})
    assert scores.shape == (4,) and grids.shape == (4, 1, 32, 32)
    single = [scores_of(model, batch[i : i + 1]) for i in range(4)]
    assert np.allclose(scores, single, atol=1e-5)  # batching does not mix images


def scores_of(model: glass.GLASS, x: np.ndarray) -> float:
    with torch.inference_mode():
        return float(model(torch.from_numpy(x))[0][0])


def test_backbone_from_the_torch_hub_cache(backbone: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from bench.models.backbones import RESNET18_IMAGENET_FILE, resolve_resnet18_weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(BadInput, match=RESNET18_IMAGENET_FILE):
        resolve_resnet18_weights(None)
    cached = tmp_path / "torch" / "hub" / "checkpoints" / RESNET18_IMAGENET_FILE
    cached.parent.mkdir(parents=True)
    shutil.copyfile(backbone, cached)
    assert resolve_resnet18_weights(None) == cached
    assert isinstance(build(None).backbone, torch.nn.Module)  # None in build means random weights


def test_export_fails_above_tolerance(backbone: Path, tmp_path: Path) -> None:
    from bench.models.export import ExportParityError, exported_model

    model = build(backbone)
    inputs = [np.random.default_rng(0).standard_normal((1, 3, 256, 256)).astype(np.float32)]
    with pytest.raises(ExportParityError, match="differs from PyTorch on 'score'"):
        exported_model(model, {"k": "strict"}, (1, 3, 256, 256), 18, {"score": -1.0}, inputs, tmp_path)
    assert not list(tmp_path.rglob("model.onnx"))  # a graph that failed parity is never cached


def test_glass_wrn50_is_the_papers_comparison_network() -> None:
    """WideResNet-50 at 288: layer2 (512 ch) and layer3 (1024 ch) patches, 1536-d, hidden 1024, a 36x36 grid;
    a 1536-d GLASS checkpoint loads, a 384-d one is named for glass-r18."""
    model = glass.builder("glass-wrn50")(None)
    with torch.inference_mode():
        score, grid = model(torch.zeros(1, 3, 288, 288))
    assert score.shape == (1,) and grid.shape == (1, 1, 36, 36)
    g = torch.Generator().manual_seed(0)
    ckpt = {"discriminator": {"body.block1.0.weight": torch.randn(1024, 1536, generator=g) * 0.01,
                              "body.block1.0.bias": torch.zeros(1024), "body.block1.1.weight": torch.ones(1024),
                              "body.block1.1.bias": torch.zeros(1024), "body.block1.1.running_mean": torch.zeros(1024),
                              "body.block1.1.running_var": torch.ones(1024),
                              "body.block1.1.num_batches_tracked": torch.tensor(0),
                              "tail.0.weight": torch.randn(1, 1024, generator=g) * 0.01},
            "pre_projection": {"layers.0fc.weight": torch.eye(1536), "layers.0fc.bias": torch.zeros(1536)}}
    glass.load_heads(model, ckpt, "wrn.pth")
    with pytest.raises(BadInput, match=r"384-d embedding\); use --model glass-r18\. --model glass-wrn50 expects"):
        glass.load_heads(model, public_checkpoint(1), "r18.pth")
