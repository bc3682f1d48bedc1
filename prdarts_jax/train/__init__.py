"""Retraining and evaluating a genotype: config, programs, loop (`python -m prdarts_jax.train`)."""
