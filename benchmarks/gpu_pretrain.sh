#!/usr/bin/env bash
# One-shot GPU benchmark of the `seed` preset's pretraining step: windows/s, MFU, peak
# memory and the projected 20-epoch time. Eager first, then torch.compile.
# Usage: benchmarks/gpu_pretrain.sh [extra args for gpu_pretrain.py]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU visible to torch')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
echo "== eager =="
"$PY" benchmarks/gpu_pretrain.py --steps 30 "$@"
echo "== torch.compile =="
"$PY" benchmarks/gpu_pretrain.py --steps 30 --compile "$@"
