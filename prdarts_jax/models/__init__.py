"""Flax modules: candidate ops, the supernet, the final network; morphisms as pure functions
(parent variables -> child variables)."""
