"""Post-training packing of the generated path (the paper's 8/6-bit packing, no QAT).

`pack_model(model, bits)` rounds, in a copy of a trained model, the tensors
that make the generated kernels: every shared generator's kernel `(d_z, d_h)`
and basis `(d_h, r)`, and every `HyperPointwise` head and code. Each tensor
is quantized on its own (symmetric, per-tensor, uniform):

    scale = max|w| / (2^(b-1) - 1),   w_q = clip(round(w / scale), -(2^(b-1) - 1), 2^(b-1) - 1) * scale

i.e. the narrow signed range (-127..127 at 8 bits, -7..7 at 4 bits), zero at
zero, and every value moves by at most `scale / 2`. Biases (int32 in TFLite)
and every other layer (stem, depthwise, PW1, classifier, normalisation) keep
their float weights: they go through the int8 converter at export. The copy
is a float model, so it can be evaluated exactly like the original to see
what packing at `bits` costs in F1.
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np

from hypertiny_keras.layers import generated_layers
from hypertiny_keras.losses import regularized_matrices
from hypertiny_keras.training.checkpoint import copy_model
from hypertiny_keras.transforms.accounting import ByteTable, byte_table


@dataclasses.dataclass
class PackedModel:
    """A model with its generated path rounded to `bits` bits.

    Attributes:
        model: the rounded copy (float weights on the quantization grid).
        bits: the width.
        scales: `{weight path: scale}` of each rounded tensor.
        table: `byte_table(model, bits=(bits,))`, Eq. 4/6 packed bytes by role.
    """

    model: keras.Model
    bits: int
    scales: dict[str, float]
    table: ByteTable

    @property
    def total_bytes(self) -> int:
        """Eq. 6 packed bytes of the model at `bits` (biases at 32 bits)."""
        return self.table.total[self.bits]


def quantize_symmetric(values: np.ndarray, bits: int) -> tuple[np.ndarray, float]:
    """Round `values` to the symmetric per-tensor `bits`-bit grid; returns `(rounded, scale)`.

    An all-zero tensor is returned unchanged with scale 0.
    """
    if bits < 2:
        raise ValueError(f"bits must be >= 2 for a signed grid, got {bits}")
    values = np.asarray(values, np.float32)
    qmax = 2 ** (bits - 1) - 1
    scale = float(np.max(np.abs(values))) / qmax
    if scale == 0.0:
        return values.copy(), 0.0
    return (np.clip(np.round(values / scale), -qmax, qmax) * scale).astype(np.float32), scale


def packed_variables(model: keras.Model) -> list:
    """The variables `pack_model` rounds: the spectral term's matrices
    (`losses.regularized_matrices`: generator kernels and bases, once each, and
    heads or per-layer factors) and the codes."""
    return regularized_matrices(model) + [
        w for layer in generated_layers(model) for role, w in layer.kernel_generator.stored(layer) if role == "codes"
    ]


def pack_model(model: keras.Model, bits: int) -> PackedModel:
    """A copy of `model` with generator, heads and codes rounded to `bits` bits (see module docstring)."""
    packed = copy_model(model)
    scales = {}
    for variable in packed_variables(packed):
        rounded, scales[variable.path] = quantize_symmetric(variable.numpy(), bits)
        variable.assign(rounded)
    return PackedModel(packed, int(bits), scales, byte_table(packed, bits=(int(bits),)))
