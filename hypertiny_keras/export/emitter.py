"""`Emitter`: the init-subgraph API that kernel generators call to emit their steps.

Each kind in `hypertiny_keras.kernel_generators` writes its layer's init
operators through these methods (duck-typed: `generator_output`,
`fully_connected`, `exact_fully_connected`, `constant`, `factor_product`,
`product`). Every step is an int8 FULLY_CONNECTED; the values the device
computes are emulated as the file is written (`fixed_point`), so each step's
output quantization is fitted to what it really receives, and the last step
of a kind that solves for its target is solved for its exact int8 filter
(`solver`).
"""
from __future__ import annotations

import dataclasses

import numpy as np
from keras import ops
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from hypertiny_keras.export import fixed_point
from hypertiny_keras.export.model_writer import INT4, INT8, INT32, OPS, ModelWriter, quantization
from hypertiny_keras.export.solver import WEIGHT_LEVELS, solve_head
from hypertiny_keras.layers import activations

#: Smallest scale of an int8 activation of the init subgraph (see `activation_quantization`).
MIN_ACTIVATION_SCALE = 1e-6


@dataclasses.dataclass
class Activations:
    """An int8 tensor of the init subgraph: its index, the values the device computes, scale, zero point."""

    tensor: int
    values: np.ndarray
    scale: float
    zero_point: int

    def centered(self) -> np.ndarray:
        """The values minus the zero point, as int64."""
        return self.values.astype(np.int64) - self.zero_point


def as_float64(variable) -> np.ndarray:
    """A Keras variable or tensor as a float64 numpy array."""
    return np.asarray(ops.convert_to_numpy(variable), np.float64)


def symmetric(x: np.ndarray, levels: float = 127.0) -> tuple[np.ndarray, float]:
    """Per-tensor symmetric integers in -levels..levels (int8 dtype) and their scale (largest |x| -> `levels`)."""
    scale = float(np.float32(max(float(np.abs(x).max(initial=0.0)) / levels, 1e-12)))
    return np.clip(np.round(x / scale), -levels, levels).astype(np.int8), scale


def activation_quantization(x: np.ndarray) -> tuple[float, int]:
    """Asymmetric int8 (scale, zero point) that covers `x` and 0.

    The scale is at least `MIN_ACTIVATION_SCALE`: an all-zero activation
    (e.g. a ReLU that is off for every unit) would otherwise get a scale so
    small that TFLM refuses the FULLY_CONNECTED that writes it (its
    requantization shift is out of range).
    """
    low, high = min(0.0, float(x.min())), max(0.0, float(x.max()))
    scale = float(np.float32(max((high - low) / 255.0, MIN_ACTIVATION_SCALE)))
    return scale, int(np.clip(np.round(-128 - low / scale), -128, 127))


class Emitter:
    """Writes the init subgraph; kernel generators call it to emit their steps.

    Every step is int8 FULLY_CONNECTED. The values the device computes are
    emulated as the file is written, so each step's output quantization is
    fitted to what it really receives, and the last step of each layer is
    solved for its exact int8 target.
    """

    def __init__(self, model: schema.ModelT, layers, weight_bits: int = 8):
        self.model = model
        #: Bits of the FULLY_CONNECTED weights written (8, or 4: packed int4); inputs stay int8.
        self.levels = WEIGHT_LEVELS[weight_bits]
        self.weight_type = INT4 if weight_bits == 4 else INT8
        #: Layers whose solved head is int8 although `weight_bits` is 4 (int4 could not hit every target).
        self.int8_fallbacks: list[str] = []
        self.writer = ModelWriter(model)
        self.init = schema.SubGraphT()
        self.init.name, self.init.tensors, self.init.operators = b"hypertiny_init", [], []
        self.init.inputs, self.init.outputs = [], []
        self.shared: dict[str, tuple[int, np.ndarray, float]] = {}
        generators = {id(layer.generator): layer.generator for layer in layers if layer.kernel_generator.uses_generator}
        self.generator = next(iter(generators.values()), None)
        if self.generator is not None:
            # One scale for all codes, so that one int32 bias serves every layer.
            codes = np.concatenate(
                [as_float64(layer.code) for layer in layers if layer.kernel_generator.uses_generator]
            )
            _, self.code_scale = symmetric(codes)

    def constant(self, key: str, matrix: np.ndarray) -> tuple[int, np.ndarray, float]:
        """A symmetric weight constant `(out, in)` of the emitter's weight bits, written once per `key`."""
        if key not in self.shared:
            values, scale = symmetric(matrix, self.levels)
            index = self.writer.tensor(self.init, key, values.shape, self.weight_type, values, quantization(scale))
            self.shared[key] = (index, values, scale)
        return self.shared[key]

    def generator_output(self, layer) -> Activations:
        """h_l = g(z_l): FULLY_CONNECTED of the layer's code with the shared generator `(d_h,)`."""
        generator = self.generator
        activation = activations.get(generator.activation)
        t_kernel, kernel, kernel_scale = self.constant("generator/kernel", as_float64(generator.kernel).T)
        bias_scale = float(np.float32(self.code_scale) * np.float32(kernel_scale))
        if "generator/bias" not in self.shared:
            bias = np.round(as_float64(generator.bias) / bias_scale).astype(np.int32)
            index = self.writer.tensor(self.init, "generator/bias", bias.shape, INT32, bias, quantization(bias_scale))
            self.shared["generator/bias"] = (index, bias, bias_scale)
        t_bias, bias, _ = self.shared["generator/bias"]
        z = np.clip(np.round(as_float64(layer.code) / self.code_scale), -127, 127).astype(np.int8)
        h_float = activation.numpy((z * self.code_scale) @ (kernel.T * kernel_scale) + bias * bias_scale)
        h_scale, h_zero = activation_quantization(h_float)
        h = fixed_point.fully_connected(
            z, 0, kernel, bias, fixed_point.tflm_multiplier(self.code_scale, kernel_scale, h_scale), h_zero,
            activation.int8_range(h_scale, h_zero),
        )
        t_z = self.writer.tensor(self.init, f"{layer.name}/code", [1, z.size], INT8, z, quantization(self.code_scale))
        t_h = self.writer.tensor(self.init, f"{layer.name}/h", [1, h.size], INT8, None, quantization(h_scale, h_zero))
        self.writer.fully_connected(self.init, [t_z, t_kernel, t_bias], t_h, activation.fused)
        return Activations(t_h, h, h_scale, h_zero)

    def fully_connected(self, key: str, source: Activations, weights) -> Activations:
        """`source @ weights` with a weight matrix `(in, out)` shared under `key` (no bias, no activation)."""
        t_weights, values, scale = self.constant(key, as_float64(weights).T)
        out_float = (source.centered() * source.scale) @ (values.T * scale)
        out_scale, out_zero = activation_quantization(out_float)
        out = fixed_point.fully_connected(
            source.values, source.zero_point, values, None,
            fixed_point.tflm_multiplier(source.scale, scale, out_scale), out_zero,
        )
        name = f"{key}/{source.tensor}"
        t_out = self.writer.tensor(self.init, name, [1, out.size], INT8, None, quantization(out_scale, out_zero))
        self.writer.fully_connected(self.init, [source.tensor, t_weights, -1], t_out, 0)
        return Activations(t_out, out, out_scale, out_zero)

    def exact_fully_connected(self, name: str, source: Activations, weights, target, value_scales):
        """The last step: `source @ weights` `(in, C_out*C_in)`, its weights solved to give `target`.

        The weights have the emitter's bits; where int4 weights cannot hit
        every target (their range saturates), this layer's head falls back
        to int8 (`self.int8_fallbacks` names it), so the kernel stays exact.

        Returns:
            (tensor index of the int8 output `(1, C_out*C_in)`, the values the device computes).
        """
        real = (source.scale * as_float64(weights).T) * value_scales[:, None]  # target steps per input step
        target = np.asarray(target, np.int64)
        levels, dtype = self.levels, self.weight_type
        best = solve_head(real, source.values, source.zero_point, source.scale, target, levels)
        if best.misses and levels < WEIGHT_LEVELS[8]:
            levels, dtype = WEIGHT_LEVELS[8], INT8
            best = solve_head(real, source.values, source.zero_point, source.scale, target, levels)
            self.int8_fallbacks.append(name)
        head = best.head
        t_head = self.writer.tensor(self.init, f"{name}/head", head.shape, dtype, head, quantization(best.weight_scale))
        t_w = self.writer.tensor(self.init, f"{name}/w", [1, head.shape[0]], INT8, None, quantization(1.0))
        self.writer.fully_connected(self.init, [source.tensor, t_head, -1], t_w, 0)
        return t_w, best.synthesised

    def factor_product(self, name: str, left: np.ndarray, right: np.ndarray, layout=None):
        """A kernel made by one FULLY_CONNECTED of two per-layer factors: `left @ right.T`.

        Args:
            name: the layer's name (tensor names).
            left: float `(rows, r)`, the FULLY_CONNECTED input (an int8 constant).
            right: float `(cols, r)`, its weights.
            layout: see `product`.

        Returns:
            what `product` returns.
        """
        left_q, left_scale = symmetric(left)  # the FULLY_CONNECTED input: int8
        right_q, right_scale = symmetric(right, self.levels)
        t_left = self.writer.tensor(self.init, f"{name}/left", left_q.shape, INT8, left_q, quantization(left_scale))
        t_right = self.writer.tensor(self.init, f"{name}/right", right_q.shape, self.weight_type, right_q,
                                     quantization(right_scale))
        return self.product(name, Activations(t_left, left_q, left_scale, 0), (t_right, right_q, right_scale), layout)

    def product(self, name: str, left: Activations, right: tuple[int, np.ndarray, float], layout=None):
        """The kernel `M = left @ right.T` by one FULLY_CONNECTED, moved into the `(C_out, C_in)` layout.

        Args:
            name: the layer's name (tensor names).
            left: the FULLY_CONNECTED input, `rows * r` int8 values in `(rows, r)` row-major order
                (a constant, or the output of an earlier step).
            right: (tensor, int weights `(cols, r)`, scale) of its weights, e.g. from `constant`.
            layout: `(shape, permutation)`: RESHAPE the `(rows, cols)` product
                to `shape`, then TRANSPOSE by `permutation`; `None`: no move.

        Returns:
            (index of the int8 kernel tensor, its values `(rows * cols,)` in
            kernel order as the device computes them, their one scale; zero
            point 0, so the values serve as a CONV_2D filter).
        """
        t_right, right_q, right_scale = right
        x = left.centered().reshape(-1, right_q.shape[1])
        product = (x * left.scale) @ (right_q.astype(np.float64) * right_scale).T
        scale = float(np.float32(max(float(np.abs(product).max(initial=0.0)) / 127.0, MIN_ACTIVATION_SCALE)))
        values = fixed_point.fully_connected(
            left.values.reshape(x.shape), left.zero_point, right_q, None,
            fixed_point.tflm_multiplier(left.scale, right_scale, scale), 0,
        )
        # With no move, the product is written straight into the 4-D filter shape: TFLM's FULLY_CONNECTED
        # reads rows (batches) and units from the output's dimensions, (C_out, 1, 1, C_in) gives the same.
        shape = values.shape if layout is not None else (values.shape[0], 1, 1, values.shape[1])
        t_out = self.writer.tensor(self.init, f"{name}/product", shape, INT8, None, quantization(scale))
        self.writer.fully_connected(self.init, [left.tensor, t_right, -1], t_out, 0)
        if layout is not None:
            shape, permutation = layout
            t_moved = self.writer.reshape(self.init, t_out, f"{name}/product4", shape, quantization(scale))
            t_perm = self.writer.tensor(self.init, f"{name}/permutation", [len(permutation)], INT32,
                                        np.asarray(permutation, np.int32))
            moved_shape = [shape[axis] for axis in permutation]
            t_out = self.writer.tensor(self.init, f"{name}/kernel", moved_shape, INT8, None, quantization(scale))
            self.init.operators.append(
                self.writer.op(OPS.TRANSPOSE, [t_moved, t_perm], [t_out], schema.BuiltinOptions.TransposeOptions,
                               schema.TransposeOptionsT())
            )
            values = values.reshape(shape).transpose(permutation)
        return t_out, values.reshape(-1), scale
