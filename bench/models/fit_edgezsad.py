"""Small-scale EdgeZSAD fitting: the readout learns on labelled source categories, the backbone is frozen.

Zero-shot AD trains on an auxiliary set with real anomalies (images, labels, masks) and is
evaluated on categories it never saw. Features are extracted once and cached in memory; the
readout (local map, global score and their mix) is then fitted with binary cross-entropy on
the masks (patch level, ambiguous border patches ignored) and the labels (image level).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from bench.models.edgezsad import EdgeZSAD
from bench.models.training import Progress, optimise, reinitialise


@dataclass(frozen=True)
class ZeroShotFitConfig:
    seed: int = 0
    steps: int = 200
    batch_images: int = 8
    lr: float = 1e-3
    label_min: float = 0.25  # share of a patch inside the mask to call it anomalous


def extract(model: EdgeZSAD, images: list[np.ndarray], progress: Callable[[], None] | None = None,
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    feats: list[tuple[torch.Tensor, ...]] = []
    with torch.inference_mode():
        for image in images:
            feats.append(model.features(torch.from_numpy(image)))
            if progress is not None:
                progress()
    return tuple(torch.cat([f[i] for f in feats]) for i in range(3))  # type: ignore[return-value]


def patch_targets(masks: np.ndarray, grid: tuple[int, int], threshold: float) -> torch.Tensor:
    """1 anomalous, 0 normal, -1 ambiguous (ignored), per patch of the local branch's grid."""
    share = F.adaptive_avg_pool2d(torch.from_numpy(masks[:, None].astype(np.float32)), grid)
    return torch.where(share >= threshold, 1.0, torch.where(share > 0, -1.0, 0.0))


def fit(model: EdgeZSAD, features: tuple[torch.Tensor, torch.Tensor, torch.Tensor], labels: np.ndarray,
        masks: np.ndarray, mask_known: np.ndarray, cfg: ZeroShotFitConfig,
        progress: Progress | None = None) -> dict:
    """Fit the readout on cached features of labelled images.

    ``masks`` [N,H,W] bool (all False for good images); where ``mask_known`` is False (a defective
    image without a mask) only the image-level losses see that image.
    """
    torch.manual_seed(cfg.seed)
    reinitialise(model.readout)
    with torch.no_grad():
        model.readout.mix.zero_()
    f1, f2, f3 = features
    y_img = torch.from_numpy(labels.astype(np.float32))
    y_patch = patch_targets(masks, tuple(f2.shape[-2:]), cfg.label_min)
    y_patch[torch.from_numpy(~mask_known)] = -1.0
    generator = torch.Generator().manual_seed(cfg.seed)

    def loss_at() -> torch.Tensor:
        idx = torch.randperm(len(y_img), generator=generator)[: cfg.batch_images]
        local = model.readout.local_logits(f1[idx], f2[idx])
        glob = model.readout.global_logits(f3[idx])
        target = y_patch[idx]
        keep = target >= 0
        loss_local = F.binary_cross_entropy_with_logits(local[keep], target[keep]) if keep.any() else local.sum() * 0
        loss_global = F.binary_cross_entropy_with_logits(glob, y_img[idx])
        score, _ = model.readout.combine(local, glob)
        loss_score = F.binary_cross_entropy(score.clamp(1e-6, 1 - 1e-6), y_img[idx])
        return loss_local + loss_global + loss_score

    model.readout.train()
    final_loss = optimise(model.readout.parameters(), cfg.lr, cfg.steps, loss_at, progress)
    model.readout.eval()
    return {"config": asdict(cfg), "final_loss": final_loss, "images": len(y_img),
            "defective": int(labels.sum())}


def score(model: EdgeZSAD, features: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> np.ndarray:
    with torch.inference_mode():
        return model.readout(*features)[0].numpy()
