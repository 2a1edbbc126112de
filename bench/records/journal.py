"""Append-only JSON-lines journals: the crash-safe half of the run record.

Parquet files cannot be appended to, and a Parquet file whose writer was killed has no
footer and cannot be read at all. So rows are journaled one JSON line at a time while a run
is in progress (a killed process loses at most the line it was writing) and materialised as
Parquet when the run ends. JSON keeps floats exact (``repr`` round-trips) and nulls explicit.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from bench.errors import BadInput

FSYNC_INTERVAL_S = 1.0


class Journal:
    """One table's journal; every row is written and flushed to the OS before ``append`` returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        _drop_torn_line(path)
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 - held open for the run
        self._last_sync = time.monotonic()

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(row, allow_nan=True, separators=(",", ":")) + "\n" for row in rows)
        if not lines:
            return
        self._fh.write(lines)
        self._fh.flush()
        now = time.monotonic()
        if now - self._last_sync >= FSYNC_INTERVAL_S:
            os.fsync(self._fh.fileno())
            self._last_sync = now

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()


def _drop_torn_line(path: Path) -> None:
    """Cut a journal back to just after its last newline: a line torn by a crash would otherwise have the
    next row appended onto it, and a corrupt line that is not the last cannot be told from damage."""
    try:
        fh = open(path, "r+b")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        return
    with fh:
        end = pos = fh.seek(0, os.SEEK_END)
        keep = 0
        while pos > 0:
            start = max(0, pos - 65536)
            fh.seek(start)
            newline = fh.read(pos - start).rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            pos = start
        if keep < end:
            fh.truncate(keep)


def read_journal(path: Path, schema: pa.Schema) -> pd.DataFrame:
    """Rows of a journal as a typed DataFrame; a torn last line (the process died mid-write) is dropped."""
    rows: list[dict[str, Any]] = []
    if path.exists():
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        for number, line in enumerate(lines, start=1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                if number == len(lines) and not line.endswith("\n"):
                    break
                raise BadInput(f"{path}:{number}: corrupt journal line ({exc.msg})") from exc
    return to_frame(rows, schema)


def to_frame(rows: list[dict[str, Any]], schema: pa.Schema) -> pd.DataFrame:
    """Rows as a DataFrame with exactly the schema's columns and types."""
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    return pa.Table.from_pydict(columns, schema=schema).to_pandas()
