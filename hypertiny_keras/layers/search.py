"""Finding layers inside a model, nested models included: the one search every module uses."""
from __future__ import annotations

import keras

from hypertiny_keras.layers.hyper_pointwise import HyperPointwise


def all_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Every layer of `model`, depth first in model order, nested models expanded (each layer once).

    A nested model appears before its own layers.
    """
    found, seen = [], set()

    def visit(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        found.append(layer)
        for inner in layer.layers if isinstance(layer, keras.Model) else []:  # not HyperPointwise.layers
            visit(inner)

    for layer in model.layers:
        visit(layer)
    return found


def generated_layers(model: keras.Model) -> list[HyperPointwise]:
    """The `HyperPointwise` layers of `model`, nested models included, in model order."""
    return [layer for layer in all_layers(model) if isinstance(layer, HyperPointwise)]


def paired_layers(model: keras.Model, clone: keras.Model, caller: str) -> list[tuple]:
    """`(layer of model, same layer of clone)` for every weighted layer (not models, not inputs), in model order.

    Raises:
        ValueError: naming `caller` when the clone does not have the model's layers.
    """
    def weighted(m):  # input layers are recreated (with new names) by a clone
        return [layer for layer in all_layers(m) if not isinstance(layer, (keras.Model, keras.layers.InputLayer))]

    sources, targets = weighted(model), weighted(clone)
    if [s.name for s in sources] != [t.name for t in targets]:
        raise ValueError(f"{caller}: the clone of {model.name!r} does not have the model's layers")
    return list(zip(sources, targets))
