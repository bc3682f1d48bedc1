"""The search's ETA: epochs priced by ops per edge and α steps, compile per cycle to come."""

import pytest

from prdarts_jax.search import eta

SCHEDULE = {"epochs": (3, 2, 2), "grace": (1, 0, 0), "keep": (4, 2, 1), "morphs": (2, 0, 0)}


def _epoch(cycle, epoch, seconds, compile_seconds=0.0):
    return {"cycle": cycle, "epoch": epoch, "seconds": seconds,
            "compile_seconds": compile_seconds}


def test_ops_per_edge_and_epoch_units_follow_the_schedule():
    assert [eta.ops_per_edge(SCHEDULE, c) for c in (1, 2, 3)] == [4, 4, 2]
    quick = {"keep": (4, 4, 2, 1), "morphs": (2, 2, 0, 0)}     # configs/quick.py
    assert [eta.ops_per_edge(quick, c) for c in (1, 2, 3, 4)] == [4, 4, 4, 2]
    paper = {"keep": (6, 6, 6, 6, 6, 4, 3, 2, 1), "morphs": (3, 3, 3, 3, 3, 0, 0, 0, 0)}
    assert [eta.ops_per_edge(paper, c) for c in range(1, 10)] == [4, 6, 6, 6, 6, 6, 4, 3, 2]
    assert eta.epoch_units(SCHEDULE, 1, 0) == 4     # grace: weight steps only
    assert eta.epoch_units(SCHEDULE, 1, 1) == 8     # α steps too
    assert eta.epoch_units(SCHEDULE, 3, 0) == 4


def test_remaining_time_after_the_first_epoch():
    # 4 units took 10 s of which 6 s compiling: 1 s per unit
    cycle_left, search_left = eta.remaining(SCHEDULE, [_epoch(1, 0, 10.0, 6.0)])
    assert cycle_left == pytest.approx(8 + 8)
    # cycle 2: 2 epochs x 8 units; cycle 3: 2 epochs x 4 units; each cycle compiles 6 s
    assert search_left == pytest.approx(16 + (16 + 6) + (8 + 6))


def test_the_largest_compile_so_far_prices_the_cycles_to_come():
    records = [_epoch(1, 0, 10.0, 6.0), _epoch(1, 1, 8.0), _epoch(1, 2, 8.0),
               _epoch(2, 0, 52.0, 40.0)]
    cycle_left, search_left = eta.remaining(SCHEDULE, records)
    assert cycle_left == pytest.approx(8.0)            # median unit: 1 s; 8 units left
    assert search_left == pytest.approx(8.0 + 40 + 8)


def test_no_estimate_before_the_first_epoch():
    assert eta.remaining(SCHEDULE, []) is None


def test_a_deepening_schedule_prices_each_cycle_by_its_cells():
    deepen = {**SCHEDULE, "cells": (3, 4, 6)}
    assert eta.epoch_units(deepen, 1, 1) == 8 * 3
    assert eta.epoch_units(deepen, 3, 0) == 4 * 6
    # 12 units (grace epoch of 3 cells) took 12 s without compiling: 1 s per unit
    _, search_left = eta.remaining(deepen, [_epoch(1, 0, 12.0)])
    assert search_left == pytest.approx(2 * 8 * 3 + 2 * 8 * 4 + 2 * 4 * 6)
