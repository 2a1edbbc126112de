"""The run-record writer: incremental, crash-safe, resumable (DESIGN.md, "Run record").

Layout of ``results/<run_id>/`` while a run is in progress: ``manifest.json`` (replaced
atomically on every update), ``<table>.jsonl`` journals and ``maps/.partial/`` (one ``.npy``
per image, written before the image's row, so a row always has its map). ``finish`` turns
them into ``<table>.parquet``, ``maps/<category>.npz`` and ``metrics.json``.
"""

from __future__ import annotations

import copy
import datetime as dt
import fcntl
import os
import shutil
import uuid
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.errors import BadInput
from bench.records.atomic import replace_atomically, write_json
from bench.records.journal import Journal, read_journal
from bench.records.layout import MANIFEST, map_file
from bench.records.reader import read_manifest
from bench.records.schema import SCHEMA_VERSION, STATUSES, TABLES


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


def new_run_id(device: str, model: str) -> str:
    """Sortable by time, readable, and unique even for two runs started in the same second."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{device}-{model}-{uuid.uuid4().hex[:6]}"


def ensure_writable(folder: Path) -> None:
    """Fail before any work starts when the output folder cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise BadInput(f"--out {folder}: not writable ({exc.strerror or exc})") from exc


LOCK_NAME = ".writer.lock"


def lock_run(run_dir: Path) -> Any:
    """An exclusive lock on the run folder for this process's lifetime as its writer.

    Two processes never write one run: a second ``--resume`` of a run still being written is refused
    with the holder's pid. The kernel drops the lock when the holder dies (Ctrl-C, kill -9, reboot), so
    a killed run can always be resumed.
    """
    handle = open(run_dir / LOCK_NAME, "a+")  # noqa: SIM115 - held open for the writer's lifetime
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise BadInput(f"{run_dir.name}: the run is being written by another process (pid {holder}); "
                       f"wait for it or stop it first") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    return handle


def unlock_run(run_dir: Path, handle: Any) -> None:
    """Release the writer lock and remove its file (a finished run folder holds only its record)."""
    (run_dir / LOCK_NAME).unlink(missing_ok=True)
    handle.close()


def check_unlocked(run_dir: Path) -> None:
    """Refuse a run another process is writing, before any work is spent on resuming it."""
    unlock_run(run_dir, lock_run(run_dir))


class RunWriter:
    """Owns one run folder; every row it is given reaches the disk before ``append`` returns. The measure step
    hands latency rows over at most once a second and when a pass ends or fails, outside the timed inferences.

    It implements ``bench.records.sink.RecordSink``; the manifest is its own, changed only through
    its methods and read back through ``progress``.
    """

    def __init__(self, run_dir: Path, manifest: dict[str, Any], lock: Any = None) -> None:
        self._lock = lock if lock is not None else lock_run(run_dir)
        self.run_dir = run_dir
        self._manifest = manifest
        self._journals = {name: Journal(run_dir / f"{name}.jsonl") for name in TABLES}
        self._attempt = len(manifest.get("attempts", [])) - 1

    @property
    def attempt(self) -> int:
        return self._attempt

    @classmethod
    def create(cls, root: Path, manifest: dict[str, Any], run_id: str) -> RunWriter:
        run_dir = root / run_id
        try:
            run_dir.mkdir(parents=True)
        except FileExistsError as exc:
            raise BadInput(f"{run_dir}: a run with this id exists already") from exc
        now = utc_now()
        full = {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id,
            "status": "running",
            "created_at": now,
            "updated_at": now,
            "finished_at": None,
            **copy.deepcopy(manifest),  # set_artifact and set_section update nested dicts: not the caller's
            "attempts": [{"started_at": now, "command": manifest.get("command")}],
            "progress": {},
            "error": None,
        }
        write_json(run_dir / MANIFEST, full)
        return cls(run_dir, full)

    @classmethod
    def reopen(cls, run_dir: Path, command: str, request: dict[str, Any] | None = None,
               measurement: dict[str, Any] | None = None,
               verify: Callable[[dict[str, Any]], None] | None = None) -> RunWriter:
        """Continue an unfinished run: its journals are appended to, its manifest gains an attempt.

        ``request`` and ``measurement`` replace the recorded ones (a resume may change the measurement
        settings); the attempt records its measurement too, so each attempt's rows say how they were taken.
        ``verify`` sees the recorded manifest under the lock and may refuse the resume by raising.
        """
        lock = lock_run(run_dir)  # before reading: the holder may still be changing the manifest
        try:
            manifest = read_manifest(run_dir)
            if manifest["status"] == "complete":
                raise BadInput(f"--resume {run_dir.name}: the run is complete already")
            if verify is not None:
                verify(manifest)
        except BaseException:
            unlock_run(run_dir, lock)
            raise
        attempt: dict[str, Any] = {"started_at": utc_now(), "command": command}
        if measurement is not None:
            attempt["measurement"] = measurement
            manifest["measurement"] = measurement
        if request is not None:
            manifest["request"] = request
        manifest["attempts"].append(attempt)
        manifest["status"] = "running"
        manifest["error"] = None
        writer = cls(run_dir, manifest, lock)
        writer._save_manifest()
        return writer

    def append(self, table: str, rows: Iterable[dict[str, Any]]) -> None:
        self._journals[table].append(rows)

    def save_map(self, category: str, image_id: str, anomaly_map: np.ndarray) -> None:
        path = map_file(self.run_dir, category, image_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_atomically(path, lambda tmp: _save_npy(tmp, anomaly_map.astype(np.float16)))

    def set_section(self, section: str, **fields: Any) -> None:
        self._manifest.setdefault(section, {}).update(fields)
        self._save_manifest()

    def set_progress(self, category: str, **fields: Any) -> None:
        self._manifest["progress"].setdefault(category, {}).update(fields)
        self._save_manifest()

    def progress(self, category: str) -> dict[str, Any]:
        """A copy of what the record says is done for a category (empty when nothing is)."""
        return dict(self._manifest["progress"].get(category, {}))

    def set_artifact(self, category: str, sha256: str, toolchain: dict[str, str], cached: bool,
                     details: dict[str, Any] | None = None) -> None:
        """The artifact a category ran on, under ``model.categories`` beside its checkpoint; a resumed attempt
        must run on the one recorded (a rebuilt engine may time differently), or its rows would mix two."""
        entry = self._manifest.setdefault("model", {}).setdefault("categories", {}).setdefault(category, {})
        recorded = entry.get("artifact_sha256")
        if recorded is not None and recorded != sha256:
            raise BadInput(f"--resume {self.run_dir.name}: {category}'s artifact changed since the run started "
                           f"(recorded {recorded[:12]}, now {sha256[:12]}: rebuilt or another toolchain); its "
                           "rows would mix two artifacts (start a new run)")
        entry.update(artifact_sha256=sha256, artifact_toolchain=toolchain, artifact_cached=cached,
                     artifact_details=details or {})
        self._save_manifest()

    def finish(self, status: str, metrics: dict[str, Any] | None = None, error: str | None = None) -> None:
        """Materialise the tables, maps and metrics, then record the final status.

        The status is written last: a run killed while finishing stays readable and not
        ``complete``; its journals are removed only once the run is complete.
        """
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        for journal in self._journals.values():
            journal.close()
        for name, schema in TABLES.items():
            frame = read_journal(self.run_dir / f"{name}.jsonl", schema)
            table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
            replace_atomically(self.run_dir / f"{name}.parquet", lambda tmp, t=table: pq.write_table(t, tmp))
        self._pack_maps()
        if metrics is not None:
            write_json(self.run_dir / "metrics.json", metrics)
        now = utc_now()
        self._manifest["attempts"][-1].update(ended_at=now, status=status)
        self._manifest.update(status=status, finished_at=now, error=error)
        self._save_manifest()
        if status == "complete":
            for name in TABLES:
                (self.run_dir / f"{name}.jsonl").unlink(missing_ok=True)
            shutil.rmtree(self.run_dir / "maps" / ".partial", ignore_errors=True)
        unlock_run(self.run_dir, self._lock)

    def _pack_maps(self) -> None:
        partial = self.run_dir / "maps" / ".partial"
        if not partial.is_dir():
            return
        images = read_journal(self.run_dir / "images.jsonl", TABLES["images"])
        for category, group in images.groupby("category", sort=True):
            files = {image_id: path for image_id in group["image_id"]
                     if (path := map_file(self.run_dir, str(category), image_id)).exists()}
            if files:
                target = self.run_dir / "maps" / f"{category}.npz"
                replace_atomically(target, lambda tmp, f=files: _save_npz(tmp, f))

    def _save_manifest(self) -> None:
        self._manifest["updated_at"] = utc_now()
        write_json(self.run_dir / MANIFEST, self._manifest)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, array)


def _save_npz(path: Path, files: dict[str, Path]) -> None:
    """The saved ``.npy`` files as one ``.npz``, copied in unparsed and stored, not deflated: float16 maps
    shrink only ~25 % under zlib, which cost 6 ms a map (10 s of an MVTec AD run on 2 cores)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for image_id, source in files.items():
            archive.write(source, arcname=f"{image_id}.npy")
