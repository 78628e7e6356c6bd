"""The kernel-generator interface and its registry."""
from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

# keras is imported inside the methods: importing keras registers this
# package's layers, which import this module (no import cycle at start-up).

_REGISTRY: dict[str, type["KernelGenerator"]] = {}


def register(cls: type["KernelGenerator"]) -> type["KernelGenerator"]:
    """Class decorator: makes `cls` available to `get` under `cls.name`."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} needs a class attribute `name`")
    _REGISTRY[cls.name] = cls
    return cls


def names() -> tuple[str, ...]:
    """Names of the registered kernel generators."""
    return tuple(_REGISTRY)


def get(identifier) -> "KernelGenerator":
    """A kernel generator from a name, a `serialize` result, or an instance.

    Raises:
        ValueError: for an unknown name or a malformed config.
    """
    if isinstance(identifier, KernelGenerator):
        return identifier
    if isinstance(identifier, dict):
        name, config = identifier.get("class_name"), identifier.get("config", {})
    else:
        name, config = identifier, {}
    if name not in _REGISTRY:
        raise ValueError(f"head must be one of {names()}, got {identifier!r}")
    try:
        return _REGISTRY[name](**config)
    except TypeError as error:
        raise ValueError(f"bad config for kernel generator {name!r}: {error}") from None


def with_rank(identifier, rank: int | None) -> "KernelGenerator":
    """`get(identifier)`, with its own `rank` setting replaced by `rank` when it has one and `rank` is set.

    Model builders take one `rank` argument: the shared basis's rank for
    `factorized`, the factors' rank for `lowrank`/`kronecker`.
    """
    kind = get(identifier)
    config = kind.get_config()
    if rank is None or "rank" not in config:
        return kind
    return get({"class_name": kind.name, "config": {**config, "rank": int(rank)}})


def serialize(kind: "KernelGenerator") -> str | dict:
    """The name of `kind`, or `{"class_name": name, "config": ...}` when it has settings."""
    config = kind.get_config()
    return kind.name if not config else {"class_name": kind.name, "config": config}


class KernelGenerator:
    """How a `HyperPointwise` layer makes its kernel `W_l` `(C_out, C_in)`.

    A kind keeps no state of its own (like a Keras initializer): its weights
    live on the layer it builds, so `.keras` files store them as layer
    weights. Subclasses set `name` and implement every method.
    """

    name: ClassVar[str] = ""
    #: Whether the kind reads the shared `PointwiseGenerator` g.
    uses_generator: ClassVar[bool] = True
    #: Whether the kind reads the generator's shared basis B (`PointwiseGenerator(rank=r)`).
    uses_basis: ClassVar[bool] = False
    #: Whether `emit` solves for any int8 target (one free stored value per kernel
    #: value), so that the boot file reproduces the converter's own per-channel
    #: filter. Kinds that store fewer values than the kernel cannot: their device
    #: kernel is what the int8 arithmetic gives, and the frozen equivalent is
    #: built from it.
    solves_target: ClassVar[bool] = True

    def check(self, generator) -> None:
        """Raises ValueError when `generator` cannot serve this kind (`None`: the layer has none)."""
        if self.uses_generator and generator is None:
            raise ValueError(f"head={self.name!r} needs a shared PointwiseGenerator (generator=None given)")

    def build(self, layer) -> None:
        """Adds the kind's weights to `layer` (`layer.filters`, `layer.in_channels` are set)."""
        raise NotImplementedError

    def kernel(self, layer):
        """The float kernel of `layer`, a Keras tensor `(filters, in_channels)`."""
        raise NotImplementedError

    def stored(self, layer) -> list[tuple[str, object]]:
        """(role, variable) of what the layer stores for its kernel (its bias excluded)."""
        raise NotImplementedError

    def emit(self, emitter, layer, target: np.ndarray, value_scales: np.ndarray):
        """Writes the init-subgraph operators that synthesise the int8 kernel of `layer`.

        Args:
            emitter: the `export.rewrite.Emitter` of the init subgraph.
            layer: the `HyperPointwise` layer.
            target: the int8 filter the device must produce, `(C_out * C_in,)`
                (kinds with `solves_target` only; else `None`).
            value_scales: float kernel -> target units, per kernel value
                `(C_out * C_in,)` (kinds with `solves_target` only; else `None`).

        Returns:
            (index of the int8 kernel tensor in `(C_out, C_in)` row-major order,
            the values the device computes `(C_out * C_in,)`, their one scale;
            `None` when they are in the target's units).
        """
        raise NotImplementedError

    def fit(self, layer, kernel: np.ndarray, steps: int = 300) -> float:
        """Sets the layer's stored weights so that its kernel comes as close to `kernel` as the kind can.

        The default takes `steps` Adam steps on the squared error of the kernel
        alone (the shared generator stays as it is); kinds with a closed form
        override it.

        Args:
            layer: a built `HyperPointwise` layer.
            kernel: the target float kernel `(filters, in_channels)`.
            steps: gradient steps of the default.

        Returns:
            The relative error ||W_fit - kernel|| / ||kernel|| (0 for a zero kernel fitted exactly).
        """
        import keras
        import tensorflow as tf

        target = tf.constant(np.asarray(kernel, np.float32))
        variables = [w for _, w in self.stored(layer)]
        optimizer = keras.optimizers.Adam(1e-2)
        for _ in range(int(steps)):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.square(self.kernel(layer) - target))
            optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return relative_error(self.kernel(layer), kernel)

    def get_config(self) -> dict:
        return {}

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((self.name, tuple(sorted(self.get_config().items()))))


class LinearHead(KernelGenerator):
    """`W_l = reshape(v_l @ head_l)` where `v_l` is a vector made from the code by shared weights.

    Subclasses give `rows` (length of `v_l`) and `head_input` (`v_l`, shape
    `(1, rows)`); the layer stores its code `z_l` `(d_z,)` and head
    `(rows, C_out * C_in)`.
    """

    def rows(self, generator) -> int:
        raise NotImplementedError

    def head_input(self, layer):
        raise NotImplementedError

    def build(self, layer) -> None:
        import keras
        from keras import ops

        generator = layer.generator
        layer.code = layer.add_weight(
            name="code", shape=(generator.code_dim,), initializer=layer.code_initializer
        )
        layer.head = layer.add_weight(
            name="head",
            shape=(self.rows(generator), layer.filters * layer.in_channels),
            initializer=layer.head_initializer or keras.initializers.RandomNormal(stddev=1.0),
        )
        if layer.head_initializer is None:
            # The generated kernel at initialisation gets the Glorot spread sqrt(2 / (C_in + C_out)).
            target = math.sqrt(2.0 / (layer.in_channels + layer.filters))
            norm = float(ops.convert_to_numpy(ops.norm(self.head_input(layer))))
            layer.head.assign(layer.head * (target / max(norm, 1e-6)))

    def kernel(self, layer):
        from keras import ops

        return ops.reshape(ops.matmul(self.head_input(layer), layer.head), (layer.filters, layer.in_channels))

    def stored(self, layer):
        return [("codes", layer.code), ("heads", layer.head)]

    def fit(self, layer, kernel: np.ndarray, steps: int = 300) -> float:
        """Exact: the head is the least-norm solution of `v_l @ head = vec(kernel)` for the layer's `v_l`.

        Falls back to the gradient fit of the base class when `v_l` is zero
        (e.g. a ReLU generator that is off for this code).
        """
        from keras import ops

        v = np.asarray(ops.convert_to_numpy(self.head_input(layer)), np.float64).reshape(-1)
        if float(v @ v) < 1e-12:
            return super().fit(layer, kernel, steps)
        layer.head.assign(np.outer(v, np.asarray(kernel, np.float64).reshape(-1)) / float(v @ v))
        return relative_error(self.kernel(layer), kernel)


def relative_error(fitted, kernel: np.ndarray) -> float:
    """||fitted - kernel|| / ||kernel|| (the absolute error when `kernel` is zero)."""
    from keras import ops

    fitted = np.asarray(ops.convert_to_numpy(fitted), np.float64)
    kernel = np.asarray(kernel, np.float64)
    norm = float(np.linalg.norm(kernel))
    error = float(np.linalg.norm(fitted - kernel))
    return error / norm if norm > 0 else error
