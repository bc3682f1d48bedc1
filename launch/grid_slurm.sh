#!/usr/bin/env bash
# The paper's grid as SLURM job arrays: writes OUT_DIR/search.sbatch, train.sbatch and submit.sh
# (retrainings wait for their search with afterok), then prints how to submit; --submit submits.
#   launch/grid_slurm.sh runs/grid slurm/grid --partition gpu --gres gpu:1
#   launch/grid_slurm.sh runs/grid slurm/grid --partition gpu --submit
#   launch/grid_slurm.sh runs/grid slurm/grid --nodes 2 --gres gpu:4 --submit    # multi-host
# Run it again after failures or time-outs: only unfinished jobs are submitted, and they resume.
# Every option: python -m prdarts_jax.grid --help. Run from the repository root.
set -euo pipefail
root=${1:?usage: launch/grid_slurm.sh ROOT OUT_DIR [grid options]}
out=${2:?usage: launch/grid_slurm.sh ROOT OUT_DIR [grid options]}; shift 2
exec "${PYTHON:-.venv/bin/python}" -m prdarts_jax.grid --root "$root" --slurm "$out" "$@"
