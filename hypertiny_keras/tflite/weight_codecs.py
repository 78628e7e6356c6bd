"""Post-training weight codecs of an int8 `.tflite`: the peers a TinyML engineer applies to a stored model.

A codec takes the bytes of a verified int8 file and returns a smaller file
that TFLM runs with the same graph and the same activation quantization;
only the filters of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED change.
The result is lossy, so it is scored again (TFLM on the test split), not
checked bit for bit against the int8 file.

- `int4`: every filter re-quantized per output channel to symmetric int4
  (scale = max |w| / 7, round to nearest, the min-max rule of
  `litert-quantizer`) and packed two values per byte, low nibble first
  (`TensorType.INT4`). TFLM's reference kernels unpack an INT4 filter into
  an arena scratch buffer of the unpacked size; CMSIS-NN runs packed int4
  natively. Biases are re-scaled to the new filter scales (int32).
- `lut4`: every filter whose 4-bit form saves bytes is clustered per
  channel to at most 16 int8 values (1-D k-means) and stored by
  `tflite_micro.compression` as 4-bit indices plus one 16-entry table per
  channel, decoded by a DECODE operator before its consumer (into the
  arena). A C x K filter saves bytes only when C x K / 2 + 16 C < C x K,
  i.e. above 32 values per channel.

    from hypertiny_keras.tflite import weight_codecs
    smaller = weight_codecs.get("int4")(int8_file_bytes)
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import numpy as np

from hypertiny_keras.tflite.flatbuffer import buffer_bytes, builtin_code, op_name, read_model, schema, write_model

#: Operators whose input 1 is the filter (input 2 the int32 bias, if any).
FILTER_OPS = (
    schema.BuiltinOperator.CONV_2D,
    schema.BuiltinOperator.DEPTHWISE_CONV_2D,
    schema.BuiltinOperator.FULLY_CONNECTED,
)
#: Custom code of TFLM's DECODE operator.
DECODE = "TFLM_DECODE"
#: Entries of a 4-bit look-up table.
LUT_ENTRIES = 16


def filters(model: schema.ModelT) -> list[tuple[int, int, schema.OperatorT]]:
    """(subgraph, filter tensor, the first operator reading it) of every int8 filter with stored values.

    A filter read by several operators (the shared generator of an init
    subgraph is read once per generated layer) is listed once.
    """
    found = {}
    for s, subgraph in enumerate(model.subgraphs):
        for op in subgraph.operators or []:
            if builtin_code(model, op) not in FILTER_OPS or len(op.inputs) < 2:
                continue
            tensor = subgraph.tensors[op.inputs[1]]
            if tensor.type == schema.TensorType.INT8 and buffer_bytes(model, tensor):
                found.setdefault((s, int(op.inputs[1])), op)
    return [(s, f, op) for (s, f), op in found.items()]


def _int8_values(model: schema.ModelT, tensor: schema.TensorT) -> np.ndarray:
    return np.frombuffer(buffer_bytes(model, tensor), np.int8)


def _own_buffer(model: schema.ModelT, tensor: schema.TensorT) -> None:
    """Give `tensor` a buffer of its own when the diet shared its buffer with another tensor."""
    users = Counter(t.buffer for subgraph in model.subgraphs for t in subgraph.tensors or [])
    if users[tensor.buffer] > 1:
        copy = schema.BufferT()
        copy.data = np.array(model.buffers[tensor.buffer].data, np.uint8)
        model.buffers.append(copy)
        tensor.buffer = len(model.buffers) - 1


def _channels(tensor: schema.TensorT, values: np.ndarray) -> tuple[np.ndarray, int]:
    """`values` with the quantized dimension first (`(channels, rest)`) and that axis."""
    scales = np.atleast_1d(tensor.quantization.scale)
    axis = int(tensor.quantization.quantizedDimension) if len(scales) > 1 else 0
    moved = np.moveaxis(values.reshape(tensor.shape), axis, 0)
    return moved.reshape(moved.shape[0] if len(scales) > 1 else 1, -1), axis


def _restore(tensor: schema.TensorT, rows: np.ndarray, axis: int) -> np.ndarray:
    """Inverse of `_channels`: the tensor's own layout, flattened."""
    shape = list(tensor.shape)
    moved_shape = [shape[axis]] + shape[:axis] + shape[axis + 1 :]
    return np.moveaxis(rows.reshape(moved_shape), 0, axis).reshape(-1)


def pack_int4(values: np.ndarray) -> np.ndarray:
    """Pack int4 values (-8..7, any shape, C order) two per byte, element 2i in the low nibble (TFLite's layout).

    Returns `ceil(n / 2)` uint8 bytes (an odd count leaves the last high nibble 0).
    """
    flat = np.asarray(values, np.int16).reshape(-1)
    if flat.size and (flat.min() < -8 or flat.max() > 7):
        raise ValueError(f"int4 values must be in -8..7, got {flat.min()}..{flat.max()}")
    nibbles = (flat & 0xF).astype(np.uint8)
    if nibbles.size % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8)


def unpack_int4(packed: np.ndarray, count: int) -> np.ndarray:
    """The `count` int8 values of `pack_int4` output (sign-extended nibbles)."""
    packed = np.asarray(packed, np.uint8)
    nibbles = np.stack([packed & 0xF, packed >> 4], axis=1).reshape(-1)[:count].astype(np.int16)
    return np.where(nibbles > 7, nibbles - 16, nibbles).astype(np.int8)


def int4(data: bytes) -> bytes:
    """The int8 file `data` with every filter per-channel int4 and packed (see the module docstring)."""
    model = read_model(data)
    for s, f, op in filters(model):
        tensors = model.subgraphs[s].tensors
        tensor = tensors[f]
        _own_buffer(model, tensor)
        rows, axis = _channels(tensor, _int8_values(model, tensor))
        old = np.atleast_1d(np.asarray(tensor.quantization.scale, np.float64))
        real = rows.astype(np.float64) * old[:, None]
        peak = np.abs(real).max(axis=1)
        if builtin_code(model, op) == schema.BuiltinOperator.FULLY_CONNECTED:
            peak = np.full(len(peak), peak.max())  # TFLM has no per-channel int4 FULLY_CONNECTED
        new = np.where(peak > 0, peak / 7.0, old)
        values = np.clip(np.round(real / new[:, None]), -8, 7)
        model.buffers[tensor.buffer].data = pack_int4(_restore(tensor, values, axis))
        tensor.type = schema.TensorType.INT4
        if len(np.unique(new)) == 1:
            tensor.quantization.scale, tensor.quantization.zeroPoint = [float(new[0])], [0]
            tensor.quantization.quantizedDimension = 0
        else:
            tensor.quantization.scale = new.astype(np.float32).tolist()
        b = int(op.inputs[2]) if len(op.inputs) > 2 else -1
        if b >= 0 and model.buffers[tensors[b].buffer].data is not None:
            bias = tensors[b]
            _own_buffer(model, bias)
            raw = np.frombuffer(buffer_bytes(model, bias), np.int32).astype(np.float64)
            ratio = old / new if len(old) == len(raw) else np.full(len(raw), old[0] / new[0])
            model.buffers[bias.buffer].data = np.round(raw * ratio).astype(np.int32).view(np.uint8)
            if bias.quantization is not None and bias.quantization.scale is not None:
                count = len(np.atleast_1d(bias.quantization.scale))
                input_scale = float(np.atleast_1d(tensors[op.inputs[0]].quantization.scale)[0])
                bias.quantization.scale = (input_scale * new[:count]).astype(np.float32).tolist()
    return write_model(model)


def cluster_1d(values: np.ndarray, k: int, iterations: int = 25) -> np.ndarray:
    """`values` (int8, 1-D) each replaced by the nearest of at most `k` integer centroids (1-D k-means)."""
    values = np.asarray(values, np.int16)
    levels = np.unique(values)
    if len(levels) <= k:
        return values.astype(np.int8)
    centroids = np.quantile(values.astype(np.float64), (np.arange(k) + 0.5) / k)
    for _ in range(iterations):
        nearest = np.abs(values[:, None] - centroids[None, :]).argmin(axis=1)
        for j in range(k):
            members = values[nearest == j]
            if len(members):
                centroids[j] = members.mean()
    centroids = np.unique(np.clip(np.round(centroids), -128, 127))
    nearest = np.abs(values[:, None] - centroids[None, :]).argmin(axis=1)
    return centroids[nearest].astype(np.int8)


def lut4(data: bytes) -> bytes:
    """The int8 file `data` with each filter that gains by it stored as 4-bit look-up-table indices.

    `lut4_tables` of the file, with the quantization DECODE never reads stripped (`strip_decode_inputs`).

    Raises:
        ValueError: when no filter of the file is large enough to gain from
            a per-channel table, or when the written file would not be smaller
            (DECODE's operators, tables and tensors cost more than the 4-bit
            indices save): nothing to compress.
    """
    coded = strip_decode_inputs(lut4_tables(data))
    if len(coded) >= len(data):
        raise ValueError(f"lut4: look-up tables would not save bytes here: the file would grow from {len(data):,} to "
                         f"{len(coded):,} bytes (DECODE's operators and tables cost more than its 4-bit indices save)")
    return coded


def lut4_tables(data: bytes) -> bytes:
    """What `tflite_micro.compression` writes for `lut4`: each chosen filter as 4-bit indices and tables.

    Raises:
        ValueError: when no filter of the file is large enough to gain from a per-channel table.
    """
    from tflite_micro import compression

    model = read_model(data)
    builder = compression.SpecBuilder()
    chosen = 0
    for s, f, _ in filters(model):
        tensor = model.subgraphs[s].tensors[f]
        rows, axis = _channels(tensor, _int8_values(model, tensor))
        channels, per_channel = rows.shape
        if channels * per_channel // 2 + LUT_ENTRIES * channels >= channels * per_channel:
            continue
        _own_buffer(model, tensor)
        clustered = np.stack([cluster_1d(row, LUT_ENTRIES) for row in rows])
        model.buffers[tensor.buffer].data = _restore(tensor, clustered, axis).view(np.uint8)
        builder.add_tensor(subgraph=s, tensor=f).with_lut(
            index_bitwidth=4,
            mode=compression.spec.PerChannel(axis=axis) if channels > 1 else compression.spec.PerTensor(),
        )
        chosen += 1
    if not chosen:
        raise ValueError("lut4: no filter has more than 32 values per channel; a look-up table would not save bytes")
    return bytes(compression.compress(write_model(model), builder.build()))


def strip_decode_inputs(data: bytes) -> bytes:
    """Drop the quantization that `compression.compress` copies onto each DECODE operator's encoded input.

    The encoded UINT8 tensor keeps the filter's per-channel scales and int64
    zero points (12 B per channel); TFLM's DECODE reads the channel count and
    axis from its output tensor only (`decode_state_lut.cc`), so these copies
    are never read. Outputs are unchanged (tested bit for bit in TFLM).
    """
    model = read_model(data)
    for subgraph in model.subgraphs:
        for op in subgraph.operators or []:
            if op_name(model, op) == DECODE:
                subgraph.tensors[op.inputs[0]].quantization = None
    return write_model(model)


#: Codec name -> function(int8 `.tflite` bytes) -> smaller `.tflite` bytes.
CODECS: dict[str, Callable[[bytes], bytes]] = {"int4": int4, "lut4": lut4}


def get(name: str) -> Callable[[bytes], bytes]:
    """The codec called `name` (see `CODECS`)."""
    if name not in CODECS:
        raise ValueError(f"unknown weight codec {name!r}; choose from {sorted(CODECS)}")
    return CODECS[name]
