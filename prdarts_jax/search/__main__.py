"""CLI: python -m prdarts_jax.search --config configs/dl.py --workdir runs/dl

Runs a PR-DARTS search (see `search.loop.run_search`); `--config.<key>=value` overrides any field.
"""

from absl import app

from prdarts_jax.runtime import host_memory
from prdarts_jax.search.cli import main

host_memory.restart()
app.run(main)
