"""Reading, writing and tidying TFLite flatbuffers through the object API of the schema."""
from __future__ import annotations

import math

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

#: Builtin operator names by code, e.g. 3 -> "CONV_2D".
OP_NAMES = {
    code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")
}
#: Tensor type names by code, e.g. 9 -> "INT8".
TYPE_NAMES = {code: name for name, code in vars(schema.TensorType).items() if not name.startswith("_")}
#: Bytes per element of each tensor type a constant buffer is checked against (INT4: two per byte).
ITEM_BYTES = {"BOOL": 1, "INT8": 1, "UINT8": 1, "INT16": 2, "UINT16": 2, "FLOAT16": 2, "INT32": 4, "UINT32": 4,
              "FLOAT32": 4, "INT64": 8, "UINT64": 8, "FLOAT64": 8, "INT4": 0.5}
_OPTION_TYPES = {v for k, v in vars(schema.BuiltinOptions).items() if not k.startswith("_")}
_OPTION2_TYPES = {v for k, v in vars(schema.BuiltinOptions2).items() if not k.startswith("_")}
#: Alignment of every constant buffer in written files, in bytes (the schema's force_align).
BUFFER_ALIGNMENT = 16


def read_model(data: bytes, name: str | None = None) -> schema.ModelT:
    """Parse `.tflite` bytes into a mutable `ModelT`, checking every index it holds.

    Args:
        data: the file's bytes.
        name: what to call the file in messages (default: "the model (N bytes)").

    Raises:
        ValueError: `"<name>: not a valid TFLite flatbuffer (<why>)"`, one line, for
            anything that is not a readable model: no `TFL3` identifier, truncated
            or corrupt tables, no subgraph, an unknown builtin operator, or a
            tensor, buffer, operator-code or subgraph index out of range (so
            that code reading the model never meets an `IndexError`), a
            dimension below 1, a quantization scale that is not a finite
            number > 0, a constant buffer whose length is not the tensor's
            element count x its item size (`ITEM_BYTES`; a custom operator's
            inputs excepted: their layout is the operator's), or an unknown
            builtin options type.
    """
    what = name or f"the model ({len(data):,} bytes)"

    def invalid(why: str) -> ValueError:
        return ValueError(f"{what}: not a valid TFLite flatbuffer ({why})")

    if len(data) < 8 or bytes(data[4:8]) != b"TFL3":
        raise invalid("file identifier 'TFL3' missing")
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(bytearray(data), 0))
    except Exception as error:  # noqa: BLE001 (corrupt bytes fail in any of struct, numpy, flatbuffers)
        kind, detail = type(error), " ".join(str(error).split())
        kind = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        raise invalid(f"corrupt or truncated: {kind}{': ' + detail if detail else ''}") from error

    def check(indices, count: int, where: str, allow_missing: bool = False) -> None:
        for index in [] if indices is None else np.atleast_1d(np.asarray(indices)).tolist():
            if not (0 <= index < count or (allow_missing and index == -1)):
                raise invalid(f"{where} refers to index {index} of {count}")

    subgraphs, buffers, codes = model.subgraphs or [], model.buffers or [], model.operatorCodes or []
    if not subgraphs:
        raise invalid("no subgraph")
    for index, code in enumerate(codes):
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin not in OP_NAMES:
            raise invalid(f"operator code {index} has the unknown builtin code {builtin}")
    for s, subgraph in enumerate(subgraphs):
        count = len(subgraph.tensors or [])
        for t, tensor in enumerate(subgraph.tensors or []):
            check(tensor.buffer, len(buffers), f"tensor {t} of subgraph {s} (buffer)")
        check(subgraph.inputs, count, f"subgraph {s} inputs (tensor)")
        check(subgraph.outputs, count, f"subgraph {s} outputs (tensor)")
        for o, op in enumerate(subgraph.operators or []):
            where = f"operator {o} of subgraph {s}"
            check(op.opcodeIndex, len(codes), f"{where} (operator code)")
            for field in ("inputs", "outputs", "intermediates"):
                check(getattr(op, field), count, f"{where} {field} (tensor)", allow_missing=True)
            for options in (op.builtinOptions, op.builtinOptions2):
                for key, value in vars(options).items() if options is not None else ():
                    if "subgraph" in key.lower():
                        check(value, len(subgraphs), f"{where} {key}")
    _check_values(model, invalid)
    for entry in model.metadata or []:
        check(entry.buffer, len(buffers), "metadata (buffer)")
    check(model.metadataBuffer, len(buffers), "metadata_buffer (buffer)")
    for signature in model.signatureDefs or []:
        check(signature.subgraphIndex, len(subgraphs), "signature (subgraph)")
        count = len(subgraphs[signature.subgraphIndex].tensors or [])
        for entry in (signature.inputs or []) + (signature.outputs or []):
            check(entry.tensorIndex, count, "signature (tensor)")
    return model


def _check_values(model: schema.ModelT, invalid) -> None:
    """`read_model`'s checks of shapes, scales, buffer lengths and option types (indices already in range)."""
    custom = schema.BuiltinOperator.CUSTOM
    for s, subgraph in enumerate(model.subgraphs):
        custom_inputs = set()
        for o, op in enumerate(subgraph.operators or []):
            if builtin_code(model, op) == custom:
                custom_inputs |= set(tensor_indices(op.inputs))
            if op.builtinOptionsType not in _OPTION_TYPES or op.builtinOptions2Type not in _OPTION2_TYPES:
                raise invalid(f"operator {o} of subgraph {s} has the unknown options type "
                              f"{op.builtinOptionsType}/{op.builtinOptions2Type}")
        for t, tensor in enumerate(subgraph.tensors or []):
            where = f"tensor {t} of subgraph {s}"
            shape = tensor_indices(tensor.shape)
            if any(d < 1 for d in shape):
                raise invalid(f"{where} has the shape {shape} (dimensions must be >= 1)")
            q = tensor.quantization
            scales = [] if q is None or q.scale is None else np.asarray(q.scale, np.float64)
            if len(scales) and not (np.isfinite(scales).all() and (scales > 0).all()):
                bad = scales[~(np.isfinite(scales) & (scales > 0))][0]
                raise invalid(f"{where} has the quantization scale {bad:g} (scales must be finite and > 0)")
            data = model.buffers[tensor.buffer].data
            expected = tensor_bytes(tensor)
            if data is None or not len(data) or expected is None or t in custom_inputs:
                continue
            if len(data) != expected:
                raise invalid(f"{where} ({TYPE_NAMES[tensor.type]} {shape}) needs {expected:,} bytes of data, "
                              f"its buffer {tensor.buffer} holds {len(data):,}")


def tensor_bytes(tensor: schema.TensorT) -> int | None:
    """Bytes of `tensor`'s values: element count x item size (`ITEM_BYTES`; INT4 packs two a byte, rounded up).

    `None` for a type without an item size or a tensor without a shape.
    """
    item = ITEM_BYTES.get(TYPE_NAMES.get(tensor.type, ""))
    if item is None or tensor.shape is None:
        return None
    return -(-math.prod(tensor_indices(tensor.shape)) * int(2 * item) // 2)


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


def op_name(model: schema.ModelT, op: schema.OperatorT) -> str:
    """The builtin name of `op` ("CONV_2D"), or its custom code for a CUSTOM operator ("TFLM_DECODE")."""
    code = builtin_code(model, op)
    custom = model.operatorCodes[op.opcodeIndex].customCode
    if code == schema.BuiltinOperator.CUSTOM and custom is not None:
        return custom.decode() if isinstance(custom, bytes) else str(custom)
    return OP_NAMES[code]


def op_names(model: schema.ModelT) -> list[list[str]]:
    """Operator names (`op_name`) of every subgraph, in execution order."""
    return [[op_name(model, op) for op in (subgraph.operators or [])] for subgraph in model.subgraphs]


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


def tensor_indices(values) -> list[int]:
    """Tensor indices of an operator or subgraph field as ints (-1: optional input left out)."""
    return [] if values is None else [int(v) for v in values]


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


def buffer_spans(data: bytes) -> dict[int, tuple[int, int]]:
    """Where each constant buffer's bytes sit in the file: `{buffer index: (offset, length)}`, in bytes.

    Only buffers with data inside the flatbuffer are listed (empty buffers and
    buffers stored past the flatbuffer by `offset`/`size` are not). The offsets
    are those a device reads through `model->buffers()->Get(i)->data()`; a
    patch that keeps each length rewrites a file in place (`tflite.patch`).
    """
    root = schema.Model.GetRootAsModel(bytearray(data), 0)
    spans = {}
    for index in range(root.BuffersLength()):
        table = root.Buffers(index)._tab  # the generated accessors give no position: read the vector's start
        field = table.Offset(4)  # Buffer.data
        if field and table.VectorLen(field):
            spans[index] = (table.Vector(field), table.VectorLen(field))
    return spans
