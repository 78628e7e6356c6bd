"""The kernel-generator interface and its registry.

The registry is this package's extension point: a kernel generator defined
anywhere (a user's module, a test) becomes available to
`HyperPointwise(head=...)`, `hypertiny_pw(head=...)`, `hyperize(head=...)`
and the boot export as soon as its class is registered:

    @kernel_generators.register
    class Mine(kernel_generators.LinearHead):
        name = "mine"
        ...

Names are looked up when they are used (`names()`, `get`), never copied at
import, so a kernel generator registered later is seen everywhere.
"""
from __future__ import annotations

import math
from typing import Callable, ClassVar, TypeVar, overload

import numpy as np

# keras is imported inside the methods: importing keras registers this
# package's layers, which import this module (no import cycle at start-up).

_REGISTRY: dict[str, type["KernelGenerator"]] = {}

_Class = TypeVar("_Class", bound=type)


@overload
def register(cls: _Class, *, override: bool = False) -> _Class: ...
@overload
def register(cls: None = None, *, override: bool = False) -> Callable[[_Class], _Class]: ...
def register(cls=None, *, override: bool = False):
    """Makes the kernel generator `cls` available to `get` under `cls.name`.

    A class decorator, bare (`@register`) or with arguments
    (`@register(override=True)`), or a call (`register(cls, override=True)`).

    Args:
        cls: a `KernelGenerator` subclass with a class attribute `name`.
        override: replace a kernel generator registered under the same name
            (e.g. a built-in one); without it a taken name is refused.

    Returns:
        `cls` (or, with no `cls`, the decorator).

    Raises:
        TypeError: `cls` is not a `KernelGenerator` subclass, or has no `name`.
        ValueError: `name` is taken by another class and `override` is False.
    """
    if cls is None:
        return lambda c: register(c, override=override)
    if not (isinstance(cls, type) and issubclass(cls, KernelGenerator)):
        raise TypeError(f"register takes a KernelGenerator subclass, got {cls!r}")
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} needs a class attribute `name`")
    taken = _REGISTRY.get(cls.name)
    if taken is not None and taken is not cls and not override:
        raise ValueError(
            f"a kernel generator named {cls.name!r} is already registered ({taken.__module__}.{taken.__qualname__}); "
            f"choose another name, or replace it with register({cls.__name__}, override=True)"
        )
    _REGISTRY[cls.name] = cls
    return cls


def unregister(name: str) -> type["KernelGenerator"]:
    """Removes the kernel generator registered under `name` and returns its class.

    Layers already made with it keep working; new ones (and `.keras` files
    that name it) cannot be made until it is registered again.

    Raises:
        ValueError: nothing is registered under `name`.
    """
    if name not in _REGISTRY:
        raise ValueError(f"no kernel generator named {name!r} is registered; registered: {names()}")
    return _REGISTRY.pop(name)


def names() -> tuple[str, ...]:
    """Names of the kernel generators registered now, in registration order."""
    return tuple(_REGISTRY)


def get(identifier: KernelGeneratorLike) -> "KernelGenerator":
    """A kernel generator from a registered name, a `serialize` result, or an instance.

    Raises:
        ValueError: for an unknown name (naming the registered ones) or a malformed config.
    """
    if isinstance(identifier, KernelGenerator):
        return identifier
    if isinstance(identifier, dict):
        name, config = identifier.get("class_name"), identifier.get("config", {})
    else:
        name, config = identifier, {}
    cls = _REGISTRY.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"head must be one of {names()}, got {identifier!r}")
    try:
        return cls(**config)
    except TypeError as error:
        raise ValueError(f"bad config for kernel generator {name!r}: {error}") from None


def with_rank(identifier: KernelGeneratorLike, rank: int | None) -> "KernelGenerator":
    """`get(identifier)`, with its own `rank` setting replaced by `rank` when it has one and `rank` is set.

    Model builders take one `rank` argument: the shared basis's rank for
    `factorized`, the factors' rank for `lowrank`/`kronecker`.
    """
    kernel_generator = get(identifier)
    config = kernel_generator.get_config()
    if rank is None or "rank" not in config:
        return kernel_generator
    return get({"class_name": kernel_generator.name, "config": {**config, "rank": int(rank)}})


def serialize(kernel_generator: "KernelGenerator") -> str | dict:
    """The name of `kernel_generator`, or `{"class_name": name, "config": ...}` when it has settings."""
    config = kernel_generator.get_config()
    return kernel_generator.name if not config else {"class_name": kernel_generator.name, "config": config}


def glorot_std(layer) -> float:
    """`sqrt(2 / (C_in + C_out))`: the standard deviation of a Glorot-initialised kernel of `layer`'s shape."""
    return math.sqrt(2.0 / (layer.in_channels + layer.filters))


def factor_std(layer, rank: int) -> float:
    """`(s^2 / r)^(1/4)` with `s = glorot_std(layer)`: the spread of two factors whose kernel has spread `s`.

    Each kernel value is a sum of `rank` products of one left and one right
    value; factors of this standard deviation give it the Glorot spread.
    """
    return (glorot_std(layer) ** 2 / rank) ** 0.25


class KernelGenerator:
    """A kernel generator: how a `HyperPointwise` layer makes its kernel `W_l` `(C_out, C_in)`.

    `HyperPointwise(head=...)` names one (the argument keeps the paper's
    word "head"); the layer holds it as `layer.kernel_generator`. A kernel
    generator keeps no state of its own (like a Keras initializer): its
    weights live on the layer it builds, and what layers share lives on
    their shared `PointwiseGenerator`, so `.keras` files store them as
    layer weights. Subclasses set `name`, implement every method and are
    made available by `register`.
    """

    name: ClassVar[str] = ""
    #: Whether it reads the shared `PointwiseGenerator` g.
    uses_generator: ClassVar[bool] = True
    #: Whether it reads the generator's shared basis B (`PointwiseGenerator(rank=r)`).
    uses_basis: ClassVar[bool] = False
    #: Whether `emit` solves for any int8 target (one free stored value per kernel
    #: value), so that the boot file reproduces the converter's own per-channel
    #: filter. Kernel generators that store fewer values than the kernel cannot:
    #: their device kernel is what the int8 arithmetic gives, and the frozen
    #: equivalent is built from it.
    solves_target: ClassVar[bool] = True

    def check(self, generator) -> None:
        """Raises ValueError when `generator` cannot serve this kernel generator (`None`: the layer has none)."""
        if self.uses_generator and generator is None:
            raise ValueError(f"head={self.name!r} needs a shared PointwiseGenerator (generator=None given)")

    def build(self, layer) -> None:
        """Adds the weights to `layer` (`layer.filters`, `layer.in_channels` are set)."""
        raise NotImplementedError

    def kernel(self, layer):
        """The float kernel of `layer`, a Keras tensor `(filters, in_channels)`."""
        raise NotImplementedError

    def stored(self, layer) -> list[tuple[str, object]]:
        """(role, variable) of what the layer stores for its kernel (its bias excluded).

        Roles are those of `accounting.ROLES` (`"codes"`, `"heads"`, `"generator"`).
        """
        raise NotImplementedError

    def emit(self, emitter, layer, target: np.ndarray | None, value_scales: np.ndarray | None):
        """Writes the init-subgraph operators that synthesise the int8 kernel of `layer`.

        Args:
            emitter: the `export.emitter.Emitter` of the init subgraph.
            layer: the `HyperPointwise` layer.
            target: the int8 filter the device must produce, `(C_out * C_in,)`
                (with `solves_target` only; else `None`).
            value_scales: float kernel -> target units, per kernel value
                `(C_out * C_in,)` (with `solves_target` only; else `None`).

        Returns:
            (index of the int8 kernel tensor in `(C_out, C_in)` row-major order,
            the values the device computes `(C_out * C_in,)`, their one scale;
            `None` when they are in the target's units).
        """
        raise NotImplementedError

    def fit(self, layer, kernel: np.ndarray, steps: int = 300) -> float:
        """Sets the layer's stored weights so that its kernel comes as close to `kernel` as it can.

        The default takes `steps` Adam steps (learning rate 1e-2) on the
        squared error of the kernel alone (the shared generator stays as it
        is). It differentiates with `tf.GradientTape`, so it is
        **TensorFlow-only** (the backend this package exports from); kernel
        generators with a closed form override it and run on any backend.

        Args:
            layer: a built `HyperPointwise` layer.
            kernel: the target float kernel `(filters, in_channels)`.
            steps: gradient steps of the default.

        Returns:
            The relative error ||W_fit - kernel|| / ||kernel|| (0 for a zero kernel fitted exactly).

        Raises:
            NotImplementedError: under a Keras backend other than TensorFlow.
        """
        import keras

        if keras.backend.backend() != "tensorflow":
            raise NotImplementedError(
                f"{type(self).__name__}.fit: the default gradient fit needs the TensorFlow backend "
                f"(KERAS_BACKEND={keras.backend.backend()!r}); override fit with a closed form"
            )
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
        """The constructor arguments (JSON-serializable); `{}` when there are none."""
        return {}

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __hash__(self) -> int:
        return hash((self.name, tuple(sorted(self.get_config().items()))))


#: What `head=` arguments accept: a registered name, a `serialize` config, or an instance.
KernelGeneratorLike = str | dict | KernelGenerator


class LinearHead(KernelGenerator):
    """`W_l = reshape(v_l @ head_l)` where `v_l` is a vector made from the code by shared weights.

    Subclasses give `rows` (length of `v_l`) and `head_input` (`v_l`, shape
    `(1, rows)`); the layer stores its code `z_l` `(d_z,)` and head
    `(rows, C_out * C_in)`.
    """

    def rows(self, generator) -> int:
        """Length of `v_l` for layers reading `generator`."""
        raise NotImplementedError

    def head_input(self, layer):
        """`v_l` of `layer`, a Keras tensor `(1, rows)`."""
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
            # Unit-normal head over ||v_l||: the generated kernel at initialisation gets the Glorot spread.
            norm = float(ops.convert_to_numpy(ops.norm(self.head_input(layer))))
            layer.head.assign(layer.head * (glorot_std(layer) / max(norm, 1e-6)))

    def kernel(self, layer):
        from keras import ops

        return ops.reshape(ops.matmul(self.head_input(layer), layer.head), (layer.filters, layer.in_channels))

    def stored(self, layer):
        return [("codes", layer.code), ("heads", layer.head)]

    def fit(self, layer, kernel: np.ndarray, steps: int = 300) -> float:
        """Exact: the head is the least-norm solution of `v_l @ head = vec(kernel)` for the layer's `v_l`.

        Falls back to the gradient fit of the base class (TensorFlow-only)
        when `v_l` is zero (e.g. a ReLU generator that is off for this code).
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
