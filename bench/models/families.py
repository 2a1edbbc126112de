"""Model families: how a card's ``family`` builds its network, finds its backbone and loads checkpoints.

Like timm's registry, a name maps to constructors; torch is imported only when a family is used.
``build(None)`` gives the architecture with random weights, enough for complexity and lint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BadInput, one_of


@dataclass(frozen=True)
class Family:
    name: str
    resolve_backbone: Callable[[Path | None], Path]
    build: Callable[[Path | None], Any]
    load: Callable[[Any, dict, str], None]


def _tinyglass() -> Family:
    from bench.models import tinyglass
    from bench.models.backbones import resolve_resnet18_weights

    return Family("tinyglass", resolve_resnet18_weights, tinyglass.build, tinyglass.load_heads)


def _glass(name: str) -> Callable[[], Family]:
    def make() -> Family:
        from bench.models import glass
        from bench.models.backbones import resolve_weights

        arch = glass.VARIANTS[name].arch
        return Family(name, lambda path: resolve_weights(arch, path), glass.builder(name), glass.load_heads)

    return make


def _edgezsad() -> Family:
    from bench.models import edgezsad

    def resolve(path: Path | None) -> Path:
        if path is None:
            raise BadInput(f"EdgeZSAD needs its backbone weights: pass --backbone-weights with timm's "
                           f"{edgezsad.BACKBONE} file")
        if not path.is_file():
            raise BadInput(f"TinyViT weights not found at {path}")
        return path

    return Family("edgezsad", resolve, edgezsad.build, edgezsad.load_readout)


FAMILIES: dict[str, Callable[[], Family]] = {"tinyglass": _tinyglass, "glass-r18": _glass("glass-r18"),
                                             "glass-wrn50": _glass("glass-wrn50"), "edgezsad": _edgezsad}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise one_of("model family", name, list(FAMILIES))
    return FAMILIES[name]()
