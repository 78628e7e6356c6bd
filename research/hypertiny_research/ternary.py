"""Ternary (2-bit) weight baseline: TWN layers and a ternary separable CNN.

Ternary weight networks (Li & Liu 2016, TWN): each output channel's kernel is replaced by
`alpha * sign(w) * [|w| > delta]` with `delta = 0.7 * mean|w|` and `alpha` the mean `|w|` of the
kept weights, so it takes at most the three values {-alpha, 0, +alpha}. Training keeps the float
weights and uses a straight-through estimator: the forward pass sees the ternary kernel exactly,
the gradient reaches the float weights as if quantization were the identity.

Export: the TFLite converter folds the ternarization into a constant filter, and per-channel int8
quantization maps {-alpha, 0, +alpha} to {-127, 0, 127} exactly (a BatchNormalization folded
into the convolution only rescales a channel), so the `.tflite` holds ordinary int8 filters with
at most three values per output channel.
"""
from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from hypertiny_keras.models.separable import stored_pw_twin
from hypertiny_keras.transforms.accounting import byte_table, layer_tensors, packed_bytes
from hypertiny_research.baselines import rebuild_separable

#: TWN threshold: weights with |w| <= THRESHOLD * mean|w| of their output channel become 0.
THRESHOLD = 0.7
#: Bits a ternary weight takes when packed.
TERNARY_BITS = 2


def ternarize(kernel, channel_axes: int = 1):
    """TWN ternary kernel with a straight-through gradient.

    Args:
        kernel: float kernel whose last `channel_axes` axes index the output channel
            (1 for Conv1D `(k, C_in, C_out)` and Dense `(C_in, C_out)`, 2 for DepthwiseConv1D
            `(k, C_in, multiplier)`).
        channel_axes: how many trailing axes index the output channel.

    Returns:
        A tensor of `kernel`'s shape equal to the ternary kernel in the forward pass (exactly:
        `stop_gradient(q) + (w - stop_gradient(w))` adds an exact zero), with gradient exactly 1
        with respect to `kernel` (also through the threshold and `alpha`).
    """
    axes = tuple(range(len(kernel.shape) - channel_axes))
    magnitude = ops.abs(kernel)
    delta = THRESHOLD * ops.mean(magnitude, axis=axes, keepdims=True)
    kept = ops.cast(magnitude > delta, kernel.dtype)
    alpha = ops.sum(magnitude * kept, axis=axes, keepdims=True) / ops.maximum(
        ops.sum(kept, axis=axes, keepdims=True), 1.0
    )
    ternary = ops.stop_gradient(alpha * ops.sign(kernel) * kept)
    return ternary + (kernel - ops.stop_gradient(kernel))


def _bias_activation(layer, outputs):
    if layer.use_bias:
        outputs = ops.add(outputs, layer.bias)
    return layer.activation(outputs) if layer.activation is not None else outputs


@keras.saving.register_keras_serializable(package="hypertiny")
class TernaryConv1D(keras.layers.Conv1D):
    """`Conv1D` whose kernel is ternarized per output channel (`ternarize`) in every call.

    Same arguments, weights and shapes as `keras.layers.Conv1D` (channels-last; `"causal"`
    padding is not supported); the stored `kernel` stays float (the straight-through shadow weights).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.padding == "causal":
            raise ValueError(f"{type(self).__name__} does not support causal padding")

    def call(self, inputs):
        outputs = self.convolution_op(inputs, ternarize(self.kernel))
        return _bias_activation(self, outputs)


@keras.saving.register_keras_serializable(package="hypertiny")
class TernaryDepthwiseConv1D(keras.layers.DepthwiseConv1D):
    """`DepthwiseConv1D` (channels-last) whose kernel is ternarized per output channel."""

    def call(self, inputs):
        outputs = ops.depthwise_conv(
            inputs,
            ternarize(self.kernel, channel_axes=2),
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
        return _bias_activation(self, outputs)


@keras.saving.register_keras_serializable(package="hypertiny")
class TernaryDense(keras.layers.Dense):
    """`Dense` whose kernel `(C_in, units)` is ternarized per output unit."""

    def call(self, inputs, training=None):
        return _bias_activation(self, ops.matmul(inputs, ternarize(self.kernel)))


TERNARY_LAYERS = (TernaryConv1D, TernaryDepthwiseConv1D, TernaryDense)
_TERNARY_OF = {
    keras.layers.Conv1D: TernaryConv1D,
    keras.layers.DepthwiseConv1D: TernaryDepthwiseConv1D,
    keras.layers.Dense: TernaryDense,
}


def ternary_kernel(layer: keras.layers.Layer):
    """The ternary kernel a `Ternary*` layer computes with (same shape as `layer.kernel`)."""
    return ternarize(layer.kernel, channel_axes=2 if isinstance(layer, TernaryDepthwiseConv1D) else 1)


def ternary_separable_cnn(
    input_shape: Sequence[int],
    num_classes: int,
    widths: Sequence[int] = (32, 64, 96, 96),
    stem_filters: int = 16,
    stem_kernel: int = 7,
    dw_kernel: int = 5,
    downsample_blocks: int = 3,
    norm: str = "batch",
    name: str = "ternary_separable_cnn",
) -> keras.Model:
    """The `stored_pw_twin` separable CNN with every stem, depthwise, pointwise and dense kernel ternary.

    Architecture and arguments as `tiny_separable_cnn` (pooling layer `"features"`), wider by
    default so that the 2-bit model takes about 6.7 kB (`ternary_bytes`).
    """
    return rebuild_separable(
        stored_pw_twin(
            input_shape, num_classes, widths, stem_filters, stem_kernel, dw_kernel, downsample_blocks, norm, name
        ),
        layer_class=lambda layer: _TERNARY_OF.get(type(layer), type(layer)),
    )


def ternary_bytes(model: keras.Model, bits: int = 8, bias_bits: int = 32) -> dict[str, int]:
    """Packed bytes by role (Eq. 4/6) with ternary kernels at 2 bits and every other weight at `bits`.

    Roles as `accounting.ROLES` (batch-normalization parameters under `"other"`), plus
    `"total"`. The per-channel scale `alpha` is not counted, as `byte_table` counts no
    quantization scale of any int8 model either (it sits in the file's quantization parameters).
    """
    table = byte_table(model, bits=(bits,), bias_bits=bias_bits)
    out = {role: row[bits] for role, row in table.by_role.items()}
    for layer in model.layers:
        if isinstance(layer, TERNARY_LAYERS):
            for role, values, is_bias in layer_tensors(layer):
                if not is_bias:
                    out[role] += packed_bytes(values, TERNARY_BITS) - packed_bytes(values, bits)
    out["total"] = sum(out.values())
    return out
