"""`ModelWriter`: appends tensors, buffers and operators to a flatbuffer `ModelT` (the rewrite's pen).

The init subgraph (`init_subgraph`), the reads of its variables in the main
graph and the stored filters of the frozen equivalent (`frozen_equivalent`)
are all written through it.
"""
from __future__ import annotations

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from hypertiny_keras.tflite.flatbuffer import operator_code

OPS = schema.BuiltinOperator
INT8, INT32, RESOURCE = schema.TensorType.INT8, schema.TensorType.INT32, schema.TensorType.RESOURCE
INT4 = schema.TensorType.INT4
#: Version of an int8 FULLY_CONNECTED; the converter's version is reused when the model has one.
FC_VERSION = 4


def quantization(scale, zero_point=0) -> schema.QuantizationParametersT:
    """Quantization parameters with `scale` (one, or one per channel of axis 0) and `zero_point` (broadcast)."""
    params = schema.QuantizationParametersT()
    params.scale = np.atleast_1d(np.asarray(scale, np.float32))
    params.zeroPoint = np.broadcast_to(np.asarray(zero_point, np.int64), params.scale.shape).copy()
    params.quantizedDimension = 0
    return params


class ModelWriter:
    """Appends tensors, buffers and operators to a `ModelT`; each method returns what it appended."""

    def __init__(self, model: schema.ModelT):
        self.model = model
        versions = [
            code.version
            for code in model.operatorCodes
            if max(code.builtinCode, code.deprecatedBuiltinCode) == OPS.FULLY_CONNECTED
        ]
        self.fc_version = max(versions, default=FC_VERSION)

    def buffer(self, array: np.ndarray | None) -> int:
        """Index of a new buffer holding `array`'s bytes (0, the empty buffer, for `None`)."""
        if array is None:
            return 0
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.uint8)
        self.model.buffers.append(buffer)
        return len(self.model.buffers) - 1

    def tensor(self, subgraph, name: str, shape, dtype: int, data=None, quantization=None) -> int:
        """Index in `subgraph` of a new tensor (constant when `data` is given; INT4 data is packed)."""
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

    def op(self, code: int, inputs, outputs, options_type: int = 0, options=None, version: int = 1):
        """A new operator (not yet placed in a subgraph) of builtin `code`."""
        op = schema.OperatorT()
        op.opcodeIndex = operator_code(self.model, code, version)
        op.inputs = np.asarray(inputs, np.int32)
        op.outputs = np.asarray(outputs, np.int32)
        op.builtinOptionsType = options_type
        op.builtinOptions = options
        return op

    def fully_connected(self, subgraph, inputs, output: int, fused: int) -> None:
        """Appends FULLY_CONNECTED(`inputs`) -> `output` with the fused activation `fused` to `subgraph`."""
        options = schema.FullyConnectedOptionsT()
        options.fusedActivationFunction = fused
        subgraph.operators.append(
            self.op(OPS.FULLY_CONNECTED, inputs, [output], schema.BuiltinOptions.FullyConnectedOptions,
                    options, self.fc_version)
        )

    def reshape(self, subgraph, source: int, name: str, shape, quantization=None) -> int:
        """Appends RESHAPE(`source`) -> a new INT8 tensor `name` of `shape` to `subgraph`; returns that tensor."""
        t_shape = self.tensor(subgraph, f"{name}_shape", [len(shape)], INT32, np.asarray(shape, np.int32))
        t_out = self.tensor(subgraph, name, shape, INT8, None, quantization)
        options = schema.ReshapeOptionsT()
        options.newShape = list(shape)
        subgraph.operators.append(
            self.op(OPS.RESHAPE, [source, t_shape], [t_out], schema.BuiltinOptions.ReshapeOptions, options)
        )
        return t_out

    def var_handle(self, subgraph, name: str) -> tuple[schema.OperatorT, int]:
        """A VAR_HANDLE of the resource variable `hypertiny/<name>` and its new RESOURCE tensor in `subgraph`."""
        options = schema.VarHandleOptionsT()
        options.container = b""
        options.sharedName = f"hypertiny/{name}".encode()
        resource = self.tensor(subgraph, f"{name}/resource", [], RESOURCE)
        op = self.op(OPS.VAR_HANDLE, [], [resource], schema.BuiltinOptions.VarHandleOptions, options)
        return op, resource
