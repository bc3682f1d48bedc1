#!/usr/bin/env bash
# The paper's grid on this machine, one job after another: searches over DL, DR, UR × seeds 0,1,2,
# then each result retrained × seeds 0,1,2 × CIFAR-10/100. Run it again to continue: finished jobs
# are skipped, an interrupted one resumes.
#   launch/grid_local.sh runs/grid
#   launch/grid_local.sh runs/grid --dry_run                    # only print the commands
#   launch/grid_local.sh runs/grid --spaces dl --seeds 0 --datasets cifar10 --published DL2
# Every option: python -m prdarts_jax.grid --help. Run from the repository root.
set -euo pipefail
root=${1:?usage: launch/grid_local.sh ROOT [grid options]}; shift
exec "${PYTHON:-.venv/bin/python}" -m prdarts_jax.grid --root "$root" --local "$@"
