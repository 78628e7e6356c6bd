"""Freeze: replace every generated layer by an ordinary stored 1x1 convolution."""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from hypertiny_keras.layers import HyperPointwise, generated_layers, paired_layers, require_functional


def generated_kernels(model: keras.Model) -> dict[str, np.ndarray]:
    """Float kernels of every `HyperPointwise` layer (nested models included), by layer name, each `(C_out, C_in)`."""
    return {layer.name: ops.convert_to_numpy(layer.generated_kernel()) for layer in generated_layers(model)}


def stored_twin_layer(layer: HyperPointwise) -> keras.layers.Layer:
    """The `Conv1D`/`Conv2D(kernel_size=1)` that computes what `layer` computes (weights not set).

    Raises:
        ValueError: for an input that is neither 1-D `(batch, steps, C)` nor 2-D `(batch, H, W, C)`.
    """
    rank = len(layer.input.shape)
    conv = {3: keras.layers.Conv1D, 4: keras.layers.Conv2D}.get(rank)
    if conv is None:
        raise ValueError(
            f"freeze: {layer.name} has a rank-{rank} input; only 1-D (batch, steps, C) "
            "and 2-D (batch, H, W, C) inputs have a stored convolution twin"
        )
    return conv(layer.filters, 1, activation=layer.activation, use_bias=layer.use_bias, name=layer.name)


def freeze(model: keras.Model) -> keras.Model:
    """The same architecture with each `HyperPointwise` replaced by `Conv1D`/`Conv2D(kernel_size=1)`.

    The replacement carries the generated kernel (and the bias); every other
    layer keeps its weights. Outputs equal the unfrozen model up to float
    rounding. Works for Functional and Sequential models, nested ones included.

    Raises:
        ValueError: for a model with no `HyperPointwise` layer, or a subclassed model.
    """
    if not generated_layers(model):
        raise ValueError(f"freeze: model {model.name!r} has no HyperPointwise layer")
    require_functional(model, "freeze")

    def clone(layer):
        if isinstance(layer, HyperPointwise):
            return stored_twin_layer(layer)
        return layer.__class__.from_config(layer.get_config())

    frozen = keras.models.clone_model(model, clone_function=clone, recursive=True)
    for source, layer in paired_layers(model, frozen, "freeze"):
        if isinstance(source, HyperPointwise):
            kernel = ops.convert_to_numpy(source.generated_kernel()).T.reshape(layer.kernel.shape)
            layer.set_weights([kernel] + ([ops.convert_to_numpy(source.bias)] if source.use_bias else []))
        elif source.weights:
            layer.set_weights(source.get_weights())
    return frozen
