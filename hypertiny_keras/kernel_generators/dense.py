"""`dense`: the paper's per-layer head, `W_l = reshape(g(z_l) @ H_l)` (Eq. 2)."""
from __future__ import annotations

from hypertiny_keras.kernel_generators.base import LinearHead, register


@register
class DenseHead(LinearHead):
    """Head `H_l` `(d_h, C_out * C_in)`: it stores d_h values per kernel value it makes.

    Init subgraph: FULLY_CONNECTED(z_l, g) -> h_l, FULLY_CONNECTED(h_l, H_l) -> w_l.
    """

    name = "dense"

    def rows(self, generator) -> int:
        return generator.hidden_dim

    def head_input(self, layer):
        from keras import ops

        return layer.generator(ops.expand_dims(layer.code, 0))

    def emit(self, emitter, layer, target, value_scales):
        h = emitter.generator_output(layer)
        return (*emitter.exact_fully_connected(layer.name, h, layer.head, target, value_scales), None)
