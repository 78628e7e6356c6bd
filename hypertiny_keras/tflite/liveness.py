"""Live arena bytes along a subgraph: where an inserted CALL_ONCE costs the least RAM.

TFLM plans a subgraph that CALL_ONCE runs inside the caller's CALL_ONCE
step (`micro_allocation_info.cc`, `MarkSubgraphLifetimesIfNecessary`), so
the init subgraph's tensors share the arena with the main graph's tensors
alive at that step: the fewer bytes live there, the less the init
subgraph can add to the arena's peak.
"""
from __future__ import annotations

from hypertiny_keras.tflite.flatbuffer import buffer_bytes, schema, tensor_bytes, tensor_indices

#: TFLM's arena alignment (`MicroArenaBufferAlignment()`), in bytes.
ARENA_ALIGNMENT = 16


def planned_bytes(model: schema.ModelT, tensor: schema.TensorT) -> int:
    """Arena bytes (aligned) TFLM plans for `tensor`; 0 for constants, variable tensors and resources."""
    size = tensor_bytes(tensor)
    if tensor.isVariable or buffer_bytes(model, tensor) or size is None:
        return 0
    return -(-size // ARENA_ALIGNMENT) * ARENA_ALIGNMENT


def quietest_step(model: schema.ModelT, subgraph_index: int, last: int) -> int:
    """The operator index p <= `last` before which the fewest planned bytes of the subgraph are live.

    Live before p: the tensors made before operator p (or subgraph inputs)
    that operator p or a later one reads (or that the subgraph outputs). An
    operator inserted there (CALL_ONCE) has its subgraph planned beside just
    these; ties go to the earliest p.
    """
    subgraph = model.subgraphs[subgraph_index]
    operators = subgraph.operators or []
    made = {t: -1 for t in tensor_indices(subgraph.inputs)}
    used = {t: len(operators) for t in tensor_indices(subgraph.outputs)}
    for step, op in enumerate(operators):
        for t in tensor_indices(op.outputs):
            made.setdefault(t, step)
        for t in tensor_indices(op.inputs):
            if t >= 0:
                used[t] = max(used.get(t, step), step)
    sizes = {t: planned_bytes(model, subgraph.tensors[t]) for t in made}

    def live(p: int) -> int:
        return sum(sizes[t] for t, first in made.items() if first < p <= used.get(t, -1))

    return min(range(last + 1), key=lambda p: (live(p), p))
