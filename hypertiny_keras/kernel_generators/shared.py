"""Cross-layer factor kernels: the shared generator g(z_l) mixes a factor bank shared by all layers of a shape.

`lowrank_shared` and `kronecker_shared` are the cross-layer forms of
`lowrank` and `kronecker`. Every generated layer of one shape
`(C_out, C_in)` (and rank) reads the same two tensors:

- a bank `(d_h, rows * r)` from which g mixes the layer's left factor,
  `left_l = reshape(g(z_l) @ bank, (rows, r))`, and
- a right factor `(cols, r)`,

so a layer stores only its code z_l (d_z values), and codes and generator
keep the meaning they have in the paper. `W_l` is `left_l @ right.T` moved
into the kernel layout of the per-layer kernel generator. The bank holds `d_h` left
factors: it stores fewer values than per-layer factors only when a shape
has more generated layers than `d_h`, i.e. with a small generator
(`hidden_dim` 2-4) or many layers.

Init subgraph per layer: FULLY_CONNECTED(z_l, g) -> h_l,
FULLY_CONNECTED(h_l, bank) -> left_l, FULLY_CONNECTED(left_l, right) -> M_l,
then the per-layer kernel generator's RESHAPE/TRANSPOSE. The bank and the right factor
are written once per shape. As for the per-layer kernel generators, the device kernel
is what the int8 arithmetic gives (`solves_target` is False).
"""
from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from hypertiny_keras.kernel_generators.base import KernelGenerator, factor_std, register
from hypertiny_keras.kernel_generators.kronecker import Kronecker
from hypertiny_keras.kernel_generators.lowrank import LowRank
from hypertiny_keras.kernel_generators.product import FactorProduct


class SharedFactors(FactorProduct):
    """A `FactorProduct` whose left factor is mixed by the shared generator from a bank shared per shape.

    The first layer of a shape to be built owns the bank and the right
    factor (they are its weights, named `bank` and `right`, and its
    `stored` lists them); the later ones track the same variables, so a
    `.keras` file restores the sharing, and list only their code. Which
    layer owns them is kept by the shared generator the layers read
    (`PointwiseGenerator.shared`), not by this kernel generator, which
    stays stateless. Subclasses are the cross-layer forms of a per-layer
    kernel generator, whose geometry (`factor_shapes`, `device_factors`,
    `device_layout`) they take.
    """

    uses_generator: ClassVar[bool] = True

    def matrix_shape(self, layer) -> tuple[int, int]:
        """(rows, cols) of the device product `M = left @ right.T` of `layer`."""
        left_shape, right_shape = self.factor_shapes(layer)
        left, right = self.device_factors(np.zeros(left_shape), np.zeros(right_shape), layer)
        return left.shape[0], right.shape[0]

    def build(self, layer) -> None:
        import keras

        generator = layer.generator
        layer.code = layer.add_weight(name="code", shape=(generator.code_dim,), initializer=layer.code_initializer)
        rows, cols = self.matrix_shape(layer)

        def make():
            # left sums d_h bank values times h (~unit): the bank's spread is the factor's over sqrt(d_h).
            spread = factor_std(layer, self.rank)
            bank_init = layer.head_initializer or keras.initializers.RandomNormal(
                stddev=spread / math.sqrt(generator.hidden_dim)
            )
            right_init = layer.head_initializer or keras.initializers.RandomNormal(stddev=spread)
            bank = layer.add_weight(name="bank", shape=(generator.hidden_dim, rows * self.rank), initializer=bank_init)
            right = layer.add_weight(name="right", shape=(cols, self.rank), initializer=right_init)
            return bank, right

        key = (self.name, self.rank, layer.filters, layer.in_channels)
        (layer.bank, layer.right), layer.owns_factors = generator.shared(key, make)

    def kernel(self, layer):
        from keras import ops

        h = layer.generator(ops.expand_dims(layer.code, 0))
        left = ops.reshape(ops.matmul(h, layer.bank), (-1, self.rank))  # (rows, r): the bank is (d_h, rows * r)
        return self.arrange(ops.matmul(left, ops.transpose(layer.right)), layer)

    def stored(self, layer):
        own = [("codes", layer.code)]
        return own + ([("generator", layer.bank), ("heads", layer.right)] if layer.owns_factors else [])

    def fit(self, layer, kernel: np.ndarray, steps: int = 300) -> float:
        """Gradient steps on the layer's `stored` weights (TensorFlow-only, `KernelGenerator.fit`).

        The owner of a shape fits code, bank and right factor, the others their code.

        Fitting layers in model order (as `hyperize` does) fits the shared
        factors to the first layer of each shape; later layers of the shape
        can only move along the bank, so their error is larger.
        """
        return KernelGenerator.fit(self, layer, kernel, steps)

    def emit(self, emitter, layer, target, value_scales):
        from keras import ops

        h = emitter.generator_output(layer)
        left = emitter.fully_connected(layer.bank.path, h, layer.bank)
        right = emitter.constant(layer.right.path, np.asarray(ops.convert_to_numpy(layer.right), np.float64))
        return emitter.product(layer.name, left, right, self.device_layout(layer))


@register
class LowRankShared(SharedFactors, LowRank):
    """`lowrank` with `U_l = reshape(g(z_l) @ bank)` `(C_out, r)` and one `V` `(r, C_in)` per shape.

    Stores d_z values per layer, and `d_h * C_out * r + C_in * r` per shape.
    """

    name = "lowrank_shared"


@register
class KroneckerShared(SharedFactors, Kronecker):
    """`kronecker` with the `A_k` of each layer mixed by g from a bank, and the `B_k` shared per shape.

    Stores d_z values per layer, and `d_h * r * a_out * a_in + r * b_out * b_in` per shape.
    """

    name = "kronecker_shared"
