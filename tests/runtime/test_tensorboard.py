"""TensorBoard mirror of metrics records: the tags of each record kind, event files readable
as soon as a record is written, and a run that goes on when events cannot be written."""

import logging

import pytest

from prdarts_jax.runtime.metrics import MetricsWriter
from prdarts_jax.runtime.tensorboard import TensorBoardWriter, scalars
from tests.helpers import tensorboard_scalars

pytest.importorskip("tensorboardX")


def test_scalars_of_each_record_kind():
    epoch = {"type": "epoch", "cycle": 2, "epoch": 1, "lr": 0.05, "val_acc": 0.8,
             "grace": False, "memory_source": "rss", "batch_size": 32}
    assert dict(scalars(epoch)) == {"epoch/lr": 0.05, "epoch/val_acc": 0.8,
                                    "epoch/batch_size": 32.0}
    stats = {"type": "cycle_stats", "cycle": 2, "settings": {"keep": 4},
             "normal": {"similarity": 0.5, "op_types": {"conv": 0.75}}, "reduce": {}}
    assert dict(scalars(stats)) == {"cycle_normal/similarity": 0.5,
                                    "cycle_normal/op_types/conv": 0.75}
    assert scalars({"type": "cycle", "cycle": 1, "compile_seconds": 3}) == [
        ("cycle/compile_seconds", 3.0)]
    cycle = {"type": "cycle", "cycle": 1, "compile_seconds": 3.5,
             "compile": {"programs": {"grads": 3.0, "other": 0.5}, "cache_hits": 1,
                         "cache_misses": 0}}
    assert dict(scalars(cycle)) == {"cycle/compile_seconds": 3.5,
                                    "cycle/compile/programs/grads": 3.0,
                                    "cycle/compile/programs/other": 0.5,
                                    "cycle/compile/cache_hits": 1.0,
                                    "cycle/compile/cache_misses": 0.0}

    assert scalars({"epoch": 4, "train_loss": 1.5}) == [("epoch/train_loss", 1.5)]


def test_events_are_readable_as_soon_as_a_record_is_written(tmp_path):
    writer = MetricsWriter(str(tmp_path / "metrics.jsonl"), mirror=TensorBoardWriter(
        str(tmp_path / "tb"), lambda r: r.get("epoch")))
    writer.write({"epoch": 0, "train_loss": 2.0})
    assert tensorboard_scalars(tmp_path / "tb") == {"epoch/train_loss": {0: 2.0}}
    writer.write({"epoch": 1, "train_loss": 1.0})
    assert tensorboard_scalars(tmp_path / "tb")["epoch/train_loss"] == {0: 2.0, 1: 1.0}
    writer.close()


def test_a_failing_writer_warns_once_and_the_metrics_go_on(tmp_path, caplog):
    (tmp_path / "tb").write_text("a file where the folder should be")
    writer = MetricsWriter(str(tmp_path / "metrics.jsonl"), mirror=TensorBoardWriter(
        str(tmp_path / "tb"), lambda r: r.get("epoch")))
    with caplog.at_level(logging.WARNING, logger="prdarts_jax"):
        writer.write({"epoch": 0, "train_loss": 2.0})
        writer.write({"epoch": 1, "train_loss": 1.0})
    assert len([r for r in caplog.records if "TensorBoard" in r.getMessage()]) == 1
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
