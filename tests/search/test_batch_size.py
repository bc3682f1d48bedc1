import dataclasses
import json

import pytest

from prdarts_jax.search.batch_size import controller as bs
from prdarts_jax.search.batch_size.controller import (
    BatchSizeError,
    BatchSizeState,
    after_step,
    initial_state,
    is_oom,
    on_oom,
    proposed_size,
    should_probe,
    start_cycle,
)

PAPER = dict(b_min=24, b_mult=8, b_max=128)


def paper(**kw) -> BatchSizeState:
    return initial_state(**PAPER, **kw)


def run(state: BatchSizeState, usages: list[float | None]) -> tuple[BatchSizeState, list[int]]:
    """One after_step per entry; usage is passed only when the controller asks for a probe."""
    sizes = []
    for u in usages:
        state = after_step(state, u if should_probe(state) else None)
        sizes.append(state.b)
    return state, sizes


def probe_every_step(state: BatchSizeState, usages: list[float]) -> list[int]:
    sizes = []
    for u in usages:
        state = after_step(dataclasses.replace(state, steps_since_probe=state.interval - 1), u)
        sizes.append(state.b)
    return sizes


def test_paper_example_sequence():
    # 24@0.30: floor(76)→grid 72, cap 2·24 = 48 | 48@0.5: 91.2→88 (< 96) | 88@0.8: 104.5→104
    # | 104@0.9: 109.8→104, no growth | 104@0.5: 197.6, cap 128 | 128@0.5: at b_max
    assert probe_every_step(paper(), [0.30, 0.5, 0.8, 0.9, 0.5, 0.5]) == [48, 88, 104, 104, 128,
                                                                          128]


def test_rounds_down_to_grid_from_b_min_not_to_multiples():
    s = initial_state(20, 8, 200)
    assert proposed_size(s, 0.95 * 20 / 37) == 36   # 37 → grid 20, 28, 36, 44: 36
    assert proposed_size(s, 0.5) == 36              # 38 → 36, and 2·20 = 40 is off the grid
    assert s.grid_floor(19) == 20 and s.grid_floor(44) == 44 and s.grid_floor(51.9) == 44


def test_floor_is_exact_despite_float_rounding():
    s = initial_state(1, 1, 1000)
    s = dataclasses.replace(s, b=24)
    assert proposed_size(s, 0.30) == 48             # 2·b cap
    s = dataclasses.replace(s, b=44)
    assert proposed_size(s, 0.55) == 76             # 0.95·44/0.55 is 75.999… in floats


def test_b_max_off_grid_means_largest_grid_value_below():
    s = initial_state(24, 8, 100)
    assert s.top == 96
    assert probe_every_step(s, [0.1, 0.1, 0.1]) == [48, 96, 96]


def test_never_shrinks_when_usage_high():
    assert probe_every_step(paper(), [0.5, 2.0, 1.0, float("inf")]) == [40, 40, 40, 40]


def test_probes_only_every_interval():
    s = paper()
    assert [should_probe(s := after_step(s, None)) for _ in range(6)] == [
        False, False, False, True, True, True]
    s, sizes = run(paper(), [0.3] * 10)
    assert sizes == [24, 24, 24, 24, 48, 48, 48, 48, 48, 96]
    # a reading given off-interval is ignored
    assert after_step(paper(), 0.01).b == 24


def test_missing_reading_keeps_interval_open():
    s, sizes = run(paper(interval=2), [None, None, None, 0.3])
    assert sizes == [24, 24, 24, 48]
    assert s.steps_since_probe == 0


def test_start_cycle_resets():
    s = on_oom(after_step(dataclasses.replace(paper(), b=48, steps_since_probe=3), None))
    assert (s.b, s.ceiling) == (40, 48)
    s = start_cycle(s)
    assert (s.b, s.steps_since_probe, s.last_ok, s.ceiling) == (24, 0, None, None)


def test_oom_steps_back_and_ceiling_blocks_regrowth():
    s = paper(interval=1)
    s = after_step(s, 0.3)                      # 24 → 48
    s = after_step(s, 0.5)                      # 48 → 88
    assert s.b == 88 and s.last_ok == 48
    s = on_oom(s)                               # 88 failed
    assert (s.b, s.ceiling, s.last_ok) == (48, 88, 48)
    s = after_step(s, 0.1)                      # wants 96, capped below 88: 80
    assert (s.b, s.last_ok) == (80, 48)
    s = on_oom(s)                               # 80 fails at once: back to 48 again
    assert (s.b, s.ceiling) == (48, 80)
    assert after_step(s, 0.1).b == 72


def test_oom_at_size_that_worked_steps_one_grid_down():
    s = after_step(dataclasses.replace(paper(), b=48), None)
    assert s.last_ok == 48
    s = on_oom(s)
    assert (s.b, s.ceiling, s.last_ok) == (40, 48, None)
    s = on_oom(s)
    assert (s.b, s.ceiling) == (32, 40)


def test_oom_at_b_min_raises():
    with pytest.raises(BatchSizeError, match="config.batch.min"):
        on_oom(paper())


def test_oom_back_off_with_simulated_error():
    class JaxRuntimeError(RuntimeError):
        pass

    s = dataclasses.replace(paper(), b=64, last_ok=40)
    try:
        raise JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1.2GiB")
    except RuntimeError as err:
        assert is_oom(err)
        s = on_oom(s)
    assert (s.b, s.ceiling) == (40, 64)


def test_json_round_trip():
    s = on_oom(dataclasses.replace(paper(interval=3, target=0.9), b=64, last_ok=48,
                                   steps_since_probe=2))
    assert (s.b, s.ceiling, s.interval, s.target) == (48, 64, 3, 0.9)
    text = json.dumps(s.to_json())
    assert BatchSizeState.from_json(json.loads(text)) == s
    assert BatchSizeState.from_json(paper().to_json()) == paper()


@pytest.mark.parametrize("kw, key", [
    (dict(b_min=0, b_mult=8, b_max=128), "config.batch.min"),
    (dict(b_min=24, b_mult=0, b_max=128), "config.batch.step"),
    (dict(b_min=24, b_mult=8, b_max=16), "config.batch.max"),
    (dict(b_min=24.5, b_mult=8, b_max=128), "config.batch.min"),
    (dict(b_min=24, b_mult=8, b_max=128, interval=0), "config.batch.interval"),
    (dict(b_min=24, b_mult=8, b_max=128, target=1.5), "config.batch.target"),
])
def test_validation_names_config_key(kw, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")) as info:
        initial_state(**kw)
    assert "\n" not in str(info.value)


def test_invalid_states_refused():
    with pytest.raises(ValueError, match="grid"):
        BatchSizeState(30, 24, 8, 128)
    with pytest.raises(ValueError, match="ceiling"):
        BatchSizeState(48, 24, 8, 128, ceiling=48)
    with pytest.raises(ValueError, match="usage"):
        proposed_size(paper(), 0.0)
    with pytest.raises(ValueError, match="usage"):
        proposed_size(paper(), float("nan"))


def test_is_oom_recognises_only_xla_memory_errors():
    import jax

    assert is_oom(jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: failed to allocate"))
    assert is_oom(jax.errors.JaxRuntimeError("INTERNAL: Out of memory while trying to allocate"))
    assert not is_oom(jax.errors.JaxRuntimeError("INVALID_ARGUMENT: shape mismatch"))
    assert not is_oom(RuntimeError("RESOURCE_EXHAUSTED"))
    assert not is_oom(ValueError("out of memory"))
    try:
        try:
            raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: oom")
        except RuntimeError as inner:
            raise KeyError("wrapped") from inner
    except KeyError as outer:
        assert is_oom(outer)


def test_predicted_sizes_follow_the_rule_with_linear_memory():
    state = bs.initial_state(24, 8, 128)
    # 0.2 at 24 -> 48 (cap 2b) -> 96 (cap 2b) -> 112 (0.95·24/0.2 = 114, on the grid) -> stays
    assert bs.predicted_sizes(state, 0.2) == [48, 96, 112]
    assert bs.predicted_sizes(state, 0.96) == []
    capped = dataclasses.replace(state, ceiling=60)
    assert bs.predicted_sizes(capped, 0.2) == [48, 56]
