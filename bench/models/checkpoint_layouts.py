"""Which network a checkpoint file belongs to, so a foreign file is refused with the card that loads it.

Strict loading alone says "missing key X"; a user holding a GLASS checkpoint, a backbone file or an
EdgeZSAD readout needs to hear what they hold and which ``--model`` takes it.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from bench.errors import BadInput

EXPECTED = {
    "tinyglass": "{'discriminator': {body.0.*, body.1.*, tail.0.weight}} with a 128-d input, as the official "
                 "TinyGLASS code saves it",
    "glass-r18": "{'discriminator': {body.block1.*, tail.0.weight}, 'pre_projection': {layers.0fc.*}} with a "
                 "384-d embedding",
    "glass-wrn50": "{'discriminator': {body.block1.*, tail.0.weight}, 'pre_projection': {layers.0fc.*}} with a "
                   "1536-d embedding",
    "edgezsad": "{'edgeglr': state_dict}",
}
GLASS_CARDS = {384: "glass-r18", 1536: "glass-wrn50"}


def strip_module_prefix(state: dict) -> dict:
    """DataParallel checkpoints prefix every key with ``module.``."""
    return {str(key).removeprefix("module."): value for key, value in state.items()}


def identify(checkpoint: dict[str, Any]) -> tuple[str, str | None]:
    """(what the file holds, in words; the card that loads it, or None)."""
    keys = sorted(map(str, checkpoint))
    if "edgeglr" in checkpoint:
        return "an EdgeZSAD checkpoint", "edgezsad"
    disc = checkpoint.get("discriminator")
    if isinstance(disc, dict):
        state = strip_module_prefix(disc)
        if "body.0.weight" in state:
            dim = state["body.0.weight"].shape[1] if state["body.0.weight"].ndim >= 2 else None
            return (f"the official TinyGLASS layout ({dim}-d input)", "tinyglass" if dim == 128 else None)
        if "body.block1.0.weight" in state:
            weight = state["body.block1.0.weight"]
            dim = int(weight.shape[1]) if weight.ndim >= 2 else None
            return f"the original GLASS layout ({dim}-d embedding)", GLASS_CARDS.get(dim)
        return "a 'discriminator' entry of an unknown layout", None
    flat = strip_module_prefix(checkpoint)
    if "conv1.weight" in flat and any(k.startswith("layer1.") for k in flat):
        return "a torchvision ResNet state dict (backbone weights, not a detector checkpoint)", "--backbone-weights"
    if "state_dict" in checkpoint:
        return "a training checkpoint with a 'state_dict' entry (Lightning or anomalib?)", None
    shown = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
    return f"no known layout (top-level keys: {shown or 'none'})", None


def refuse_foreign(checkpoint: dict[str, Any], source: str, card: str) -> None:
    """Pass when the checkpoint is of ``card``'s layout; else one line naming what was found and what loads it."""
    found, loads = identify(checkpoint)
    if loads == card:
        return
    if loads == "--backbone-weights":
        hint = "; pass it as --backbone-weights"
    elif loads:
        hint = f"; use --model {loads}"
    else:
        hint = ""
    raise BadInput(f"{source}: {found}{hint}. --model {card} expects {EXPECTED[card]}")


def load_strict(module: nn.Module, state: dict, part: str, source: str, network: str) -> None:
    """Load ``state`` into ``module``: every key, every shape, nothing extra, ``module.`` prefixes stripped.

    2-D ``Linear``-shaped weights load into 1x1 convolutions (how GLASS stores its heads, and what the
    official TinyGLASS quantization loader also accepts). The first mismatch is named with both shapes.
    """
    given = strip_module_prefix(state)
    expected = module.state_dict()
    loaded = {}
    for key, target in expected.items():
        if key not in given:
            raise BadInput(f"{source}: checkpoint lacks '{part}.{key}' (expected shape {list(target.shape)})")
        value = given[key]
        if value.ndim == 2 and target.ndim == 4:
            value = value[:, :, None, None]
        if tuple(value.shape) != tuple(target.shape):
            raise BadInput(f"{source}: '{part}.{key}' has shape {list(given[key].shape)}, {network} expects "
                           f"{list(target.shape)}")
        loaded[key] = value
    unexpected = sorted(set(given) - set(expected))
    if unexpected:
        raise BadInput(f"{source}: unexpected key '{part}.{unexpected[0]}' in the checkpoint")
    module.load_state_dict(loaded, strict=True)
