"""HyperPointwise: a 1x1 convolution whose kernel is generated from a per-layer code."""
from __future__ import annotations

import math

import keras
from keras import ops
from keras.src.backend.common import global_state

from hypertiny_keras.layers.generator import PointwiseGenerator

#: Head modes: `dense` stores H_l (d_h x C_out*C_in, Eq. 2); `factorized`
#: stores A_l (r x C_out*C_in) and uses the generator's shared basis B (Eq. 3).
HEAD_MODES = ("dense", "factorized")


@keras.saving.register_keras_serializable(package="hypertiny")
class HyperPointwise(keras.layers.Layer):
    """Pointwise (1x1) convolution with a generated kernel.

    The kernel is never a trainable tensor of its own. The layer stores a code
    `z_l` (shape `(d_z,)`), a head and a bias; the kernel is

    - `dense`:      `W_l = reshape(g(z_l) @ head)`, head `(d_h, C_out*C_in)`
    - `factorized`: `W_l = reshape(g(z_l) @ B @ head)`, head `(r, C_out*C_in)`,
      `B` `(d_h, r)` shared through the generator,

    with `W_l` laid out `(C_out, C_in)` row-major, which is the TFLite
    `CONV_2D` filter layout (OHWI with H = W = 1). `g` is a
    `PointwiseGenerator` shared by all generated layers of the model.

    Note the byte cost: a dense head holds `d_h` times, a factorized head `r`
    times, the values of the kernel it generates (see `accounting`).

    Args:
        filters: C_out, number of output channels.
        generator: the shared `PointwiseGenerator`.
        head: `"dense"` or `"factorized"` (needs `generator.rank`).
        activation: activation applied to the output, as in `Conv1D`.
        use_bias: whether the layer adds a bias of shape `(filters,)`.
        code_initializer: initializer of the code `z_l`.
        head_initializer: initializer of the head; `None` draws it from a
            unit normal and rescales it so that the generated kernel at
            initialisation has the Glorot standard deviation
            `sqrt(2 / (C_in + C_out))`.
        bias_initializer: initializer of the bias.

    Input shape: `(batch, ..., C_in)` channels-last (`(batch, steps, C_in)`
    for 1-D, `(batch, H, W, C_in)` for 2-D). Output shape:
    `(batch, ..., filters)`.
    """

    def __init__(
        self,
        filters: int,
        generator: PointwiseGenerator,
        head: str = "dense",
        activation=None,
        use_bias: bool = True,
        code_initializer="random_normal_unit",
        head_initializer=None,
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(filters) < 1:
            raise ValueError(f"filters must be >= 1, got {filters}")
        if not isinstance(generator, PointwiseGenerator):
            raise TypeError(
                f"generator must be a PointwiseGenerator, got {type(generator).__name__}"
            )
        if head not in HEAD_MODES:
            raise ValueError(f"head must be one of {HEAD_MODES}, got {head!r}")
        if head == "factorized" and generator.rank is None:
            raise ValueError(
                "head='factorized' needs a generator with a shared basis: "
                "PointwiseGenerator(..., rank=r)"
            )
        self.filters = int(filters)
        self.generator = generator
        self.head_mode = head
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.code_initializer = (
            keras.initializers.RandomNormal(stddev=1.0)
            if code_initializer == "random_normal_unit"
            else keras.initializers.get(code_initializer)
        )
        self.head_initializer = (
            None if head_initializer is None else keras.initializers.get(head_initializer)
        )
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    @property
    def head_rows(self) -> int:
        """Length of the vector the head consumes: d_h (dense) or r (factorized)."""
        if self.head_mode == "dense":
            return self.generator.hidden_dim
        return self.generator.rank

    def build(self, input_shape):
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ValueError(f"{self.name}: the channel dimension of the input must be known")
        self.in_channels = int(in_channels)
        if not self.generator.built:
            self.generator.build((1, self.generator.code_dim))
        self.code = self.add_weight(
            name="code", shape=(self.generator.code_dim,), initializer=self.code_initializer
        )
        self.head = self.add_weight(
            name="head",
            shape=(self.head_rows, self.filters * self.in_channels),
            initializer=self.head_initializer or keras.initializers.RandomNormal(stddev=1.0),
        )
        if self.head_initializer is None:
            target = math.sqrt(2.0 / (self.in_channels + self.filters))
            norm = float(ops.convert_to_numpy(ops.norm(self.head_input())))
            self.head.assign(self.head * (target / max(norm, 1e-6)))
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.filters,), initializer=self.bias_initializer
            )
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: self.in_channels})
        self.built = True

    def head_input(self):
        """What the head multiplies: `g(z_l)` (dense) or `g(z_l) @ B` (factorized), shape `(1, rows)`."""
        h = self.generator(ops.expand_dims(self.code, 0))
        if self.head_mode == "factorized":
            h = ops.matmul(h, self.generator.basis)
        return h

    def generated_kernel(self):
        """The generated kernel `W_l`, shape `(filters, C_in)` (TFLite OHWI order, H = W = 1)."""
        return ops.reshape(ops.matmul(self.head_input(), self.head), (self.filters, self.in_channels))

    def call(self, inputs):
        y = ops.matmul(inputs, ops.transpose(self.generated_kernel()))
        if self.use_bias:
            y = y + self.bias
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def count_params(self) -> int:
        """Values this layer stores itself (code, head, bias); the shared generator is not included."""
        own = [self.code, self.head] + ([self.bias] if self.use_bias else [])
        return int(sum(math.prod(w.shape) for w in own))

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "generator": keras.saving.serialize_keras_object(self.generator),
            "head": self.head_mode,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "code_initializer": keras.initializers.serialize(self.code_initializer),
            "head_initializer": (
                None
                if self.head_initializer is None
                else keras.initializers.serialize(self.head_initializer)
            ),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["generator"] = _shared_generator(config["generator"])
        return cls(**config)


def _shared_generator(generator_config: dict) -> PointwiseGenerator:
    """Deserialize a generator once per `keras.saving.load_model` call.

    Every layer's config carries its generator in full. Keras's own
    `shared_object_id` marks only the later copies of a shared object (the
    first layer's config is copied before the second is serialized), so the
    sharing is restored here by generator name, inside the object-sharing
    scope that `load_model` opens. Outside that scope (e.g. `clone_model`)
    each layer gets a generator of its own.
    """
    shared = global_state.get_global_attribute("shared_objects/id_to_obj_map")
    key = ("hypertiny.PointwiseGenerator", generator_config["config"]["name"])
    if shared is not None and key in shared:
        return shared[key]
    config = {k: v for k, v in generator_config.items() if k != "shared_object_id"}
    generator = keras.saving.deserialize_keras_object(config)
    if shared is not None:
        shared[key] = generator
    return generator
