"""Boot-time synthesis: rewrite a converted int8 model so the device generates its pointwise kernels.

The TFLite converter folds every generator it sees into constants, so the
init subgraph is written into the flatbuffer after conversion:

    subgraph 0 (main)                        subgraph 1 (init, runs once)
    CALL_ONCE(init) ------------------------> FULLY_CONNECTED(z_l, W_g, b_g) -> h_l
    ...                                       [FULLY_CONNECTED(h_l, B) -> u_l]   factorized
    VAR_HANDLE(l) -> READ_VARIABLE -> filter  FULLY_CONNECTED(h_l | u_l, H_l) -> w_l (zp 0)
    CONV_2D(x, filter, bias)                  RESHAPE(w_l) -> VAR_HANDLE(l) -> ASSIGN_VARIABLE

Generated filters are symmetric int8 (zero point 0) with their scales fixed
in the file. The device arithmetic is emulated bit-exactly
(`fixed_point`), and each head row's int8 rounding is chosen so that the
synthesised kernel equals its target exactly: the converter's own
per-channel int8 filter (default, so boot and frozen files compute the same
thing), or the kernel rounded to one per-tensor scale. Each row is aimed at
the middle of the accumulator interval that gives its target, so a kernel
that rounds differently (LiteRT's optimized kernels) still lands on it.
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import ops
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from hypertiny_keras.export import fixed_point
from hypertiny_keras.export.flatbuffer import buffer_bytes, builtin_code, compact, operator_code
from hypertiny_keras.layers import HyperPointwise

OPS = schema.BuiltinOperator
INT8, INT32, RESOURCE = schema.TensorType.INT8, schema.TensorType.INT32, schema.TensorType.RESOURCE
_FC_VERSION = 4  # int8 FULLY_CONNECTED; the converter's version is reused when present
_FUSED = {
    "relu": schema.ActivationFunctionType.RELU,
    "relu6": schema.ActivationFunctionType.RELU6,
    "linear": schema.ActivationFunctionType.NONE,
}
_ACTIVATIONS = {
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "linear": lambda x: x,
}
_HEAD_HEADROOM = 100  # largest |head| before compensation, in int8 steps (room to adjust)


class BootExportError(ValueError):
    """The converted model cannot be given an init subgraph."""


@dataclasses.dataclass
class GeneratedLayer:
    """What the surgery did to one generated layer.

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


def _numpy(variable) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(variable), np.float64)


def _symmetric(x: np.ndarray, levels: float = 127.0) -> tuple[np.ndarray, float]:
    """Per-tensor symmetric int8: values and scale (largest |x| maps to `levels`)."""
    scale = float(np.float32(max(float(np.abs(x).max()) / levels, 1e-12)))
    return np.clip(np.round(x / scale), -127, 127).astype(np.int8), scale


def _activation_quantization(x: np.ndarray) -> tuple[float, int]:
    """Asymmetric int8 (scale, zero point) that covers `x` and 0."""
    low, high = min(0.0, float(x.min())), max(0.0, float(x.max()))
    scale = float(np.float32(max((high - low) / 255.0, 1e-12)))
    return scale, int(np.clip(np.round(-128 - low / scale), -128, 127))


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

    @staticmethod
    def quantization(scale, zero_point=0) -> schema.QuantizationParametersT:
        params = schema.QuantizationParametersT()
        params.scale = np.atleast_1d(np.asarray(scale, np.float32))
        params.zeroPoint = np.broadcast_to(np.asarray(zero_point, np.int64), params.scale.shape).copy()
        params.quantizedDimension = 0
        return params

    def tensor(self, subgraph, name, shape, dtype, data=None, quantization=None) -> int:
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

    def fully_connected(self, subgraph, inputs, output, activation) -> None:
        options = schema.FullyConnectedOptionsT()
        options.fusedActivationFunction = activation
        subgraph.operators.append(
            self.op(
                OPS.FULLY_CONNECTED,
                inputs,
                [output],
                schema.BuiltinOptions.FullyConnectedOptions,
                options,
                self.fc_version,
            )
        )

    def var_handle(self, subgraph, name: str) -> tuple[schema.OperatorT, int]:
        options = schema.VarHandleOptionsT()
        options.container = b""
        options.sharedName = f"hypertiny/{name}".encode()
        resource = self.tensor(subgraph, f"{name}/resource", [], RESOURCE)
        op = self.op(OPS.VAR_HANDLE, [], [resource], schema.BuiltinOptions.VarHandleOptions, options)
        return op, resource


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


def _compensated_head(real: np.ndarray, x: np.ndarray, targets: np.ndarray, multiplier) -> np.ndarray:
    """int8 head `(rows, len(x))` whose FULLY_CONNECTED output on `x` equals `targets` where possible.

    Starts from `round(real)` and moves each row's accumulator towards the
    middle of the interval that requantizes to its target: first greedily,
    adjusting the entries that meet the largest inputs first; then, for rows
    still outside (few inputs, as in factorized heads), by trying every
    adjustment of up to +-4 on the three entries that meet the smallest inputs.
    """
    head = np.clip(np.round(real), -127, 127).astype(np.int64)
    low, high = fixed_point.accumulator_interval(targets, multiplier)
    goal = (low + high) // 2
    order = [j for j in np.argsort(-np.abs(x)) if x[j] != 0]
    for j in order:
        step = np.round((goal - head @ x) / x[j]).astype(np.int64)
        head[:, j] = np.clip(head[:, j] + step, -127, 127)
    acc = head @ x
    missing = np.flatnonzero((acc < low) | (acc > high))
    fine = order[-3:]
    if missing.size and fine:
        grid = np.stack(np.meshgrid(*[np.arange(-4, 5)] * len(fine), indexing="ij"), -1).reshape(-1, len(fine))
        candidates = acc[missing, None] + grid @ x[fine]  # (rows, combos)
        entries = head[missing][:, fine][:, None, :] + grid[None]  # (rows, combos, k)
        valid = (candidates >= low[missing, None]) & (candidates <= high[missing, None])
        valid &= np.all(np.abs(entries) <= 127, axis=-1)
        distance = np.where(valid, np.abs(candidates - goal[missing, None]), np.iinfo(np.int64).max)
        best = distance.argmin(1)
        solved = valid[np.arange(missing.size), best]
        rows = missing[solved]
        head[np.ix_(rows, fine)] = entries[solved, best[solved]]
    return head.astype(np.int8)


def add_init_subgraph(
    model: schema.ModelT, keras_model: keras.Model, per_channel: bool = True
) -> list[GeneratedLayer]:
    """Rewrite `model` (converted from `freeze(keras_model)`) in place for boot-time synthesis.

    Args:
        model: the converter's full-integer model of the frozen Keras model.
        keras_model: the model with `HyperPointwise` layers it was frozen from.
        per_channel: synthesise exactly the converter's per-channel int8
            filter (one scale per output channel; the convolution is then
            identical to the frozen file's). `False`: one scale per filter.

    Returns:
        One `GeneratedLayer` per generated kernel, in model order.
    """
    layers = [layer for layer in keras_model.layers if isinstance(layer, HyperPointwise)]
    if not layers:
        raise BootExportError(f"model {keras_model.name!r} has no HyperPointwise layer")
    if len({id(layer.generator) for layer in layers}) != 1:
        raise BootExportError("boot export supports one shared generator per model")
    generator = layers[0].generator
    kernels = {layer.name: _numpy(layer.generated_kernel()) for layer in layers}
    matches = _match_convs(model, kernels)

    writer = _Writer(model)
    main = model.subgraphs[0]
    init = schema.SubGraphT()
    init.name, init.tensors, init.operators, init.inputs, init.outputs = b"hypertiny_init", [], [], [], []
    model.subgraphs.append(init)

    # Shared generator: one scale for all codes, so that one int32 bias serves every layer.
    codes = {layer.name: _numpy(layer.code) for layer in layers}
    _, code_scale = _symmetric(np.concatenate(list(codes.values())))
    g_kernel, g_kernel_scale = _symmetric(_numpy(generator.kernel).T)  # (d_h, d_z)
    bias_scale = float(np.float32(code_scale) * np.float32(g_kernel_scale))
    g_bias = np.round(_numpy(generator.bias) / bias_scale).astype(np.int32)
    t_g_kernel = writer.tensor(init, "generator/kernel", g_kernel.shape, INT8, g_kernel, writer.quantization(g_kernel_scale))
    t_g_bias = writer.tensor(init, "generator/bias", g_bias.shape, INT32, g_bias, writer.quantization(bias_scale))
    if generator.basis is not None:
        basis, basis_scale = _symmetric(_numpy(generator.basis).T)  # (r, d_h)
        t_basis = writer.tensor(init, "generator/basis", basis.shape, INT8, basis, writer.quantization(basis_scale))

    report, reads = [], {}
    for layer in layers:
        name = layer.name
        conv, factor = matches[name]
        cout, cin = kernels[name].shape
        # Layer 1 of g, in the device's integer arithmetic.
        z = np.clip(np.round(codes[name] / code_scale), -127, 127).astype(np.int8)
        h_float = _ACTIVATIONS[generator.activation]((z * code_scale) @ (g_kernel.T * g_kernel_scale) + g_bias * bias_scale)
        h_scale, h_zero = _activation_quantization(h_float)
        h = fixed_point.fully_connected(
            z, 0, g_kernel, g_bias, fixed_point.tflm_multiplier(code_scale, g_kernel_scale, h_scale), h_zero,
            fixed_point.activation_range(generator.activation, h_scale, h_zero),
        )
        t_z = writer.tensor(init, f"{name}/code", [1, z.size], INT8, z, writer.quantization(code_scale))
        t_h = writer.tensor(init, f"{name}/h", [1, h.size], INT8, None, writer.quantization(h_scale, h_zero))
        writer.fully_connected(init, [t_z, t_g_kernel, t_g_bias], t_h, _FUSED[generator.activation])
        t_x, x, x_scale = t_h, h - h_zero, h_scale
        if layer.head_mode == "factorized":
            u_float = (x * x_scale) @ (basis.T * basis_scale)
            u_scale, u_zero = _activation_quantization(u_float)
            u = fixed_point.fully_connected(
                h, h_zero, basis, None, fixed_point.tflm_multiplier(h_scale, basis_scale, u_scale), u_zero
            )
            t_x = writer.tensor(init, f"{name}/u", [1, u.size], INT8, None, writer.quantization(u_scale, u_zero))
            writer.fully_connected(init, [t_h, t_basis, -1], t_x, schema.ActivationFunctionType.NONE)
            x, x_scale = u - u_zero, u_scale

        # The target int8 filter and its scales.
        stored, stored_scales = _stored_filter(model, main, conv)
        target_kernel = kernels[name] * factor[:, None]
        if per_channel:
            filter_scales, target = stored_scales, stored.astype(np.int64)
        else:
            target, scale = _symmetric(target_kernel)
            filter_scales, target = np.full(1, scale), target.astype(np.int64)
        row_scales = np.broadcast_to(filter_scales, (cout,))
        # Head: int8 rows mapping x to the target through one multiplier.
        real = (x_scale * _numpy(layer.head).T) * np.repeat(factor / row_scales, cin)[:, None]  # (cout*cin, rows)
        head_scale = float(np.float32(max(float(np.abs(real).max()), 1e-12) / _HEAD_HEADROOM / x_scale))
        multiplier = fixed_point.tflm_multiplier(x_scale, head_scale, 1.0)
        real_int = real / (float(np.float32(x_scale) * np.float32(head_scale)))
        head = _compensated_head(real_int, x.astype(np.int64), target.reshape(-1), multiplier)
        synthesised = fixed_point.fully_connected(x, 0, head, None, multiplier, 0).reshape(cout, cin)
        t_head = writer.tensor(init, f"{name}/head", head.shape, INT8, head, writer.quantization(head_scale))
        t_w = writer.tensor(init, f"{name}/w", [1, cout * cin], INT8, None, writer.quantization(1.0))
        writer.fully_connected(init, [t_x, t_head, -1], t_w, schema.ActivationFunctionType.NONE)
        filter_q = writer.quantization(filter_scales)
        t_shape = writer.tensor(init, f"{name}/shape", [4], INT32, np.array([cout, 1, 1, cin], np.int32))
        # The init side only moves bytes: one scale there; the filter scales sit on the reader.
        t_w4 = writer.tensor(init, f"{name}/filter", [cout, 1, 1, cin], INT8, None, writer.quantization(1.0))
        reshape = schema.ReshapeOptionsT()
        reshape.newShape = [cout, 1, 1, cin]
        init.operators.append(
            writer.op(OPS.RESHAPE, [t_w, t_shape], [t_w4], schema.BuiltinOptions.ReshapeOptions, reshape)
        )
        handle, t_resource = writer.var_handle(init, name)
        assign = writer.op(
            OPS.ASSIGN_VARIABLE, [t_resource, t_w4], [], schema.BuiltinOptions.AssignVariableOptions,
            schema.AssignVariableOptionsT(),
        )
        init.operators += [handle, assign]

        # Main graph: read the cached kernel right before its convolution.
        handle, t_resource = writer.var_handle(main, name)
        t_filter = writer.tensor(main, f"{name}/filter", [cout, 1, 1, cin], INT8, None, filter_q)
        read = writer.op(
            OPS.READ_VARIABLE, [t_resource], [t_filter], schema.BuiltinOptions.ReadVariableOptions,
            schema.ReadVariableOptionsT(),
        )
        reads[id(conv)] = [handle, read]
        conv.inputs[1] = t_filter
        if not per_channel and len(conv.inputs) > 2 and conv.inputs[2] >= 0:
            input_scale = float(main.tensors[conv.inputs[0]].quantization.scale[0])
            old_bias = np.frombuffer(buffer_bytes(model, main.tensors[conv.inputs[2]]), np.int32)
            bias_float = old_bias * input_scale * stored_scales
            new_scale = float(np.float32(input_scale) * np.float32(filter_scales[0]))
            conv.inputs[2] = writer.tensor(
                main, f"{name}/bias", [cout], INT32, np.round(bias_float / new_scale).astype(np.int32),
                writer.quantization(new_scale),
            )
        miss = np.abs(synthesised - target)
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
            )
        )

    once = schema.CallOnceOptionsT()
    once.initSubgraphIndex = len(model.subgraphs) - 1
    operators = [writer.op(OPS.CALL_ONCE, [], [], schema.BuiltinOptions.CallOnceOptions, once)]
    for op in main.operators:
        operators += reads.get(id(op), []) + [op]
    main.operators = operators
    compact(model)
    return report
