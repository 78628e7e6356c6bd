"""`frozen_equivalent`: a rewritten boot model with its synthesised filters stored, as the frozen file of one truth."""
from __future__ import annotations

import copy

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from hypertiny_keras.export.init_subgraph import Rewrite
from hypertiny_keras.export.model_writer import OPS, ModelWriter, quantization
from hypertiny_keras.tflite.flatbuffer import builtin_code, compact


def frozen_equivalent(model: schema.ModelT, rewrite: Rewrite) -> schema.ModelT:
    """The boot `model` with its synthesised filters stored as constants: no init subgraph, no variables.

    What TFLM computes with this file is what the boot file computes after
    its init subgraph ran: `verify` compares the two bit for bit, and a
    frozen export of a model whose boot kernels are not the converter's
    filters writes this file (`rewrite`).

    Args:
        model: the boot model `add_init_subgraph` rewrote (not changed).
        rewrite: its result; `rewrite.filters` are stored.
    """
    twin = copy.deepcopy(model)
    main = twin.subgraphs[0]
    writer = ModelWriter(twin)
    by_name = {tensor.name: index for index, tensor in enumerate(main.tensors) if tensor.name}
    for name, (values, scales) in rewrite.filters.items():
        tensor = main.tensors[by_name[f"{name}/filter".encode()]]
        tensor.buffer = writer.buffer(values)
        tensor.quantization = quantization(scales)
    drop = {OPS.CALL_ONCE, OPS.VAR_HANDLE, OPS.READ_VARIABLE}
    main.operators = [op for op in main.operators if builtin_code(twin, op) not in drop]
    twin.subgraphs = twin.subgraphs[:1]
    compact(twin)
    return twin
