"""Column schemas of the run record's tables (DESIGN.md, "Run record").

One place defines names and types so the writer, the reader and the report agree, and an
empty table (a run killed before its first row) still has its columns.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

IMAGES = pa.schema(
    [
        ("image_id", pa.string()),
        ("category", pa.string()),
        ("defect_type", pa.string()),
        ("label", pa.int8()),
        ("input_sha256", pa.string()),
        ("score", pa.float64()),
        ("error", pa.string()),
    ]
)

# ``category`` and ``attempt`` extend the contract's columns: a run times every category on its
# own session, and a resumed run (attempt 1, 2, ...) must not mix its timed window with the
# interrupted one's. ``timing_source`` is the session's authoritative clock (a key of
# bench.devices.base.TIMING_SOURCES): host_clock rows are timed around each call, device_clock rows
# also carry the device's own ``device_ms``, and device_profiler rows hold the profiler's figures
# with null timestamps, since the host timed nothing.
LATENCY = pa.schema(
    [
        ("category", pa.string()),
        ("attempt", pa.int32()),
        ("phase", pa.string()),
        ("t_start_ns", pa.int64()),
        ("t_end_ns", pa.int64()),
        ("latency_ms", pa.float64()),
        ("device_ms", pa.float64()),
        ("timing_source", pa.string()),
    ]
)

POWER = pa.schema(
    [
        ("t_ns", pa.int64()),
        ("rail", pa.string()),
        ("volts", pa.float64()),
        ("amps", pa.float64()),
        ("watts", pa.float64()),
    ]
)

TABLES: dict[str, pa.Schema] = {"images": IMAGES, "latency": LATENCY, "power": POWER}

STATUSES = ("running", "complete", "failed", "interrupted")
