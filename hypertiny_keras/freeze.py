"""Freeze: replace every generated layer by an ordinary stored 1x1 convolution."""
from __future__ import annotations

import keras
import numpy as np
from keras import ops
from keras.src.models.functional import Functional

from hypertiny_keras.layers import HyperPointwise


def generated_kernels(model: keras.Model) -> dict[str, np.ndarray]:
    """Float kernels of every `HyperPointwise` layer, by layer name, each `(C_out, C_in)`."""
    return {
        layer.name: ops.convert_to_numpy(layer.generated_kernel())
        for layer in model.layers
        if isinstance(layer, HyperPointwise)
    }


def _stored_twin(layer: HyperPointwise) -> keras.layers.Layer:
    rank = len(layer.input.shape)
    conv = {3: keras.layers.Conv1D, 4: keras.layers.Conv2D}.get(rank)
    if conv is None:
        raise ValueError(
            f"freeze: {layer.name} has a rank-{rank} input; only 1-D (batch, steps, C) "
            "and 2-D (batch, H, W, C) inputs have a stored convolution twin"
        )
    return conv(
        layer.filters,
        1,
        activation=layer.activation,
        use_bias=layer.use_bias,
        name=layer.name,
    )


def freeze(model: keras.Model) -> keras.Model:
    """The same architecture with each `HyperPointwise` replaced by `Conv1D`/`Conv2D(kernel_size=1)`.

    The replacement carries the generated kernel (and the bias); every other
    layer keeps its weights. Outputs equal the unfrozen model up to float
    rounding. Works for Functional and Sequential models.

    Raises:
        ValueError: for a model with no `HyperPointwise` layer, or a subclassed model.
    """
    if not any(isinstance(layer, HyperPointwise) for layer in model.layers):
        raise ValueError(f"freeze: model {model.name!r} has no HyperPointwise layer")
    if not isinstance(model, (Functional, keras.Sequential)):
        raise ValueError(
            f"freeze: {type(model).__name__} is a subclassed model; only Functional "
            "and Sequential models can be frozen"
        )

    def clone(layer):
        if isinstance(layer, HyperPointwise):
            return _stored_twin(layer)
        return layer.__class__.from_config(layer.get_config())

    frozen = keras.models.clone_model(model, clone_function=clone)
    kernels = generated_kernels(model)
    for source, layer in zip(model.layers, frozen.layers):
        if isinstance(source, HyperPointwise):
            kernel = kernels[layer.name].T.reshape(layer.kernel.shape)
            layer.set_weights([kernel] + ([ops.convert_to_numpy(source.bias)] if source.use_bias else []))
        elif source.weights:
            layer.set_weights(source.get_weights())
    return frozen
