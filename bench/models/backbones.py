"""Backbones from local weight files only: the harness never downloads at run time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.errors import BadInput
from bench.records.atomic import replace_atomically

# torchvision's file names for the ImageNet weights (IMAGENET1K_V1), as the torch hub cache stores them.
IMAGENET_FILES = {"resnet18": "resnet18-f37072fd.pth", "wide_resnet50_2": "wide_resnet50_2-95faca4d.pth"}
RESNET18_IMAGENET_FILE = IMAGENET_FILES["resnet18"]


def hub_cache_file(name: str) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / name


class ResNetTrunk(nn.Module):
    """A torchvision ResNet up to layer3; returns the layer2 and layer3 feature maps."""

    def __init__(self, arch: str = "resnet18") -> None:
        super().__init__()
        import torchvision.models

        if arch not in IMAGENET_FILES:
            raise BadInput(f"unknown backbone '{arch}' (known: {', '.join(IMAGENET_FILES)})")
        self.arch = arch
        base = getattr(torchvision.models, arch)(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = base.conv1, base.bn1, base.relu, base.maxpool
        self.layer1, self.layer2, self.layer3 = base.layer1, base.layer2, base.layer3

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        f2 = self.layer2(x)
        return f2, self.layer3(f2)


def resolve_weights(arch: str, path: Path | None) -> Path:
    """The given file, else torchvision's ImageNet file for ``arch`` in the torch hub cache."""
    candidate = path if path is not None else hub_cache_file(IMAGENET_FILES[arch])
    if not candidate.is_file():
        raise BadInput(
            f"{arch} weights not found at {candidate}; pass --backbone-weights or place torchvision's "
            f"{IMAGENET_FILES[arch]} in {candidate.parent}"
        )
    return candidate


def resolve_resnet18_weights(path: Path | None) -> Path:
    return resolve_weights("resnet18", path)


def resnet_trunk(arch: str, weights: Path | None) -> ResNetTrunk:
    """The trunk with weights from a torchvision state dict of ``arch`` (extra fc.* and layer4 keys ignored)."""
    file = resolve_weights(arch, weights)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise BadInput(f"{file}: cannot read {arch} weights ({str(exc).splitlines()[0]})") from exc
    if not isinstance(state, dict):
        raise BadInput(f"{file}: holds a {type(state).__name__}, not a {arch} state dict")
    trunk = ResNetTrunk(arch)
    wanted = trunk.state_dict()
    state = {k: v for k, v in state.items() if k in wanted}
    missing = [k for k in wanted if k not in state]
    if missing:
        raise BadInput(f"{file}: not {arch} weights (missing '{missing[0]}')")
    for key, value in state.items():
        if value.shape != wanted[key].shape:
            raise BadInput(f"{file}: '{key}' has shape {list(value.shape)}, {arch} expects "
                           f"{list(wanted[key].shape)}")
    trunk.load_state_dict(state)
    return trunk.eval()


def calibrate_batchnorm(model: nn.Module, images: np.ndarray, batch: int = 8) -> None:
    """Set every BatchNorm's running statistics to the exact mean/variance over ``images``.

    A randomly initialised network has running statistics (0, 1) that fit no real input, so
    its deep features saturate or vanish; calibrated statistics make them well-conditioned
    random projections, which is what lets the demo detect anything without ImageNet weights.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over all batches
    model.train()
    with torch.no_grad():
        for start in range(0, len(images), batch):
            model(torch.from_numpy(images[start : start + batch]))
    for norm in norms:
        norm.momentum = 0.1
    model.eval()


def save_random_resnet18(path: Path, seed: int, calibration: np.ndarray | None = None) -> Path:
    """A seeded random ResNet-18 weight file (BatchNorm optionally calibrated), for demos and tests.

    No ImageNet weights can be downloaded at run time; such a file goes through the very
    loading code the real torchvision weights use.
    """
    from torchvision.models import resnet18

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = resnet18(weights=None)
    finally:
        torch.random.set_rng_state(generator_state)
    if calibration is not None:
        calibrate_batchnorm(model, calibration)
    replace_atomically(path, lambda tmp: torch.save(model.state_dict(), tmp))
    return path


def save_random_tinyvit(path: Path, seed: int) -> Path:
    """A seeded random TinyViT-21M-512 state dict (timm's architecture, no pretrained weights), for the demo's
    EdgeZSAD stand-in and tests: it goes through timm's local-file loading as the published weights do."""
    from bench.models.edgezsad import tinyvit

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = tinyvit(None)
    finally:
        torch.random.set_rng_state(generator_state)
    replace_atomically(path, lambda tmp: torch.save(model.state_dict(), tmp))
    return path
