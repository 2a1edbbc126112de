"""Live-camera mode: the IMX500's latency and frame rate on real sensor frames, without labels.

Dataset runs inject images one at a time, which measures accuracy but paces the sensor by the
injection round trip. This mode lets the camera stream: every frame's KPI (DNN and DSP runtime,
microseconds from the sensor) and its sensor timestamp are recorded, and the frame rate comes
from the timestamps of frames that carried an output. No scores are judged: there are no labels.

    python -m bench.devices.imx500.live network.rpk --frames 300 --frame-rate 30 --out live/

writes ``frames.csv`` (one row per frame) and ``summary.json`` into ``--out``. ``network.rpk``
comes from ``imx500-package -i packerOut.zip -o DIR`` (``bench compile --device imx500`` builds
packerOut.zip on the host).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.errors import BadInput, BenchError
from bench.progress import bar
from bench.records.atomic import write_json


def capture(rpk: Path, frames: int, frame_rate: float, camera_id: str = "") -> pd.DataFrame:
    """``frames`` consecutive frames from the running sensor: counter, timestamp, KPI, whether it had an output."""
    from picamera2.devices import IMX500

    from bench.devices.imx500.session import open_camera

    if not rpk.is_file():
        raise BadInput(f"{rpk}: no such network file (imx500-package -i packerOut.zip -o DIR makes one)")
    imx500, picam2 = open_camera(rpk, camera_id)
    config = picam2.create_preview_configuration(controls={"FrameRate": frame_rate}, buffer_count=12)
    imx500.show_network_fw_progress_bar()
    picam2.start(config, show_preview=False)
    rows: list[dict[str, Any]] = []
    try:
        with bar(frames, "imx500 live", "frame") as progress:
            for _ in range(frames):
                metadata = picam2.capture_metadata()
                kpi = IMX500.get_kpi_info(metadata)
                rows.append({"sensor_timestamp_ns": metadata.get("SensorTimestamp"),
                             "has_output": bool(metadata.get("CnnOutputTensor")),
                             "dnn_ms": None if kpi is None else kpi[0], "dsp_ms": None if kpi is None else kpi[1]})
                progress.update()
    finally:
        picam2.stop()
        picam2.close()
    return pd.DataFrame(rows)


def summarize_frames(table: pd.DataFrame) -> dict[str, Any]:
    """Frame rate from the timestamps of frames with an output; KPI percentiles in milliseconds."""
    with_output = table[table["has_output"]]
    stamps = with_output["sensor_timestamp_ns"].dropna().astype("int64").to_numpy()
    intervals_ms = np.diff(stamps) / 1e6 if len(stamps) > 1 else np.array([])
    kpi = with_output[["dnn_ms", "dsp_ms"]].dropna()
    total = kpi["dnn_ms"] + kpi["dsp_ms"]

    def pct(values: Any, q: float) -> float | None:
        return float(np.percentile(values, q)) if len(values) else None

    return {
        "frames": len(table), "frames_with_output": len(with_output),
        "fps": float(1e3 / intervals_ms.mean()) if len(intervals_ms) else None,
        "frame_interval_p50_ms": pct(intervals_ms, 50), "frame_interval_p99_ms": pct(intervals_ms, 99),
        "dnn_p50_ms": pct(kpi["dnn_ms"], 50), "dsp_p50_ms": pct(kpi["dsp_ms"], 50),
        "device_p50_ms": pct(total, 50), "device_p99_ms": pct(total, 99),
        "note": "live sensor frames: latency and frame rate only, no labels, no accuracy",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.devices.imx500.live", description=__doc__.split("\n\n")[0])
    parser.add_argument("rpk", type=Path, help="network.rpk (from imx500-package)")
    parser.add_argument("--frames", type=int, default=300, help="frames to record (default 300)")
    parser.add_argument("--frame-rate", type=float, default=30.0, help="camera frame rate (default 30)")
    parser.add_argument("--camera-id", default="", help="picamera2 camera id (default: the first IMX500)")
    parser.add_argument("--out", type=Path, default=Path("imx500-live"), help="output folder")
    args = parser.parse_args(argv)
    try:
        if args.frames < 2:
            raise BadInput("--frames must be at least 2 (the frame rate needs two timestamps)")
        table = capture(args.rpk, args.frames, args.frame_rate, args.camera_id)
        args.out.mkdir(parents=True, exist_ok=True)
        table.to_csv(args.out / "frames.csv", index=False)
        summary = {"rpk": str(args.rpk.resolve()), "frame_rate_requested": args.frame_rate, **summarize_frames(table)}
        write_json(args.out / "summary.json", summary)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"{summary['frames_with_output']} frames with output, {summary['fps'] or 0:.1f} FPS, device p50 "
          f"{summary['device_p50_ms']} ms: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
