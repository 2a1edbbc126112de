"""Harness overhead: the harness's timed pass against a bare loop of the same session on the same inputs.

TinyGLASS with random weights (as ``model_latency.py``), exported to ONNX and compiled for the host
device (ONNX Runtime CPU, the recorded thread settings); one session serves every arm. Arms, in
blocks of ``--block`` inferences, interleaved in one run (the order rotates each round, so a slow
drift of the machine hits every arm alike):

  harness     ``bench.run.measure``'s timed pass into a real run record (journal on disk), as a run
              does; its latencies are the rows it recorded.
  bare        ``perf_counter_ns`` around ``session.infer`` into a preallocated array, nothing else.
  unbuffered  the harness with every row written before the next inference (flush interval 0, the
              behaviour before rows were buffered), for comparison.

Figures: pooled p50 of each arm and its ratio to the bare loop; the median over rounds of the
per-round p50 ratio with its 95 % order-statistic interval; the wall time per inference over each
block (first start to last end, what FPS is based on). Goal: harness p50 at most 1 % above the bare
loop (the upper end of the 95 % interval of the ratio).

On a loaded machine the model's own jitter (milliseconds) hides a harness cost of microseconds, so
the same arms also run over a null session (``infer`` returns a ready result): the harness's own
cost per inference, inside the timed span and between inferences, measured without the model's
noise and stated as a share of the TinyGLASS bare p50.

    python benchmarks/harness_overhead.py [--rounds 12] [--block 100] [--null-block 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from bench.clock import now_ns
from bench.devices.base import InferenceResult, Session
from bench.devices.host.adapter import HostDevice
from bench.devices.profiles import load_profile
from bench.metrics.latency import quantile_ci
from bench.models.cards import load_card
from bench.models.export import exported_model
from bench.models.families import family
from bench.records import RunWriter
from bench.records.journal import read_journal
from bench.records.schema import LATENCY
from bench.run import measure as harness
from bench.run.measure import Job, Measurement, Workload

POOL = harness.TIMED_POOL
ARMS = ("harness", "bare", "unbuffered")


class NullSession(Session):
    """A session whose inference costs nothing: what remains is the caller's own cost."""

    def __init__(self, timing_source: str) -> None:
        self.timing_source = timing_source
        self.result = InferenceResult({"score": np.zeros(1, np.float32)})

    def infer(self, batch: np.ndarray) -> InferenceResult:
        return self.result

    def _close(self) -> None:
        pass


def bare_block(session, pool: list[np.ndarray], count: int) -> tuple[np.ndarray, float]:
    """Latencies (ms) of ``count`` back-to-back inferences cycling over ``pool`` as the harness does, and the
    wall time per inference (ms) from the first start to the last end."""
    times = np.empty((count, 2), dtype=np.int64)
    for i in range(count):
        batch = pool[i % len(pool)]
        start = now_ns()
        session.infer(batch)
        times[i] = start, now_ns()
    return (times[:, 1] - times[:, 0]) / 1e6, (times[-1, 1] - times[0, 0]) / 1e6 / count


def interleave(session: Session, pool: list[np.ndarray], device: HostDevice, job: Job, root: Path, rounds: int,
               block: int) -> tuple[dict[str, list[np.ndarray]], dict[str, list[float]]]:
    """Per arm and round: the block's latencies (ms) and its wall time per inference (ms)."""
    latencies: dict[str, list[np.ndarray]] = {arm: [] for arm in ARMS}
    per_inference: dict[str, list[float]] = {arm: [] for arm in ARMS}
    writers = {arm: RunWriter.create(root, {"command": "harness_overhead"}, arm) for arm in ("harness", "unbuffered")}
    measurement = Measurement(warmup=0, min_count=block, min_duration_s=0.0)
    categories = {}
    for arm, writer in writers.items():
        categories[arm] = harness._Category(Workload(device, [job], lambda s: None, {}, measurement), writer, None, job)
        categories[arm].source = session.timing_source
    interval = harness.FLUSH_INTERVAL_NS
    bare_block(session, pool, 20)  # warm-up
    for round_ in range(rounds):
        for arm in ARMS[round_ % 3:] + ARMS[:round_ % 3]:
            if arm == "bare":
                values, wall = bare_block(session, pool, block)
                latencies[arm].append(values)
                per_inference[arm].append(wall)
                continue
            harness.FLUSH_INTERVAL_NS = 0 if arm == "unbuffered" else interval
            try:
                categories[arm]._timed_pass(session, pool)
            finally:
                harness.FLUSH_INTERVAL_NS = interval
    for arm, writer in writers.items():
        rows = read_journal(writer.run_dir / "latency.jsonl", LATENCY)
        assert len(rows) == block * rounds, (arm, len(rows))
        for i in range(rounds):
            part = rows.iloc[i * block:(i + 1) * block]
            latencies[arm].append(part["latency_ms"].to_numpy())
            per_inference[arm].append((part["t_end_ns"].max() - part["t_start_ns"].min()) / 1e6 / len(part))
        writer.finish("interrupted")
    return latencies, per_inference


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--block", type=int, default=100, help="inferences per arm and round (TinyGLASS)")
    parser.add_argument("--null-block", type=int, default=2000, help="inferences per arm and round (null session)")
    args = parser.parse_args()
    card = load_card("tinyglass")
    torch.manual_seed(0)
    model = family(card.family).build(None).eval()
    shape = card.recipe.input_shape
    rng = np.random.default_rng(0)
    pool = [rng.standard_normal(shape).astype(np.float32) for _ in range(POOL)]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        info = exported_model(model, {"bench": "tinyglass"}, shape, 18, card.data["export"].get("tolerance", {}),
                              pool[:1], root)
        device = HostDevice(load_profile("host"))
        artifact = device.compile(info.exported, root / "artifact")
        job = Job("bench", [], info.exported, artifact)
        with device.open(artifact) as session:
            model_lat, model_wall = interleave(session, pool, device, job, root / "model", args.rounds, args.block)
            null_lat, null_wall = interleave(NullSession(session.timing_source), pool, device, job, root / "null",
                                             args.rounds, args.null_block)
    bare_p50 = float(np.median(np.concatenate(model_lat["bare"])))
    bare_wall = float(np.median(model_wall["bare"]))
    print(f"TinyGLASS on the host, {device.resolved_options()['intra_op_num_threads']} ORT intra-op threads; "
          f"{args.rounds} rounds x {args.block} inferences per arm, arms interleaved")
    print(f"{'arm':<12}{'p50 ms':>9}{'p50/bare':>10}{'round ratio [95% CI]':>28}{'wall/inf ms':>13}{'wall/bare':>11}")
    for arm in ARMS:
        p50 = float(np.median(np.concatenate(model_lat[arm])))
        ratios = np.array([np.median(a) / np.median(b) for a, b in zip(model_lat[arm], model_lat["bare"],
                                                                       strict=True)])
        low, high = quantile_ci(ratios, 0.5)
        ci = f"{np.median(ratios):.4f} [{low or float('nan'):.4f}, {high or float('nan'):.4f}]"
        wall = float(np.median(model_wall[arm]))
        print(f"{arm:<12}{p50:>9.3f}{p50 / bare_p50:>10.4f}{ci:>28}{wall:>13.3f}{wall / bare_wall:>11.4f}")
    print(f"null session: {args.rounds} rounds x {args.null_block} inferences per arm; the harness's own cost per "
          f"inference, and as a share of the TinyGLASS bare p50 ({bare_p50:.3f} ms)")
    null_p50 = float(np.median(np.concatenate(null_lat["bare"])))
    null_bare_wall = float(np.median(null_wall["bare"]))
    print(f"{'arm':<12}{'in-span us':>12}{'share':>9}{'wall/inf us':>13}{'share':>9}")
    for arm in ("harness", "unbuffered"):
        span_us = (float(np.median(np.concatenate(null_lat[arm]))) - null_p50) * 1000
        wall_us = (float(np.median(null_wall[arm])) - null_bare_wall) * 1000
        print(f"{arm:<12}{span_us:>12.2f}{span_us / 1000 / bare_p50:>9.4%}{wall_us:>13.2f}"
              f"{wall_us / 1000 / bare_p50:>9.4%}")
    ratios = np.array([np.median(a) / np.median(b) for a, b in zip(model_lat["harness"], model_lat["bare"],
                                                                   strict=True)])
    low, high = quantile_ci(ratios, 0.5)
    # the goal bounds the harness's overhead: the upper end of the ratio's interval (a lower end under 1 is the
    # machine's noise between rounds; the harness cannot be faster than the loop it wraps)
    if high is not None and high <= 1.01:
        verdict = f"met: the 95 % interval of the round ratio ends at {high:.4f} <= 1.01"
    elif low is not None and low > 1.01:
        verdict = f"missed: the 95 % interval of the round ratio starts at {low:.4f} > 1.01"
    else:
        verdict = "inconclusive from the model's timings: the interval straddles 1.01 (machine noise)"
    span_us = (float(np.median(np.concatenate(null_lat["harness"]))) - null_p50) * 1000
    wall_us = (float(np.median(null_wall["harness"])) - null_bare_wall) * 1000
    print(f"goal harness p50 within 1 % of the bare loop: {verdict}; the harness's own cost, "
          f"{max(span_us, 0):.2f} us in the timed span and {max(wall_us, 0):.2f} us per inference in all, is "
          f"{max(span_us, wall_us, 0) / 1000 / bare_p50:.4%} of the bare p50")
    return 0


if __name__ == "__main__":
    sys.exit(main())
