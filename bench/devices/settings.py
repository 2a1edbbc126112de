"""Typed adapter settings from a profile section: unknown keys refused, lists made tuples."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from bench.errors import BadInput

S = TypeVar("S")


def from_section(cls: type[S], section: dict[str, Any] | None, where: str) -> S:
    """``cls(**section)`` for a frozen settings dataclass; a typo in a key is an error naming the valid ones.

    Fields annotated as tuples accept a YAML list, or a single string for a one-element tuple. A value
    the class refuses (its ``__post_init__`` raising) is an error naming ``where`` too.
    """
    values = dict(section or {})
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise BadInput(f"{where}: unknown key(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    for name, value in values.items():
        if str(known[name].type).startswith("tuple"):
            values[name] = (value,) if isinstance(value, str) else tuple(value or ())
    try:
        return cls(**values)
    except (TypeError, ValueError, BadInput) as exc:  # a settings class refusing a value in __post_init__
        raise BadInput(f"{where}: {exc}") from exc
