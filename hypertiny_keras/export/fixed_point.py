"""Bit-exact numpy emulation of TFLM's int8 FULLY_CONNECTED arithmetic (reference kernels).

The functions follow `tensorflow/lite/kernels/internal/quantization_util.cc`
(`QuantizeMultiplier`), `common.cc` (double-rounding
`MultiplyByQuantizedMultiplier`, TFLM's default; CMSIS-NN matches it) and
`reference/integer_ops/fully_connected.h`. The boot export uses them to know,
before writing the file, exactly which int8 kernel the device will synthesise.
"""
from __future__ import annotations

import math

import numpy as np

_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1


def quantize_multiplier(real: float) -> tuple[int, int]:
    """`real` -> (Q31 significand, power-of-two exponent), as `QuantizeMultiplier`."""
    if real == 0.0:
        return 0, 0
    significand, shift = math.frexp(real)
    q_fixed = int(math.floor(abs(significand) * (1 << 31) + 0.5)) * (1 if significand >= 0 else -1)
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def tflm_multiplier(input_scale: float, filter_scale: float, output_scale: float) -> tuple[int, int]:
    """The per-tensor FULLY_CONNECTED multiplier TFLM derives from float32 scales.

    `GetQuantizedConvolutionMultipler(context, input, filter, bias, output, ...)`
    (the overload FULLY_CONNECTED calls, bias or not) widens both float32
    scales to double before it multiplies them, then divides by the output
    scale in double (tensorflow/lite/kernels/kernel_util.cc, in today's TFLM
    and in both Arduino libraries' snapshots). A float32 product differs in
    rare cases: a lowrank kernel whose scales gave exactly 2^-7 in float32
    but 2^-7 (1 + 1.8e-8) in double lost one step on a value at -20.5 (found
    by the Speech Commands front: boot != frozen, refused by the export).
    """
    product = float(np.float32(input_scale)) * float(np.float32(filter_scale))
    return quantize_multiplier(product / float(np.float32(output_scale)))


def _high_mul(a: np.ndarray, b: int) -> np.ndarray:
    """gemmlowp `SaturatingRoundingDoublingHighMul` on int64 arrays holding int32 values."""
    a = np.asarray(a, np.int64)
    product = a * np.int64(b)
    nudged = product + np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    truncated = np.where(nudged >= 0, nudged // (1 << 31), -((-nudged) // (1 << 31)))
    return np.where((a == _INT32_MIN) & (b == _INT32_MIN), _INT32_MAX, truncated)


def _divide_by_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    """gemmlowp `RoundingDivideByPOT` (round half away from zero)."""
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def requantize(acc: np.ndarray, multiplier: tuple[int, int]) -> np.ndarray:
    """`MultiplyByQuantizedMultiplier(acc, q, shift)` (double rounding), elementwise."""
    q, shift = multiplier
    scaled = np.asarray(acc, np.int64) * (1 << max(shift, 0))
    return _divide_by_pot(_high_mul(scaled, q), max(-shift, 0))


def fully_connected(
    x: np.ndarray,
    input_zero_point: int,
    weights: np.ndarray,
    bias: np.ndarray | None,
    multiplier: tuple[int, int],
    output_zero_point: int,
    clamp: tuple[int, int] = (-128, 127),
) -> np.ndarray:
    """int8 FULLY_CONNECTED: `x` `(in,)` or `(batch, in)` int8, `weights` `(out, in)` int8.

    Returns `(out,)` or `(batch, out)` int8.
    """
    acc = (np.asarray(x, np.int64) - input_zero_point) @ np.asarray(weights, np.int64).T
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    return np.clip(requantize(acc, multiplier) + output_zero_point, *clamp)


def accumulator_interval(targets: np.ndarray, multiplier: tuple[int, int], output_zero_point: int = 0):
    """For each int8 target, the accumulators `[low, high]` that requantize to exactly it.

    Requantization is monotonic, so both ends are found by bisection.
    """
    targets = np.asarray(targets, np.int64)

    def output(acc):
        return np.clip(requantize(acc, multiplier) + output_zero_point, -128, 127)

    def first_at_least(value):
        low = np.full(value.shape, _INT32_MIN, np.int64)
        high = np.full(value.shape, _INT32_MAX, np.int64)
        while np.any(low < high):
            middle = (low + high) // 2
            reached = output(middle) >= value
            high = np.where(reached, middle, high)
            low = np.where(reached, low, middle + 1)
        return low

    return first_at_least(targets), first_at_least(targets + 1) - 1
