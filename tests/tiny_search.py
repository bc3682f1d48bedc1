"""The smallest search that still exercises every part of a cycle: shared by the search tests."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from configs import quick  # noqa: E402


def tiny_config(data_dir, **overrides):
    config = quick.get_config()
    config.data_dir = str(data_dir)
    config.channels = 4
    config.layers = 3
    config.schedule.epochs = (2, 2, 1, 1)
    config.schedule.grace = (1, 1, 0, 0)
    config.eval_max_samples = 256
    config.compilation_cache_dir = ""  # the test session's cache (conftest) stays in force
    for k, v in overrides.items():
        config[k] = v
    return config
