"""Which formulation of each backend-sensitive primitive the models run with: the one switch.

The models are written as the paper's math; `kernels.primitives` holds the interchangeable
formulations (XLA's native ops, shifted slices, native CPU kernels) and picks the fastest per
backend. Callers above the models choose here, never in `kernels/` directly.
"""

from prdarts_jax.kernels.primitives import IMPLS, default_impl, use_impls

__all__ = ["IMPLS", "default_impl", "use_impls"]
