"""CLI: python -m prdarts_jax.search --config configs/dl.py --workdir runs/dl

Runs a PR-DARTS search (see `search.loop.run_search`); `--config.<key>=value` overrides any field.
"""

from prdarts_jax.search.cli import run

run()
