"""The harness's command line in a subprocess, as a user types it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


def run_cli(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600,
            ) -> subprocess.CompletedProcess[str]:
    """``python -m bench ...`` in a subprocess, as a user would type it."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


def ctrl_c_default() -> None:
    """``preexec_fn`` for a child the test sends SIGINT: a shell starting a job in the background (nohup, ``&``
    in a script, some CI runners) leaves SIGINT ignored, which Python then keeps, so Ctrl-C would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
