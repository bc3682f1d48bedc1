"""The config's relaxation of the mixed op, per cycle: which programs (softmax or gumbel, hard
or soft) and the τ argument the gumbel programs' training steps take (`schedule.tau`)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from prdarts_jax.models.relaxation import SOFTMAX, Relaxation


def relaxation_of(config: ml_collections.ConfigDict) -> Relaxation:
    """The static relaxation of the search's step programs (part of their cache key)."""
    if config.relaxation == "softmax":
        return SOFTMAX
    return Relaxation(config.relaxation, bool(config.gumbel_hard))


def cycle_tau(config: ml_collections.ConfigDict, cycle: int) -> float | None:
    """τ of `cycle` (1-based): `schedule.tau[cycle - 1]`, 1.0 when the schedule is empty;
    None for the softmax relaxation, which has no temperature."""
    if not relaxation_of(config).stochastic:
        return None
    taus = tuple(config.schedule.tau)
    return float(taus[cycle - 1]) if taus else 1.0


def tau_args(config: ml_collections.ConfigDict, cycle: int) -> tuple[jax.Array, ...]:
    """The gradient programs' trailing arguments in `cycle`: (τ,) as a traced float32 scalar
    (one program serves every τ), or () for softmax (today's signature)."""
    tau = cycle_tau(config, cycle)
    return () if tau is None else (jnp.asarray(tau, jnp.float32),)
