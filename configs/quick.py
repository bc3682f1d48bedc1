"""The offline default: a quick PR-DARTS search on scikit-learn's digits (8×8, no download).

    python -m prdarts_jax.search --config configs/quick.py --workdir runs/quick   (or: make run)

A tiny supernet (C=8, 5 cells) and four short cycles that exercise everything the paper's
schedule does: pruning with replacement by morphed children (cycles 1–2), pruning only (3) and
the final pruning to one op per edge (4). Expected cost on a 2-core CPU (measured 2026-12-06):
4.2 min with an empty compilation cache, 61 % of it XLA compiling each cycle's programs (the
structure changes every cycle); 2 min when run again with that cache (a resume, a rerun), which
loads them from the program store. Final α-half validation accuracy 0.855.
"""

from prdarts_jax.search.config import base_config


def get_config():
    config = base_config()
    config.dataset = "digits"
    config.space = "DL"
    config.channels = 8
    config.layers = 5
    config.schedule.epochs = (3, 3, 2, 2)
    config.schedule.grace = (1, 1, 0, 0)
    config.schedule.morphs = (2, 2, 0, 0)
    config.schedule.keep = (4, 4, 2, 1)
    config.batch.variable = False     # each new batch size is a new compile: too dear here
    config.batch_size = 32
    config.lr_max = 0.05
    config.lr_min = 0.01
    config.lr_schedule = "reach_min"      # each cycle's last epoch at lr_min: a steadier result
    config.alpha_lr = 3e-3
    config.fuse_grad_programs = True
    config.depthwise_impl = "shift_vjp"   # depthwise convs and BatchNorms as compiled C++ on
    config.bn_impl = "native"             # the CPU: about half as much for XLA to compile
    config.pool_impl = "reduce_window"    # and steps 2-4x faster (docs/performance.md)
    config.cpu_library_fusions = "none"   # no YNNPACK fusions: cached programs load 2-5x faster
    config.log_every = 0
    return config
