#!/usr/bin/env bash
# The GPU checks of the MSML kernel (for a lent CUDA machine): GPU tests,
# launch-configuration sweep, host time per call, kernel-launch counts, the benchmark grid and
# its table. All steps together can take more than one 10-minute device call; split them:
#   SKIP="host launches grid" bash scripts/gpu_check.sh     # tests + sweep
#   SKIP="tests sweep" bash scripts/gpu_check.sh            # host, launches, the grid
# Uses the machine's own python3 (torch + triton + pytest-benchmark installed); run from the
# repository root. Writes everything under $OUT
# (default ./gpu-out) and prints a summary last.
#   SWEEP_C="1000"     C values swept in full (default 1000; 14 and 10000: the heuristic with
#                      other grid sizes and pipelined loads)
#   SWEEP_ARGS="..."   options of that sweep (default --top 2; e.g. --heuristic-only --top 1)
#   GRID_K="expr"      pytest -k expression selecting benchmark cells (default: the whole grid)
#   SKIP="launches"    space-separated steps to skip: tests sweep host launches grid
set -u
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
PYTEST=("$PY" -m pytest -p no:cacheprovider -q)
SKIP=" ${SKIP:-} "
want() { [[ "$SKIP" != *" $1 "* ]]; }

{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv
  "$PY" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
} 2>&1 | tee "$OUT/env.txt"

if want tests; then
  echo "== GPU tests"
  timeout -s INT 240 "${PYTEST[@]}" tests/triton -m gpu -x 2>&1 | tee "$OUT/gpu_tests.txt" | tail -n 15
fi

if want sweep; then
  echo "== launch-configuration sweep"
  timeout -s INT 240 "$PY" -m benchmarks.sweep --C ${SWEEP_C:-1000} ${SWEEP_ARGS:---top 2} 2>&1 | tee "$OUT/sweep.txt"
  timeout -s INT 120 "$PY" -m benchmarks.sweep --C 14 10000 --heuristic-only --top 1 2>&1 | tee -a "$OUT/sweep.txt"
fi

if want host; then
  echo "== host time per call"
  timeout -s INT 90 "$PY" -m benchmarks.host --profile 2>&1 | tee "$OUT/host.txt" | head -n 14
fi

if want grid; then
  echo "== benchmark grid"
  timeout -s INT 200 "${PYTEST[@]}" benchmarks/test_msml.py ${GRID_K:+-k "$GRID_K"} \
    --benchmark-json="$OUT/bench_gpu.json" --benchmark-max-time=0.2 --benchmark-min-rounds=5 \
    --benchmark-columns=median,rounds > "$OUT/bench_log.txt" 2>&1
  tail -n 3 "$OUT/bench_log.txt"
  "$PY" -m benchmarks.table "$OUT/bench_gpu.json" > "$OUT/bench_table.md" 2>&1
  grep -E "^\| msml +\| +(14|1000) +\| +65536" "$OUT/bench_table.md"
fi

if want launches; then
  echo "== kernel launches"
  timeout -s INT 45 "$PY" -m benchmarks.launches 2>&1 | tee "$OUT/launches.txt"
fi
