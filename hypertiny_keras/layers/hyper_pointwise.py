"""HyperPointwise: a 1x1 convolution whose kernel is generated from a per-layer code."""
from __future__ import annotations

import math

import keras
from keras import ops

# Private Keras API, on purpose: `load_model`'s object-sharing scope (the map
# `shared_objects/id_to_obj_map`) is reachable only through `global_state`;
# Keras 3 exports no public accessor for it (`keras.config`, `keras.utils`
# and `keras.saving` have none). `_shared_generator` reads it to restore one
# generator per file; without the scope (e.g. `clone_model`) it is `None`.
from keras.src.backend.common import global_state

from hypertiny_keras import kernel_generators
from hypertiny_keras.layers.generator import PointwiseGenerator


@keras.saving.register_keras_serializable(package="hypertiny")
class HyperPointwise(keras.layers.Layer):
    """Pointwise (1x1) convolution with a generated kernel.

    The kernel is never a trainable tensor of its own. How it is made is a
    kernel generator of `hypertiny_keras.kernel_generators`, chosen with
    `head` (any registered name, `kernel_generators.names()`) and held as
    `kernel_generator`; with the built-in kernel generators the layer stores
    a code `z_l` (shape `(d_z,)`), a head or factors, and a bias, and the
    kernel is

    - `dense`:      `W_l = reshape(g(z_l) @ head)`, head `(d_h, C_out*C_in)`
    - `factorized`: `W_l = reshape(g(z_l) @ B @ head)`, head `(r, C_out*C_in)`,
      `B` `(d_h, r)` shared through the generator,
    - `lowrank`:    `W_l = left @ right`, `(C_out, r)` and `(r, C_in)`, no generator,
    - `kronecker`:  `W_l = sum_k left_k (x) right_k`, no generator,
    - `lowrank_shared`, `kronecker_shared`: the cross-layer forms, whose left
      factor is `reshape(g(z_l) @ bank)`; the bank `(d_h, rows * r)` and the
      right factor are shared by every layer of the same shape (the first
      such layer owns them: `owns_factors`),

    with `W_l` laid out `(C_out, C_in)` row-major, which is the TFLite
    `CONV_2D` filter layout (OHWI with H = W = 1). `g` is a
    `PointwiseGenerator` shared by all generated layers of the model.

    Note the byte cost: a dense head holds `d_h` times, a factorized head `r`
    times, the values of the kernel it generates; `lowrank` and `kronecker`
    hold fewer values than the kernel (see `accounting`).

    Args:
        filters: C_out, number of output channels.
        generator: the shared `PointwiseGenerator`; `None` for kernel
            generators that read none (`lowrank`, `kronecker`).
        head: the kernel generator: a registered name (`"dense"`,
            `"factorized"`, which needs `generator.rank`, `"lowrank"`,
            `"kronecker"`, ... or one registered by the user), its
            `serialize` config (e.g. `{"class_name": "lowrank", "config":
            {"rank": 2}}`), or an instance (`kernel_generators.LowRank(rank=2)`).
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
        generator: PointwiseGenerator | None,
        head: kernel_generators.KernelGeneratorLike = "dense",
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
        if generator is not None and not isinstance(generator, PointwiseGenerator):
            raise TypeError(
                f"generator must be a PointwiseGenerator or None, got {type(generator).__name__}"
            )
        self.kernel_generator = kernel_generators.get(head)
        self.kernel_generator.check(generator)
        self.filters = int(filters)
        self.generator = generator
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
    def head_mode(self) -> str:
        """Name of the layer's kernel generator, e.g. `"dense"` (an alias of `kernel_generator.name`)."""
        return self.kernel_generator.name

    def build(self, input_shape):
        in_channels = input_shape[-1]
        if in_channels is None:
            raise ValueError(f"{self.name}: the channel dimension of the input must be known")
        self.in_channels = int(in_channels)
        if self.generator is not None:
            if not self.generator.built:
                self.generator.build((1, self.generator.code_dim))
            self.generator.add_reader(self)  # the first layer built with it lists it in summaries
        self.kernel_generator.build(self)
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.filters,), initializer=self.bias_initializer
            )
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: self.in_channels})
        self.built = True

    @property
    def layers(self) -> list:
        """`[generator]` for the first layer built with the shared generator, else `[]`.

        So `model.summary(expand_nested=True)` shows the generator once, in a
        row of its own under the first generated layer, with its parameters
        (which no layer's own `count_params` includes).
        """
        return [self.generator] if self.generator is not None and self.generator.is_first_reader(self) else []

    def generated_kernel(self):
        """The generated kernel `W_l`, shape `(filters, C_in)` (TFLite OHWI order, H = W = 1)."""
        return self.kernel_generator.kernel(self)

    def call(self, inputs):
        y = ops.matmul(inputs, ops.transpose(self.generated_kernel()))
        if self.use_bias:
            y = y + self.bias
        return self.activation(y)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def count_params(self) -> int:
        """Values this layer stores itself (e.g. code, head, bias); the shared generator is not included."""
        own = [w for _, w in self.kernel_generator.stored(self)] + ([self.bias] if self.use_bias else [])
        return int(sum(math.prod(w.shape) for w in own))

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "generator": None if self.generator is None else keras.saving.serialize_keras_object(self.generator),
            "head": kernel_generators.serialize(self.kernel_generator),
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
        if config.get("generator") is not None:
            config["generator"] = _shared_generator(config["generator"], config.get("name", "?"))
        return cls(**config)


def _shared_generator(generator_config: dict, layer_name: str) -> PointwiseGenerator:
    """Deserialize a generator once per `keras.saving.load_model` call.

    Every layer's config carries its generator in full. Keras's own
    `shared_object_id` marks only the later copies of a shared object (the
    first layer's config is copied before the second is serialized), so the
    sharing is restored here by generator name, inside the object-sharing
    scope that `load_model` opens. Outside that scope (e.g. `clone_model`)
    each layer gets a generator of its own.

    Raises:
        ValueError: when two layers carry the same generator name with
            different settings (the file was edited or assembled from
            different models), naming both layers.
    """
    shared = global_state.get_global_attribute("shared_objects/id_to_obj_map")
    config = _without_sharing_ids(generator_config)
    key = ("hypertiny.PointwiseGenerator", config["config"]["name"])
    if shared is not None and key in shared:
        generator, first_config, first_layer = shared[key]
        if config != first_config:
            changed = sorted(
                k for k in set(config["config"]) | set(first_config["config"])
                if config["config"].get(k) != first_config["config"].get(k)
            )
            raise ValueError(
                f"layers {first_layer!r} and {layer_name!r} share generator {key[1]!r} but their saved "
                f"generator configs differ in {', '.join(changed) or 'class'}; one model has one shared generator"
            )
        return generator
    generator = keras.saving.deserialize_keras_object(config)
    if shared is not None:
        shared[key] = (generator, config, layer_name)
    return generator


def _without_sharing_ids(config):
    """`config` with Keras's `shared_object_id` entries removed at every depth."""
    if isinstance(config, dict):
        return {k: _without_sharing_ids(v) for k, v in config.items() if k != "shared_object_id"}
    if isinstance(config, list):
        return [_without_sharing_ids(v) for v in config]
    return config
