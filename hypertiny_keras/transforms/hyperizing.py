"""`hyperize`: put generated pointwise layers into a user's own Keras model (the inverse of `freeze`)."""
from __future__ import annotations

import dataclasses
from typing import NamedTuple, Sequence

import keras
import numpy as np
from keras import ops

from hypertiny_keras import kernel_generators
from hypertiny_keras.layers import HyperPointwise, PointwiseGenerator, all_layers, paired_layers, require_functional

#: What `fit` may be: reproduce the model's kernels, or start the generated layers afresh.
FITS = ("kernels", None)


@dataclasses.dataclass(frozen=True)
class LayerFit:
    """One converted layer: its name, kernel generator name, kernel shape `(C_out, C_in)` and fit error.

    `relative_error` is ||W_generated - W_original|| / ||W_original|| after the
    fit (`None` with `fit=None`).
    """

    name: str
    kernel_generator: str
    shape: tuple[int, int]
    relative_error: float | None


@dataclasses.dataclass(frozen=True)
class HyperizeReport:
    """What `hyperize` changed.

    Attributes:
        layers: the converted layers, in model order.
        kept: pointwise convolutions left stored, `{name: why}` (the first one with
            `keep_first`, and those that cannot be generated).
        bytes_before, bytes_after: packed int8 bytes of the weights (Eq. 6, biases
            at 32 bits; `accounting.byte_table`) of the input and the returned model.
    """

    layers: tuple[LayerFit, ...]
    kept: dict[str, str]
    bytes_before: int
    bytes_after: int

    def __str__(self) -> str:
        lines = [f"{'layer':<24} {'kernel generator':<16} {'kernel':>10} {'fit error':>10}"]
        for fit in self.layers:
            error = "-" if fit.relative_error is None else f"{fit.relative_error:.2e}"
            shape = f"{fit.shape[0]}x{fit.shape[1]}"
            lines.append(f"{fit.name:<24} {fit.kernel_generator:<16} {shape:>10} {error:>10}")
        lines += [f"kept stored: {name} ({why})" for name, why in self.kept.items()]
        lines.append(f"int8 weight bytes: {self.bytes_before:,} -> {self.bytes_after:,} "
                     f"({self.bytes_after - self.bytes_before:+,})")
        return "\n".join(lines)


class Hyperized(NamedTuple):
    """The result of `hyperize`: the new model and its `HyperizeReport`."""

    model: keras.Model
    report: HyperizeReport


def pointwise_refusal(layer) -> str | None:
    """Why the 1x1 convolution `layer` cannot become a `HyperPointwise` layer (`None`: it can).

    Not a pointwise Conv1D/Conv2D, strided, dilated, grouped, or channels-first.
    """
    if not isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D)) or isinstance(
        layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv1D,
                keras.layers.SeparableConv2D, keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose)
    ):
        return f"a {type(layer).__name__}, not a Conv1D/Conv2D"
    if any(k != 1 for k in layer.kernel_size):
        return f"kernel size {tuple(layer.kernel_size)} is not 1x1"
    if any(s != 1 for s in layer.strides):
        return f"strides {tuple(layer.strides)}: a strided 1x1 convolution is not supported"
    if any(d != 1 for d in layer.dilation_rate):
        return f"dilation {tuple(layer.dilation_rate)} is not supported"
    if getattr(layer, "groups", 1) != 1:
        return f"groups={layer.groups}: a grouped convolution is not supported"
    if layer.data_format != "channels_last":
        return f"data_format={layer.data_format!r}: only channels_last is supported"
    return None


def _chosen(model: keras.Model, layers: Sequence[str] | None, keep_first: bool) -> tuple[list[str], dict[str, str]]:
    """(names of the layers to convert, {pointwise conv left stored: why})."""
    convs = [layer for layer in all_layers(model) if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D))]
    if layers is not None:
        by_name = {layer.name: layer for layer in all_layers(model)}
        unknown = [name for name in layers if name not in by_name]
        if unknown:
            raise ValueError(f"hyperize: model {model.name!r} has no layer named {', '.join(map(repr, unknown))}")
        for name in layers:
            why = pointwise_refusal(by_name[name])
            if why is not None:
                raise ValueError(f"hyperize: {name}: {why}")
        return list(layers), {}
    kept, chosen, first = {}, [], True
    for layer in convs:
        if any(k != 1 for k in layer.kernel_size):
            continue
        why = pointwise_refusal(layer)
        if keep_first and first:
            kept[layer.name] = why or "the first pointwise layer (keep_first)"
        elif why is not None:
            kept[layer.name] = why
        else:
            chosen.append(layer.name)
        first = False
    if not chosen:
        raise ValueError(f"hyperize: model {model.name!r} has no pointwise Conv1D/Conv2D to generate"
                         + (f" (kept: {kept})" if kept else ""))
    return chosen, kept


def hyperize(
    model: keras.Model,
    layers: Sequence[str] | None = None,
    generator: PointwiseGenerator | None = None,
    head: kernel_generators.KernelGeneratorLike = "dense",
    keep_first: bool = True,
    fit: str | None = "kernels",
    rank: int | None = None,
    code_dim: int = 4,
    hidden_dim: int = 16,
    steps: int = 300,
    seed: int | None = 0,
) -> Hyperized:
    """A new model in which chosen 1x1 convolutions of `model` are `HyperPointwise` layers.

    The converted layers share one generator; every other layer keeps its
    weights (the input model is not changed). Works for Functional and
    Sequential models, nested ones included.

    Args:
        model: a built Keras model with channels-last `Conv1D`/`Conv2D(kernel_size=1)` layers.
        layers: names of the layers to convert; `None`: every pointwise convolution
            that can be, except the first when `keep_first` (the paper's hybrid: PW1 stays stored).
        generator: the shared `PointwiseGenerator`; `None` makes one
            (`code_dim`, `hidden_dim`, with the basis of rank `rank` for `"factorized"`)
            for kernel generators that read one.
        head: the kernel generator (`kernel_generators.names()`, a config or an instance);
            `rank` sets its rank where it has one (`lowrank`, `kronecker`).
        keep_first: leave the first pointwise convolution stored (with `layers=None`).
        fit: `"kernels"`: set codes and heads (the generator stays fixed) so that each
            generated kernel reproduces the original kernel as closely as the kernel
            generator can
            (`KernelGenerator.fit`: exact for `dense`/`factorized`, the optimal rank-r
            approximation for `lowrank`/`kronecker`); `None`: fresh initialisation.
        steps: gradient steps for kernel generators without a closed-form fit (TensorFlow backend only).
        seed: seeds Keras's initializers (`keras.utils.set_random_seed`) when given.

    Returns:
        `Hyperized(model, report)`; the report gives each layer's fit error and the
        int8 weight bytes before and after.

    Raises:
        ValueError: naming the layer, for a requested layer that is not a pointwise
            convolution that can be generated (strided, dilated, grouped, channels-first),
            a subclassed model, or a model with nothing to convert.
    """
    from hypertiny_keras.transforms.accounting import byte_table

    if fit not in FITS:
        raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
    if not model.built:
        raise ValueError(f"hyperize: build model {model.name!r} first (call it on an input or give keras.Input)")
    require_functional(model, "hyperize")
    names, kept = _chosen(model, layers, keep_first)
    kernel_generator = kernel_generators.with_rank(head, rank)
    if seed is not None:
        keras.utils.set_random_seed(int(seed))
    if kernel_generator.uses_generator and generator is None:
        taken = {layer.name for layer in all_layers(model)}
        label = "generator" if "generator" not in taken else "hyperize_generator"
        generator = PointwiseGenerator(code_dim, hidden_dim,
                                       rank=rank if kernel_generator.uses_basis else None,
                                       name=label)
    kernel_generator.check(generator if kernel_generator.uses_generator else None)
    chosen = set(names)

    def clone(layer):
        if layer.name in chosen:
            return HyperPointwise(layer.filters, generator if kernel_generator.uses_generator else None,
                                  head=kernel_generator,
                                  activation=layer.activation, use_bias=layer.use_bias, name=layer.name)
        return layer.__class__.from_config(layer.get_config())

    new = keras.models.clone_model(model, clone_function=clone, recursive=True)
    fits = []
    for source, layer in paired_layers(model, new, "hyperize"):
        if not isinstance(layer, HyperPointwise) or layer.name not in chosen:
            if source.weights:
                layer.set_weights(source.get_weights())
            continue
        kernel = np.asarray(ops.convert_to_numpy(source.kernel), np.float64)
        target = kernel.reshape(-1, kernel.shape[-1]).T  # (1[, 1], C_in, C_out) -> (C_out, C_in)
        error = None
        if fit == "kernels":
            error = float(layer.kernel_generator.fit(layer, target, steps=steps))
        if source.use_bias:
            layer.bias.assign(ops.convert_to_numpy(source.bias))
        fits.append(LayerFit(layer.name, kernel_generator.name, (layer.filters, layer.in_channels), error))
    report = HyperizeReport(tuple(fits), kept, int(byte_table(model, bits=(8,)).total[8]),
                            int(byte_table(new, bits=(8,)).total[8]))
    return Hyperized(new, report)
