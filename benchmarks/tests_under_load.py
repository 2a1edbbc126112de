"""The timing-sensitive tests, repeated beside a CPU hog: do they pass by design or by luck? (issue 20)

Two tests once failed on every full run of a loaded 2-core machine: a kill meant to land mid-run that
landed after the run had finished, and a fake camera's wall-clock deadline. Both now advance on events
(the kill on the record's progress, the fake on frames), and the tests that send signals set their own
deadlines. This script starts one busy process per core (``--hogs``), runs the named tests ``--count``
times each in one pytest session (pytest-repeat; session fixtures such as the demo are built once), and
prints passes per test from pytest's JUnit XML. Goal: every test passes every time.

    python benchmarks/tests_under_load.py [--count 20] [--hogs 2] [TEST_ID ...]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TIMING_SENSITIVE = [
    "tests/integration/test_lab_operation.py::test_runs_killed_at_random_points_resume_to_the_uninterrupted_record",
    "tests/integration/test_lab_operation.py::test_a_dropped_connection_resumes_to_the_same_record",
    "tests/unit/devices/test_imx500_adapter.py::test_device_run_matches_its_emulation",
    "tests/integration/test_run_interrupt.py",
]


def hog() -> None:
    """One core kept busy at normal priority until killed."""
    while True:
        pass


def outcomes(junit: Path) -> tuple[Counter, Counter]:
    """(runs, passes) per test, the repetition suffix ([1-20], [sig-3-20]) folded into one name."""
    runs, passes = Counter(), Counter()
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        base, _, params = name.partition("[")
        params = "-".join(params.rstrip("]").split("-")[:-2])  # pytest-repeat appends "{step}-{count}"
        test = f"{base}[{params}]" if params else base
        if case.find("skipped") is not None:
            continue
        runs[test] += 1
        if case.find("failure") is None and case.find("error") is None:
            passes[test] += 1
    return runs, passes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tests", nargs="*", default=TIMING_SENSITIVE, help="pytest node ids (default: the "
                        "timing-sensitive ones)")
    parser.add_argument("--count", type=int, default=20, help="repetitions of each test")
    parser.add_argument("--hogs", type=int, default=os.cpu_count() or 1, help="busy processes beside the tests")
    args = parser.parse_args()
    hogs = [multiprocessing.get_context("fork").Process(target=hog, daemon=True) for _ in range(args.hogs)]
    for process in hogs:
        process.start()
    junit = Path(tempfile.mkdtemp(prefix="under-load-")) / "junit.xml"
    tick = time.monotonic()
    try:
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--count",
                               str(args.count), "--junitxml", str(junit), *args.tests], cwd=REPO)
    finally:
        for process in hogs:
            process.kill()
    minutes = (time.monotonic() - tick) / 60
    if not junit.is_file():
        print(f"pytest wrote no results (exit {done.returncode}): stopped before the session ended", file=sys.stderr)
        return 1
    runs, passes = outcomes(junit)
    print(f"\n{args.count} repetitions beside {args.hogs} busy processes on {os.cpu_count()} cores, "
          f"{minutes:.1f} min (pytest exit {done.returncode}):")
    print("| test | passed |")
    print("|---|---|")
    for test in sorted(runs):
        print(f"| `{test.removeprefix('tests.')}` | {passes[test]}/{runs[test]} |")
    return 0 if runs and passes == runs else 1


if __name__ == "__main__":
    raise SystemExit(main())
