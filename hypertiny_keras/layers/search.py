"""Finding layers inside a model, nested models included: the one search every module uses.

Also the one check that a model is made of layers that can be cloned
(`require_functional`), which freezing, hyperizing and the export share.
"""
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


def is_functional(model: keras.Model) -> bool:
    """Whether `model` is a Sequential model or a Functional one (built from `keras.Input`), not subclassed.

    Public Keras API only: a Functional model (and its subclasses that call
    `super().__init__(inputs, outputs)`) has its graph's `inputs` and
    `outputs`; a subclassed model has neither attribute.
    """
    if isinstance(model, keras.Sequential):
        return True
    return getattr(model, "inputs", None) is not None and getattr(model, "outputs", None) is not None


def require_functional(model: keras.Model, what: str, error: type[Exception] = ValueError) -> None:
    """Raises `error` unless `model` and every model nested in it are Functional or Sequential.

    `keras.models.clone_model`, which `freeze`, `hyperize` and the export
    rely on, cannot rebuild a subclassed model's `call`.

    Args:
        model: the model to check.
        what: who asks, the start of the message (e.g. `"freeze"`).
        error: the exception class raised (a `ValueError` subclass, e.g. `ExportError`).

    Raises:
        error: naming the first subclassed model found and its class.
    """
    for inner in [model] + [layer for layer in all_layers(model) if isinstance(layer, keras.Model)]:
        if not is_functional(inner):
            raise error(
                f"{what}: {inner.name!r} is a subclassed model ({type(inner).__name__}); only Functional and "
                "Sequential models (nested ones included) are supported"
            )
