#!/usr/bin/env bash
# Runs one search per seed, one after another (the paper reports 3 seeds per space).
#   launch/seeds.sh configs/dl.py runs/dl 0 1 2
# Each run has its own workdir (runs/dl/seed_<n>) and resumes if started again.
set -euo pipefail
config=${1:?config file}; root=${2:?workdir root}; shift 2
py=${PYTHON:-.venv/bin/python}
for seed in "${@:-0}"; do
  "$py" -m prdarts_jax.search --config "$config" --workdir "$root/seed_$seed" --config.seed="$seed"
done
