"""Shared pieces of the small-scale fitting routines."""

from __future__ import annotations

from torch import nn


def reinitialise(*modules: nn.Module) -> None:
    """Reset every trainable layer from the (already seeded) generator, so a fit is a function of its
    seed alone, whatever consumed random numbers before the model was built."""
    for root in modules:
        for module in root.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
