"""Boot-time synthesis: rewrite a converted int8 model so the device generates its pointwise kernels.

The TFLite converter folds every generator it sees into constants, so the
init subgraph is written into the flatbuffer after conversion:

    subgraph 0 (main)                        subgraph 1 (init, runs once)
    CALL_ONCE(init) ------------------------> FULLY_CONNECTED(z_l, W_g, b_g) -> h_l
    ...                                       [FULLY_CONNECTED(h_l, B) -> u_l]   factorized
    VAR_HANDLE(l) -> READ_VARIABLE -> filter  FULLY_CONNECTED(h_l | u_l, H_l) -> w_l (zp 0)
    CONV_2D(x, filter, bias)                  RESHAPE(w_l) -> VAR_HANDLE(l) -> ASSIGN_VARIABLE

Generated filters are symmetric int8 (zero point 0) with their scales fixed
in the file, and each conv bias is re-quantized to input_scale * filter_scale.
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import ops
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from hypertiny_keras.export.flatbuffer import buffer_bytes, builtin_code, compact, operator_code
from hypertiny_keras.layers import HyperPointwise, PointwiseGenerator

OPS = schema.BuiltinOperator
INT8, INT32, RESOURCE = schema.TensorType.INT8, schema.TensorType.INT32, schema.TensorType.RESOURCE
_FC_VERSION = 4  # int8 FULLY_CONNECTED; the converter's version is reused when present
_FUSED = {
    "relu": schema.ActivationFunctionType.RELU,
    "relu6": schema.ActivationFunctionType.RELU6,
    "linear": schema.ActivationFunctionType.NONE,
}


class BootExportError(ValueError):
    """The converted model cannot be given an init subgraph."""


@dataclasses.dataclass
class GeneratedLayer:
    """What the surgery did to one generated layer."""

    name: str
    filters: int
    in_channels: int
    head_mode: str
    filter_scales: list[float]
    kernel_max_error_lsb: float  # |synthesised int8 kernel - float kernel| / filter scale


def _numpy(variable) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(variable), np.float64)


def _symmetric(x: np.ndarray, axis: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 quantization; scales per row when `axis` is given."""
    absmax = np.abs(x).max(axis=axis, keepdims=axis is not None) if x.size else np.zeros(1)
    scale = np.maximum(absmax / 127.0, 1e-12)
    return np.clip(np.round(x / scale), -127, 127).astype(np.int8), np.asarray(scale, np.float64)


def _activation_range(x: np.ndarray) -> tuple[float, int]:
    """Asymmetric int8 (scale, zero point) that covers `x` and 0."""
    low, high = min(0.0, float(x.min())), max(0.0, float(x.max()))
    scale = max((high - low) / 255.0, 1e-12)
    return scale, int(np.clip(np.round(-128 - low / scale), -128, 127))


def _quantize_activation(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return np.clip(np.round(x / scale) + zero_point, -128, 127)


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
    def quantization(scale, zero_point, dim: int = 0) -> schema.QuantizationParametersT:
        params = schema.QuantizationParametersT()
        params.scale = np.atleast_1d(np.asarray(scale, np.float32))
        params.zeroPoint = np.atleast_1d(np.asarray(zero_point, np.int64))
        params.quantizedDimension = dim
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

    def fully_connected(self, subgraph, x, weights, bias, out, activation):
        options = schema.FullyConnectedOptionsT()
        options.fusedActivationFunction = activation
        subgraph.operators.append(
            self.op(
                OPS.FULLY_CONNECTED,
                [x, weights, bias],
                [out],
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


def _dequantized_filter(model, subgraph, op) -> tuple[np.ndarray, np.ndarray]:
    tensor = subgraph.tensors[op.inputs[1]]
    data = np.frombuffer(buffer_bytes(model, tensor), np.int8)
    shape = [int(v) for v in tensor.shape]
    scales = np.asarray(tensor.quantization.scale, np.float64)
    q = data.reshape(shape[0], -1).astype(np.float64)
    scales = np.broadcast_to(scales, (shape[0],)) if scales.size == 1 else scales
    return q * scales[:, None], scales


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
            stored, scales = _dequantized_filter(model, main, op)
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
    model: schema.ModelT, keras_model: keras.Model, per_channel: bool = False
) -> list[GeneratedLayer]:
    """Rewrite `model` (converted from `freeze(keras_model)`) in place for boot-time synthesis.

    Args:
        model: the converter's full-integer model of the frozen Keras model.
        keras_model: the model with `HyperPointwise` layers it was frozen from.
        per_channel: give generated filters one scale per output channel
            (costs arena RAM for per-row FULLY_CONNECTED multipliers) instead of one.

    Returns:
        One `GeneratedLayer` per generated kernel, in model order.
    """
    layers = [layer for layer in keras_model.layers if isinstance(layer, HyperPointwise)]
    if not layers:
        raise BootExportError(f"model {keras_model.name!r} has no HyperPointwise layer")
    generators = {id(layer.generator): layer.generator for layer in layers}
    if len(generators) != 1:
        raise BootExportError("boot export supports one shared generator per model")
    generator: PointwiseGenerator = layers[0].generator
    kernels = {layer.name: _numpy(layer.generated_kernel()) for layer in layers}
    matches = _match_convs(model, kernels)

    writer = _Writer(model)
    main = model.subgraphs[0]
    init = schema.SubGraphT()
    init.name, init.tensors, init.operators, init.inputs, init.outputs = b"hypertiny_init", [], [], [], []
    model.subgraphs.append(init)

    # Shared generator: one scale for all codes, so that one int32 bias serves every layer.
    codes = {layer.name: _numpy(layer.code).reshape(1, -1) for layer in layers}
    _, code_scale = _symmetric(np.concatenate(list(codes.values())))
    code_scale = float(code_scale)
    g_kernel_q, g_kernel_scale = _symmetric(_numpy(generator.kernel).T)  # (d_h, d_z)
    bias_scale = code_scale * float(g_kernel_scale)
    g_bias_q = np.round(_numpy(generator.bias) / bias_scale).astype(np.int32)
    t_g_kernel = writer.tensor(
        init, "generator/kernel", g_kernel_q.shape, INT8, g_kernel_q, writer.quantization(g_kernel_scale, 0)
    )
    t_g_bias = writer.tensor(
        init, "generator/bias", g_bias_q.shape, INT32, g_bias_q, writer.quantization(bias_scale, 0)
    )
    if generator.basis is not None:
        basis_q, basis_scale = _symmetric(_numpy(generator.basis).T)  # (r, d_h)
        t_basis = writer.tensor(
            init, "generator/basis", basis_q.shape, INT8, basis_q, writer.quantization(basis_scale, 0)
        )

    def act(x):
        if generator.activation == "relu":
            return np.maximum(x, 0)
        if generator.activation == "relu6":
            return np.clip(x, 0, 6)
        return x

    report, reads = [], {}
    for layer in layers:
        name, conv_op, factor = layer.name, *matches[layer.name]
        cout, cin = kernels[name].shape
        # FC 1: h = g(z), simulated in the same integer arithmetic as the device.
        z_q = np.clip(np.round(codes[name] / code_scale), -127, 127)
        h = act((z_q * code_scale) @ (g_kernel_q.T * g_kernel_scale) + g_bias_q * bias_scale)
        h_scale, h_zero = _activation_range(h)
        h_q = _quantize_activation(h, h_scale, h_zero)
        x_float = (h_q - h_zero) * h_scale
        t_z = writer.tensor(
            init, f"{name}/code", [1, z_q.size], INT8, z_q.astype(np.int8), writer.quantization(code_scale, 0)
        )
        t_h = writer.tensor(init, f"{name}/h", [1, h.size], INT8, None, writer.quantization(h_scale, h_zero))
        writer.fully_connected(init, t_z, t_g_kernel, t_g_bias, t_h, _FUSED[generator.activation])
        t_x = t_h
        if layer.head_mode == "factorized":
            u = x_float @ (basis_q.T * float(basis_scale))
            u_scale, u_zero = _activation_range(u)
            t_x = writer.tensor(init, f"{name}/u", [1, u.size], INT8, None, writer.quantization(u_scale, u_zero))
            writer.fully_connected(init, t_h, t_basis, -1, t_x, schema.ActivationFunctionType.NONE)
            x_float = (_quantize_activation(u, u_scale, u_zero) - u_zero) * u_scale
        # FC 2: the head, with any folded per-channel factor in its rows.
        head = _numpy(layer.head).T * np.repeat(factor, cin)[:, None]  # (cout*cin, rows)
        w_float = x_float @ head.T
        if per_channel:
            filter_scales = np.maximum(np.abs(w_float.reshape(cout, cin)).max(1) / 127.0, 1e-12)
            out_scale = 1.0
            head_q, head_scale = _symmetric(head * np.repeat(1.0 / filter_scales, cin)[:, None], axis=1)
            head_scale = head_scale.reshape(-1)
        else:
            out_scale = max(float(np.abs(w_float).max()) / 127.0, 1e-12)
            filter_scales = np.full(1, out_scale)
            head_q, head_scale = _symmetric(head)
        t_head = writer.tensor(
            init,
            f"{name}/head",
            head_q.shape,
            INT8,
            head_q,
            writer.quantization(head_scale, np.zeros(np.size(head_scale), np.int64)),
        )
        t_w = writer.tensor(init, f"{name}/w", [1, cout * cin], INT8, None, writer.quantization(out_scale, 0))
        writer.fully_connected(init, t_x, t_head, -1, t_w, schema.ActivationFunctionType.NONE)
        filter_q = writer.quantization(filter_scales, np.zeros(filter_scales.size, np.int64))
        t_shape = writer.tensor(init, f"{name}/shape", [4], INT32, np.array([cout, 1, 1, cin], np.int32))
        t_w4 = writer.tensor(init, f"{name}/filter", [cout, 1, 1, cin], INT8, None, filter_q)
        reshape = schema.ReshapeOptionsT()
        reshape.newShape = [cout, 1, 1, cin]
        init.operators.append(
            writer.op(OPS.RESHAPE, [t_w, t_shape], [t_w4], schema.BuiltinOptions.ReshapeOptions, reshape)
        )
        handle, t_resource = writer.var_handle(init, name)
        init.operators += [
            handle,
            writer.op(
                OPS.ASSIGN_VARIABLE,
                [t_resource, t_w4],
                [],
                schema.BuiltinOptions.AssignVariableOptions,
                schema.AssignVariableOptionsT(),
            ),
        ]
        # Main graph: read the cached kernel right before its convolution.
        handle, t_resource = writer.var_handle(main, name)
        t_filter = writer.tensor(main, f"{name}/filter", [cout, 1, 1, cin], INT8, None, filter_q)
        read = writer.op(
            OPS.READ_VARIABLE,
            [t_resource],
            [t_filter],
            schema.BuiltinOptions.ReadVariableOptions,
            schema.ReadVariableOptionsT(),
        )
        reads[id(conv_op)] = [handle, read]
        old_filter = main.tensors[conv_op.inputs[1]]
        old_scales = np.broadcast_to(np.asarray(old_filter.quantization.scale, np.float64), (cout,))
        input_scale = float(main.tensors[conv_op.inputs[0]].quantization.scale[0])
        conv_op.inputs[1] = t_filter
        if len(conv_op.inputs) > 2 and conv_op.inputs[2] >= 0:
            old_bias = main.tensors[conv_op.inputs[2]]
            bias_float = np.frombuffer(buffer_bytes(model, old_bias), np.int32) * input_scale * old_scales
            new_scales = input_scale * np.broadcast_to(filter_scales, (cout,))
            conv_op.inputs[2] = writer.tensor(
                main,
                f"{name}/bias",
                [cout],
                INT32,
                np.round(bias_float / new_scales).astype(np.int32),
                writer.quantization(input_scale * filter_scales, np.zeros(filter_scales.size, np.int64)),
            )
        # The kernel bytes the device will synthesise, and how far they are from the float kernel.
        x_q = (h_q - h_zero) if layer.head_mode == "dense" else np.round(x_float / u_scale)
        acc = x_q @ (head_q.astype(np.float64) * np.reshape(head_scale, (-1, 1))).T
        w_q = np.clip(np.round(acc * (h_scale if layer.head_mode == "dense" else u_scale) / out_scale), -128, 127)
        synthesised = w_q.reshape(cout, cin) * np.broadcast_to(filter_scales, (cout,))[:, None]
        target = kernels[name] * factor[:, None]
        error = np.abs(synthesised - target) / np.broadcast_to(filter_scales, (cout,))[:, None]
        report.append(
            GeneratedLayer(name, cout, cin, layer.head_mode, [float(s) for s in filter_scales], float(error.max()))
        )

    once = schema.CallOnceOptionsT()
    once.initSubgraphIndex = len(model.subgraphs) - 1
    operators = [writer.op(OPS.CALL_ONCE, [], [], schema.BuiltinOptions.CallOnceOptions, once)]
    for op in main.operators:
        operators += reads.get(id(op), []) + [op]
    main.operators = operators
    compact(model)
    return report
