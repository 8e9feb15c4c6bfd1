#!/usr/bin/env bash
# For developers: every GPU check in one run: the CUDA tests, a profile of one sampling step, then the
# benchmark (ours vs upstream) and its variants. About 7-9 minutes on an H200, kept under 10.
#
# Usage: bash scripts/bench/gpu_checks.sh   (on the GPU machine, from the repository root)
#
# Runs on a GPU machine that has torch but may have no package index: the project's other dependencies
# can come as wheels in .whl/ (scripts/bench/gpu_wheels.sh writes them).
# Changes: installs those wheels into /tmp/site; writes everything it measures under $OUT (default
# /tmp/gpu-checks) and logs under /tmp/logs-*; prints a summary last. Settings: OUT, PYTHON.
case "${1:-}" in -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;; esac
set -u
OUT=${OUT:-/tmp/gpu-checks}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}

export PYTHONPATH=$PWD  # the project is not installed on such a machine
if [ -d .whl ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "wheel install failed"; exit 1; }
    export PYTHONPATH=/tmp/site:$PWD
fi
LOG="$OUT/checks.log"
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
    $PY -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())"
    lscpu | grep -m1 "Model name"; nproc
} >"$LOG" 2>&1

echo "== GPU tests" | tee -a "$LOG"
timeout 80 $PY -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_cuda_graphs.py >>"$LOG" 2>&1
echo "pytest rc=$?" | tee -a "$LOG"

MODELS=/tmp/bench-models
echo "== profile of one step" | tee -a "$LOG"
timeout 90 $PY scripts/bench/gpu_profile.py --random-weights --models-dir "$MODELS" --json "$OUT/profile.json" >>"$LOG" 2>&1
echo "profile rc=$?" | tee -a "$LOG"
COMMON=(--random-weights --models-dir "$MODELS" --nfe 32 --text-seconds 10 --jobs 16 --cold-starts 1)
bench() {  # name, timeout, extra args...; environment variables go before the call
    local name=$1 limit=$2; shift 2
    echo "== bench $name" | tee -a "$LOG"
    timeout "$limit" $PY scripts/bench/bench.py "${COMMON[@]}" "$@" --log-dir "/tmp/logs-$name" \
        --json "$OUT/bench-$name.json" >>"$LOG" 2>&1
    echo "bench $name rc=$?" | tee -a "$LOG"
}
# In order of importance, within about 560 s in all:
bench default 200               # the defaults (fp16, CUDA graphs, English aligned by sphinx in CPU processes) vs upstream
# streamed: time to first audio (target 250 ms at NFE 32, with timings), the whole stream, playback stalls;
# the same jobs over the HTTP server (SERVE=http) beside them
bench stream 100 --stream --http --text-seconds 30 --concurrency 1,4 --jobs 4 --skip-upstream
# CUDA graphs over compiled blocks; the second cold start compiles from inductor's cache (as a later boot does)
TORCH_COMPILE=1 bench compile 140 --concurrency 1,16 --skip-upstream --cold-starts 2
# does batching pay once the blocks are compiled? (MAX_BATCH_JOBS defaults to 1: it did not without); when time is left
[ "$SECONDS" -lt 470 ] && MAX_BATCH_JOBS=8 TORCH_COMPILE=1 bench compile-batch8 65 --concurrency 16 --skip-upstream

tar -czf "$OUT/logs.tar.gz" /tmp/logs-* 2>/dev/null
$PY - "$OUT" <<'EOF' | tee -a "$LOG"
import json, sys
from pathlib import Path

for f in sorted(Path(sys.argv[1]).glob("bench-*.json")):
    r = json.loads(f.read_text())
    keys = ("aligner", "rtf", "rtf_single_stream_level", "upstream_rtf", "speedup_rtf", "overhead_fraction",
            "cold_start_s", "cold_start_samples_s", "upstream_cold_start_s", "first_job_s", "throughput",
            "peak_gpu_mb", "stream")
    print(f.stem, {k: r.get(k) for k in keys if k in r})
    print("   p50 ms:", {k: round(v["p50"], 1) for k, v in r["latency_ms"].items()
                         if k in ("synthesis_ms", "vocoding_ms", "alignment_ms", "total_ms", "wall_ms")})
EOF
