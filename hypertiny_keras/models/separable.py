"""Separable 1-D CNNs: HyperTinyPW (generated PW2..PWL) and its stored-PW twin."""
from __future__ import annotations

from collections.abc import Sequence

import keras

from hypertiny_keras import kernel_generators
from hypertiny_keras.layers import HyperPointwise, PointwiseGenerator

NORMALIZATIONS = ("batch", "group", "none")
#: Global average pooling: "average_pool" (the default: AveragePooling1D over the whole sequence
#: + Flatten -> AVERAGE_POOL_2D, which has a CMSIS-NN kernel; int8 output at its input's scale, as
#: TFLM requires) or "mean" (GlobalAveragePooling1D -> TFLM's MEAN, reference kernel only; the
#: pooling of every result committed before the device benchmark). benchmarks/results/device.md:
#: on the quickstart, 15% fewer instructions per inference, accuracy within the seed spread.
POOLINGS = ("mean", "average_pool")


def _separable_cnn(
    input_shape: Sequence[int],
    num_classes: int,
    widths: Sequence[int],
    stem_filters: int,
    stem_kernel: int,
    dw_kernel: int,
    downsample_blocks: int,
    norm: str,
    pointwise,
    name: str,
    pool: str = "average_pool",
) -> keras.Model:
    if norm not in NORMALIZATIONS:
        raise ValueError(f"norm must be one of {NORMALIZATIONS}, got {norm!r}")
    if pool not in POOLINGS:
        raise ValueError(f"pool must be one of {POOLINGS}, got {pool!r}")
    if not widths:
        raise ValueError("widths must name at least one block")
    layers = keras.layers

    def normalize_relu(x, label):
        if norm == "batch":
            x = layers.BatchNormalization(momentum=0.9, name=f"{label}_bn")(x)
        elif norm == "group":
            x = layers.GroupNormalization(groups=1, name=f"{label}_gn")(x)
        return layers.ReLU(name=f"{label}_relu")(x)

    inputs = keras.Input(tuple(input_shape), name="window")
    x = layers.Conv1D(stem_filters, stem_kernel, strides=2, padding="same", use_bias=norm == "none",
                      name="stem")(inputs)
    x = normalize_relu(x, "stem")
    for i, width in enumerate(widths):
        stride = 2 if i < downsample_blocks else 1
        x = layers.DepthwiseConv1D(dw_kernel, strides=stride, padding="same", use_bias=norm == "none",
                                   name=f"dw{i + 1}")(x)
        x = normalize_relu(x, f"dw{i + 1}")
        x = pointwise(i, width, f"pw{i + 1}")(x)
        x = normalize_relu(x, f"pw{i + 1}")
    if pool == "mean":
        x = layers.GlobalAveragePooling1D(name="pool")(x)
    else:
        # "pool" names the (batch, channels) features either way (tiny_vae_head, distillation).
        x = layers.AveragePooling1D(pool_size=x.shape[1], name="pool_window")(x)
        x = layers.Flatten(name="pool")(x)
    outputs = layers.Dense(num_classes, name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


def hypertiny_pw(
    input_shape: Sequence[int],
    num_classes: int,
    widths: Sequence[int] = (24, 32, 32),
    stem_filters: int = 16,
    stem_kernel: int = 7,
    dw_kernel: int = 5,
    downsample_blocks: int = 2,
    code_dim: int = 4,
    hidden_dim: int = 16,
    head: kernel_generators.KernelGeneratorLike = "dense",
    rank: int | None = None,
    norm: str = "batch",
    name: str = "hypertiny_pw",
    pool: str = "average_pool",
    generator_activation: str = "relu",
) -> keras.Model:
    """HyperTinyPW separable 1-D CNN (channels-last input `(steps, channels)`).

    stem Conv1D (stride 2) -> blocks of [DepthwiseConv1D -> pointwise] ->
    global average pooling -> Dense logits `(batch, num_classes)`. The first
    pointwise layer (PW1) is a stored `Conv1D(kernel_size=1)`; PW2..PWL are
    `HyperPointwise` layers sharing one `PointwiseGenerator(code_dim,
    hidden_dim, generator_activation)` (with the basis of rank `rank` for
    `"factorized"`). `norm="batch"` puts BatchNormalization (folded
    into the convolutions at export) before each ReLU; `"none"` uses biases.
    `norm="group"` puts GroupNormalization(groups=1) there, as the paper
    trains (statistics over steps and channels of each sample). It has no
    fused int8 kernel: the converter lowers each one to about 15 operators
    (RESHAPE, MEAN, SQUARED_DIFFERENCE, MEAN, ADD, RSQRT, MUL x 3, SHAPE,
    ADD, RESHAPE, and a float island DEQUANTIZE -> NEG -> QUANTIZE), which
    TFLM runs, at the cost of per-sample statistics on the device, a float
    NEG kernel in the op resolver and int8 error from quantizing the variance.

    `head` names the kernel generator (`kernel_generators.names()`). For
    `"factorized"`, `rank` is the shared basis's rank; for kernel generators with a rank
    of their own (`"lowrank"`, `"kronecker"` and their cross-layer forms
    `"lowrank_shared"`, `"kronecker_shared"`), it is theirs (their default
    when `None`). The per-layer forms read no shared generator, so the model
    has none; the cross-layer forms store a bank of `hidden_dim` factors per
    shape, so they want a small `hidden_dim`.

    `pool` (`POOLINGS`) chooses how the global average pooling lowers:
    `"mean"` to TFLM's MEAN, `"average_pool"` to AVERAGE_POOL_2D (a CMSIS-NN
    kernel; tflm_app/README.md gives the instructions it saves).
    """
    kernel_generator = kernel_generators.with_rank(head, rank)
    generator = None
    if kernel_generator.uses_generator:
        generator = PointwiseGenerator(code_dim, hidden_dim, generator_activation,
                                       rank=rank if kernel_generator.uses_basis else None, name="generator")
    use_bias = norm == "none"

    def pointwise(i, width, label):
        if i == 0:
            return keras.layers.Conv1D(width, 1, use_bias=use_bias, name=label)
        return HyperPointwise(width, generator, head=kernel_generator, use_bias=use_bias, name=label)

    return _separable_cnn(
        input_shape, num_classes, widths, stem_filters, stem_kernel, dw_kernel, downsample_blocks, norm, pointwise,
        name, pool,
    )


def stored_pw_twin(
    input_shape: Sequence[int],
    num_classes: int,
    widths: Sequence[int] = (24, 32, 32),
    stem_filters: int = 16,
    stem_kernel: int = 7,
    dw_kernel: int = 5,
    downsample_blocks: int = 2,
    norm: str = "batch",
    name: str = "stored_pw_twin",
    pw_rank: int | None = None,
    pool: str = "average_pool",
) -> keras.Model:
    """The backbone of `hypertiny_pw` with every pointwise layer a stored `Conv1D(kernel_size=1)`.

    The honest ablation: what generation saves (or costs) is the difference
    between the two models' bytes. With `pw_rank=r`, PW2..PWL are each two
    stored 1x1 convolutions C_in -> r -> C_out (the first without bias or
    activation): a rank-r kernel with no synthesis at all (no init subgraph,
    no kernel in RAM, r (C_in + C_out) instead of C_in C_out multiplies per
    step), the deployed form of `head="lowrank"`. `pool` as in `hypertiny_pw`.
    """
    use_bias = norm == "none"
    if pw_rank is not None and int(pw_rank) < 1:
        raise ValueError(f"pw_rank must be None or >= 1, got {pw_rank}")

    def pointwise(i, width, label):
        if i == 0 or pw_rank is None:
            return keras.layers.Conv1D(width, 1, use_bias=use_bias, name=label)
        v = keras.layers.Conv1D(int(pw_rank), 1, use_bias=False, name=f"{label}_v")
        u = keras.layers.Conv1D(width, 1, use_bias=use_bias, name=f"{label}_u")
        return lambda x: u(v(x))

    return _separable_cnn(
        input_shape, num_classes, widths, stem_filters, stem_kernel, dw_kernel, downsample_blocks, norm, pointwise,
        name, pool,
    )
