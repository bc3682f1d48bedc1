"""What the supernet and the final network share around their cells: the stem, and where the
two reduction cells sit (at 1/3 and 2/3 of the depth, SPEC §3)."""

from __future__ import annotations

import flax.linen as nn
import jax

from prdarts_jax.models.ops import BatchNorm, uniform_fan_in


def reduction_indices(layers: int) -> tuple[int, ...]:
    return (layers // 3, 2 * layers // 3)


class Stem(nn.Module):
    """3×3 conv (3 → c_out, no bias) + affine BN."""

    c_out: int

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        c_in = x.shape[-1]
        w = self.param("conv", uniform_fan_in(9 * c_in), (3, 3, c_in, self.c_out))
        y = jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return BatchNorm(True, name="bn")(y, train)
