"""What a measure step writes its results into: the run record on this machine, or a stream to it.

``RunWriter`` (the run folder) and the remote worker's ``StreamWriter`` (JSON lines the lab host
applies to its own ``RunWriter``) both implement it, so one measure step serves local and remote runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np


class RecordSink(Protocol):
    @property
    def attempt(self) -> int:
        """Which attempt of the run this is (0, then 1, 2, ... per resume); latency rows carry it."""

    def append(self, table: str, rows: Iterable[dict[str, Any]]) -> None:
        """Rows of ``images``, ``latency`` or ``power``, kept before the call returns."""

    def save_map(self, category: str, image_id: str, anomaly_map: np.ndarray) -> None:
        """An image's anomaly map; saved before the image's row is appended."""

    def set_artifact(self, category: str, sha256: str, toolchain: dict[str, str], cached: bool,
                     details: dict[str, Any] | None = None) -> None:
        """The artifact a category runs on."""

    def set_progress(self, category: str, **fields: Any) -> None:
        """What is done for a category and how it was measured (timing source, timed attempt, power)."""

    def set_section(self, section: str, **fields: Any) -> None:
        """Merge fields into a top-level manifest section, e.g. ``measurement`` (a meter that cannot be read)
        or ``device`` (a remote device's own description)."""

    def finish(self, status: str, metrics: dict[str, Any] | None = None, error: str | None = None) -> None:
        """End the record with ``status`` (complete, failed, interrupted), the metrics and the reason."""
