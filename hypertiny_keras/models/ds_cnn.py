"""The MLPerf Tiny DS-CNN keyword spotter (2-D), with stored or generated pointwise layers."""
from __future__ import annotations

from collections.abc import Sequence

import keras

from hypertiny_keras import kernel_generators


def ds_cnn(
    input_shape: Sequence[int],
    classes: int,
    width: int = 64,
    blocks: int = 4,
    generated: bool = True,
    head: kernel_generators.KernelGeneratorLike = "dense",
    rank: int | None = None,
    code_dim: int = 4,
    hidden_dim: int = 16,
    stem_kernel: tuple[int, int] = (10, 4),
    dropout: float = 0.2,
    name: str | None = None,
) -> keras.Model:
    """DS-CNN of MLPerf Tiny keyword spotting, channels last.

    Conv2D(width, `stem_kernel`, stride 2, same) + BN + ReLU, dropout, then
    `blocks` x [DepthwiseConv2D 3x3 + BN + ReLU + Conv2D(width, 1x1) + BN + ReLU],
    dropout, average pooling over the whole feature map (`AVERAGE_POOL_2D` in
    TFLite, which CMSIS-NN has a kernel for), Dense logits `(batch, classes)`.
    BatchNorm folds into the convolutions at export.

    Args:
        input_shape: `(frames, coefficients)` MFCC (a channel axis is added, e.g. (49, 10) or
            (101, 40)) or `(H, W, C)`.
        classes: number of output classes.
        width: channels of every convolution (64 in DS-CNN-S).
        blocks: depthwise-separable blocks (4 in DS-CNN-S).
        generated: PW2..PW`blocks` are `HyperPointwise` layers sharing one generator
            (`hyperize` with `head`, `rank`, `code_dim`, `hidden_dim`, fresh initialisation);
            `False`: every 1x1 kernel stored.
    """
    layers = keras.layers
    if len(input_shape) not in (2, 3):
        raise ValueError(f"input_shape must be (frames, coefficients) or (H, W, C), got {tuple(input_shape)}")
    if int(blocks) < 1 or int(width) < 1:
        raise ValueError(f"blocks and width must be >= 1, got {blocks}, {width}")
    inputs = keras.Input(tuple(input_shape), name="features")
    x = layers.Reshape((*input_shape, 1), name="add_channel")(inputs) if len(input_shape) == 2 else inputs
    x = layers.Conv2D(width, stem_kernel, strides=2, padding="same", use_bias=False, name="stem")(x)
    x = layers.BatchNormalization(name="stem_bn")(x)
    x = layers.ReLU(name="stem_relu")(x)
    x = layers.Dropout(dropout, name="stem_dropout")(x)
    for i in range(1, int(blocks) + 1):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"dw{i}")(x)
        x = layers.BatchNormalization(name=f"dw{i}_bn")(x)
        x = layers.ReLU(name=f"dw{i}_relu")(x)
        x = layers.Conv2D(width, 1, use_bias=False, name=f"pw{i}")(x)
        x = layers.BatchNormalization(name=f"pw{i}_bn")(x)
        x = layers.ReLU(name=f"pw{i}_relu")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    x = layers.AveragePooling2D(pool_size=tuple(x.shape[1:3]), name="pool")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(classes, name="classifier")(x)
    model = keras.Model(inputs, outputs, name=name or ("ds_cnn_hypertiny" if generated else "ds_cnn"))
    if not generated or blocks < 2:
        return model
    from hypertiny_keras.transforms.hyperizing import hyperize

    return hyperize(model, head=head, rank=rank, code_dim=code_dim, hidden_dim=hidden_dim, fit=None, seed=None).model
