"""What a `.tflite` file holds: subgraphs, operators, and its bytes by role."""
from __future__ import annotations

import math

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from hypertiny_keras.tflite.flatbuffer import OP_NAMES, builtin_code, read_model, tensor_bytes, tensor_indices
from hypertiny_keras.tflite.roles import ROLES

OPS = schema.BuiltinOperator


def _init_subgraphs(model: schema.ModelT) -> set[int]:
    return {
        int(op.builtinOptions.initSubgraphIndex)
        for sg in model.subgraphs
        for op in sg.operators or []
        if builtin_code(model, op) == OPS.CALL_ONCE and hasattr(op.builtinOptions, "initSubgraphIndex")
    }


def _role(model, subgraph, op, position: int, in_init: bool, consumers) -> str:
    """Role of the constant input `position` of `op` (see `roles.ROLES`)."""
    code = builtin_code(model, op)
    if in_init:
        if code != OPS.FULLY_CONNECTED:
            return "other"
        outputs = tensor_indices(op.outputs)
        makes_kernel = bool(outputs) and any(  # the last step of a layer: its output is (reshaped into) the filter
            builtin_code(model, consumer) in (OPS.RESHAPE, OPS.ASSIGN_VARIABLE)
            for consumer in consumers.get(outputs[0], [])
        )
        if makes_kernel:
            return "heads"  # H_l, A_l, or both per-layer factors of a lowrank/kronecker kernel
        first = tensor_indices(op.inputs)[0]
        first_is_constant = first >= 0 and model.buffers[subgraph.tensors[first].buffer].data is not None
        return "codes" if first_is_constant and position == 0 else "generator"
    if position == 2 and code in (OPS.CONV_2D, OPS.DEPTHWISE_CONV_2D, OPS.FULLY_CONNECTED):
        return "biases"
    if code == OPS.CONV_2D and position == 1:
        shape = tensor_indices(subgraph.tensors[tensor_indices(op.inputs)[1]].shape)
        return "pointwise" if shape[1:3] == [1, 1] else "conv"
    if code == OPS.DEPTHWISE_CONV_2D and position == 1:
        return "depthwise"
    if code == OPS.FULLY_CONNECTED and position == 1:
        return "classifier"
    return "other"


def _shape(subgraph, tensor_index: int) -> list[int]:
    if tensor_index < 0:
        return []
    shape = subgraph.tensors[tensor_index].shape
    return tensor_indices(shape) if shape is not None else []


def _macs(code: int, subgraph, op) -> int:
    """Multiply-accumulates of one invoke of `op`: CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (0 for the rest)."""
    inputs, outputs = tensor_indices(op.inputs), tensor_indices(op.outputs)
    if len(inputs) < 2 or not outputs:
        return 0
    out = max(math.prod(_shape(subgraph, outputs[0])), 0)
    weights = _shape(subgraph, inputs[1])
    if code == OPS.CONV_2D and len(weights) == 4:  # OHWI: each output value sums H * W * I products
        return out * weights[1] * weights[2] * weights[3]
    if code == OPS.DEPTHWISE_CONV_2D and len(weights) == 4:  # 1HWC: H * W products per output value
        return out * weights[1] * weights[2]
    if code == OPS.FULLY_CONNECTED and len(weights) == 2:  # (units, depth)
        return out * weights[1]
    return 0


def inspect_tflite(data: bytes, name: str | None = None) -> dict:
    """Describe a `.tflite` file.

    Returns a JSON-ready dict: `file_bytes`; `subgraphs` (index, role `main`
    or `init`, operator names); `has_init_subgraph`; `bytes_by_role` (the
    constant-buffer bytes of each role in `roles.ROLES`, plus
    `flatbuffer_overhead` = everything else in the file: tables, vectors,
    alignment); `resource_variables` (count) and `generated_weight_ram_bytes`
    (bytes of the resource variables that hold synthesised kernels: TFLM allocates them
    inside the interpreter's arena, so they are part of the arena figure, not added to it);
    `buffer_roles`: `{buffer index: role}` of every constant buffer an operator reads;
    `layers`: one row per operator (`subgraph`, `operator`, `inputs` and
    `output` shapes, constant `parameters` (values) and `bytes` first counted
    at this operator, `macs`); `macs`: `{"steady": per inference (main graph),
    "synthesis": once, in the init subgraph}`.

    Args:
        data: the file's bytes.
        name: what to call the file in messages (default: "the model (N bytes)").

    Raises:
        ValueError: `"<name>: not a valid TFLite flatbuffer (<why>)"` (one line)
            for bytes that are not a readable model (see `read_model`).
    """
    model = read_model(data, name)
    try:
        return _describe(model, len(data))
    except (IndexError, KeyError, TypeError, AttributeError) as error:  # a structure read_model does not check
        what = name or f"the model ({len(data):,} bytes)"
        detail = " ".join(str(error).split())
        raise ValueError(
            f"{what}: not a valid TFLite flatbuffer (inconsistent: {type(error).__name__}: {detail})"
        ) from error


def _describe(model: schema.ModelT, file_bytes: int) -> dict:
    """`inspect_tflite` of a model read by `read_model` (all indices in range) of `file_bytes` bytes."""
    init_indices = _init_subgraphs(model)
    by_role = dict.fromkeys(ROLES, 0)
    counted: set[int] = set()
    buffer_roles: dict[int, str] = {}
    subgraphs, variables, layers = [], {}, []
    for index, subgraph in enumerate(model.subgraphs):
        in_init = index in init_indices
        operators = subgraph.operators or []
        consumers: dict[int, list] = {}
        for op in operators:
            for tensor_index in tensor_indices(op.inputs):
                consumers.setdefault(tensor_index, []).append(op)
        for op in operators:
            inputs = tensor_indices(op.inputs)
            code = builtin_code(model, op)
            outputs = tensor_indices(op.outputs)
            row = {"subgraph": index, "operator": OP_NAMES[code],
                   "inputs": [_shape(subgraph, t) for t in inputs if t >= 0],
                   "output": _shape(subgraph, outputs[0]) if outputs else [],
                   "parameters": 0, "bytes": 0, "macs": _macs(code, subgraph, op)}
            layers.append(row)
            for position, tensor_index in enumerate(inputs):
                if tensor_index < 0:
                    continue
                tensor = subgraph.tensors[tensor_index]
                buffer = model.buffers[tensor.buffer].data
                if buffer is None or tensor.buffer in counted:
                    continue
                counted.add(tensor.buffer)
                role = buffer_roles[tensor.buffer] = _role(model, subgraph, op, position, in_init, consumers)
                by_role[role] += len(buffer)
                row["bytes"] += len(buffer)
                row["parameters"] += max(math.prod(_shape(subgraph, tensor_index)), 0)
            if code == OPS.ASSIGN_VARIABLE and len(inputs) >= 2 and min(inputs[:2]) >= 0:
                handle = next((o for o in operators if tensor_indices(o.outputs)[:1] == inputs[:1]), None)
                shared_name = getattr(handle.builtinOptions, "sharedName", None) if handle is not None else None
                key = shared_name if shared_name is not None else (index, inputs[0])
                variables[key] = tensor_bytes(subgraph.tensors[inputs[1]]) or 0
        subgraphs.append(
            {
                "index": index,
                "role": "init" if in_init else ("main" if index == 0 else "other"),
                "operators": [OP_NAMES[builtin_code(model, op)] for op in operators],
                "tensors": len(subgraph.tensors or []),
            }
        )
    by_role["flatbuffer_overhead"] = file_bytes - sum(by_role.values())
    return {
        "file_bytes": file_bytes,
        "subgraphs": subgraphs,
        "has_init_subgraph": bool(init_indices),
        "bytes_by_role": by_role,
        "resource_variables": len(variables),
        "generated_weight_ram_bytes": int(sum(variables.values())),
        "buffers": len(model.buffers or []),
        "buffer_roles": buffer_roles,
        "layers": layers,
        "macs": {
            "steady": sum(r["macs"] for r in layers if r["subgraph"] not in init_indices),
            "synthesis": sum(r["macs"] for r in layers if r["subgraph"] in init_indices),
        },
    }
