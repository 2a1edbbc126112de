"""EdgeZSAD: checkpoint format and errors, a Resize-free static export, zero-shot fitting via the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.extras import need

torch = need("export", "torch")
need("export", "timm")
need("export", "onnx")

from bench.cli import main  # noqa: E402
from bench.errors import BadInput  # noqa: E402
from bench.models import edgezsad  # noqa: E402
from bench.models.backbones import save_random_tinyvit  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_tinyvit(tmp_path_factory.mktemp("tv") / "tiny_vit_21m_512.pth", seed=1)


@pytest.fixture(scope="module")
def model(weights: Path) -> edgezsad.EdgeZSAD:
    return edgezsad.build(weights)


def readout_checkpoint(seed: int, prefix: str = "") -> dict:
    torch.manual_seed(seed)
    head = edgezsad.EdgeGLR()
    for p in head.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return {"edgeglr": {prefix + k: v for k, v in head.state_dict().items()}}


def test_backbone_loads_from_the_local_file(weights: Path, model: edgezsad.EdgeZSAD) -> None:
    saved = torch.load(weights, map_location="cpu", weights_only=True)
    got = model.backbone.state_dict()
    key = "stages.2.blocks.0.attn.qkv.weight"
    assert torch.equal(got[key], saved[key])
    with pytest.raises(BadInput, match="TinyViT weights not found"):
        edgezsad.tinyvit(weights.parent / "absent.safetensors")


@pytest.mark.parametrize("prefix", ["", "module."])
def test_checkpoint_changes_scores(model: edgezsad.EdgeZSAD, prefix: str) -> None:
    x = torch.randn(1, 3, 512, 512, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        feats = model.features(x)
        edgezsad.load_readout(model, readout_checkpoint(1, prefix), "a.pth")
        first = model.readout(*feats)[0]
        edgezsad.load_readout(model, readout_checkpoint(2, prefix), "b.pth")
        second = model.readout(*feats)[0]
    assert not torch.allclose(first, second)


def test_wrong_checkpoint_is_named(model: edgezsad.EdgeZSAD) -> None:
    ckpt = readout_checkpoint(1)
    ckpt["edgeglr"]["globl.0.weight"] = torch.zeros(256, 1000)
    with pytest.raises(BadInput, match=r"x\.pth: 'edgeglr\.globl\.0\.weight' has shape \[256, 1000\], "
                                       r"EdgeZSAD expects \[256, 1152\]"):
        edgezsad.load_readout(model, ckpt, "x.pth")
    with pytest.raises(BadInput, match=r"x\.pth: a 'discriminator' entry of an unknown layout\. --model edgezsad "
                                       r"expects \{'edgeglr': state_dict\}"):
        edgezsad.load_readout(model, {"discriminator": {}}, "x.pth")


def test_export_is_static_resize_free_and_matches_torch(model: edgezsad.EdgeZSAD, tmp_path: Path) -> None:
    import onnx

    from bench.models.export import exported_model

    edgezsad.load_readout(model, readout_checkpoint(3), "c.pth")
    inputs = [np.random.default_rng(0).standard_normal((1, 3, 512, 512)).astype(np.float32)]
    info = exported_model(model, {"k": "ez"}, (1, 3, 512, 512), 18, {"score": 1e-4, "patch_scores": 1e-4}, inputs,
                          tmp_path)
    graph = onnx.load(str(info.exported.onnx_path)).graph
    assert "Resize" not in {n.op_type for n in graph.node}
    dims = [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 512, 512]
    assert info.parity["score"] < 1e-4 and info.parity["patch_scores"] < 1e-4
    from bench.devices.deployability import lint

    findings = lint(info.exported.onnx_path, ["rb5", "tensorrt"])
    assert [f for f in findings["rb5"] if f.severity == "error"] == []  # deployable on RB5's GPU backend
    assert findings["tensorrt"] == []


def test_zero_shot_fit_cli(weights: Path, tmp_path: Path) -> None:
    from support.tiny_model import write_mvtec_tree

    from bench.models.prepare import load_checkpoint

    data = tmp_path / "data"
    for category in ("gear", "nut", "bolt"):
        write_mvtec_tree(data, category=category, good=2, bad=2, size=32)
    out = tmp_path / "ck"
    base = ["fit", "--model", "edgezsad", "--data-root", str(data), "--backbone-weights", str(weights),
            "--steps", "5", "--out", str(out)]
    assert main([*base, "--heldout", "bolt"]) == 0
    ckpt = load_checkpoint(out / "edgezsad.pth")
    assert ckpt["meta"]["sources"] == ["gear", "nut"]
    assert set(ckpt["meta"]["heldout_image_auroc"]) == {"bolt"}
    assert 0.0 <= ckpt["meta"]["heldout_image_auroc"]["bolt"] <= 1.0
    assert main(base) == 2  # zero-shot needs --heldout
    assert main([*base, "--categories", "gear,bolt", "--heldout", "bolt"]) == 2  # a source cannot be held out
