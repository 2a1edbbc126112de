"""Wall-clock time of ``python -m bench demo``, cold (empty cache) and warm (everything cached).

Target (foundation issue): the cold demo finishes in under 10 minutes on a 2-core machine
after installation. The warm run is measured in the same session as the baseline that shows
how much of the cold time is one-off data generation, calibration and fitting.

    python benchmarks/demo_time.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 600.0


def timed_demo(cache: Path, work: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bench", "demo"], cwd=work, env={**os.environ, "BENCH_CACHE_DIR": str(cache)},
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        cache, work = Path(tmp) / "cache", Path(tmp) / "work"
        work.mkdir()
        cold = timed_demo(cache, work)
        warm = timed_demo(cache, work)
    print(f"cold demo: {cold:.1f} s (target < {TARGET_S:.0f} s: {'met' if cold < TARGET_S else 'MISSED'})")
    print(f"warm demo: {warm:.1f} s (cold/warm = {cold / warm:.1f}x)")
    return 0 if cold < TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
