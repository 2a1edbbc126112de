"""Seeded random backbone weights for tests: the real loading code reads them as it reads published files."""

from __future__ import annotations

from bench.models.backbones import save_random_tinyvit

__all__ = ["save_random_tinyvit"]
