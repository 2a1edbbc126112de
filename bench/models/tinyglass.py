"""TinyGLASS (arXiv 2603.16451): GLASS on a truncated ResNet-18, shaped for edge export.

Layer names follow the public GLASS/TinyGLASS checkpoints so they load unchanged:
``pre_projection.layers.0fc`` and ``discriminator.body.block1.{0,1}`` / ``discriminator.tail.0``.
The public code stores these as ``Linear``/``BatchNorm1d``; here they are 1x1 convolutions on
the patch grid (what the edge converters want), and 2-D weights are reshaped on load.
Patches are extracted by a grouped convolution with one-hot kernels, not ``Unfold``, because
the IMX500 converter rejects the multi-index Gather that ``Unfold`` exports to.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BadInput
from bench.models.backbones import resnet18_trunk

EMBED_DIM = 384
HIDDEN = 512
PATCH = 3


class PatchExtractor(nn.Module):
    """3x3 neighbourhoods, stride 1, as channels: [B, C, H, W] -> [B, C*9, H, W] (channel-major).

    A grouped ``nn.Conv2d`` module (not ``F.conv2d``): MCT rebuilds functional convolutions
    without their ``groups``. Its one-hot kernel is a fixed, non-persistent buffer, so it is
    neither a parameter nor part of any checkpoint.
    """

    def __init__(self, channels: int, patch: int = PATCH) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels * patch * patch, patch, padding=(patch - 1) // 2, groups=channels,
                              bias=False)
        eye = torch.eye(patch * patch).reshape(patch * patch, 1, patch, patch)
        del self.conv.weight
        self.conv.register_buffer("weight", eye.repeat(channels, 1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def group_mean(x: torch.Tensor, out_channels: int) -> torch.Tensor:
    """Adaptive average pooling over the channel axis (GLASS's MeanMapper), grid kept intact."""
    b, c, h, w = x.shape
    return x.reshape(b, out_channels, c // out_channels, h, w).mean(dim=2)


class Projection(nn.Module):
    def __init__(self, dim: int = EMBED_DIM) -> None:
        super().__init__()
        self.layers = nn.Sequential(OrderedDict([("0fc", nn.Conv2d(dim, dim, kernel_size=1))]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Discriminator(nn.Module):
    def __init__(self, dim: int = EMBED_DIM, hidden: int = HIDDEN) -> None:
        super().__init__()
        block1 = nn.Sequential(nn.Conv2d(dim, hidden, kernel_size=1), nn.BatchNorm2d(hidden), nn.LeakyReLU(0.2))
        self.body = nn.Sequential(OrderedDict([("block1", block1)]))
        self.tail = nn.Sequential(nn.Conv2d(hidden, 1, kernel_size=1, bias=False), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.body(x))


class TinyGLASS(nn.Module):
    """Image [B,3,256,256] -> (image score [B], patch-score grid [B,1,32,32])."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.patch2 = PatchExtractor(128)
        self.patch3 = PatchExtractor(256)
        self.pre_projection = Projection()
        self.discriminator = Discriminator()

    def embed(self, image: torch.Tensor) -> torch.Tensor:
        """Locally aware patch features [B, 384, H/8, W/8], as GLASS aggregates them."""
        f2, f3 = self.backbone(image)
        p2 = group_mean(self.patch2(f2), EMBED_DIM)
        p3 = group_mean(self.patch3(f3), EMBED_DIM)
        # Reducing before upsampling is exact (both are linear) and 6x cheaper.
        p3 = F.interpolate(p3, size=p2.shape[-2:], mode="bilinear", align_corners=False)
        half = EMBED_DIM // 2
        return torch.cat([group_mean(p2, half), group_mean(p3, half)], dim=1)

    def score_patches(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.discriminator(self.pre_projection(embedding))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patch_scores = self.score_patches(self.embed(image))
        return patch_scores.amax(dim=(1, 2, 3)), patch_scores


def build(backbone_weights: Path | None) -> TinyGLASS:
    """The network with its backbone loaded (random when None: architecture only); heads at initial values."""
    from bench.models.backbones import ResNet18Trunk

    trunk = ResNet18Trunk() if backbone_weights is None else resnet18_trunk(backbone_weights)
    return TinyGLASS(trunk).eval()


def to_public_format(model: TinyGLASS) -> dict[str, OrderedDict]:
    """The head weights as the public GLASS code saves them (``Linear`` shapes)."""
    return {
        "discriminator": _squeeze_1x1(model.discriminator.state_dict()),
        "pre_projection": _squeeze_1x1(model.pre_projection.state_dict()),
    }


def load_heads(model: TinyGLASS, checkpoint: dict, source: str) -> None:
    """Load ``{"discriminator": ..., "pre_projection": ...}``; a mismatch names the first bad key."""
    for part in ("discriminator", "pre_projection"):
        if part not in checkpoint:
            found = ", ".join(sorted(map(str, checkpoint))) or "nothing"
            raise BadInput(f"{source}: not a TinyGLASS checkpoint (no '{part}' entry; found {found})")
        module: nn.Module = getattr(model, part)
        expected = module.state_dict()
        given = _strip_module_prefix(checkpoint[part])
        for key, target in expected.items():
            if key not in given:
                raise BadInput(f"{source}: checkpoint lacks '{part}.{key}' (expected shape {list(target.shape)})")
            value = given[key]
            stored = list(value.shape)
            if value.ndim == 2 and target.ndim == 4:
                value = value[:, :, None, None]
            if tuple(value.shape) != tuple(target.shape):
                raise BadInput(f"{source}: '{part}.{key}' has shape {stored}, the model expects {list(target.shape)}")
            expected[key] = value
        unexpected = sorted(set(given) - set(expected))
        if unexpected:
            raise BadInput(f"{source}: unexpected key '{part}.{unexpected[0]}' in the checkpoint")
        module.load_state_dict(expected)


def _strip_module_prefix(state: dict) -> dict:
    """DataParallel checkpoints prefix every key with ``module.``."""
    return {key.removeprefix("module."): value for key, value in state.items()}


def _squeeze_1x1(state: dict) -> OrderedDict:
    return OrderedDict(
        (key, value[:, :, 0, 0].clone() if value.ndim == 4 else value.clone()) for key, value in state.items()
    )
