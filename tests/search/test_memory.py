import jax
import jax.numpy as jnp
import numpy as np
import pytest

from prdarts_jax.search.batch_size.memory import (
    CompiledMemoryProbe,
    DeviceStatsProbe,
    compiled_bytes,
    default_budget,
    make_probe,
    system_memory_bytes,
    usage_of,
)

DN = ("NHWC", "HWIO", "NHWC")


def _loss(params, x, y):
    h = x
    for w in params["convs"]:
        h = jax.nn.relu(jax.lax.conv_general_dilated(h, w, (1, 1), "SAME", dimension_numbers=DN))
    logits = jnp.mean(h, axis=(1, 2)) @ params["dense"]
    return jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, y[:, None], 1))


@jax.jit
def _step(params, x, y):
    loss, g = jax.value_and_grad(_loss)(params, x, y)
    return jax.tree.map(lambda p, d: p - 0.1 * d, params, g), loss


def _compiled(b: int):
    """The step compiled for the CPU (its inputs live there), whatever the default backend."""
    params = {"convs": [jnp.zeros((3, 3, 3, 16)), jnp.zeros((3, 3, 16, 16))],
              "dense": jnp.zeros((16, 10))}
    x = jnp.zeros((b, 16, 16, 3))
    y = jnp.zeros((b,), jnp.int32)
    args = jax.device_put((params, x, y), jax.devices("cpu")[0])
    return _step.trace(*args).lower().compile()


@pytest.fixture(scope="module")
def sizes() -> dict[int, int]:
    return {b: compiled_bytes(_compiled(b)) for b in (4, 8, 16, 32, 64)}


def test_compiled_bytes_grow_monotonically_and_linearly(sizes):
    bs = sorted(sizes)
    values = [sizes[b] for b in bs]
    assert all(v > 0 for v in values)
    assert values == sorted(values) and values[-1] > 4 * values[0]
    per_sample = np.diff(values) / np.diff(bs)
    assert per_sample.max() / per_sample.min() < 1.25
    activations = 16 * 16 * 16 * 4
    assert per_sample.min() >= activations   # at least one stored activation per sample


def test_compiled_probe_usage_is_bytes_over_budget(sizes):
    c = _compiled(16)
    probe = CompiledMemoryProbe(budget=4 * sizes[16])
    assert probe.usage([c]) == pytest.approx(0.25)
    assert probe.usage([c, c]) == pytest.approx(0.5)
    assert probe.usage([]) is None
    assert usage_of([c], sizes[16]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        CompiledMemoryProbe(budget=0)


def test_default_budget_is_half_the_machine():
    assert system_memory_bytes() > 2**26
    assert default_budget() == pytest.approx(system_memory_bytes() / 2, rel=1e-6)
    assert CompiledMemoryProbe().budget == default_budget()


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU behaviour")
def test_cpu_has_no_device_stats_so_compiled_probe_is_chosen():
    assert jax.devices()[0].memory_stats() is None
    probe = DeviceStatsProbe()
    assert not probe.available and probe.usage() is None
    chosen = make_probe("cpu", None)
    assert isinstance(chosen, CompiledMemoryProbe) and chosen.name == "compiled"
    assert make_probe("cpu", 12345).budget == 12345


class _FakeDevice:
    """Replays allocator counters, as a GPU's `memory_stats()` would report them."""

    def __init__(self, stats: list[dict]):
        self.stats = list(stats)

    def memory_stats(self) -> dict:
        return self.stats[0] if len(self.stats) == 1 else self.stats.pop(0)


def _stats(in_use: int, peak: int, limit: int = 1000) -> dict:
    return {"bytes_in_use": in_use, "peak_bytes_in_use": peak, "bytes_limit": limit}


def test_device_probe_reads_new_peaks_and_estimates_otherwise():
    dev = _FakeDevice([_stats(100, 900),   # reset at construction: an earlier cycle's peak
                       _stats(100, 950)])  # a new record: this interval's peak
    probe = DeviceStatsProbe(dev)
    assert probe.available
    assert probe.usage() == pytest.approx(0.95)
    c = _compiled(8)
    m = c.memory_analysis()
    transient = m.output_size_in_bytes - m.alias_size_in_bytes + m.temp_size_in_bytes
    dev.stats = [_stats(120, 950, limit=10**8)]   # no record: in use now + transients
    assert probe.usage([c]) == pytest.approx((120 + transient) / 10**8)
    assert probe.usage() == pytest.approx(120 / 10**8)


def test_device_probe_budget_lowers_the_limit():
    probe = DeviceStatsProbe(_FakeDevice([_stats(0, 0), _stats(100, 400)]), budget=800)
    assert probe.usage() == pytest.approx(0.5)
