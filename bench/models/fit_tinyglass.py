"""Small-scale TinyGLASS (and GLASS) fitting with a frozen backbone, deterministic by seed.

GLASS trains its discriminator to separate normal patch features from two kinds of
synthetic anomalies: feature-space perturbations (GAS; here Gaussian perturbations of the
patch features, without GLASS's gradient-ascent refinement) and image-level synthesis
inside Perlin-like masks (LAS; here a smooth random mask blending in another, colour-shifted
normal image). That is enough to turn a backbone into a per-category detector in seconds
on a CPU, which is what the demo and a lab adding a category need.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.models.synthetic import synthesize
from bench.models.training import Progress, optimise, reinitialise


@dataclass(frozen=True)
class FitConfig:
    seed: int = 0
    steps: int = 300
    batch_patches: int = 1024
    lr: float = 1e-3
    gas_noise: float = 1.0          # perturbation std, relative to the normal features' std
    las_per_image: int = 2          # synthetic anomalous images per training image
    las_area: tuple[float, float] = (0.01, 0.06)
    las_blend: tuple[float, float] = (0.3, 0.9)
    las_label_min: float = 0.25     # share of a patch's pixels inside the mask to call it anomalous


def _embed_all(model: Any, images: np.ndarray) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([model.embed(torch.from_numpy(images[i : i + 1])) for i in range(len(images))])


def _patch_labels(masks: np.ndarray, grid: tuple[int, int], threshold: float) -> torch.Tensor:
    """1 = anomalous patch, 0 = normal, -1 = ambiguous (ignored in the loss)."""
    share = F.adaptive_avg_pool2d(torch.from_numpy(masks[:, None].astype(np.float32)), grid)[:, 0]
    labels = torch.where(share >= threshold, 1.0, torch.where(share > 0, -1.0, 0.0))
    return labels.flatten()


def _as_patches(embedding: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N*H*W, C]."""
    return embedding.permute(0, 2, 3, 1).reshape(-1, embedding.shape[1])


def fit(
    model: Any, images: np.ndarray, cfg: FitConfig, progress: Progress | None = None
) -> dict:
    """Fit the heads (TinyGLASS: the discriminator; GLASS: projection and discriminator) on normal
    ``images`` [N,3,H,W]; returns a summary of the fit."""
    torch.manual_seed(cfg.seed)
    heads = model.heads()
    reinitialise(*heads)
    rng = np.random.default_rng(cfg.seed)
    model.eval()
    normal = _embed_all(model, images)
    grid = tuple(normal.shape[-2:])
    synthetic, masks = synthesize(images, cfg, rng)
    las = _embed_all(model, synthetic)
    las_labels = _patch_labels(masks, grid, cfg.las_label_min)
    normal_p, las_p = _as_patches(normal), _as_patches(las)
    keep = las_labels >= 0
    las_p, las_labels = las_p[keep], las_labels[keep]
    gas_std = float(normal_p.std()) * cfg.gas_noise

    generator = torch.Generator().manual_seed(cfg.seed)

    def loss_at() -> torch.Tensor:
        idx_n = torch.randint(len(normal_p), (cfg.batch_patches,), generator=generator)
        idx_a = torch.randint(len(las_p), (cfg.batch_patches,), generator=generator)
        true = normal_p[idx_n]
        fake = true + torch.randn(true.shape, generator=generator) * gas_std
        batch = torch.cat([true, fake, las_p[idx_a]])
        target = torch.cat([torch.zeros(len(true)), torch.ones(len(fake)), las_labels[idx_a]])
        pred = model.score_patches(batch[:, :, None, None]).flatten()
        return F.binary_cross_entropy(pred.clamp(1e-6, 1 - 1e-6), target)

    for head in heads:
        head.train()
    params = [p for head in heads for p in head.parameters()]
    final_loss = optimise(params, cfg.lr, cfg.steps, loss_at, progress)
    model.eval()
    return {"config": asdict(cfg), "final_loss": final_loss, "train_images": len(images),
            "synthetic_images": len(synthetic)}
