"""Kernels that are a product of two small per-layer factors, made by one int8 FULLY_CONNECTED on the device."""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from hypertiny_keras.kernel_generators.base import KernelGenerator, factor_std, relative_error


class FactorProduct(KernelGenerator):
    """`W_l` from per-layer factors `left` and `right` of rank `r`, stored instead of the kernel.

    The device computes `M = left_matrix @ right_matrix.T` with one int8
    FULLY_CONNECTED (`left_matrix` `(rows, r)` as its input, `right_matrix`
    `(cols, r)` as its weights), then moves `M` `(rows, cols)` into the
    `(C_out, C_in)` kernel layout (`device_layout`: RESHAPE/TRANSPOSE, which
    are lossless). The layer stores `r * (rows + cols)` values instead of
    `C_out * C_in`. No shared generator is read, and there is no free value
    per kernel value to aim at the converter's per-channel filter, so the
    device kernel is what the int8 arithmetic gives (one scale per layer);
    the boot export builds its frozen equivalent from exactly that kernel.

    Subclasses give the weight shapes (`factor_shapes`), the float kernel
    from the factors (`kernel`), the two matrices (`device_factors`) and
    the layout of `M` (`device_layout`).
    """

    uses_generator: ClassVar[bool] = False
    solves_target: ClassVar[bool] = False

    def __init__(self, rank: int = 4):
        if int(rank) < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        self.rank = int(rank)

    def get_config(self) -> dict:
        return {"rank": self.rank}

    def factor_shapes(self, layer) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Shapes of the `left` and `right` weights of `layer`."""
        raise NotImplementedError

    def device_factors(self, left: np.ndarray, right: np.ndarray, layer) -> tuple[np.ndarray, np.ndarray]:
        """(left_matrix `(rows, r)`, right_matrix `(cols, r)`) from the float factors."""
        raise NotImplementedError

    def device_layout(self, layer) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        """(shape, permutation) that turns `M` `(rows, cols)` into `(C_out, C_in)`; `None`: `M` is it."""
        return None

    def arrange(self, matrix, layer):
        """The kernel `(C_out, C_in)` (Keras ops) from the device product `M` `(rows, cols)` (`device_layout`)."""
        from keras import ops

        layout = self.device_layout(layer)
        if layout is not None:
            shape, permutation = layout
            matrix = ops.transpose(ops.reshape(matrix, shape), permutation)
        return ops.reshape(matrix, (layer.filters, layer.in_channels))

    def weights_from_device(
        self, left_matrix: np.ndarray, right_matrix: np.ndarray, layer
    ) -> tuple[np.ndarray, np.ndarray]:
        """The `left` and `right` weights whose `device_factors` are `left_matrix` `(rows, r)`, `right_matrix`
        `(cols, r)`."""
        raise NotImplementedError

    def fit(self, layer, kernel: np.ndarray, steps: int = 300) -> float:
        """Optimal in the Frobenius norm: the rank-r truncated SVD of `M`, the kernel in the device's layout.

        `M` is `(rows, cols)`, the kernel moved back by `device_layout`.

        The singular values are split evenly between the two factors
        (`U sqrt(S)`, `V sqrt(S)`), which keeps their int8 ranges alike.
        """
        kernel = np.asarray(kernel, np.float64)
        layout = self.device_layout(layer)
        if layout is None:
            matrix = kernel
        else:
            shape, permutation = layout
            moved = kernel.reshape([shape[p] for p in permutation]).transpose(np.argsort(permutation))
            matrix = moved.reshape(shape[0] * shape[1], shape[2] * shape[3])
        u, s, vt = np.linalg.svd(matrix, full_matrices=False)
        k = min(self.rank, s.size)
        left_matrix = np.zeros((matrix.shape[0], self.rank))
        right_matrix = np.zeros((matrix.shape[1], self.rank))
        left_matrix[:, :k] = u[:, :k] * np.sqrt(s[:k])
        right_matrix[:, :k] = vt[:k].T * np.sqrt(s[:k])
        left, right = self.weights_from_device(left_matrix, right_matrix, layer)
        layer.left.assign(left.astype(np.float32))
        layer.right.assign(right.astype(np.float32))
        return relative_error(self.kernel(layer), kernel)

    def build(self, layer) -> None:
        import keras

        left_shape, right_shape = self.factor_shapes(layer)
        initializer = layer.head_initializer or keras.initializers.RandomNormal(stddev=factor_std(layer, self.rank))
        layer.left = layer.add_weight(name="left", shape=left_shape, initializer=initializer)
        layer.right = layer.add_weight(name="right", shape=right_shape, initializer=initializer)

    def stored(self, layer):
        return [("heads", layer.left), ("heads", layer.right)]

    def emit(self, emitter, layer, target, value_scales):
        from keras import ops

        left = np.asarray(ops.convert_to_numpy(layer.left), np.float64)
        right = np.asarray(ops.convert_to_numpy(layer.right), np.float64)
        left_matrix, right_matrix = self.device_factors(left, right, layer)
        return emitter.factor_product(layer.name, left_matrix, right_matrix, self.device_layout(layer))
