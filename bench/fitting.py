"""``bench fit``: fit per-category checkpoints on a dataset's normal training images."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from bench.data.datasets import Dataset
from bench.data.preprocess import preprocess_image
from bench.data.samples import spread
from bench.data.stream import prefetch
from bench.errors import BadInput
from bench.models.cards import ModelCard
from bench.models.prepare import require_torch
from bench.progress import bar, loss_callback
from bench.provenance import index_sha256
from bench.records.atomic import replace_atomically
from bench.util import file_sha256


def fit_categories(card: ModelCard, dataset: Dataset, categories: list[str], out_dir: Path,
                   backbone: Path | None, seed: int = 0, steps: int | None = None,
                   max_train: int | None = None) -> dict[str, Path]:
    """Fit one checkpoint per category into ``out_dir/<category>.pth``: the network's own checkpoint format
    (for TinyGLASS the official ``{"discriminator": ...}``, which the official loader reads) plus a ``meta``
    entry that the official loaders ignore."""
    require_torch()
    import torch

    from bench.models.families import family
    from bench.models.fit_tinyglass import FitConfig, fit

    if card.family not in ("tinyglass", "glass-r18", "glass-wrn50"):
        raise BadInput(f"model '{card.name}' is fitted on source categories at once: use fit_zero_shot")
    fam = family(card.family)
    backbone = fam.resolve_backbone(backbone)
    backbone_sha = file_sha256(backbone)
    cfg = FitConfig(seed=seed) if steps is None else FitConfig(seed=seed, steps=steps)
    written: dict[str, Path] = {}
    for category in categories:
        recipe = card.recipes.for_category(category)
        samples = [s for s in dataset.samples(category, "train") if s.label == 0][:max_train]
        if not samples:
            raise BadInput(f"{dataset.root / category / 'train'}: no normal training images")
        images = np.concatenate([t for _, t in prefetch(samples, lambda s, r=recipe: preprocess_image(s.path, r))])
        model = fam.build(backbone)
        with bar(cfg.steps, f"fit {category}") as progress:
            summary = fit(model, images, cfg, loss_callback(progress))
        checkpoint = model.checkpoint()
        checkpoint["meta"] = json_safe({
            "model": card.name, "category": category, "fit": summary,
            "train_index_sha256": index_sha256(samples),
            "backbone_weights": _relative_or_absolute(backbone, out_dir),
            "backbone_sha256": backbone_sha,
            "torch": torch.__version__,
        })
        target = out_dir / f"{category}.pth"
        replace_atomically(target, lambda tmp, c=checkpoint: torch.save(c, tmp))
        written[category] = target
    return written


def fit_zero_shot(card: ModelCard, dataset: Dataset, sources: list[str], heldout: list[str], out_dir: Path,
                  backbone: Path | None, seed: int = 0, steps: int | None = None,
                  max_images: int | None = None) -> tuple[Path, dict[str, float]]:
    """One checkpoint from the labelled test images of ``sources``; image AUROC on each ``heldout`` category."""
    require_torch()
    import torch

    from bench.data.loader import InputLoader
    from bench.data.preprocess import preprocess_mask
    from bench.metrics import image_auroc
    from bench.models.families import family
    from bench.models.fit_edgezsad import ZeroShotFitConfig, extract, fit, score

    overlap = sorted(set(sources) & set(heldout))
    if overlap:
        raise BadInput(f"--heldout: '{overlap[0]}' is also a source category; zero-shot needs unseen categories")
    fam = family(card.family)
    backbone = fam.resolve_backbone(backbone)
    model = fam.build(backbone)
    recipe = card.recipe
    loader = InputLoader(recipe)

    def load(category: str) -> tuple[list, list[np.ndarray]]:
        samples = spread(dataset.samples(category, "test"), max_images)  # both classes, however few
        with bar(len(samples), f"load {category}", "img") as progress:
            tensors = []
            for _, loaded in prefetch(samples, loader):
                tensors.append(loaded.tensor)
                progress.update()
        return samples, tensors

    train_samples, train_images = [], []
    for category in sources:
        samples, tensors = load(category)
        train_samples += samples
        train_images += tensors
    with bar(len(train_images), "features", "img") as progress:
        features = extract(model, train_images, progress.update)
    labels = np.array([s.label for s in train_samples])
    masks = np.stack([preprocess_mask(s.mask_path, recipe, s.path) for s in train_samples])
    known = np.array([s.label == 0 or s.mask_path is not None for s in train_samples])
    cfg = ZeroShotFitConfig(seed=seed) if steps is None else ZeroShotFitConfig(seed=seed, steps=steps)
    with bar(cfg.steps, "fit readout") as progress:
        summary = fit(model, features, labels, masks, known, cfg, loss_callback(progress))
    results: dict[str, float] = {}
    for category in heldout:
        samples, tensors = load(category)
        with bar(len(tensors), f"evaluate {category}", "img") as progress:
            scores = score(model, extract(model, tensors, progress.update))
        results[category] = image_auroc([s.label for s in samples], scores)
    checkpoint = {
        "edgeglr": {k: v.detach().clone() for k, v in model.readout.state_dict().items()},
        "meta": json_safe({
            "model": card.name, "sources": sources, "heldout_image_auroc": results, "fit": summary,
            "train_index_sha256": index_sha256(train_samples),
            "backbone_weights": _relative_or_absolute(backbone, out_dir), "backbone_sha256": file_sha256(backbone),
            "torch": torch.__version__,
        }),
    }
    target = out_dir / f"{card.name}.pth"
    replace_atomically(target, lambda tmp: torch.save(checkpoint, tmp))
    return target, results


def json_safe(meta: dict) -> dict:
    """Plain JSON types only, so the checkpoint loads with ``torch.load(weights_only=True)``."""
    return json.loads(json.dumps(meta))


def _relative_or_absolute(path: Path, base: Path) -> str:
    """Relative when the weights live beside the checkpoints, so the folder can be moved as a whole."""
    try:
        return os.path.relpath(path.resolve(), base.resolve()) if base.resolve() in path.resolve().parents else str(
            path.resolve())
    except ValueError:
        return str(path.resolve())
