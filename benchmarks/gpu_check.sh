#!/usr/bin/env bash
# One-shot GPU check, at most 8 minutes on one GPU: fp32 vs bf16 training snippets/s and
# extraction frames/s of every registered backbone at 224 px (random weights, nothing
# downloaded), peak GPU memory, real-path / pure-compute ratios, and the estimated wall time of
# `results/50salads`. Run from anywhere, with the project installed in the active Python:
#
#   bash benchmarks/gpu_check.sh [gpu_check.py options, e.g. --backbones lcdc dc]
#
# Without a CUDA device it says so and exits with status 2. The Python part
# (benchmarks/gpu_check.py) stops starting backbones after 400 s; `timeout` ends it at 470 s
# whatever happens, so the rows printed so far always come back within 8 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's code, installed or not
PYTHON="${PYTHON:-python}"

if ! "$PYTHON" -c "import stages.features.registry, torch" 2>/dev/null; then
    echo "gpu_check: '$PYTHON' cannot import motionseg and torch; install the project" >&2
    exit 2
fi
if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: no CUDA device visible to torch on $(hostname); this check needs one GPU" >&2
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
echo "uptime: $(uptime)"
exec timeout --signal=INT --kill-after=10 470 "$PYTHON" benchmarks/gpu_check.py --device cuda \
    --budget-s 400 "$@"
