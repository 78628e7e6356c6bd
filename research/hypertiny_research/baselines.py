"""Baseline models of the paper: RegularCNN (the KD teacher), ResNet1DSmall, TinySeparableCNN, HRVFeatNet.

Every builder returns a Functional model on channels-last input `(steps, channels)` (HRVFeatNet:
`(16,)` features) with logits `(batch, num_classes)` from a Dense layer named `"classifier"`. The
layer that feeds the classifier is named `"features"`, for feature-matching distillation:

    keras.Model(model.input, [model.output, model.get_layer("features").output])

`norm="batch"` puts BatchNormalization (folded into the convolution by the TFLite converter) before
each ReLU and drops the convolution biases; `norm="none"` keeps the biases.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import keras
import numpy as np

from hypertiny_keras.models.separable import stored_pw_twin
from hypertiny_research.hrv import NUM_FEATURES

BASELINE_NORMALIZATIONS = ("batch", "none")


def _check_norm(norm: str) -> None:
    if norm not in BASELINE_NORMALIZATIONS:
        raise ValueError(f"norm must be one of {BASELINE_NORMALIZATIONS}, got {norm!r}")


def _conv_norm(x, filters: int, kernel: int, stride: int, norm: str, label: str, relu: bool = True):
    """Conv1D (same padding) -> [BatchNormalization] -> [ReLU], layers named `label`, `label_bn`, `label_relu`."""
    layers = keras.layers
    x = layers.Conv1D(filters, kernel, strides=stride, padding="same", use_bias=norm == "none", name=label)(x)
    if norm == "batch":
        x = layers.BatchNormalization(momentum=0.9, name=f"{label}_bn")(x)
    return layers.ReLU(name=f"{label}_relu")(x) if relu else x


def regular_cnn(
    input_shape: Sequence[int],
    num_classes: int,
    filters: Sequence[int] = (64, 128, 256, 512, 512),
    kernels: Sequence[int] = (7, 5, 3, 3, 3),
    hidden: int = 256,
    norm: str = "batch",
    name: str = "regular_cnn",
) -> keras.Model:
    """RegularCNN, the paper's teacher (about 1.42 MiB of int8 weights with the defaults).

    Five blocks of Conv1D(`filters[i]`, `kernels[i]`, stride 2) -> [BN] -> ReLU (a 1800-sample
    window leaves 57 steps) -> global average pooling (512) -> Dense(`hidden`, ReLU) named
    `"features"` -> Dense(`num_classes`) `"classifier"`. Most bytes sit in the last two
    convolutions (3 x 256 x 512 and 3 x 512 x 512 kernels).
    """
    _check_norm(norm)
    if len(filters) != len(kernels):
        raise ValueError(f"filters and kernels must have the same length, got {len(filters)} and {len(kernels)}")
    inputs = keras.Input(tuple(input_shape), name="window")
    x = inputs
    for i, (width, kernel) in enumerate(zip(filters, kernels)):
        x = _conv_norm(x, width, kernel, 2, norm, f"conv{i + 1}")
    x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    x = keras.layers.Dense(hidden, activation="relu", name="features")(x)
    outputs = keras.layers.Dense(num_classes, name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


def resnet1d_small(
    input_shape: Sequence[int],
    num_classes: int,
    widths: Sequence[int] = (32, 64, 72),
    stem_filters: int = 32,
    stem_kernel: int = 7,
    kernel: int = 3,
    norm: str = "batch",
    name: str = "resnet1d_small",
) -> keras.Model:
    """ResNet1DSmall: a stem and one basic residual block per stage (about 62 kB int8 by default).

    stem Conv1D(`stem_filters`, `stem_kernel`, stride 2) -> [BN] -> ReLU -> max-pool 2; then per
    stage `i` a block Conv1D(`widths[i]`, `kernel`, stride s) -> [BN] -> ReLU -> Conv1D -> [BN],
    added to the shortcut (identity, or a strided 1x1 Conv1D -> [BN] when the width or the
    stride changes), -> ReLU; the first stage keeps the length (s = 1), the others halve it. Then
    global average pooling named `"features"` -> Dense(`num_classes`) `"classifier"`.
    """
    _check_norm(norm)
    inputs = keras.Input(tuple(input_shape), name="window")
    x = _conv_norm(inputs, stem_filters, stem_kernel, 2, norm, "stem")
    x = keras.layers.MaxPooling1D(2, padding="same", name="stem_pool")(x)
    for i, width in enumerate(widths):
        stride = 1 if i == 0 else 2
        label = f"block{i + 1}"
        shortcut = x
        if stride != 1 or x.shape[-1] != width:
            shortcut = _conv_norm(x, width, 1, stride, norm, f"{label}_shortcut", relu=False)
        x = _conv_norm(x, width, kernel, stride, norm, f"{label}_conv1")
        x = _conv_norm(x, width, kernel, 1, norm, f"{label}_conv2", relu=False)
        x = keras.layers.Add(name=f"{label}_add")([x, shortcut])
        x = keras.layers.ReLU(name=f"{label}_out")(x)
    x = keras.layers.GlobalAveragePooling1D(name="features")(x)
    outputs = keras.layers.Dense(num_classes, name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


def rebuild_separable(
    model: keras.Model, layer_class: Callable[[keras.layers.Layer], type] | None = None
) -> keras.Model:
    """A fresh copy of a `separable` model with its pooling layer `"pool"` renamed `"features"`.

    Args:
        model: a model from `hypertiny_pw` / `stored_pw_twin`.
        layer_class: maps each layer to the class its copy is made of (default: its own
            class); the copy is `layer_class(layer).from_config(layer.get_config())`.

    Returns:
        The cloned model with newly initialised weights.
    """

    def clone(layer):
        config = layer.get_config()
        if layer.name == "pool":
            config["name"] = "features"
        return (layer_class(layer) if layer_class else type(layer)).from_config(config)

    return keras.models.clone_model(model, clone_function=clone)


def tiny_separable_cnn(
    input_shape: Sequence[int],
    num_classes: int,
    widths: Sequence[int] = (32, 48, 64, 96),
    stem_filters: int = 16,
    stem_kernel: int = 7,
    dw_kernel: int = 5,
    downsample_blocks: int = 3,
    norm: str = "batch",
    name: str = "tiny_separable_cnn",
) -> keras.Model:
    """TinySeparableCNN: the `stored_pw_twin` backbone with every pointwise layer stored (about 14 kB int8).

    stem Conv1D(stride 2) -> blocks DepthwiseConv1D(`dw_kernel`) -> Conv1D(`widths[i]`, 1), the
    first `downsample_blocks` with stride 2 -> global average pooling `"features"` ->
    Dense(`num_classes`) `"classifier"`. `norm` as in `stored_pw_twin` (`"batch"`, `"group"`, `"none"`).
    """
    return rebuild_separable(
        stored_pw_twin(
            input_shape, num_classes, widths, stem_filters, stem_kernel, dw_kernel, downsample_blocks, norm, name
        )
    )


def hrv_featnet(
    num_classes: int,
    features: np.ndarray | None = None,
    name: str = "hrv_featnet",
) -> keras.Model:
    """HRVFeatNet: 16 HRV features -> Normalization `"features"` -> Dense(`num_classes`) `"classifier"`.

    Args:
        num_classes: number of logits.
        features: `(N, 16)` training features (`features.hrv_features` or
            `hrv_features_from_rr`); the Normalization layer is adapted to their per-feature
            mean and variance. Without them it is the identity (mean 0, variance 1) until
            `model.get_layer("features").adapt(...)`.
        name: model name.

    Input `(batch, 16)` in the units of `features.FEATURE_NAMES`. 73 bytes at 8 bits with 2
    classes: 32 weights + 2 int32 biases + 33 normalization values (mean, variance, count).

    int8: a full-integer file quantizes its input with one scale for all 16 raw features
    (mean RR ~800 ms next to pNN50 in 0..1 and powers in ms^2), which wipes out the small ones
    (measured: 148 output steps from the float model at the 99th percentile, so `export_tflite`
    refuses it). Export `normalized_hrv_head(model)` instead and normalize on the device, in
    float, where the features are computed.
    """
    inputs = keras.Input((NUM_FEATURES,), name="hrv")
    normalize = keras.layers.Normalization(name="features")
    if features is not None:
        normalize.adapt(np.asarray(features, np.float32))
    x = normalize(inputs)
    outputs = keras.layers.Dense(num_classes, name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


def normalized_hrv_head(model: keras.Model) -> keras.Model:
    """The int8-deployable part of an `hrv_featnet` model: Input(16) normalized features -> its classifier.

    Shares the classifier's weights. Feed it (and `export_tflite` it with) the output of
    `model.get_layer("features")`, i.e. `(x - mean) / sqrt(variance)` per feature, which the
    device computes in float before quantizing the input.
    """
    inputs = keras.Input((NUM_FEATURES,), name="hrv_normalized")
    return keras.Model(inputs, model.get_layer("classifier")(inputs), name=f"{model.name}_head")
