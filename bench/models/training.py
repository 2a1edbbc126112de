"""Shared pieces of the small-scale fitting routines."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

Progress = Callable[[int, int, float], None]


def reinitialise(*modules: nn.Module) -> None:
    """Reset every trainable layer from the (already seeded) generator, so a fit is a function of its
    seed alone, whatever consumed random numbers before the model was built."""
    for root in modules:
        for module in root.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()


def optimise(params: Iterable[nn.Parameter], lr: float, steps: int, loss_at: Callable[[], torch.Tensor],
             progress: Progress | None = None) -> float:
    """Adam for ``steps`` steps on ``loss_at()`` (which draws its own batch); returns the mean of the last
    ten losses, the figure the checkpoints record."""
    optimizer = torch.optim.Adam(params, lr=lr)
    losses = []
    for step in range(steps):
        loss = loss_at()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if progress is not None:
            progress(step + 1, steps, losses[-1])
    return float(np.mean(losses[-10:]))
