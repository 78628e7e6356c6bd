"""Stage 3 of the export, rewrite: give a converted int8 model an init subgraph that generates its kernels.

The TFLite converter folds every generator it sees into constants, so the
init subgraph is written into the flatbuffer after conversion:

    subgraph 0 (main)                        subgraph 1 (init, runs once)
    CALL_ONCE(init) ------------------------> FULLY_CONNECTED(z_l, W_g, b_g) -> h_l
    ...                                       [FULLY_CONNECTED(h_l, B) -> u_l]   factorized
    VAR_HANDLE(l) -> READ_VARIABLE -> filter  FULLY_CONNECTED(h_l | u_l, H_l) -> w_l (zp 0)
    CONV_2D(x, filter, bias)                  RESHAPE(w_l) -> VAR_HANDLE(l) -> ASSIGN_VARIABLE

Generated filters are symmetric int8 (zero point 0) with their scales fixed
in the file. What each layer's init operators are is its kernel generator's
business (`kernel_generators`): it calls the `Emitter` of this module, which
quantizes intermediate steps, emulates the device arithmetic bit-exactly
(`fixed_point`), and solves the last step's int8 weights so that the
synthesised kernel equals its target exactly: the converter's own
per-channel int8 filter (default, so boot and frozen files compute the same
thing), or the kernel rounded to one per-tensor scale. A layer whose target
cannot be reached exactly is refused, naming the layer, unless the caller
accepts the measured difference (`allow_inexact`).
"""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
from keras import ops
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from hypertiny_keras.layers import activations
from hypertiny_keras.export import fixed_point
from hypertiny_keras.export.analyze import ExportError
from hypertiny_keras.tflite.flatbuffer import buffer_bytes, builtin_code, compact, operator_code

OPS = schema.BuiltinOperator
INT8, INT32, RESOURCE = schema.TensorType.INT8, schema.TensorType.INT32, schema.TensorType.RESOURCE
INT4 = schema.TensorType.INT4
#: Largest |value| of a weight of `bits` bits in the init subgraph (symmetric).
WEIGHT_LEVELS = {8: 127, 4: 7}
_FC_VERSION = 4  # int8 FULLY_CONNECTED; the converter's version is reused when present
_HEAD_HEADROOM = 100  # largest |weight| of a solved step before compensation, in int8 steps
_FINE = 0.999  # a solved step moves its output by at most this many steps per weight step
_MIN_ACTIVATION_SCALE = 1e-6
_MULTIPLIER_RETRIES = (1.0, 0.5, 2.0, 0.25, 4.0, 0.125, 8.0)
_REPAIR_PASSES = 3  # extra passes over the weights of rows the first pass left outside their target


class BootExportError(ExportError):
    """The converted model cannot be given an init subgraph that computes its kernels exactly."""


@dataclasses.dataclass
class GeneratedLayer:
    """What the rewrite did to one generated layer.

    `exact_fraction` is the share of kernel values the device synthesises
    exactly equal to the target int8 filter; `max_error_lsb` the largest miss
    (filter steps); `kernel_error_lsb` the largest distance of the
    synthesised kernel from the float kernel (steps of its own scale).
    """

    name: str
    filters: int
    in_channels: int
    head_mode: str
    filter_scales: list[float]
    exact_fraction: float
    max_error_lsb: int
    kernel_error_lsb: float
    #: Bits of the layer's own init-subgraph weights (its head or right factor): the export's
    #: `init_weight_bits`, or 8 where int4 heads could not hit every target.
    weight_bits: int = 8


@dataclasses.dataclass
class Rewrite:
    """The result of `add_init_subgraph`: per-layer figures and the int8 filters the device computes.

    `filters` maps each rewritten CONV_2D filter (by layer name) to the int8
    values `(C_out, 1, 1, C_in)` the init subgraph synthesises, with their
    scales; `frozen_equivalent` stores them as constants.
    """

    layers: list[GeneratedLayer]
    filters: dict[str, tuple[np.ndarray, np.ndarray]]
    #: Whether every layer synthesises the converter's own per-channel filter
    #: (then the boot file computes what the converter's frozen file computes).
    matches_converter: bool = True


@dataclasses.dataclass
class Activations:
    """An int8 tensor of the init subgraph: its index, the values the device computes, scale, zero point."""

    tensor: int
    values: np.ndarray
    scale: float
    zero_point: int

    def centered(self) -> np.ndarray:
        return self.values.astype(np.int64) - self.zero_point


def _numpy(variable) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(variable), np.float64)


def _symmetric(x: np.ndarray, levels: float = 127.0) -> tuple[np.ndarray, float]:
    """Per-tensor symmetric integers in -levels..levels (int8 dtype): values and scale (largest |x| maps to `levels`)."""
    scale = float(np.float32(max(float(np.abs(x).max(initial=0.0)) / levels, 1e-12)))
    return np.clip(np.round(x / scale), -levels, levels).astype(np.int8), scale


def _activation_quantization(x: np.ndarray) -> tuple[float, int]:
    """Asymmetric int8 (scale, zero point) that covers `x` and 0.

    The scale is at least `_MIN_ACTIVATION_SCALE`: an all-zero activation
    (e.g. a ReLU that is off for every unit) would otherwise get a scale so
    small that TFLM refuses the FULLY_CONNECTED that writes it (its
    requantization shift is out of range).
    """
    low, high = min(0.0, float(x.min())), max(0.0, float(x.max()))
    scale = float(np.float32(max((high - low) / 255.0, _MIN_ACTIVATION_SCALE)))
    return scale, int(np.clip(np.round(-128 - low / scale), -128, 127))


def _quantization(scale, zero_point=0) -> schema.QuantizationParametersT:
    params = schema.QuantizationParametersT()
    params.scale = np.atleast_1d(np.asarray(scale, np.float32))
    params.zeroPoint = np.broadcast_to(np.asarray(zero_point, np.int64), params.scale.shape).copy()
    params.quantizedDimension = 0
    return params


class _Writer:
    """Appends tensors, buffers and operators to a `ModelT`."""

    def __init__(self, model: schema.ModelT):
        self.model = model
        versions = [
            code.version
            for code in model.operatorCodes
            if max(code.builtinCode, code.deprecatedBuiltinCode) == OPS.FULLY_CONNECTED
        ]
        self.fc_version = max(versions, default=_FC_VERSION)

    def buffer(self, array: np.ndarray | None) -> int:
        if array is None:
            return 0
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8)
        self.model.buffers.append(buffer)
        return len(self.model.buffers) - 1

    def tensor(self, subgraph, name, shape, dtype, data=None, quantization=None) -> int:
        if dtype == INT4 and data is not None:  # stored packed, two values per byte (TFLite's layout)
            from hypertiny_keras.tflite.weight_codecs import pack_int4

            data = pack_int4(data)
        tensor = schema.TensorT()
        tensor.name = name.encode()
        tensor.shape = np.asarray(shape, np.int32)
        tensor.type = dtype
        tensor.buffer = self.buffer(data)
        tensor.quantization = quantization
        subgraph.tensors.append(tensor)
        return len(subgraph.tensors) - 1

    def op(self, code, inputs, outputs, options_type=0, options=None, version=1):
        op = schema.OperatorT()
        op.opcodeIndex = operator_code(self.model, code, version)
        op.inputs = np.asarray(inputs, np.int32)
        op.outputs = np.asarray(outputs, np.int32)
        op.builtinOptionsType = options_type
        op.builtinOptions = options
        return op

    def fully_connected(self, subgraph, inputs, output, fused: int) -> None:
        options = schema.FullyConnectedOptionsT()
        options.fusedActivationFunction = fused
        subgraph.operators.append(
            self.op(OPS.FULLY_CONNECTED, inputs, [output], schema.BuiltinOptions.FullyConnectedOptions,
                    options, self.fc_version)
        )

    def var_handle(self, subgraph, name: str) -> tuple[schema.OperatorT, int]:
        options = schema.VarHandleOptionsT()
        options.container = b""
        options.sharedName = f"hypertiny/{name}".encode()
        resource = self.tensor(subgraph, f"{name}/resource", [], RESOURCE)
        op = self.op(OPS.VAR_HANDLE, [], [resource], schema.BuiltinOptions.VarHandleOptions, options)
        return op, resource


def solve_step(real: np.ndarray, x: np.ndarray, targets: np.ndarray, multiplier, limit: int = 127) -> np.ndarray:
    """Weights in -limit..limit `(outputs, len(x))` whose FULLY_CONNECTED output on `x` equals `targets` where possible.

    Starts from `round(real)` and moves each row's accumulator to the
    accumulator that maps to its target (greedily, adjusting the weights
    that meet the largest inputs first: with a multiplier of at most
    `_FINE / min |x|` the last adjustment always lands when no weight
    saturates); rows still outside (saturated weights) get up to
    `_REPAIR_PASSES` more passes, smallest inputs first, and are then
    searched exhaustively over +-4 on the three weights that meet the
    smallest inputs.
    """
    head = np.clip(np.round(real), -limit, limit).astype(np.int64)
    low, high = fixed_point.accumulator_interval(targets, multiplier)
    q, shift = multiplier
    m = q * 2.0**shift / 2.0**31
    goal = np.clip(np.round(targets / m), low, high).astype(np.int64)
    order = [j for j in np.argsort(-np.abs(x), kind="stable") if x[j] != 0]
    for j in order:
        step = np.round((goal - head @ x) / x[j]).astype(np.int64)
        head[:, j] = np.clip(head[:, j] + step, -limit, limit)
    acc = head @ x
    missing = np.flatnonzero((acc < low) | (acc > high))
    for _ in range(_REPAIR_PASSES if missing.size else 0):
        # Saturated weights (likely with a narrow range such as int4's) leave rows short: move the other
        # weights of those rows, smallest inputs first, each by what it can still take.
        for j in order[::-1]:
            rows = missing[(acc[missing] < low[missing]) | (acc[missing] > high[missing])]
            if not rows.size:
                break
            step = np.round((goal[rows] - acc[rows]) / x[j]).astype(np.int64)
            moved = np.clip(head[rows, j] + step, -limit, limit)
            acc[rows] += (moved - head[rows, j]) * x[j]
            head[rows, j] = moved
        missing = np.flatnonzero((acc < low) | (acc > high))
        if not missing.size:
            break
    fine = order[-3:]
    if missing.size and fine:
        grid = np.stack(np.meshgrid(*[np.arange(-4, 5)] * len(fine), indexing="ij"), -1).reshape(-1, len(fine))
        candidates = acc[missing, None] + grid @ x[fine]  # (rows, combos)
        entries = head[missing][:, fine][:, None, :] + grid[None]  # (rows, combos, k)
        valid = (candidates >= low[missing, None]) & (candidates <= high[missing, None])
        valid &= np.all(np.abs(entries) <= limit, axis=-1)
        distance = np.where(valid, np.abs(candidates - goal[missing, None]), np.iinfo(np.int64).max)
        best = distance.argmin(1)
        solved = valid[np.arange(missing.size), best]
        rows = missing[solved]
        head[np.ix_(rows, fine)] = entries[solved, best[solved]]
    return head.astype(np.int8)


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
        self.writer = _Writer(model)
        self.init = schema.SubGraphT()
        self.init.name, self.init.tensors, self.init.operators = b"hypertiny_init", [], []
        self.init.inputs, self.init.outputs = [], []
        self.shared: dict[str, tuple[int, np.ndarray, float]] = {}
        generators = {id(layer.generator): layer.generator for layer in layers if layer.kernel_generator.uses_generator}
        self.generator = next(iter(generators.values()), None)
        if self.generator is not None:
            # One scale for all codes, so that one int32 bias serves every layer.
            codes = np.concatenate([_numpy(layer.code) for layer in layers if layer.kernel_generator.uses_generator])
            _, self.code_scale = _symmetric(codes)

    def constant(self, key: str, matrix: np.ndarray) -> tuple[int, np.ndarray, float]:
        """A symmetric weight constant `(out, in)` of the emitter's weight bits, written once per `key`."""
        if key not in self.shared:
            values, scale = _symmetric(matrix, self.levels)
            index = self.writer.tensor(self.init, key, values.shape, self.weight_type, values, _quantization(scale))
            self.shared[key] = (index, values, scale)
        return self.shared[key]

    def generator_output(self, layer) -> Activations:
        """h_l = g(z_l): FULLY_CONNECTED of the layer's code with the shared generator `(d_h,)`."""
        generator = self.generator
        activation = activations.get(generator.activation)
        t_kernel, kernel, kernel_scale = self.constant("generator/kernel", _numpy(generator.kernel).T)
        bias_scale = float(np.float32(self.code_scale) * np.float32(kernel_scale))
        if "generator/bias" not in self.shared:
            bias = np.round(_numpy(generator.bias) / bias_scale).astype(np.int32)
            index = self.writer.tensor(self.init, "generator/bias", bias.shape, INT32, bias, _quantization(bias_scale))
            self.shared["generator/bias"] = (index, bias, bias_scale)
        t_bias, bias, _ = self.shared["generator/bias"]
        z = np.clip(np.round(_numpy(layer.code) / self.code_scale), -127, 127).astype(np.int8)
        h_float = activation.numpy((z * self.code_scale) @ (kernel.T * kernel_scale) + bias * bias_scale)
        h_scale, h_zero = _activation_quantization(h_float)
        h = fixed_point.fully_connected(
            z, 0, kernel, bias, fixed_point.tflm_multiplier(self.code_scale, kernel_scale, h_scale), h_zero,
            activation.int8_range(h_scale, h_zero),
        )
        t_z = self.writer.tensor(self.init, f"{layer.name}/code", [1, z.size], INT8, z, _quantization(self.code_scale))
        t_h = self.writer.tensor(self.init, f"{layer.name}/h", [1, h.size], INT8, None, _quantization(h_scale, h_zero))
        self.writer.fully_connected(self.init, [t_z, t_kernel, t_bias], t_h, activation.fused)
        return Activations(t_h, h, h_scale, h_zero)

    def fully_connected(self, key: str, source: Activations, weights) -> Activations:
        """`source @ weights` with a weight matrix `(in, out)` shared under `key` (no bias, no activation)."""
        t_weights, values, scale = self.constant(key, _numpy(weights).T)
        out_float = (source.centered() * source.scale) @ (values.T * scale)
        out_scale, out_zero = _activation_quantization(out_float)
        out = fixed_point.fully_connected(
            source.values, source.zero_point, values, None,
            fixed_point.tflm_multiplier(source.scale, scale, out_scale), out_zero,
        )
        name = f"{key}/{source.tensor}"
        t_out = self.writer.tensor(self.init, name, [1, out.size], INT8, None, _quantization(out_scale, out_zero))
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
        x = source.centered()
        real = (source.scale * _numpy(weights).T) * value_scales[:, None]  # target steps per input step
        target = np.asarray(target, np.int64)
        levels, dtype = self.levels, self.weight_type
        best = self._solve_head(real, x, source, target, levels)
        if best[0] and levels < WEIGHT_LEVELS[8]:
            levels, dtype = WEIGHT_LEVELS[8], INT8
            best = self._solve_head(real, x, source, target, levels)
            self.int8_fallbacks.append(name)
        _, weight_scale, head, synthesised = best
        t_head = self.writer.tensor(self.init, f"{name}/head", head.shape, dtype, head, _quantization(weight_scale))
        t_w = self.writer.tensor(self.init, f"{name}/w", [1, head.shape[0]], INT8, None, _quantization(1.0))
        self.writer.fully_connected(self.init, [source.tensor, t_head, -1], t_w, 0)
        return t_w, synthesised

    def _solve_head(self, real, x, source: Activations, target, levels: int):
        """(misses, weight scale, head, synthesised) of the best multiplier for weights in -levels..levels."""
        nonzero = np.abs(x[x != 0])
        candidates = [float(np.abs(real).max(initial=0.0)) / (_HEAD_HEADROOM * levels / WEIGHT_LEVELS[8])]
        if nonzero.size:
            candidates.append(_FINE / float(nonzero.min()))
        m = min(c for c in candidates if c > 0) if any(c > 0 for c in candidates) else 1.0
        best = None
        for factor in _MULTIPLIER_RETRIES:  # saturated weights can miss: try coarser and finer steps
            weight_scale = float(np.float32(m * factor / source.scale))
            multiplier = fixed_point.tflm_multiplier(source.scale, weight_scale, 1.0)
            real_int = real / float(np.float32(source.scale) * np.float32(weight_scale))
            head = solve_step(real_int, x, target, multiplier, levels)
            synthesised = fixed_point.fully_connected(source.values, source.zero_point, head, None, multiplier, 0)
            misses = int(np.sum(synthesised != target))
            if best is None or misses < best[0]:
                best = (misses, weight_scale, head, synthesised)
            if misses == 0:
                break
        return best

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
        left_q, left_scale = _symmetric(left)  # the FULLY_CONNECTED input: int8
        right_q, right_scale = _symmetric(right, self.levels)
        t_left = self.writer.tensor(self.init, f"{name}/left", left_q.shape, INT8, left_q, _quantization(left_scale))
        t_right = self.writer.tensor(self.init, f"{name}/right", right_q.shape, self.weight_type, right_q,
                                     _quantization(right_scale))
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
        scale = float(np.float32(max(float(np.abs(product).max(initial=0.0)) / 127.0, _MIN_ACTIVATION_SCALE)))
        values = fixed_point.fully_connected(
            left.values.reshape(x.shape), left.zero_point, right_q, None,
            fixed_point.tflm_multiplier(left.scale, right_scale, scale), 0,
        )
        # With no move, the product is written straight into the 4-D filter shape: TFLM's FULLY_CONNECTED
        # reads rows (batches) and units from the output's dimensions, (C_out, 1, 1, C_in) gives the same.
        shape = values.shape if layout is not None else (values.shape[0], 1, 1, values.shape[1])
        t_out = self.writer.tensor(self.init, f"{name}/product", shape, INT8, None, _quantization(scale))
        self.writer.fully_connected(self.init, [left.tensor, t_right, -1], t_out, 0)
        if layout is not None:
            shape, permutation = layout
            t_shape = self.writer.tensor(self.init, f"{name}/product_shape", [len(shape)], INT32,
                                         np.asarray(shape, np.int32))
            t_moved = self.writer.tensor(self.init, f"{name}/product4", shape, INT8, None, _quantization(scale))
            options = schema.ReshapeOptionsT()
            options.newShape = list(shape)
            self.init.operators.append(
                self.writer.op(OPS.RESHAPE, [t_out, t_shape], [t_moved], schema.BuiltinOptions.ReshapeOptions, options)
            )
            t_perm = self.writer.tensor(self.init, f"{name}/permutation", [len(permutation)], INT32,
                                        np.asarray(permutation, np.int32))
            moved_shape = [shape[axis] for axis in permutation]
            t_out = self.writer.tensor(self.init, f"{name}/kernel", moved_shape, INT8, None, _quantization(scale))
            self.init.operators.append(
                self.writer.op(OPS.TRANSPOSE, [t_moved, t_perm], [t_out], schema.BuiltinOptions.TransposeOptions,
                               schema.TransposeOptionsT())
            )
            values = values.reshape(shape).transpose(permutation)
        return t_out, values.reshape(-1), scale


def _stored_filter(model, subgraph, op) -> tuple[np.ndarray, np.ndarray]:
    """int8 filter `(C_out, C_in)` of a 1x1 CONV_2D and its per-channel scales `(C_out,)`."""
    tensor = subgraph.tensors[op.inputs[1]]
    cout = int(tensor.shape[0])
    q = np.frombuffer(buffer_bytes(model, tensor), np.int8).reshape(cout, -1)
    scales = np.broadcast_to(np.asarray(tensor.quantization.scale, np.float64), (cout,))
    return q, scales


def _match_convs(model, kernels: dict[str, np.ndarray]) -> dict[str, tuple[schema.OperatorT, np.ndarray]]:
    """Find the CONV_2D that holds each generated kernel, and the per-channel factor folded into it.

    The converter may fold a following BatchNormalization into the filter,
    so a stored filter row is `a_c * W_l[c]`; `a_c` is fitted and accepted
    when every value is within one quantization step.
    """
    main = model.subgraphs[0]
    candidates = [
        op
        for op in main.operators
        if builtin_code(model, op) == OPS.CONV_2D
        and [int(v) for v in main.tensors[op.inputs[1]].shape[1:3]] == [1, 1]
        and buffer_bytes(model, main.tensors[op.inputs[1]])
    ]
    matches, taken = {}, set()
    for name, kernel in kernels.items():
        best = None
        for op in candidates:
            shape = [int(v) for v in main.tensors[op.inputs[1]].shape]
            if id(op) in taken or shape != [kernel.shape[0], 1, 1, kernel.shape[1]]:
                continue
            q, scales = _stored_filter(model, main, op)
            stored = q * scales[:, None]
            norms = (kernel * kernel).sum(1)
            factor = np.where(norms > 0, (stored * kernel).sum(1) / np.maximum(norms, 1e-30), 1.0)
            error = float((np.abs(stored - factor[:, None] * kernel) / scales[:, None]).max())
            if best is None or error < best[0]:
                best = (error, op, factor)
        if best is None or best[0] > 1.0:
            raise BootExportError(
                f"no CONV_2D in the converted model holds the kernel of {name!r} "
                f"(best fit {best[0] if best else float('inf'):.2f} quantization steps)"
            )
        taken.add(id(best[1]))
        matches[name] = (best[1], best[2])
    return matches


def add_init_subgraph(
    model: schema.ModelT, layers, per_channel: bool = True, allow_inexact: bool = False, weight_bits: int = 8
) -> Rewrite:
    """Rewrite `model` (converted from the frozen Keras model) in place for boot-time synthesis.

    Args:
        model: the converter's full-integer model of the frozen Keras model.
        layers: the model's `HyperPointwise` layers (`layers.generated_layers`), in model order.
        per_channel: synthesise exactly the converter's per-channel int8
            filter (one scale per output channel; the convolution is then
            identical to the frozen file's). `False`: one scale per filter.
        allow_inexact: write the file even where the device cannot
            synthesise a layer's target exactly (the misses are reported).
        weight_bits: bits of the init subgraph's FULLY_CONNECTED weights
            (generator, basis, heads, right factors): 8, or 4 (packed int4,
            half the bytes). Heads are still solved for the exact int8
            target; factor kernels are what the int4 arithmetic gives.

    Raises:
        BootExportError: no CONV_2D holds a generated kernel, or (unless
            `allow_inexact`) a layer's kernel is not synthesised exactly.
    """
    if not layers:
        raise BootExportError("the model has no HyperPointwise layer")
    kernels = {layer.name: _numpy(layer.generated_kernel()) for layer in layers}
    matches = _match_convs(model, kernels)
    emitter = Emitter(model, layers, weight_bits)
    writer, init, main = emitter.writer, emitter.init, model.subgraphs[0]
    model.subgraphs.append(init)

    report, filters, reads, inexact = [], {}, {}, []
    for layer in layers:
        name = layer.name
        conv, factor = matches[name]
        cout, cin = kernels[name].shape
        stored, stored_scales = _stored_filter(model, main, conv)
        target_kernel = kernels[name] * factor[:, None]
        kind = layer.kernel_generator
        if kind.solves_target:
            if per_channel:
                filter_scales, target = stored_scales, stored.astype(np.int64)
            else:
                target, scale = _symmetric(target_kernel)
                filter_scales, target = np.full(1, scale), target.astype(np.int64)
            row_scales = np.broadcast_to(filter_scales, (cout,))
            value_scales = np.repeat(factor / row_scales, cin)  # float kernel value -> target steps
            t_w, synthesised, _ = kind.emit(emitter, layer, target.reshape(-1), value_scales)
        else:
            if np.any(factor <= 0):
                raise BootExportError(
                    f"{name}: the converter's filter flips or zeroes {int(np.sum(factor <= 0))} output channel(s) "
                    "(a following BatchNormalization with gamma <= 0, or a kernel row that rounds to zero); a "
                    f"{kind.name!r} kernel is one product of factors and cannot absorb it; export with "
                    "synthesis='frozen'"
                )
            t_w, synthesised, scale = kind.emit(emitter, layer, None, None)
            # One scale for the device kernel; a folded BatchNormalization goes into the per-channel scales.
            filter_scales = np.asarray(np.float32(scale) * factor.astype(np.float32), np.float64)
            row_scales = filter_scales
            target = np.asarray(synthesised, np.int64).reshape(cout, cin)
        synthesised = np.asarray(synthesised, np.int64).reshape(cout, cin)

        t_w4 = t_w
        if [int(d) for d in init.tensors[t_w].shape] != [cout, 1, 1, cin]:
            t_shape = writer.tensor(init, f"{name}/shape", [4], INT32, np.array([cout, 1, 1, cin], np.int32))
            # The init side only moves bytes: one scale there; the filter scales sit on the reader.
            t_w4 = writer.tensor(init, f"{name}/filter", [cout, 1, 1, cin], INT8, None, _quantization(1.0))
            reshape = schema.ReshapeOptionsT()
            reshape.newShape = [cout, 1, 1, cin]
            init.operators.append(
                writer.op(OPS.RESHAPE, [t_w, t_shape], [t_w4], schema.BuiltinOptions.ReshapeOptions, reshape)
            )
        handle, t_resource = writer.var_handle(init, name)
        assign = writer.op(OPS.ASSIGN_VARIABLE, [t_resource, t_w4], [], schema.BuiltinOptions.AssignVariableOptions,
                           schema.AssignVariableOptionsT())
        init.operators += [handle, assign]

        # Main graph: read the cached kernel right before its convolution.
        handle, t_resource = writer.var_handle(main, name)
        t_filter = writer.tensor(main, f"{name}/filter", [cout, 1, 1, cin], INT8, None, _quantization(filter_scales))
        read = writer.op(OPS.READ_VARIABLE, [t_resource], [t_filter], schema.BuiltinOptions.ReadVariableOptions,
                         schema.ReadVariableOptionsT())
        reads[id(conv)] = [handle, read]
        conv.inputs[1] = t_filter
        if not np.array_equal(filter_scales, stored_scales) and len(conv.inputs) > 2 and conv.inputs[2] >= 0:
            # The bias is in units of input scale x filter scale: requantize it to the new filter scales.
            input_scale = float(main.tensors[conv.inputs[0]].quantization.scale[0])
            old_bias = np.frombuffer(buffer_bytes(model, main.tensors[conv.inputs[2]]), np.int32)
            bias_float = old_bias * input_scale * stored_scales
            new_scales = np.float32(input_scale) * np.broadcast_to(filter_scales, (cout,)).astype(np.float32)
            bias = np.clip(np.round(bias_float / new_scales.astype(np.float64)), -(2**31), 2**31 - 1)
            conv.inputs[2] = writer.tensor(
                main, f"{name}/bias", [cout], INT32, bias.astype(np.int32),
                _quantization(new_scales if filter_scales.size > 1 else new_scales[:1]),
            )
        miss = np.abs(synthesised - target)
        if miss.max() > 0:
            inexact.append(f"{name} ({100 * np.mean(miss > 0):.1f}% of its {miss.size} values missed, "
                           f"by up to {int(miss.max())} steps)")
        filters[name] = (synthesised.astype(np.int8).reshape(cout, 1, 1, cin), np.asarray(filter_scales, np.float32))
        report.append(
            GeneratedLayer(
                name=name,
                filters=cout,
                in_channels=cin,
                head_mode=layer.head_mode,
                filter_scales=[float(s) for s in filter_scales],
                exact_fraction=float(np.mean(miss == 0)),
                max_error_lsb=int(miss.max()),
                kernel_error_lsb=float((np.abs(synthesised * row_scales[:, None] - target_kernel) / row_scales[:, None]).max()),
                weight_bits=8 if name in emitter.int8_fallbacks else weight_bits,
            )
        )
    if inexact and not allow_inexact:
        raise BootExportError(
            "the device cannot synthesise these kernels exactly, so the boot file would not compute what the "
            f"frozen file computes: {'; '.join(inexact)}; export with synthesis='frozen', or accept the "
            "difference with allow_inexact=True"
        )

    once = schema.CallOnceOptionsT()
    once.initSubgraphIndex = len(model.subgraphs) - 1
    operators = [writer.op(OPS.CALL_ONCE, [], [], schema.BuiltinOptions.CallOnceOptions, once)]
    for op in main.operators:
        operators += reads.get(id(op), []) + [op]
    main.operators = operators
    compact(model)
    return Rewrite(report, filters, per_channel and all(layer.kernel_generator.solves_target for layer in layers))


def frozen_equivalent(model: schema.ModelT, rewrite: Rewrite) -> schema.ModelT:
    """The boot `model` with its synthesised filters stored as constants: no init subgraph, no variables.

    What TFLM computes with this file is what the boot file must compute
    after its init subgraph ran; `verify` compares the two bit for bit.
    """
    twin = copy.deepcopy(model)
    main = twin.subgraphs[0]
    writer = _Writer(twin)
    by_name = {tensor.name: index for index, tensor in enumerate(main.tensors) if tensor.name}
    for name, (values, scales) in rewrite.filters.items():
        tensor = main.tensors[by_name[f"{name}/filter".encode()]]
        tensor.buffer = writer.buffer(values)
        tensor.quantization = _quantization(scales)
    drop = {OPS.CALL_ONCE, OPS.VAR_HANDLE, OPS.READ_VARIABLE}
    main.operators = [op for op in main.operators if builtin_code(twin, op) not in drop]
    twin.subgraphs = twin.subgraphs[:1]
    compact(twin)
    return twin
