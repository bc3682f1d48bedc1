"""The offline default: a quick PR-DARTS search on scikit-learn's digits (8×8, no download).

    python -m prdarts_jax.search --config configs/quick.py --workdir runs/quick   (or: make run)

A tiny supernet (C=8, 5 cells) and four short cycles that exercise everything the paper's
schedule does: pruning with replacement by morphed children (cycles 1–2), pruning only (3) and
the final pruning to one op per edge (4). Expected cost on a 2-core CPU (measured 2026-12-06):
1.1 min with an empty compilation cache, 62 % of it tracing and XLA compiling each cycle's
programs (the structure changes every cycle); 30 s when run again with that cache (a
resume, a rerun), which loads them from the program store. Final α-half validation accuracy
0.857. Without a C++ compiler (XLA's formulations) about 4 min cold. On a slower 2-core host
(the same evening): 1.5 min cold (59–62 % compiling), 40–43 s warm (25–27 %).
"""

from prdarts_jax.kernels import native_kernels
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
    # The backend's depthwise conv (on a CPU `shift_vjp`, compiled C++ kernels), and BatchNorms
    # and pools as C++ kernels on the CPU: about 60 % less for XLA to compile and steps 2-4x
    # faster than XLA's own (docs/performance.md). Without a C++ compiler, the XLA
    # formulations that compile fastest (also with PRDARTS_NATIVE_KERNELS=off).
    native = native_kernels.mode() != "off" and native_kernels.compiler() is not None
    config.depthwise_impl = "" if native else "dense"
    config.bn_impl = "native"
    config.pool_impl = "native"           # (`reduce_window` where the kernels cannot be built)
    config.sgd_impl = "native"            # the weights' update: C++ calls, nothing to compile
    config.edge_sum_impl = "native"       # each mixed edge's α-weighted sum, forward and backward
    config.cpu_library_fusions = "none"   # (the default) no YNNPACK fusions: cached programs load faster
    config.log_every = 0
    return config
