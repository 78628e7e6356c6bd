"""`lowrank`: `W_l = U_l V_l`, a rank-r product of two per-layer factors."""
from __future__ import annotations

import numpy as np

from hypertiny_keras.kernel_generators.base import register
from hypertiny_keras.kernel_generators.product import FactorProduct


@register
class LowRank(FactorProduct):
    """`left` = U `(C_out, r)`, `right` = V `(r, C_in)`; stores `r * (C_out + C_in)` values.

    Init subgraph: FULLY_CONNECTED(U, V^T) -> W `(C_out, C_in)`, RESHAPE.
    The same kernel deployed with no synthesis at all is two stored 1x1
    convolutions C_in -> r -> C_out (`models.stored_pw_twin(pw_rank=r)`).
    """

    name = "lowrank"

    def factor_shapes(self, layer):
        return (layer.filters, self.rank), (self.rank, layer.in_channels)

    def kernel(self, layer):
        from keras import ops

        return ops.matmul(layer.left, layer.right)

    def device_factors(self, left, right, layer):
        return left, np.ascontiguousarray(right.T)

    def weights_from_device(self, left_matrix, right_matrix, layer):
        return left_matrix, right_matrix.T
