"""The CLIs' log: prdarts_jax's lines pass, the libraries' INFO chatter does not."""

import logging

from prdarts_jax.runtime.cli import setup_logging


def test_library_chatter_is_held_back(capsys):
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging()
        logging.getLogger("matplotlib.font_manager").info("generated new fontManager")
        logging.getLogger("absl").info("Variant folder x has no dataset_info.json")
        logging.getLogger("prdarts_jax").info("cycle 1/4: ops per edge [4]")
        logging.getLogger("matplotlib").warning("a real warning")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        for name in ("absl", "jax._src.xla_bridge", "matplotlib"):
            logging.getLogger(name).setLevel(logging.NOTSET)
    err = capsys.readouterr().err
    assert "cycle 1/4" in err and "a real warning" in err
    assert "fontManager" not in err and "Variant folder" not in err
