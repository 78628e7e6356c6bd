"""`factorized`: `W_l = reshape(g(z_l) @ B @ A_l)` with a basis B shared by all layers (Eq. 3)."""
from __future__ import annotations

from hypertiny_keras.kernel_generators.base import LinearHead, register


@register
class FactorizedHead(LinearHead):
    """Head `A_l` `(r, C_out * C_in)` after the generator's shared basis `B` `(d_h, r)`.

    Needs `PointwiseGenerator(rank=r)`. Init subgraph: FULLY_CONNECTED(z_l, g)
    -> h_l, FULLY_CONNECTED(h_l, B) -> u_l, FULLY_CONNECTED(u_l, A_l) -> w_l.
    """

    name = "factorized"
    uses_basis = True

    def check(self, generator) -> None:
        super().check(generator)
        if generator.rank is None:
            raise ValueError(
                "head='factorized' needs a generator with a shared basis: PointwiseGenerator(..., rank=r)"
            )

    def rows(self, generator) -> int:
        return generator.rank

    def head_input(self, layer):
        from keras import ops

        return ops.matmul(layer.generator(ops.expand_dims(layer.code, 0)), layer.generator.basis)

    def emit(self, emitter, layer, target, value_scales):
        h = emitter.generator_output(layer)
        u = emitter.fully_connected("generator/basis", h, layer.generator.basis)
        return (*emitter.exact_fully_connected(layer.name, u, layer.head, target, value_scales), None)
