import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from hypertiny_keras.tflite.liveness import ARENA_ALIGNMENT, planned_bytes, quietest_step


def _model(sizes, constant=(), variable=()):
    """A chain t0 -> op0 -> t1 -> op1 -> ...: int8 tensors of `sizes` elements; t0 input, the last output."""
    model = schema.ModelT()
    model.buffers = [schema.BufferT()]
    subgraph = schema.SubGraphT()
    subgraph.tensors = []
    for i, size in enumerate(sizes):
        tensor = schema.TensorT()
        tensor.type, tensor.shape, tensor.buffer = schema.TensorType.INT8, [size], 0
        tensor.isVariable = i in variable
        if i in constant:
            buffer = schema.BufferT()
            buffer.data = np.zeros(size, np.uint8)
            model.buffers.append(buffer)
            tensor.buffer = len(model.buffers) - 1
        subgraph.tensors.append(tensor)
    subgraph.inputs, subgraph.outputs = [0], [len(sizes) - 1]
    subgraph.operators = []
    for i in range(len(sizes) - 1):
        op = schema.OperatorT()
        op.inputs, op.outputs = [i], [i + 1]
        subgraph.operators.append(op)
    model.subgraphs = [subgraph]
    return model


def test_planned_bytes_are_aligned_and_skip_constants_and_variables():
    model = _model([1, 17, 32, 5], constant={2}, variable={3})
    tensors = model.subgraphs[0].tensors
    assert [planned_bytes(model, t) for t in tensors] == [ARENA_ALIGNMENT, 32, 0, 0]


def test_quietest_step_is_where_the_fewest_bytes_are_live():
    # live before op p: p=0 the input (256), p=1 t1 (1024), p=2 t2 (16), p=3 t3 (64)
    model = _model([256, 1024, 16, 64, 8])
    assert quietest_step(model, 0, 3) == 2
    assert quietest_step(model, 0, 1) == 0  # no later than `last`
    tied = _model([16, 16, 16])
    assert quietest_step(tied, 0, 2) == 0  # ties: the earliest
