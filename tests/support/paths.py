"""Where the tests find the repository, their recorded data and the fake vendor packages."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
REPO = TESTS.parent
DATA = TESTS / "data"
FAKES = TESTS / "fakes"
