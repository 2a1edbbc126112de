"""The optional extras (pyproject.toml) some tests need: without one, such a test skips and names it."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest


def _reason(extra: str, modules: list[str]) -> str:
    return f"needs the '{extra}' extra ({', '.join(modules)}): pip install -e '.[{extra}]'"


def need(extra: str, module: str) -> ModuleType:
    """``module``, which the ``extra`` extra installs; skips the calling test (or module) where it is missing."""
    return pytest.importorskip(module, reason=_reason(extra, [module]))


def requires(extra: str, *modules: str) -> pytest.MarkDecorator:
    """A skip mark for a test that needs ``modules`` of the ``extra`` extra, decided before its fixtures run
    (so a missing extra costs no demo build)."""
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    return pytest.mark.skipif(bool(missing), reason=_reason(extra, missing))
