"""TinyGLASS (arXiv 2603.16451) as the official code (ETH-PBL/TinyGLASS at 356c7d7) trains and runs it.

What ``glass.py`` does at that commit, whatever its command line says: the frozen ImageNet
ResNet-18 (eval mode) to layer3; 3x3 patches of layer2 and layer3 by a one-hot grouped
convolution; layer2's patch grid average-pooled 2x2 onto layer3's 16x16; each reduced to 64
channels by means over consecutive channel groups (``reduce_channels_keep_spatial``) and
concatenated into a 128-d embedding (``target_embed_dimension`` is forced to 128, ``pre_proj``
to 0: no projection); a discriminator of 1x1 Conv(128->512) + BatchNorm2d + LeakyReLU(0.2) +
1x1 Conv(512->1, no bias) + Sigmoid per patch; the image score is the maximum patch score.
Checkpoints are ``{"discriminator": state_dict}`` with keys ``body.0.*``, ``body.1.*``,
``tail.0.weight`` (``GLASS.trainer``'s ``update_state_dict``). The paper's 384-d projected
layout is the original GLASS network (``bench.models.glass``, cards glass-r18 / glass-wrn50).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BadInput
from bench.models.backbones import ResNetTrunk, resnet_trunk
from bench.models.checkpoint_layouts import load_strict, refuse_foreign
from bench.models.patches import PatchExtractor, group_mean

REDUCED = 64  # channels per layer after the group means
EMBED_DIM = 2 * REDUCED
HIDDEN = 512


class Discriminator(nn.Module):
    """The official ``model.Discriminator`` (hidden 512), as 1x1 convolutions on the patch grid."""

    def __init__(self, dim: int = EMBED_DIM, hidden: int = HIDDEN) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(dim, hidden, kernel_size=1), nn.BatchNorm2d(hidden), nn.LeakyReLU(0.2))
        self.tail = nn.Sequential(nn.Conv2d(hidden, 1, kernel_size=1, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.body(x))


class TinyGLASS(nn.Module):
    """Image [B,3,256,256] -> (image score [B], patch-score grid [B,1,16,16])."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.patch2 = PatchExtractor(128)
        self.patch3 = PatchExtractor(256)
        self.discriminator = Discriminator()

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        """The 128-d patch embedding on layer3's grid, in the official order of operations."""
        f2, f3 = self.backbone(image)
        p2 = F.avg_pool2d(self.patch2(f2), kernel_size=2, stride=2)
        p3 = self.patch3(f3)
        return torch.cat([group_mean(p2, REDUCED), group_mean(p3, REDUCED)], dim=1)

    def heads(self) -> list[nn.Module]:
        """What a fit trains (the backbone stays frozen)."""
        return [self.discriminator]

    def score_patches(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.discriminator(embedding)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patch_scores = self.score_patches(self.embed(image))
        return patch_scores.amax(dim=(1, 2, 3)), patch_scores

    def checkpoint(self) -> dict[str, OrderedDict]:
        """The official checkpoint: ``{"discriminator": state_dict}``, tensors detached on the CPU."""
        return {"discriminator": OrderedDict((k, v.detach().cpu().clone())
                                             for k, v in self.discriminator.state_dict().items())}


def build(backbone_weights: Path | None) -> TinyGLASS:
    """The network with its backbone loaded (random when None: architecture only); heads at initial values."""
    trunk = ResNetTrunk("resnet18") if backbone_weights is None else resnet_trunk("resnet18", backbone_weights)
    return TinyGLASS(trunk).eval()


def load_heads(model: TinyGLASS, checkpoint: dict, source: str) -> None:
    """Load an official checkpoint strictly (``load_strict``); a file of another layout is named, with the
    card that loads it."""
    refuse_foreign(checkpoint, source, "tinyglass")
    extra = sorted(set(map(str, checkpoint)) - {"discriminator", "meta"})
    if extra:
        raise BadInput(f"{source}: unexpected entry '{extra[0]}' beside 'discriminator' (TinyGLASS has no "
                       f"projection: the official code saves the discriminator alone)")
    load_strict(model.discriminator, checkpoint["discriminator"], "discriminator", source, "TinyGLASS")

