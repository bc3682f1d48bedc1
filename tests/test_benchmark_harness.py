"""The benchmarks' timing orders and tables (benchmarks/harness.py); no PyTorch needed."""

import pytest

from benchmarks import harness


def _recording_steps(log):
    return {name: (lambda name=name: log.append(name)) for name in ("A", "B")}


def test_interleaved_alternates_after_warmup():
    log = []
    times = harness.timed(_recording_steps(log), reps=3, warmup=1, order="interleaved")
    assert log == ["A", "B"] * 4
    assert {k: len(v) for k, v in times.items()} == {"A": 3, "B": 3}


def test_blocks_run_each_step_in_a_row():
    log = []
    times = harness.timed(_recording_steps(log), reps=3, warmup=2, order="blocks")
    assert log == ["A"] * 5 + ["B"] * 5
    assert {k: len(v) for k, v in times.items()} == {"A": 3, "B": 3}


def test_unknown_order_is_one_line():
    with pytest.raises(ValueError, match="unknown timing order 'random'; use one of"):
        harness.timed({}, reps=1, warmup=0, order="random")


@pytest.mark.parametrize("order, warmup, untimed", [("interleaved", 2, 0), ("blocks", 2, 1),
                                                    ("blocks", 4, 2)])
def test_compare_counts_parity_steps_as_warmup(order, warmup, untimed):
    """Two parity steps each, then `warmup - 2` untimed ones (blocks: at least one per block,
    the first after the other framework's), then the timed ones."""
    log = []
    losses = iter(range(1000))

    def contender(name):
        def run():
            log.append(name)
            return (1.0,) if name == "ref" else (1.0 + 1e-9 * next(losses),)
        return harness.Contender(run, lambda: 1)

    rows, parity = harness.compare("cfg", {"x": contender("x"), "ref": contender("ref")},
                                   reps=3, warmup=warmup, images_per_step=8,
                                   tolerances=(1e-6, 1e-6), reference="ref", order=order)
    assert parity["x"]["first"] < 1e-6
    assert log.count("x") == log.count("ref") == 2 + untimed + 3
    if order == "blocks":
        assert log[4:] == ["x"] * (untimed + 3) + ["ref"] * (untimed + 3)
    assert [r.framework for r in rows] == ["x", "ref"] and all(len(r.times) == 3 for r in rows)
    assert "| cfg | x |" in harness.table(rows, reference="ref")
