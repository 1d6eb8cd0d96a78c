#!/usr/bin/env bash
# The GPU checks of the MSML kernel in one go (for a lent CUDA machine, ~8 minutes):
# GPU tests, launch-configuration sweep, kernel-launch counts, the benchmark grid and its table.
# Uses the machine's own python3 (torch + triton + pytest-benchmark installed); run from the
# repository root. Writes everything under $OUT (default ./gpu-out) and prints a summary last.
set -u
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
PYTEST=("$PY" -m pytest -p no:cacheprovider -q)

{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv
  "$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
} 2>&1 | tee "$OUT/env.txt"

echo "== GPU tests"
timeout -s INT 100 "${PYTEST[@]}" tests/triton -m gpu -x 2>&1 | tee "$OUT/gpu_tests.txt" | tail -n 15

echo "== launch-configuration sweep"
timeout -s INT 120 "$PY" -m benchmarks.sweep ${SWEEP_C:+--C $SWEEP_C} 2>&1 | tee "$OUT/sweep.txt"

echo "== kernel launches"
timeout -s INT 60 "$PY" -m benchmarks.launches 2>&1 | tee "$OUT/launches.txt"

echo "== benchmark grid"
timeout -s INT 170 "${PYTEST[@]}" benchmarks/test_msml.py --benchmark-json="$OUT/bench_gpu.json" \
  --benchmark-max-time=0.2 --benchmark-min-rounds=5 --benchmark-columns=median,rounds \
  > "$OUT/bench_log.txt" 2>&1
tail -n 3 "$OUT/bench_log.txt"
"$PY" -m benchmarks.table "$OUT/bench_gpu.json" > "$OUT/bench_table.md" 2>&1
grep -E "^\| msml +\| +(14|1000) +\| +65536" "$OUT/bench_table.md"
