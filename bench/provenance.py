"""What a figure is traceable to: harness version and commit, the command line, input indexes."""

from __future__ import annotations

import hashlib
import json
import shlex
import subprocess
import sys
from typing import Any

from bench import __version__
from bench.data.samples import Sample
from bench.paths import PROJECT_ROOT


def git_state() -> dict[str, Any]:
    """Commit and dirtiness of the harness checkout; null outside a git checkout."""
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def harness_info() -> dict[str, Any]:
    return {"version": __version__, **git_state(), "python": sys.version.split()[0]}


def command_line() -> str:
    return shlex.join([sys.executable, "-m", "bench", *sys.argv[1:]])


def index_sha256(samples: list[Sample]) -> str:
    """A checksum of what was evaluated: ids, labels and defect types in order (not the pixels)."""
    rows = [[s.image_id, s.category, s.defect_type, s.label] for s in samples]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()
