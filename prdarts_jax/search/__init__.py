"""The PR-DARTS search: config, per-edge pools, the cycle boundary, bilevel step programs, the
variable batch size, search statistics and the loop over cycles (`python -m prdarts_jax.search`)."""
