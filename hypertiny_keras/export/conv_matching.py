"""Which CONV_2D of the converted model holds each generated kernel, and what the converter folded into it."""
from __future__ import annotations

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from hypertiny_keras.export.errors import BootExportError
from hypertiny_keras.tflite.flatbuffer import buffer_bytes, builtin_code

OPS = schema.BuiltinOperator


def stored_filter(
    model: schema.ModelT, subgraph: schema.SubGraphT, op: schema.OperatorT
) -> tuple[np.ndarray, np.ndarray]:
    """int8 filter `(C_out, C_in)` of a 1x1 CONV_2D and its per-channel scales `(C_out,)`."""
    tensor = subgraph.tensors[op.inputs[1]]
    cout = int(tensor.shape[0])
    q = np.frombuffer(buffer_bytes(model, tensor), np.int8).reshape(cout, -1)
    scales = np.broadcast_to(np.asarray(tensor.quantization.scale, np.float64), (cout,))
    return q, scales


def match_convs(model: schema.ModelT, kernels: dict[str, np.ndarray]) -> dict[str, tuple[schema.OperatorT, np.ndarray]]:
    """Find the CONV_2D that holds each generated kernel, and the per-channel factor folded into it.

    The converter may fold a following BatchNormalization into the filter,
    so a stored filter row is `a_c * W_l[c]`; `a_c` is fitted and accepted
    when every value is within one quantization step.

    Args:
        model: the converter's model (main graph = subgraph 0).
        kernels: float kernel `(C_out, C_in)` by layer name.

    Returns:
        (the CONV_2D operator, the factor `a` `(C_out,)`) by layer name.

    Raises:
        BootExportError: a kernel that no (unclaimed) CONV_2D holds.
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
            q, scales = stored_filter(model, main, op)
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
