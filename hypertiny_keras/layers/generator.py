"""The shared micro-MLP generator g of HyperTinyPW (Eq. 1 and the shared basis B of Eq. 3)."""
from __future__ import annotations

import weakref
from typing import Callable, Hashable

import keras
from keras import ops

from hypertiny_keras.layers import activations


class _Readers:
    """What the layers reading one generator share that is not the generator's own.

    A plain object, not a dict or list, so that Keras does not track the
    variables it holds as weights of the generator (they are weights of the
    layers that made them).
    """

    def __init__(self):
        #: key -> what `PointwiseGenerator.shared` made for it.
        self.shared: dict = {}
        #: weak reference to the first layer built reading the generator.
        self.first: weakref.ref | None = None


@keras.saving.register_keras_serializable(package="hypertiny")
class PointwiseGenerator(keras.layers.Layer):
    """Shared micro-MLP that maps a layer code to a hidden vector.

    `h = activation(z @ kernel + bias)` (Eq. 1 of the paper). One generator
    is shared by every `HyperPointwise` layer of a model; its weights are
    stored once.

    When `rank` is set, the generator also owns the shared basis
    `B` (shape `(hidden_dim, rank)`) that factorized heads use
    (`H_l = A_l B`, Eq. 3): a factorized layer computes `u_l = h_l @ basis`
    and then its own `A_l` maps `u_l` to the kernel.

    Args:
        code_dim: d_z, length of each layer code.
        hidden_dim: d_h, length of the generated hidden vector.
        activation: one of `"relu"`, `"relu6"`, `"linear"` (those fuse into
            TFLite `FULLY_CONNECTED`, which is how the device runs g).
        rank: r, rank of the shared basis for factorized heads; `None` for
            none (dense heads only).
        kernel_initializer: initializer of the `(code_dim, hidden_dim)` kernel.
        bias_initializer: initializer of the `(hidden_dim,)` bias.
        basis_initializer: initializer of the `(hidden_dim, rank)` basis.

    Input shape: `(n, code_dim)`. Output shape: `(n, hidden_dim)`.
    """

    def __init__(
        self,
        code_dim: int = 4,
        hidden_dim: int = 16,
        activation: str = "relu",
        rank: int | None = None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        basis_initializer="orthogonal",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(code_dim) < 1 or int(hidden_dim) < 1:
            raise ValueError(
                f"code_dim and hidden_dim must be >= 1, got {code_dim}, {hidden_dim}"
            )
        activations.get(activation)  # raises ValueError naming the choices
        if rank is not None and int(rank) < 1:
            raise ValueError(f"rank must be None or >= 1, got {rank}")
        self.code_dim = int(code_dim)
        self.hidden_dim = int(hidden_dim)
        self.activation = activation
        self.rank = None if rank is None else int(rank)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.basis_initializer = keras.initializers.get(basis_initializer)
        self._readers = _Readers()

    def shared(self, key: Hashable, make: Callable[[], object]) -> tuple[object, bool]:
        """What the layers reading this generator share under `key`.

        The first call for a `key` stores and returns `make()` (e.g. the
        variables a `HyperPointwise` layer has just added to itself); later
        calls return that same value. The state lives on this generator,
        i.e. in the model that holds it, and is rebuilt by building the
        layers again (so a `.keras` file restores it).

        Returns:
            (the shared value, whether this call made it).
        """
        made = key not in self._readers.shared
        if made:
            self._readers.shared[key] = make()
        return self._readers.shared[key], made

    def add_reader(self, layer: keras.layers.Layer) -> None:
        """Notes that `layer` reads this generator; the first layer noted (while it exists) lists it in summaries."""
        first = self._readers.first
        if first is None or first() is None:
            self._readers.first = weakref.ref(layer)

    def is_first_reader(self, layer: keras.layers.Layer) -> bool:
        """Whether `layer` is the first layer noted by `add_reader` (the one whose `layers` lists this generator).

        A method, not a property returning the layer: Keras's saving walks
        every attribute of a layer, and would walk from the generator into
        the layer (a cycle).
        """
        first = self._readers.first
        return first is not None and first() is layer

    def build(self, input_shape=None):
        if input_shape is not None and input_shape[-1] != self.code_dim:
            raise ValueError(
                f"{self.name}: codes have {input_shape[-1]} values, expected code_dim={self.code_dim}"
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.code_dim, self.hidden_dim),
            initializer=self.kernel_initializer,
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.hidden_dim,), initializer=self.bias_initializer
        )
        self.basis = None
        if self.rank is not None:
            self.basis = self.add_weight(
                name="basis",
                shape=(self.hidden_dim, self.rank),
                initializer=self.basis_initializer,
            )
        self.built = True

    def call(self, codes):
        return activations.get(self.activation).keras(ops.matmul(codes, self.kernel) + self.bias)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.hidden_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "code_dim": self.code_dim,
            "hidden_dim": self.hidden_dim,
            "activation": self.activation,
            "rank": self.rank,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "basis_initializer": keras.initializers.serialize(self.basis_initializer),
        }
