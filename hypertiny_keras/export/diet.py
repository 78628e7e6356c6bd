"""The flatbuffer diet: shrinking a converted `.tflite` without changing what TFLM computes.

Small int8 files are mostly flatbuffer structure, not weights. Each kind
below removes structure that TFLM (reference kernels, and the CMSIS-NN and
ESP-NN ports, whose `Prepare` calls the same `CalculateOpData*` functions)
either never reads or reads to no effect; LiteRT loads the result and
computes what it computed before. The TFLM source each rule
rests on (tflite-micro, `tensorflow/lite/...`):

- `reshape_pairs`: Keras `Conv1D` lowers to EXPAND_DIMS -> CONV_2D ->
  RESHAPE, so two consecutive 1-D convolutions leave a RESHAPE -> EXPAND_DIMS
  pair that squeezes the height axis away and puts it back. Both copy bytes
  unchanged (`micro/kernels/reshape.cc`, `expand_dims.cc`); when the pair
  ends where it started (same type, shape and quantization) and nothing else
  reads the tensors in between, its consumers read the pair's input instead.
  The arena shrinks with the file.
- `quantization`: the scale and zero-point arrays of the int32 bias of
  CONV_2D and DEPTHWISE_CONV_2D with int8 input are never read: the
  multipliers come from the input, filter and output scales
  (`kernels/kernel_util.cc` `PopulateConvolutionQuantizationParams`, called
  by `micro/kernels/conv_common.cc` and `depthwise_conv_common.cc`, reads the
  bias only on the uint8 path). FULLY_CONNECTED reads `bias->params.scale`
  (`GetQuantizedConvolutionMultipler`, from `fully_connected_common.cc`), the
  first scale only, so its bias keeps one scale and one zero point.
  Quantization tables holding no scale are dropped (`micro/micro_allocator.cc`
  `InitializeTfLiteTensorFromFlatbuffer` treats a missing table and a table
  without scales alike). Filter zero points stay one per channel although
  TFLM would broadcast a single one: LiteRT refuses such files. Of the
  kernel ports in tflite-micro one reads convolution bias scales: ARC MLI
  (`micro/kernels/arc_mli/mli_tf_utils.h` `ConvertToMliQuantParamsPerChannel`);
  export with `diet=False` for it.
- `empty_options`: the options table of EXPAND_DIMS (TFLM's
  `ParseExpandDims` in `core/api/flatbuffer_conversions.cc` reads none) and a
  MEAN's `ReducerOptions` without `keep_dims` (`ParseReducer` leaves its
  value-initialized params, `keep_dims` false, when the table is missing).
- `shared_constants`: constant buffers with identical bytes become one
  buffer; TFLM points each constant tensor at its buffer's data
  (`micro_allocator.cc` `GetFlatbufferTensorBuffer`) and never writes it.

Unused operator codes, tensors and buffers are dropped by
`flatbuffer.compact`, which runs after every kind.
"""
from __future__ import annotations

import copy

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from hypertiny_keras.tflite.flatbuffer import builtin_code, compact, strip, tensor_indices, write_model

OPS = schema.BuiltinOperator
_CONVOLUTIONS = (OPS.CONV_2D, OPS.DEPTHWISE_CONV_2D)


def _consumers(subgraph: schema.SubGraphT) -> dict[int, list[tuple[int, int]]]:
    """(operator index, input position) of every read of each tensor; position -1: an intermediate."""
    reads: dict[int, list[tuple[int, int]]] = {}
    for o, op in enumerate(subgraph.operators or []):
        positions = list(enumerate(tensor_indices(op.inputs))) + [(-1, i) for i in tensor_indices(op.intermediates)]
        for position, index in positions:
            if index >= 0:
                reads.setdefault(index, []).append((o, position))
    return reads


def _array(values) -> tuple:
    return () if values is None else tuple(np.asarray(values).tolist())


def _quantization_key(q: schema.QuantizationParametersT | None) -> tuple:
    """What a tensor's quantization means; a missing table and an empty one are equal."""
    if q is None:
        return (), (), (), (), 0, 0
    return (_array(q.scale), _array(q.zeroPoint), _array(q.min), _array(q.max),
            q.quantizedDimension if _array(q.scale) else 0, q.detailsType)


def _same_values(a: schema.TensorT, b: schema.TensorT) -> bool:
    """Whether `b` can stand for `a` in any reader: same type, shape and quantization."""
    return (
        a.type == b.type
        and _array(a.shape) == _array(b.shape)
        and _array(a.shapeSignature) == _array(b.shapeSignature)
        and _quantization_key(a.quantization) == _quantization_key(b.quantization)
    )


def _identity_pair(model: schema.ModelT, subgraph: schema.SubGraphT) -> tuple[int, int] | None:
    """Operator indices of the first RESHAPE -> EXPAND_DIMS pair that ends where it started."""
    operators, tensors = subgraph.operators or [], subgraph.tensors
    reads = _consumers(subgraph)
    graph_io = set(tensor_indices(subgraph.inputs)) | set(tensor_indices(subgraph.outputs))
    for r, op in enumerate(operators):
        if builtin_code(model, op) != OPS.RESHAPE or len(tensor_indices(op.outputs)) != 1:
            continue
        source, middle = tensor_indices(op.inputs)[0], tensor_indices(op.outputs)[0]
        users = reads.get(middle, [])
        if source < 0 or middle in graph_io or len(users) != 1 or users[0][1] != 0:
            continue
        e, expand = users[0][0], operators[users[0][0]]
        if builtin_code(model, expand) != OPS.EXPAND_DIMS or len(tensor_indices(expand.outputs)) != 1:
            continue
        end = tensor_indices(expand.outputs)[0]
        if end not in graph_io and _same_values(tensors[source], tensors[end]):
            return r, e
    return None


def reshape_pairs(model: schema.ModelT) -> None:
    """Remove every RESHAPE -> EXPAND_DIMS pair whose output equals its input (see the module docstring).

    The pair's intermediate tensor must have no other reader and neither it
    nor the pair's output may be a subgraph input or output; the readers of
    the pair's output are rewired to the pair's input.
    """
    for subgraph in model.subgraphs:
        while (pair := _identity_pair(model, subgraph)) is not None:
            reshape, expand = (subgraph.operators[i] for i in pair)
            source, end = tensor_indices(reshape.inputs)[0], tensor_indices(expand.outputs)[0]
            for op in subgraph.operators:
                for field in ("inputs", "intermediates"):
                    values = getattr(op, field)
                    if values is not None:
                        moved = [source if v == end else v for v in tensor_indices(values)]
                        setattr(op, field, np.asarray(moved, np.int32))
            subgraph.operators = [op for i, op in enumerate(subgraph.operators) if i not in pair]


def _bias_tensors(model: schema.ModelT, subgraph: schema.SubGraphT) -> dict[int, bool]:
    """Constant int32 biases of int8 convolutions and FULLY_CONNECTED: index -> whether a scale is read.

    Only tensors read as nothing but such a bias are listed.
    """
    tensors, operators = subgraph.tensors, subgraph.operators or []
    biases: dict[int, bool] = {}
    bias_reads: set[tuple[int, int]] = set()
    for o, op in enumerate(operators):
        inputs, code = tensor_indices(op.inputs), builtin_code(model, op)
        if code not in (*_CONVOLUTIONS, OPS.FULLY_CONNECTED) or len(inputs) < 3 or min(inputs[0], inputs[2]) < 0:
            continue
        bias = tensors[inputs[2]]
        constant = model.buffers[bias.buffer].data is not None
        if constant and tensors[inputs[0]].type == schema.TensorType.INT8 and bias.type == schema.TensorType.INT32:
            biases[inputs[2]] = biases.get(inputs[2], False) or code == OPS.FULLY_CONNECTED
            bias_reads.add((o, 2))
    graph_io = set(tensor_indices(subgraph.inputs)) | set(tensor_indices(subgraph.outputs))
    for index, reads in _consumers(subgraph).items():
        if index in biases and (index in graph_io or not bias_reads.issuperset(reads)):
            del biases[index]
    return biases


def quantization(model: schema.ModelT) -> None:
    """Drop the quantization TFLM does not read (see the module docstring).

    Convolution biases lose their quantization table; FULLY_CONNECTED biases
    keep their first scale and zero point (when all zero points are equal);
    tables without scales go.
    """
    for subgraph in model.subgraphs:
        for index, scale_read in _bias_tensors(model, subgraph).items():
            q = subgraph.tensors[index].quantization
            if not scale_read:
                subgraph.tensors[index].quantization = None
            elif q is not None and len(_array(q.scale)) > 1 and len(set(_array(q.zeroPoint))) <= 1:
                q.scale, q.zeroPoint = q.scale[:1], None if q.zeroPoint is None else q.zeroPoint[:1]
                q.quantizedDimension = 0
        for tensor in subgraph.tensors:
            if tensor.quantization is not None and _quantization_key(tensor.quantization) == _quantization_key(None):
                tensor.quantization = None


#: Operators whose options table TFLM may miss when every field is zero or false (see the module docstring).
_OPTIONAL_OPTIONS = {OPS.EXPAND_DIMS: schema.ExpandDimsOptionsT, OPS.MEAN: schema.ReducerOptionsT}


def empty_options(model: schema.ModelT) -> None:
    """Drop the options tables of `_OPTIONAL_OPTIONS` operators that hold nothing but zeros."""
    for subgraph in model.subgraphs:
        for op in subgraph.operators or []:
            kind = _OPTIONAL_OPTIONS.get(builtin_code(model, op))
            if kind is not None and isinstance(op.builtinOptions, kind) and not any(vars(op.builtinOptions).values()):
                op.builtinOptions, op.builtinOptionsType = None, schema.BuiltinOptions.NONE


def shared_constants(model: schema.ModelT) -> None:
    """Point every constant tensor at the first buffer holding the same bytes.

    Buffers of variable tensors and buffers with an external offset are left alone.
    """
    first: dict[bytes, int] = {}
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            buffer = model.buffers[tensor.buffer]
            if tensor.isVariable or buffer.data is None or not len(buffer.data) or buffer.offset:
                continue
            tensor.buffer = first.setdefault(np.asarray(buffer.data, np.uint8).tobytes(), tensor.buffer)


#: The kinds, in the order `diet` applies them.
KINDS = {
    "reshape_pairs": reshape_pairs,
    "quantization": quantization,
    "empty_options": empty_options,
    "shared_constants": shared_constants,
}


def _file_bytes(model: schema.ModelT, stripped: bool) -> int:
    """Bytes of the file `model` becomes; `stripped`: after `strip` (measured on a copy)."""
    if stripped:
        model = copy.deepcopy(model)
        strip(model)
        compact(model)
    return len(write_model(model))


def diet(model: schema.ModelT, stripped: bool = False) -> dict[str, int]:
    """Apply every kind of `KINDS` to `model` in place, each followed by `compact`.

    Args:
        model: a model read by `read_model` (names may still be there).
        stripped: measure as the file will be written after `strip`, so that
            names of removed tensors, which `strip` would drop anyway, do not
            count.

    Returns:
        Bytes each kind removed from the written file, by kind: the file
        written before the kind minus the file written after it.
    """
    compact(model)
    saved, size = {}, _file_bytes(model, stripped)
    for kind, shrink in KINDS.items():
        shrink(model)
        compact(model)
        new_size = _file_bytes(model, stripped)
        saved[kind], size = size - new_size, new_size
    return saved
