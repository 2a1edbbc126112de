"""Seeded random backbone weights for tests: the real loading code reads them as it reads published files."""

from __future__ import annotations

from pathlib import Path

import torch

from bench.models.edgezsad import tinyvit


def save_random_tinyvit(path: Path, seed: int) -> Path:
    """A seeded random TinyViT-21M-512 state dict, loadable through timm's local-file path."""
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        model = tinyvit(None)
    finally:
        torch.random.set_rng_state(state)
    torch.save(model.state_dict(), path)
    return path
