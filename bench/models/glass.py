"""The original GLASS network (cqylunlun/GLASS), which the TinyGLASS paper compares against.

GLASS aggregates 3x3 patches of layer2 and layer3 (layer3 upsampled bilinearly onto layer2's
grid), maps each layer to the pre-train embedding by channel means, averages the two into the
target embedding, projects it by one ``Linear`` (``pre_projection.layers.0fc``) and scores each
patch with a ``Linear`` + ``BatchNorm1d`` + LeakyReLU(0.2) + ``Linear`` + Sigmoid discriminator
(``discriminator.body.block1.{0,1}``, ``discriminator.tail.0``); the image score is the maximum.
Checkpoints are ``{"discriminator": ..., "pre_projection": ...}``. Here the ``Linear`` layers are
1x1 convolutions on the patch grid (what edge converters want) and 2-D weights are reshaped on
load. Two variants: ResNet-18 at 256 (384-d, hidden 512) and the paper's WideResNet-50 at 288
(1536-d, hidden 1024). The TinyGLASS network itself is ``bench.models.tinyglass``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BadInput
from bench.models.backbones import ResNetTrunk, resnet_trunk
from bench.models.checkpoint_layouts import load_strict, refuse_foreign
from bench.models.patches import PatchExtractor, group_mean


@dataclass(frozen=True)
class Variant:
    card: str
    arch: str
    channels: tuple[int, int]  # layer2, layer3
    embed: int
    hidden: int


VARIANTS = {
    "glass-r18": Variant("glass-r18", "resnet18", (128, 256), 384, 512),
    "glass-wrn50": Variant("glass-wrn50", "wide_resnet50_2", (512, 1024), 1536, 1024),
}


class Projection(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(OrderedDict([("0fc", nn.Conv2d(dim, dim, kernel_size=1))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Discriminator(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        block1 = nn.Sequential(nn.Conv2d(dim, hidden, kernel_size=1), nn.BatchNorm2d(hidden), nn.LeakyReLU(0.2))
        self.body = nn.Sequential(OrderedDict([("block1", block1)]))
        self.tail = nn.Sequential(nn.Conv2d(hidden, 1, kernel_size=1, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.body(x))


class GLASS(nn.Module):
    """Image [B,3,H,W] -> (image score [B], patch-score grid [B,1,H/8,W/8])."""

    def __init__(self, backbone: nn.Module, variant: Variant) -> None:
        super().__init__()
        self.variant = variant
        self.backbone = backbone
        self.patch2 = PatchExtractor(variant.channels[0])
        self.patch3 = PatchExtractor(variant.channels[1])
        self.pre_projection = Projection(variant.embed)
        self.discriminator = Discriminator(variant.embed, variant.hidden)

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        """Locally aware patch features [B, D, H/8, W/8], as GLASS aggregates them."""
        dim = self.variant.embed
        f2, f3 = self.backbone(image)
        p2 = group_mean(self.patch2(f2), dim)
        p3 = group_mean(self.patch3(f3), dim)
        # Reducing before upsampling is exact (both are linear per channel) and cheaper.
        p3 = F.interpolate(p3, size=p2.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([group_mean(p2, dim // 2), group_mean(p3, dim // 2)], dim=1)

    def heads(self) -> list[nn.Module]:
        return [self.pre_projection, self.discriminator]

    def score_patches(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.discriminator(self.pre_projection(embedding))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patch_scores = self.score_patches(self.embed(image))
        return patch_scores.amax(dim=(1, 2, 3)), patch_scores

    def checkpoint(self) -> dict[str, OrderedDict]:
        """The heads as the GLASS code saves them (``Linear`` shapes)."""
        return {"discriminator": _squeeze_1x1(self.discriminator.state_dict()),
                "pre_projection": _squeeze_1x1(self.pre_projection.state_dict())}


def builder(name: str):
    """``build(backbone_weights)`` for one variant (random backbone when None: architecture only)."""
    variant = VARIANTS[name]

    def build(backbone_weights: Path | None) -> GLASS:
        trunk = ResNetTrunk(variant.arch) if backbone_weights is None else resnet_trunk(variant.arch,
                                                                                        backbone_weights)
        return GLASS(trunk, variant).eval()

    return build


def load_heads(model: GLASS, checkpoint: dict, source: str) -> None:
    """Load ``{"discriminator": ..., "pre_projection": ...}`` strictly; a mismatch names the first bad key."""
    refuse_foreign(checkpoint, source, model.variant.card)
    for part in ("discriminator", "pre_projection"):
        if part not in checkpoint:
            raise BadInput(f"{source}: not a GLASS checkpoint (no '{part}' entry)")
        load_strict(getattr(model, part), checkpoint[part], part, source, model.variant.card)


def _squeeze_1x1(state: dict) -> OrderedDict:
    return OrderedDict(
        (key, value[:, :, 0, 0].clone() if value.ndim == 4 else value.clone()) for key, value in state.items()
    )
