"""Reading, writing and tidying TFLite flatbuffers through the object API of the schema."""
from __future__ import annotations

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

#: Builtin operator names by code, e.g. 3 -> "CONV_2D".
OP_NAMES = {
    code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")
}
#: Tensor type names by code, e.g. 9 -> "INT8".
TYPE_NAMES = {code: name for name, code in vars(schema.TensorType).items() if not name.startswith("_")}
#: Alignment of every constant buffer in written files, in bytes (the schema's force_align).
BUFFER_ALIGNMENT = 16


def read_model(data: bytes) -> schema.ModelT:
    """Parse `.tflite` bytes into a mutable `ModelT`."""
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError("not a TFLite flatbuffer (file identifier 'TFL3' missing)")
    return schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(data), 0))


class _AlignedBufferT(schema.BufferT):
    """A buffer whose data vector is aligned to `BUFFER_ALIGNMENT` bytes when packed."""

    def Pack(self, builder):  # noqa: N802 (flatbuffers naming)
        data = None
        if self.data is not None:
            raw = np.asarray(self.data, np.uint8).tobytes()
            builder.StartVector(1, len(raw), BUFFER_ALIGNMENT)
            builder.head = builder.head - len(raw)
            builder.Bytes[builder.head : builder.head + len(raw)] = raw
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)


def write_model(model: schema.ModelT) -> bytes:
    """Serialize a `ModelT` to `.tflite` bytes with 16-byte aligned constant buffers."""
    for buffer in model.buffers:
        buffer.__class__ = _AlignedBufferT
    builder = flatbuffers.Builder(1 << 16)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def builtin_code(model: schema.ModelT, op: schema.OperatorT) -> int:
    """The builtin operator code of `op` (handles the deprecated 8-bit code field)."""
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def op_names(model: schema.ModelT) -> list[list[str]]:
    """Operator names of every subgraph, in execution order."""
    return [
        [OP_NAMES[builtin_code(model, op)] for op in (subgraph.operators or [])]
        for subgraph in model.subgraphs
    ]


def operator_code(model: schema.ModelT, code: int, version: int = 1) -> int:
    """Index of the operator code `code` in `model`, added if missing."""
    for index, existing in enumerate(model.operatorCodes):
        if max(existing.builtinCode, existing.deprecatedBuiltinCode) == code:
            return index
    entry = schema.OperatorCodeT()
    entry.builtinCode = code
    entry.deprecatedBuiltinCode = min(code, schema.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
    entry.version = version
    model.operatorCodes.append(entry)
    return len(model.operatorCodes) - 1


def buffer_bytes(model: schema.ModelT, tensor: schema.TensorT) -> bytes:
    """The constant data of `tensor` (empty for a tensor computed at run time)."""
    data = model.buffers[tensor.buffer].data
    return b"" if data is None else np.asarray(data, np.uint8).tobytes()


def _ints(indices) -> list[int]:
    return [] if indices is None else [int(i) for i in indices if i >= 0]


def _tensor_refs(subgraph: schema.SubGraphT) -> set[int]:
    used = set(_ints(subgraph.inputs)) | set(_ints(subgraph.outputs))
    for op in subgraph.operators or []:
        used |= set(_ints(op.inputs)) | set(_ints(op.outputs)) | set(_ints(op.intermediates))
    return used


def _remap(indices, mapping):
    if indices is None:
        return None
    return np.asarray([mapping[int(i)] if i >= 0 else -1 for i in indices], np.int32)


def compact(model: schema.ModelT) -> None:
    """Drop tensors no operator uses, buffers no tensor uses and unused operator codes.

    Tensors without constant data all point at buffer 0 (the schema's empty
    sentinel), so the file holds one empty buffer instead of one per tensor.
    Indices are renumbered in place.
    """
    for index, subgraph in enumerate(model.subgraphs):
        used = sorted(_tensor_refs(subgraph))
        mapping = {old: new for new, old in enumerate(used)}
        for sig in model.signatureDefs or []:
            if sig.subgraphIndex == index:
                for entry in (sig.inputs or []) + (sig.outputs or []):
                    entry.tensorIndex = mapping[entry.tensorIndex]
        subgraph.tensors = [subgraph.tensors[i] for i in used]
        subgraph.inputs = _remap(subgraph.inputs, mapping)
        subgraph.outputs = _remap(subgraph.outputs, mapping)
        for op in subgraph.operators or []:
            op.inputs = _remap(op.inputs, mapping)
            op.outputs = _remap(op.outputs, mapping)
            if op.intermediates is not None:
                op.intermediates = _remap(op.intermediates, mapping)
    metadata_buffers = {m.buffer for m in model.metadata or []}
    keep = [0]
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            if model.buffers[tensor.buffer].data is None and not model.buffers[tensor.buffer].size:
                tensor.buffer = 0
            elif tensor.buffer not in keep:
                keep.append(tensor.buffer)
    keep += sorted(metadata_buffers - set(keep))
    mapping = {old: new for new, old in enumerate(keep)}
    model.buffers = [model.buffers[i] for i in keep]
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.buffer = mapping[tensor.buffer]
    for entry in model.metadata or []:
        entry.buffer = mapping[entry.buffer]
    used_codes = sorted({op.opcodeIndex for sg in model.subgraphs for op in sg.operators or []})
    code_map = {old: new for new, old in enumerate(used_codes)}
    model.operatorCodes = [model.operatorCodes[i] for i in used_codes]
    for subgraph in model.subgraphs:
        for op in subgraph.operators or []:
            op.opcodeIndex = code_map[op.opcodeIndex]


def strip(model: schema.ModelT) -> None:
    """Remove what TFLM never reads: tensor and subgraph names, signatures, metadata, description."""
    for subgraph in model.subgraphs:
        subgraph.name = None
        for tensor in subgraph.tensors:
            tensor.name = None
            tensor.shapeSignature = None
    model.signatureDefs = None
    model.metadata = None
    model.metadataBuffer = None
    model.description = None
