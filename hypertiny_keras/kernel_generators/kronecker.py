"""`kronecker`: `W_l = sum_k A_k (x) B_k`, a sum of r Kronecker products of small per-layer factors."""
from __future__ import annotations

import math

import numpy as np

from hypertiny_keras.kernel_generators.base import register
from hypertiny_keras.kernel_generators.product import FactorProduct


def split(channels: int) -> tuple[int, int]:
    """`(a, b)` with `a * b == channels`: `a` the largest divisor of `channels` at most its square root."""
    a = max(d for d in range(1, math.isqrt(channels) + 1) if channels % d == 0)
    return a, channels // a


@register
class Kronecker(FactorProduct):
    """`left` = A `(r, a_out, a_in)`, `right` = B `(r, b_out, b_in)`, `C_out = a_out b_out`, `C_in = a_in b_in`.

    Factor shapes come from `split` of C_out and C_in (64 -> 8 x 8; a prime
    splits as 1 x p). Stores `r * (a_out a_in + b_out b_in)` values. Init
    subgraph: FULLY_CONNECTED(A as `(a_out a_in, r)`, B as `(b_out b_in, r)`)
    -> M, RESHAPE `(a_out, a_in, b_out, b_in)`, TRANSPOSE (0, 2, 1, 3),
    RESHAPE to the kernel (the transpose is left out when it moves nothing).
    """

    name = "kronecker"

    def _splits(self, layer) -> tuple[int, int, int, int]:
        a_out, b_out = split(layer.filters)
        a_in, b_in = split(layer.in_channels)
        return a_out, a_in, b_out, b_in

    def factor_shapes(self, layer):
        a_out, a_in, b_out, b_in = self._splits(layer)
        return (self.rank, a_out, a_in), (self.rank, b_out, b_in)

    def kernel(self, layer):
        from keras import ops

        a_out, a_in, b_out, b_in = self._splits(layer)
        w = ops.einsum("kab,kcd->acbd", layer.left, layer.right)  # (a_out, b_out, a_in, b_in)
        return ops.reshape(w, (layer.filters, layer.in_channels))

    def device_factors(self, left, right, layer):
        return (np.ascontiguousarray(left.reshape(self.rank, -1).T),
                np.ascontiguousarray(right.reshape(self.rank, -1).T))

    def weights_from_device(self, left_matrix, right_matrix, layer):
        a_out, a_in, b_out, b_in = self._splits(layer)
        return left_matrix.T.reshape(self.rank, a_out, a_in), right_matrix.T.reshape(self.rank, b_out, b_in)

    def device_layout(self, layer):
        a_out, a_in, b_out, b_in = self._splits(layer)
        if a_in == 1 or b_out == 1:  # (a_out, a_in, b_out, b_in) -> (a_out, b_out, a_in, b_in) moves nothing
            return None
        return (a_out, a_in, b_out, b_in), (0, 2, 1, 3)
