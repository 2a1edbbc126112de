"""EdgeZSAD (arXiv 2606.16119): zero-shot anomaly detection on a TinyViT-21M-512 backbone.

No public code exists; this architecture is ours and documented in models/edgezsad.yaml.
EdgeGLR, the asymmetric global-local readout:
- local branch: stage-1 features (192 ch, 64x64, average-pooled to 32x32) concatenated with
  stage-2 features (384 ch, 32x32) -> 1x1 conv 576->128, BatchNorm, ReLU, 1x1 conv 128->1,
  sigmoid: a patch-level anomaly map on the 32x32 grid;
- global branch: stage-3 features (576 ch, 16x16) -> global mean and max pooling (1152) ->
  Linear 1152->256, ReLU, Linear 256->1, sigmoid: an image-level score;
- image score = w * global + (1 - w) * max(local map), with w = sigmoid(learned scalar).
The graph has no Resize (QNN's GPU backend rejects it): scales are aligned by pooling, and the
map is upsampled on the host like every model's.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import BadInput
from bench.models.checkpoint_layouts import load_strict, refuse_foreign

BACKBONE = "tiny_vit_21m_512"
STAGE_DIMS = (96, 192, 384, 576)
LOCAL_HIDDEN = 128
GLOBAL_HIDDEN = 256


class EdgeGLR(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        local_in = STAGE_DIMS[1] + STAGE_DIMS[2]
        self.local = nn.Sequential(nn.Conv2d(local_in, LOCAL_HIDDEN, 1), nn.BatchNorm2d(LOCAL_HIDDEN), nn.ReLU(),
                                   nn.Conv2d(LOCAL_HIDDEN, 1, 1))
        self.globl = nn.Sequential(nn.Linear(2 * STAGE_DIMS[3], GLOBAL_HIDDEN), nn.ReLU(), nn.Linear(GLOBAL_HIDDEN, 1))
        self.mix = nn.Parameter(torch.zeros(1))

    def local_logits(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        return self.local(torch.cat([F.avg_pool2d(f1, 2), f2], dim=1))

    def global_logits(self, f3: torch.Tensor) -> torch.Tensor:
        pooled = torch.cat([f3.mean(dim=(2, 3)), f3.amax(dim=(2, 3))], dim=1)
        return self.globl(pooled)[:, 0]

    def combine(self, local_logits: torch.Tensor, global_logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patch = torch.sigmoid(local_logits)
        w = torch.sigmoid(self.mix)
        return w * torch.sigmoid(global_logits) + (1 - w) * patch.amax(dim=(1, 2, 3)), patch

    def forward(self, f1: torch.Tensor, f2: torch.Tensor, f3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.combine(self.local_logits(f1, f2), self.global_logits(f3))


class EdgeZSAD(nn.Module):
    """Image [B,3,512,512] -> (image score [B], patch-score grid [B,1,32,32])."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.readout = EdgeGLR()

    def features(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.backbone.patch_embed(image)
        x = self.backbone.stages[0](x)
        f1 = self.backbone.stages[1](x)
        f2 = self.backbone.stages[2](f1)
        return f1, f2, self.backbone.stages[3](f2)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.readout(*self.features(image))


def tinyvit(weights: Path | None) -> nn.Module:
    """timm's TinyViT-21M-512 trunk; weights from a local file only (timm's ``file`` source), never a hub."""
    import timm

    kwargs: dict = {"num_classes": 0}
    if weights is not None:
        if not weights.is_file():
            raise BadInput(f"TinyViT weights not found at {weights}; pass --backbone-weights with timm's "
                           f"{BACKBONE} file (model.safetensors or a .pth state dict)")
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(weights)})
    try:
        model = timm.create_model(BACKBONE, **kwargs)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise BadInput(f"{weights}: not {BACKBONE} weights ({str(exc).splitlines()[0]})") from exc
    return model.eval()


def build(backbone_weights: Path | None) -> EdgeZSAD:
    return EdgeZSAD(tinyvit(backbone_weights)).eval()


def load_readout(model: EdgeZSAD, checkpoint: dict, source: str) -> None:
    """Load ``{"edgeglr": state_dict}``; a mismatch names the first bad key and both shapes."""
    refuse_foreign(checkpoint, source, "edgezsad")
    load_strict(model.readout, checkpoint["edgeglr"], "edgeglr", source, "EdgeZSAD")
