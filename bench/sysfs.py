"""Optional reads of sysfs and procfs nodes: a missing or unreadable node is None, never an error or a guess."""

from __future__ import annotations

import re
from pathlib import Path


def read_text(path: Path) -> str | None:
    """The node's text, stripped (some Jetson nodes end in NUL), or None."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip().strip("\x00")
    except OSError:
        return None


def read_int(path: Path) -> int | None:
    """The node's integer (thermal zones can be negative), or None when it is missing or not one integer."""
    text = read_text(path)
    return int(text) if text is not None and re.fullmatch(r"-?\d+", text) else None
