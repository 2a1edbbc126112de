"""Patch features as GLASS-style detectors build them, in the form edge converters accept."""

from __future__ import annotations

import torch
from torch import nn

PATCH = 3


class PatchExtractor(nn.Module):
    """3x3 neighbourhoods, stride 1, zero padding, as channels: [B, C, H, W] -> [B, C*9, H, W], channel c*9+k.

    A grouped convolution with one-hot kernels, as the official TinyGLASS ``PatchMaker.patchify_grid``
    extracts patches: the IMX500 converter rejects the multi-index Gather that ``Unfold`` exports to.
    An ``nn.Conv2d`` module (not ``F.conv2d``), because MCT rebuilds functional convolutions without
    their ``groups``; its kernel is a fixed, non-persistent buffer, in no checkpoint.
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
    """Mean over consecutive channel groups, grid kept intact (GLASS's adaptive pooling of the channel axis)."""
    b, c, h, w = x.shape
    return x.reshape(b, out_channels, c // out_channels, h, w).mean(dim=2)
