#!/usr/bin/env bash
# Side-by-side GPU benchmarks, JAX vs. the PyTorch reference, at paper scale, in a few minutes:
#   1. search step: C=16, 8 cells, CIFAR-sized batches, cycle-1 and heavy pools, batch 64 and the
#      batch size the variable-batch controller would pick (from JAX's memory at batch 64);
#   2. train step: DL2, C=36, 20 cells, batch 96;
#   3. estimated wall time of a whole DL search and of a 600-epoch retraining.
#
#   bash benchmarks/gpu.sh                         # writes into $OUT (or benchmarks/results)
#   TORCH_WHEEL=/path/torch-…-cu….whl bash benchmarks/gpu.sh   # if this Python lacks torch
#
# Environment: PYTHON (default python3), OUT, REPS (timed steps, default 20), TORCH_COMPILE
# (train: torch.compile for the train step only, the default; all; none), JAX_IMPLS (unset: the
# formulations the search / retraining use; e.g. default,dense to add a row). Needs jax with CUDA, flax, optax,
# chex; neither tensorflow-datasets nor ml_collections.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-benchmarks/results}
REPS=${REPS:-20}
TORCH_COMPILE=${TORCH_COMPILE:-train}
JAX_IMPLS=${JAX_IMPLS:-}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# both frameworks share the GPU: JAX must not reserve 75 % of it up front
export XLA_PYTHON_CLIENT_PREALLOCATE=false

if ! "$PY" -c "import torch" 2>/dev/null; then
  if [ -n "${TORCH_WHEEL:-}" ]; then
    echo "installing PyTorch from $TORCH_WHEEL"
    "$PY" -m pip install -q --no-deps "$TORCH_WHEEL"
  else
    echo "error: PyTorch is not installed for $PY, so there is nothing to compare with." >&2
    echo "Set TORCH_WHEEL to a CUDA build's wheel file (pip install --no-deps takes it)," >&2
    echo "or PYTHON to an interpreter that has both torch and jax." >&2
    exit 2
  fi
fi
"$PY" - <<'EOF'
import jax, torch
print(f"jax {jax.__version__} on {jax.devices()}; torch {torch.__version__}, "
      f"cuda available: {torch.cuda.is_available()}")
if jax.default_backend() != "gpu" or not torch.cuda.is_available():
    raise SystemExit("error: both JAX and PyTorch must see the GPU for this benchmark")
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

search_compile=""; train_compile=""
case "$TORCH_COMPILE" in
  all) search_compile=--torch-compile; train_compile=--torch-compile ;;
  train) train_compile=--torch-compile ;;
  none) ;;
  *) echo "error: TORCH_COMPILE must be train, all or none" >&2; exit 2 ;;
esac

echo "== search step (paper scale) =="
"$PY" benchmarks/search_step.py --channels 16 --layers 8 --batch 64,auto --pools cycle1,heavy \
  --reps "$REPS" --warmup 5 ${JAX_IMPLS:+--jax-impls "$JAX_IMPLS"} $search_compile \
  --json "$OUT/search_step.json" 2>&1 | tee "$OUT/search_step.txt"
echo
echo "== train step (DL2, C=36, 20 cells, batch 96) =="
"$PY" benchmarks/train_step.py --genotype DL2 --channels 36 --layers 20 --batch 96 \
  --reps "$REPS" --warmup 5 ${JAX_IMPLS:+--jax-impls "$JAX_IMPLS"} $train_compile \
  --json "$OUT/train_step.json" 2>&1 | tee "$OUT/train_step.txt"
echo
echo "== estimated wall time from the measured steps =="
"$PY" benchmarks/estimate.py "$OUT/search_step.json" "$OUT/train_step.json" \
  | tee "$OUT/estimate.txt"
