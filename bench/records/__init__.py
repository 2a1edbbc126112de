"""The run record (DESIGN.md): an incremental, crash-safe writer and the ``load_run`` reader."""

from bench.records.reader import RunRecord, load_run, read_manifest
from bench.records.schema import SCHEMA_VERSION
from bench.records.sink import RecordSink
from bench.records.writer import RunWriter, ensure_writable, new_run_id

__all__ = ["SCHEMA_VERSION", "RecordSink", "RunRecord", "RunWriter", "ensure_writable", "load_run", "new_run_id",
           "read_manifest"]
