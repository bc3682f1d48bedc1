"""prdarts_jax: PR-DARTS (Prune and Replace NAS, arXiv 1906.07528) in JAX/Flax."""

__version__ = "0.1.0"
