"""The run record: round trip, crash safety (a killed writer), torn journals, resume."""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.errors import BadInput
from bench.records import SCHEMA_VERSION, RunWriter, load_run
from bench.records.journal import Journal, read_journal
from bench.records.schema import TABLES

MANIFEST = {"command": "test", "device": {"profile": "host"}, "model": {"name": "m"}, "dataset": {"name": "d"}}


def image_row(i: int, category: str = "cat", score: float | None = None) -> dict:
    return {"image_id": f"{category}/test/good/{i:03d}.png", "category": category, "defect_type": "good",
            "label": i % 2, "input_sha256": f"{i:064x}", "score": (i / 7) if score is None else score,
            "error": None}


def test_round_trip(tmp_path: Path) -> None:
    writer = RunWriter.create(tmp_path, MANIFEST, "run-1")
    rows = [image_row(i) for i in range(5)]
    rows[2]["error"] = "cat/test/good/002.png: unreadable image"
    rows[2]["score"] = None
    writer.append("images", rows)
    writer.append("latency", [{"category": "cat", "attempt": 0, "phase": "timed", "t_start_ns": 10,
                               "t_end_ns": 2_000_010, "latency_ms": 2.0, "device_ms": None}])
    writer.append("power", [{"t_ns": 5, "rail": "VDD_IN", "volts": 5.0, "amps": 1.0, "watts": 5.0}])
    amap = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    writer.save_map("cat", rows[0]["image_id"], amap)
    writer.finish("complete", {"mean": {"image_auroc": 0.5}})

    record = load_run(tmp_path / "run-1")
    assert record.status == "complete"
    assert record.manifest["schema_version"] == SCHEMA_VERSION
    assert record.images["image_id"].tolist() == [r["image_id"] for r in rows]
    assert record.images["score"].iloc[1] == rows[1]["score"]  # exact float round trip
    assert math.isnan(record.images["score"].iloc[2]) and record.images["error"].iloc[2].endswith("unreadable image")
    assert str(record.images["label"].dtype) == "int8"
    assert record.latency["device_ms"].isna().all() and record.latency["latency_ms"].tolist() == [2.0]
    assert record.power["watts"].tolist() == [5.0]
    assert record.metrics == {"mean": {"image_auroc": 0.5}}
    assert np.array_equal(record.maps("cat")[rows[0]["image_id"]], amap.astype(np.float16))
    with zipfile.ZipFile(tmp_path / "run-1" / "maps" / "cat.npz") as packed:  # stored: float16 maps barely deflate
        assert [(i.filename, i.compress_type) for i in packed.infolist()] == [
            (f"{rows[0]['image_id']}.npy", zipfile.ZIP_STORED)]
    assert sorted(p.name for p in (tmp_path / "run-1").iterdir()) == [
        "images.parquet", "latency.parquet", "manifest.json", "maps", "metrics.json", "power.parquet"]
    assert pd.read_parquet(tmp_path / "run-1" / "images.parquet").shape == (5, 7)


def test_empty_tables_keep_their_columns(tmp_path: Path) -> None:
    writer = RunWriter.create(tmp_path, MANIFEST, "empty")
    writer.finish("failed", error="device lost")
    record = load_run(tmp_path / "empty")
    assert record.status == "failed" and record.manifest["error"] == "device lost"
    assert list(record.latency.columns) == ["category", "attempt", "phase", "t_start_ns", "t_end_ns", "latency_ms",
                                            "device_ms", "timing_source"]
    assert record.images.empty


def test_existing_run_id_is_refused(tmp_path: Path) -> None:
    RunWriter.create(tmp_path, MANIFEST, "dup")
    with pytest.raises(BadInput, match="exists already"):
        RunWriter.create(tmp_path, MANIFEST, "dup")


def test_torn_last_journal_line_is_dropped(tmp_path: Path) -> None:
    writer = RunWriter.create(tmp_path, MANIFEST, "torn")
    writer.append("images", [image_row(0), image_row(1)])
    with open(tmp_path / "torn" / "images.jsonl", "a") as fh:
        fh.write('{"image_id": "cat/test/good/00')  # the process died mid-write
    record = load_run(tmp_path / "torn")
    assert record.status == "running"
    assert len(record.images) == 2


def test_rows_appended_after_a_torn_line_start_on_a_line_of_their_own(tmp_path: Path) -> None:
    path = tmp_path / "images.jsonl"
    journal = Journal(path)
    journal.append([image_row(0), image_row(1)])
    journal.close()
    with open(path, "a") as fh:
        fh.write('{"image_id": "cat/test/good/00')  # the process died mid-write
    resumed = Journal(path)
    resumed.append([image_row(2)])
    resumed.close()
    frame = read_journal(path, TABLES["images"])
    assert frame["image_id"].tolist() == [image_row(i)["image_id"] for i in range(3)]


def test_corrupt_journal_line_names_file_and_line(tmp_path: Path) -> None:
    writer = RunWriter.create(tmp_path, MANIFEST, "bad")
    writer.append("images", [image_row(0)])
    with open(tmp_path / "bad" / "images.jsonl", "a") as fh:
        fh.write("garbage\n")
        fh.write(json.dumps(image_row(1)) + "\n")
    with pytest.raises(BadInput, match=r"images\.jsonl:2: corrupt journal line"):
        load_run(tmp_path / "bad")


def test_unsupported_schema_version(tmp_path: Path) -> None:
    RunWriter.create(tmp_path, MANIFEST, "old")
    path = tmp_path / "old" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["schema_version"] = 999
    path.write_text(json.dumps(manifest))
    with pytest.raises(BadInput, match="schema_version 999"):
        load_run(tmp_path / "old")


def test_not_a_run(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"no manifest\.json"):
        load_run(tmp_path)


def test_reopen_appends_an_attempt_and_keeps_rows(tmp_path: Path) -> None:
    writer = RunWriter.create(tmp_path, MANIFEST, "r")
    writer.append("images", [image_row(0)])
    writer.finish("interrupted", error="Ctrl-C")
    assert load_run(tmp_path / "r").images.shape[0] == 1
    again = RunWriter.reopen(tmp_path / "r", "resume")
    assert again.attempt == 1
    again.append("images", [image_row(1)])
    again.finish("complete", {})
    record = load_run(tmp_path / "r")
    assert record.images["image_id"].tolist() == [image_row(0)["image_id"], image_row(1)["image_id"]]
    assert [a["status"] for a in record.manifest["attempts"]] == ["interrupted", "complete"]
    assert not (tmp_path / "r" / "images.jsonl").exists()
    with pytest.raises(BadInput, match="complete already"):
        RunWriter.reopen(tmp_path / "r", "resume")


def test_manifest_changes_only_through_the_writer(tmp_path: Path) -> None:
    writer = RunWriter.create(tmp_path, {**MANIFEST, "measurement": {"warmup": 10}}, "m")
    writer.set_progress("cat", timing_source="device_clock")
    writer.set_progress("cat", timed_attempt=0)
    writer.set_section("measurement", power_status="unavailable")
    writer.set_artifact("cat", "a" * 64, {"onnxruntime": "1.0"}, cached=True)
    assert writer.progress("cat") == {"timing_source": "device_clock", "timed_attempt": 0}
    assert writer.progress("dog") == {}
    writer.progress("cat")["timed_attempt"] = 5  # a copy: the record is not changed through it
    writer.finish("interrupted", error="stopped")
    record = load_run(tmp_path / "m")
    assert record.progress("cat") == {"timing_source": "device_clock", "timed_attempt": 0}
    assert record.manifest["measurement"] == {"warmup": 10, "power_status": "unavailable"}
    assert record.manifest["model"]["categories"]["cat"]["artifact_sha256"] == "a" * 64

    again = RunWriter.reopen(tmp_path / "m", "resume", request={"device": "host"}, measurement={"warmup": 2})
    assert again.attempt == 1 and again.progress("cat")["timed_attempt"] == 0
    again.finish("complete", {})
    manifest = load_run(tmp_path / "m").manifest
    assert manifest["request"] == {"device": "host"} and manifest["measurement"] == {"warmup": 2}
    assert manifest["attempts"][1]["measurement"] == {"warmup": 2} and "measurement" not in manifest["attempts"][0]


def test_a_refused_resume_leaves_the_record_as_it_was_and_unlocked(tmp_path: Path) -> None:
    writer = RunWriter.create(tmp_path, MANIFEST, "v")
    writer.append("images", [image_row(0)])
    writer.finish("interrupted", error="Ctrl-C")
    before = (tmp_path / "v" / "manifest.json").read_text()

    def refuse(recorded: dict) -> None:
        assert recorded["status"] == "interrupted"
        raise BadInput("changed")

    with pytest.raises(BadInput, match="changed"):
        RunWriter.reopen(tmp_path / "v", "resume", verify=refuse)
    assert (tmp_path / "v" / "manifest.json").read_text() == before  # no attempt added, status kept
    again = RunWriter.reopen(tmp_path / "v", "resume", verify=lambda recorded: None)  # the lock was released
    assert again.attempt == 1
    again.finish("complete", {})


def test_a_resumed_attempt_must_run_on_the_recorded_artifact(tmp_path: Path) -> None:
    writer = RunWriter.create(tmp_path, MANIFEST, "art")
    writer.set_artifact("cat", "a" * 64, {"tensorrt": "10.3"}, cached=False)
    writer.append("images", [image_row(0)])
    writer.finish("interrupted", error="Ctrl-C")
    again = RunWriter.reopen(tmp_path / "art", "resume")
    again.set_artifact("cat", "a" * 64, {"tensorrt": "10.3"}, cached=True)  # the same engine, from the cache
    again.set_artifact("dog", "d" * 64, {"tensorrt": "10.3"}, cached=False)  # a category not begun before
    with pytest.raises(BadInput, match=r"--resume art: cat's artifact changed since the run started \(recorded "
                                       r"aaaaaaaaaaaa, now bbbbbbbbbbbb"):
        again.set_artifact("cat", "b" * 64, {"tensorrt": "10.4"}, cached=False)
    again.finish("failed", error="artifact changed")
    record = load_run(tmp_path / "art")
    assert record.manifest["model"]["categories"]["cat"]["artifact_sha256"] == "a" * 64
    assert record.images.shape[0] == 1


def test_the_writer_does_not_change_the_callers_manifest(tmp_path: Path) -> None:
    manifest = copy.deepcopy(MANIFEST)
    writer = RunWriter.create(tmp_path, manifest, "own")
    writer.set_artifact("cat", "a" * 64, {"onnxruntime": "1.0"}, cached=False)
    writer.set_section("device", power_status="unavailable")
    assert manifest == MANIFEST


def test_the_reader_does_not_import_the_writer() -> None:
    """The writer reads the manifest it resumes through the reader; the reader needs nothing of the writer."""
    import ast

    import bench.records.reader

    tree = ast.parse(Path(bench.records.reader.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "bench.records.writer" not in imported and "bench.records" not in imported


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import numpy as np
    from bench.records import RunWriter
    writer = RunWriter.create(Path(sys.argv[1]), {"command": "killed"}, "killed")
    for i in range(100000):
        writer.save_map("cat", f"cat/{i}.png", np.full((4, 4), i, dtype=np.float32))
        writer.append("images", [{"image_id": f"cat/{i}.png", "category": "cat", "defect_type": "good",
                                  "label": 0, "input_sha256": "0" * 64, "score": float(i), "error": None}])
        if i == 20:
            print("ready", flush=True)
        time.sleep(0.001)
    """
)


def test_killed_writer_leaves_a_readable_record(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    record = load_run(tmp_path / "killed")
    assert record.status == "running"  # never claims to be complete
    n = len(record.images)
    assert n >= 21
    assert record.images["score"].tolist() == [float(i) for i in range(n)]
    maps = record.maps("cat")
    assert all(f"cat/{i}.png" in maps for i in range(n))  # a row always has its map


def test_record_files_get_the_mode_the_umask_gives(tmp_path: Path) -> None:
    """Issue 20: result files were written 0600 (mkstemp's mode) despite umask 022, so an artifact server could
    not read them; now they are what open() would make."""
    from bench.records.atomic import write_json

    for mask in (0o022, 0o077):
        previous = os.umask(mask)
        try:
            write_json(tmp_path / f"m{mask:o}.json", {"a": 1})
        finally:
            os.umask(previous)
        assert (tmp_path / f"m{mask:o}.json").stat().st_mode & 0o777 == 0o666 & ~mask
