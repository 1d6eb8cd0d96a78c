#!/usr/bin/env bash
# Create .venv (if missing) and install mlbench with its test extras. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# torch/torchvision pinned together: torchvision must match torch's ABI.
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install -q -e ".[dev]"
# LibAUC, a test-only peer of the AUC losses and optimizers (tests/losses/test_auc_peers.py):
# its losses and optimizers import with torch alone; its declared requirements (torch_geometric,
# ogb, transformers, ...) are not needed, hence --no-deps.
.venv/bin/python -m pip install -q --no-deps "libauc==2.0.1"
