#!/usr/bin/env bash
# The TensorRT check on a lent NVIDIA GPU machine, as one device call (issue 17; benchmarks/README.md).
#
# Runs tests/integration/test_tensorrt_gpu.py, then `bench run --device tensorrt-gpu` for each model with
# FP16 and FP32 engines on the `bench demo --small` data, and writes a markdown summary: engine build time
# cold (no timing cache) and warm (timing cache from the cold build), device_ms and latency_ms
# p50/p90/p99, drift against the host run (`bench compare`, and the largest per-image score change),
# the builder flags and TF32 state read back from the engine's artifact details.
#
# Usage: benchmarks/gpu_check.sh [--dry-run]
#   --dry-run  check the prerequisites, write the profiles and print the plan; run nothing heavy.
# Environment:
#   OUT                  where the summary (gpu_check.md) and logs go (default: the work folder)
#   GPU_CHECK_WHEELS     a folder of wheels (tensorrt*, cuda-python/cuda-bindings) installed with
#                        pip --no-index when TensorRT or cuda-python is missing; registries may be unreachable
#   GPU_CHECK_WORK       scratch folder (default: a new mktemp folder)
#   GPU_CHECK_MODELS     models to run (default "tinyglass edgezsad")
#   GPU_CHECK_PRECISIONS engine precisions (default "fp16 fp32")
#   GPU_CHECK_BUDGET_S   wall-clock budget for the whole check in seconds (default 540); each step gets
#                        what is left, and steps past the budget are reported as not run
#   GPU_CHECK_PYTEST     0 skips the GPU tests (default 1)
#   GPU_CHECK_LIMIT      test images per category (default 8); timing: --min-count 200 --min-duration 2
#   PYTHON               the interpreter (default: python)
# Exit status: 0 all steps ran and passed; 2 prerequisites missing; 4 a step failed or ran out of time.
set -euo pipefail

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument '$arg' (use --dry-run or --help)" >&2; exit 2 ;;
  esac
done

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${PYTHON:-python}
MODELS=${GPU_CHECK_MODELS:-tinyglass edgezsad}
PRECISIONS=${GPU_CHECK_PRECISIONS:-fp16 fp32}
BUDGET=${GPU_CHECK_BUDGET_S:-540}
LIMIT=${GPU_CHECK_LIMIT:-8}
WORK=${GPU_CHECK_WORK:-$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")}
REPORT_DIR=${OUT:-$WORK}
mkdir -p "$WORK" "$REPORT_DIR/logs"
SUMMARY="$REPORT_DIR/gpu_check.md"
STEPS="$WORK/steps.tsv"
: > "$STEPS"
START=$(date +%s)
FAILED=0
cd "$REPO"

log() { echo "gpu_check: $*" >&2; }

remaining() { echo $(( BUDGET - ($(date +%s) - START) )); }

# step NAME COMMAND...: run with what is left of the budget; its output goes to logs/NAME.log
step() {
  local name=$1; shift
  local left; left=$(remaining)
  if (( left < 10 )); then
    printf '%s\tnot run (out of time)\n' "$name" >> "$STEPS"; FAILED=1; return 1
  fi
  log "$name (up to ${left}s)"
  local begun=$SECONDS rc=0
  timeout --kill-after=10 "$left" "$@" > "$REPORT_DIR/logs/$name.log" 2>&1 || rc=$?
  local took=$(( SECONDS - begun ))
  if (( rc == 0 )); then
    printf '%s\tok (%ss)\n' "$name" "$took" >> "$STEPS"
  else
    local why="exit $rc"; (( rc == 124 || rc == 137 )) && why="timed out"
    printf '%s\tFAILED: %s (%ss; logs/%s.log: %s)\n' "$name" "$why" "$took" "$name" \
      "$(tail -n 1 "$REPORT_DIR/logs/$name.log" | tr '\t' ' ' | cut -c1-200)" >> "$STEPS"
    FAILED=1
  fi
  return $rc
}

# -- prerequisites: the bench package, TensorRT and cuda-python (from GPU_CHECK_WHEELS when missing)
missing_runtime() {
  "$PY" - <<'EOF'
import importlib
missing = []
for name in ("tensorrt", "cuda.bindings.runtime"):
    try:
        importlib.import_module(name)
    except ImportError:
        missing.append(name)
print(" ".join(missing))
EOF
}

if ! "$PY" -c "import bench" 2>/dev/null; then
  log "the bench package does not import with $PY: run from the repository's venv (pip install -e '.[export]')"
  exit 2
fi
MISSING=$(missing_runtime)
if [[ -n "$MISSING" && -n "${GPU_CHECK_WHEELS:-}" && $DRY_RUN -eq 0 ]]; then
  # The CUDA build must fit the driver: CUDA 13 wheels need a 580-class driver, CUDA 12 ones 525 or newer.
  DRIVER=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1 || true)
  VARIANT=tensorrt-cu12
  [[ -n "$DRIVER" ]] && (( ${DRIVER%%.*} >= 580 )) && VARIANT=tensorrt-cu13
  log "installing .[$VARIANT] from $GPU_CHECK_WHEELS (no index; driver ${DRIVER:-unknown}): $MISSING missing"
  mkdir -p "$REPORT_DIR/logs"
  if ! "$PY" -m pip install --no-index --find-links "$GPU_CHECK_WHEELS" -e "$REPO[$VARIANT]" \
      > "$REPORT_DIR/logs/install.log" 2>&1; then
    log "pip could not install .[$VARIANT] from $GPU_CHECK_WHEELS: $(tail -n 1 "$REPORT_DIR/logs/install.log")"
  fi
  MISSING=$(missing_runtime)
fi
if [[ -n "$MISSING" ]]; then
  log "missing: $MISSING. Package registries may be unreachable on this machine: carry the wheels (tensorrt," \
      "tensorrt_cu13 or tensorrt_cu12 with its libs and bindings, cuda-python, cuda-bindings) and set" \
      "GPU_CHECK_WHEELS to their folder"
  exit 2
fi

# -- profiles: the shipped ones, plus tensorrt-gpu at each precision with its own timing cache file
DEVICES="$WORK/devices"
mkdir -p "$DEVICES"
cp "$REPO"/bench/shipped/devices/*.yaml "$DEVICES/"
for precision in $PRECISIONS; do
  "$PY" - "$DEVICES" "$precision" "$WORK/timing-$precision.cache" <<'EOF'
import sys
from pathlib import Path

import yaml

folder, precision, cache = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
profile = yaml.safe_load((folder / "tensorrt-gpu.yaml").read_text())
profile.update(name=f"tensorrt-gpu-{precision}", precision=precision,
               description=f"tensorrt-gpu with a {precision.upper()} engine (benchmarks/gpu_check.sh)")
profile["runtime"]["timing_cache"] = cache
if precision != "fp16":
    profile.pop("emulation", None)  # the FP16 emulation policy describes the fp16 engine only
(folder / f"tensorrt-gpu-{precision}.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
EOF
done
export BENCH_DEVICES_DIR="$DEVICES"
"$PY" -m bench list devices > "$REPORT_DIR/logs/profiles.log"

if (( DRY_RUN )); then
  echo "gpu_check --dry-run: prerequisites present; profiles in $DEVICES:"
  grep -o 'tensorrt-gpu-[a-z0-9]*' "$REPORT_DIR/logs/profiles.log" | sort -u | sed 's/^/  /'
  echo "plan (budget ${BUDGET}s, work folder $WORK, summary $SUMMARY):"
  [[ "${GPU_CHECK_PYTEST:-1}" != 0 ]] && echo "  pytest -m 'not slow' tests/integration/test_tensorrt_gpu.py"
  echo "  bench demo --small (data, TinyGLASS checkpoints, the host run)"
  for model in $MODELS; do
    echo "  $model: bench run --device host"
    for precision in $PRECISIONS; do
      echo "  $model: bench run --device tensorrt-gpu-$precision, cold then warm timing cache; bench compare"
    done
  done
  exit 0
fi

"$PY" -m bench doctor > "$REPORT_DIR/logs/doctor.log" 2>&1 || true
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader > "$REPORT_DIR/logs/gpu.log" 2>&1 \
  || echo "nvidia-smi not available" > "$REPORT_DIR/logs/gpu.log"

if [[ "${GPU_CHECK_PYTEST:-1}" != 0 ]]; then
  # not the slow test: its `bench run` on the GPU is what the runs below do, with figures kept
  step gpu-tests env BENCH_CACHE_DIR="$WORK/cache-tests" "$PY" -m pytest -q -rs -m "not slow" \
    tests/integration/test_tensorrt_gpu.py || true
fi

# -- demo data and checkpoints (bench demo --small fits TinyGLASS and runs the host once)
export BENCH_CACHE_DIR="$WORK/cache"
RUNS="$WORK/runs.tsv"
: > "$RUNS"
# the run folder `bench run` prints (stdout and the progress bars share the log, so not at a line start)
run_record() { grep -ao 'run record: [^[:space:]]*' "$REPORT_DIR/logs/$1.log" | tail -n 1 | cut -c13-; }

demo_info() {
  "$PY" - "$(run_record demo)" <<'EOF2'
import json
import sys
from pathlib import Path

from bench.data.datasets import open_dataset

request = json.loads((Path(sys.argv[1]) / "manifest.json").read_text())["request"]
categories = open_dataset("mvtec", Path(request["data_root"])).categories()
print(request["data_root"], request["checkpoint"], request["backbone_weights"], ",".join(categories))
EOF2
}

INFO=""
if step demo "$PY" -m bench demo --small --out "$WORK/demo-results" --report "$WORK/demo-report.html"; then
  INFO=$(demo_info 2>> "$REPORT_DIR/logs/demo.log") || {
    printf 'demo-record\tFAILED: cannot read the demo run record (logs/demo.log)\n' >> "$STEPS"; FAILED=1; INFO=""; }
fi
if [[ -n "$INFO" ]]; then
  read -r DATA TG_CKPT BACKBONE CATS <<< "$INFO"
  for model in $MODELS; do
    args=(--model "$model" --data-root "$DATA" --limit "$LIMIT")
    if [[ $model == edgezsad ]]; then
      heldout=${CATS##*,}
      sources=${CATS%,*}
      step edgezsad-weights "$PY" -c "\
from bench.models.backbones import save_random_tinyvit; from pathlib import Path; \
save_random_tinyvit(Path('$WORK/tinyvit-random.pth'), 0)" || continue
      step edgezsad-fit "$PY" -m bench fit --model edgezsad --data-root "$DATA" --categories "$sources" \
        --heldout "$heldout" --backbone-weights "$WORK/tinyvit-random.pth" --steps 5 --out "$WORK/edgezsad" \
        || continue
      args+=(--checkpoint "$WORK/edgezsad" --backbone-weights "$WORK/tinyvit-random.pth")
    else
      args+=(--checkpoint "$TG_CKPT" --backbone-weights "$BACKBONE")
    fi
    quick=(--warmup 2 --min-count 5 --min-duration 0)  # the host run is the score reference only
    timed=(--warmup 20 --min-count 200 --min-duration 2)
    step "$model-host" "$PY" -m bench run --device host "${args[@]}" "${quick[@]}" --out "$WORK/results" || continue
    host_run=$(run_record "$model-host")
    for precision in $PRECISIONS; do
      rm -f "$WORK/timing-$precision.cache"
      for phase in cold warm; do
        # no cached engine, so each phase builds one: cold without a timing cache, warm with the cold one's
        rm -rf "$BENCH_CACHE_DIR/artifacts"
        name="$model-$precision-$phase"
        timing=("${quick[@]}"); [[ $phase == warm ]] && timing=("${timed[@]}")
        if step "$name" "$PY" -m bench run --device "tensorrt-gpu-$precision" "${args[@]}" "${timing[@]}" \
            --out "$WORK/results"; then
          printf '%s\t%s\t%s\t%s\t%s\n' "$model" "$precision" "$phase" "$host_run" "$(run_record "$name")" >> "$RUNS"
        fi
      done
      warm=$(awk -F'\t' -v m="$model" -v p="$precision" '$1==m && $2==p && $3=="warm" {print $5}' "$RUNS")
      if [[ -n "$warm" ]]; then
        step "$model-$precision-compare" bash -c '"$0" -m bench compare "$1" "$2" --json --no-pixel > "$3"' \
          "$PY" "$host_run" "$warm" "$WORK/compare-$model-$precision.json" || true
      fi
    done
  done
fi

# -- the summary
"$PY" - "$RUNS" "$STEPS" "$WORK" "$REPORT_DIR" > "$SUMMARY" <<'EOF'
import json
import sys
from pathlib import Path

import numpy as np

from bench.records import load_run

runs_file, steps_file, work, report_dir = (Path(a) for a in sys.argv[1:5])
rows = [line.split("\t") for line in runs_file.read_text().splitlines() if line.strip()]
print("# GPU check (benchmarks/gpu_check.sh)\n")
gpu = (report_dir / "logs" / "gpu.log")
print(f"GPU: {gpu.read_text().strip() if gpu.is_file() else 'unknown'}\n")
print("| model | precision | build cold s | build warm s | warm cache loaded B | cache rejected | builder flags "
      "| TF32 | device_ms p50/p90/p99 | latency_ms p50/p90/p99 | AUROC drift (points) | max abs score delta |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
by_key: dict = {}
for model, precision, phase, host_run, run in rows:
    by_key.setdefault((model, precision), {})[phase] = (host_run, run)


def build(run: str) -> dict:
    categories = load_run(Path(run)).manifest["model"]["categories"]
    return next(iter(categories.values()))["artifact_details"]["build"]


def pct(values) -> str:
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    return "/".join(f"{np.percentile(values, q):.3f}" for q in (50, 90, 99)) if values.size else "n/a"


for (model, precision), phases in by_key.items():
    cold = build(phases["cold"][1]) if "cold" in phases else {}
    host_run, warm_run = phases.get("warm", (None, None))
    warm = build(warm_run) if warm_run else {}
    latency = device = drift = score = "n/a"
    if warm_run:
        record = load_run(Path(warm_run))
        timed = record.latency[record.latency["phase"] == "timed"]
        device, latency = pct(timed["device_ms"]), pct(timed["latency_ms"])
        host = load_run(Path(host_run)).images.set_index("image_id")["score"]
        dev = record.images.set_index("image_id")["score"]
        common = host.index.intersection(dev.index)
        score = f"{float(np.max(np.abs(dev.loc[common].to_numpy() - host.loc[common].to_numpy()))):.3g}"
        compare = work / f"compare-{model}-{precision}.json"
        try:
            drift = f"{json.loads(compare.read_text())['mean_delta_points']:+.3f}"
        except (OSError, ValueError, KeyError):
            drift = "n/a (compare failed)"
    flags = ",".join(warm.get("builder_flags", cold.get("builder_flags", []))) or "none"
    tf32 = warm.get("tf32", cold.get("tf32", "n/a"))
    print(f"| {model} | {precision} | {cold.get('build_s', 'n/a')} | {warm.get('build_s', 'n/a')} | "
          f"{warm.get('timing_cache_loaded_bytes', 'n/a')} | {warm.get('timing_cache_rejected', 'n/a')} | {flags} | "
          f"{tf32} | {device} | {latency} | {drift} | {score} |")
print("\n## Steps\n")
for line in steps_file.read_text().splitlines():
    name, status = line.split("\t", 1)
    print(f"- {name}: {status}")
EOF
log "summary: $SUMMARY"
cat "$SUMMARY"
exit $(( FAILED ? 4 : 0 ))
