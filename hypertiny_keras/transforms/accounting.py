"""Packed-byte accounting of the paper (Eq. 4 and Eq. 6).

A tensor of N values packed at b bits takes `ceil(N * b / 8)` bytes (Eq. 4).
The flash of a model (Eq. 6) is the sum over its tensors, grouped by role.
Biases (and the generator bias) are int32 in TFLite, so they are counted at
`bias_bits` (32 by default) whatever the weight width.
"""
from __future__ import annotations

import dataclasses
import math
import typing

from hypertiny_keras.tflite.roles import ROLES

if typing.TYPE_CHECKING:
    import keras


def packed_bytes(num_values: int, bits: int) -> int:
    """Eq. 4: bytes of `num_values` values packed at `bits` bits each."""
    if bits < 1:
        raise ValueError(f"bits must be >= 1, got {bits}")
    return math.ceil(num_values * bits / 8)


def _size(variable) -> int:
    return int(math.prod(variable.shape))


def layer_tensors(layer) -> list[tuple[str, int, bool]]:
    """(role, values, is_bias) of the tensors one layer stores (the generator excluded)."""
    import keras

    from hypertiny_keras.layers import HyperPointwise

    if isinstance(layer, HyperPointwise):
        out = [(role, _size(w), False) for role, w in layer.kernel_generator.stored(layer)]
        return out + ([("biases", _size(layer.bias), True)] if layer.use_bias else [])
    weights = {w.path.split("/")[-1]: w for w in layer.weights}
    if isinstance(layer, keras.layers.BatchNormalization):
        return _batch_norm_tensors(layer)
    if isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)):
        kernel_role = "depthwise"
    elif isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D)):
        kernel_role = "pointwise" if all(k == 1 for k in layer.kernel_size) else "conv"
    elif isinstance(layer, keras.layers.Dense):
        kernel_role = "classifier"
    else:
        return [("other", _size(w), False) for w in layer.weights]
    out = []
    for name, w in weights.items():
        if name == "bias":
            out.append(("biases", _size(w), True))
        else:
            out.append((kernel_role, _size(w), False))
    return out


def _batch_norm_tensors(layer) -> list[tuple[str, int, bool]]:
    """What a BatchNormalization leaves in an int8 file: it folds into the layer before it.

    After a convolution, depthwise, dense or `HyperPointwise` layer its four
    parameters become that layer's per-channel scales and an int32 bias of
    C values (nothing more when the layer already has a bias). Elsewhere it
    stays as a MUL and an ADD with C int8 values each ("other").
    """
    import keras

    from hypertiny_keras.layers import HyperPointwise

    channels = int(layer.gamma.shape[0] if layer.gamma is not None else layer.moving_mean.shape[0])
    try:
        producer = layer.input._keras_history[0]
    except (AttributeError, IndexError, ValueError):  # shared or not yet connected: nothing to fold into
        producer = None
    foldable = (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.DepthwiseConv1D,
                keras.layers.DepthwiseConv2D, keras.layers.Dense, HyperPointwise)
    if isinstance(producer, foldable):
        return [] if producer.use_bias else [("biases", channels, True)]
    return [("other", 2 * channels, False)]


@dataclasses.dataclass
class ByteTable:
    """Packed bytes by role at several weight widths.

    Attributes:
        bits: the weight widths, e.g. `(4, 6, 8)`.
        bias_bits: width of biases.
        by_role: `{role: {bits: bytes}}` for every role in `ROLES`.
        stored_twin: `{bits: bytes}` of the same model with every generated
            layer stored as an ordinary kernel (C_out * C_in values) instead
            of code, head and generator.
    """

    bits: tuple[int, ...]
    bias_bits: int
    by_role: dict[str, dict[int, int]]
    stored_twin: dict[int, int]

    @property
    def total(self) -> dict[int, int]:
        """Eq. 6: the model's packed bytes at each width."""
        return {b: sum(row[b] for row in self.by_role.values()) for b in self.bits}

    @property
    def saved(self) -> dict[int, int]:
        """Bytes generation saves against the stored twin (negative: it costs bytes)."""
        return {b: self.stored_twin[b] - self.total[b] for b in self.bits}

    def to_dict(self) -> dict:
        return {
            "bits": list(self.bits),
            "bias_bits": self.bias_bits,
            "by_role": {role: {str(b): v for b, v in row.items()} for role, row in self.by_role.items()},
            "total": {str(b): v for b, v in self.total.items()},
            "stored_twin": {str(b): v for b, v in self.stored_twin.items()},
            "saved": {str(b): v for b, v in self.saved.items()},
        }

    def __str__(self) -> str:
        head = f"{'role':<12}" + "".join(f"{str(b) + '-bit':>12}" for b in self.bits)
        lines = [f"packed bytes (Eq. 4/6; biases at {self.bias_bits} bits)", head]
        for role, row in self.by_role.items():
            if any(row.values()):
                lines.append(f"{role:<12}" + "".join(f"{row[b]:>12,}" for b in self.bits))
        lines.append(f"{'total':<12}" + "".join(f"{self.total[b]:>12,}" for b in self.bits))
        lines.append(f"{'stored twin':<12}" + "".join(f"{self.stored_twin[b]:>12,}" for b in self.bits))
        lines.append(f"{'saved':<12}" + "".join(f"{self.saved[b]:>12,}" for b in self.bits))
        return "\n".join(lines)


def byte_table(model: keras.Model, bits=(4, 6, 8), bias_bits: int = 32) -> ByteTable:
    """Packed bytes of `model` by role at each width in `bits` (Eq. 4 and 6).

    Each tensor is packed separately (`ceil` per tensor); the shared
    generator is counted once however many layers use it.
    """
    import keras

    from hypertiny_keras.layers import HyperPointwise, all_layers

    bits = tuple(int(b) for b in bits)
    by_role = {role: dict.fromkeys(bits, 0) for role in ROLES}
    twin_delta = dict.fromkeys(bits, 0)  # stored kernels minus code + head, per width
    generators = {}

    def add(role, values, is_bias):
        for b in bits:
            by_role[role][b] += packed_bytes(values, bias_bits if is_bias else b)

    for layer in all_layers(model):
        if isinstance(layer, keras.Model):
            continue  # its layers are visited themselves
        for role, values, is_bias in layer_tensors(layer):
            add(role, values, is_bias)
        if isinstance(layer, HyperPointwise):
            if layer.kernel_generator.uses_generator:
                generators[id(layer.generator)] = layer.generator
            # The twin drops the whole "generator" role below (a cross-layer bank included): subtract the rest here.
            stored = [_size(w) for role, w in layer.kernel_generator.stored(layer) if role != "generator"]
            for b in bits:
                twin_delta[b] += packed_bytes(layer.filters * layer.in_channels, b) - sum(
                    packed_bytes(values, b) for values in stored
                )
    for generator in generators.values():
        add("generator", _size(generator.kernel), False)
        add("generator", _size(generator.bias), True)
        if generator.basis is not None:
            add("generator", _size(generator.basis), False)
    table = ByteTable(bits, bias_bits, by_role, {})
    table.stored_twin = {
        b: table.total[b] - by_role["generator"][b] + twin_delta[b] for b in bits
    }
    return table
