"""The exporter's int8 FULLY_CONNECTED emulation against TFLM itself, on the case that once differed."""
import numpy as np

from hypertiny_keras.device.runtime import run_tflm
from hypertiny_keras.export import fixed_point
from hypertiny_keras.export.model_writer import INT8, ModelWriter, quantization
from hypertiny_keras.tflite.flatbuffer import schema, write_model

# Scales of a lowrank layer of the Speech Commands front (width 16, seed 3): their float32 product over
# the output scale is exactly 2^-7, their double product 2^-7 (1 + 1.8e-8); TFLM multiplies in double.
LEFT_SCALE, RIGHT_SCALE, OUT_SCALE = 0.010781439, 0.0094021205, 0.0129751535


def _fc_model(left_shape, right: np.ndarray) -> bytes:
    model = schema.ModelT()
    model.version, model.buffers, model.operatorCodes = 3, [schema.BufferT()], []
    subgraph = schema.SubGraphT()
    subgraph.tensors, subgraph.operators = [], []
    model.subgraphs = [subgraph]
    writer = ModelWriter(model)
    t_in = writer.tensor(subgraph, "left", (1, *left_shape), INT8, None, quantization(LEFT_SCALE))
    t_w = writer.tensor(subgraph, "right", right.shape, INT8, right, quantization(RIGHT_SCALE))
    t_out = writer.tensor(subgraph, "out", (left_shape[0], right.shape[0]), INT8, None, quantization(OUT_SCALE))
    writer.fully_connected(subgraph, [t_in, t_w, -1], t_out, 0)
    subgraph.inputs, subgraph.outputs = np.array([t_in], np.int32), np.array([t_out], np.int32)
    return write_model(model)


def test_multiplier_is_the_double_product_tflm_uses():
    q, shift = fixed_point.tflm_multiplier(LEFT_SCALE, RIGHT_SCALE, OUT_SCALE)
    assert (q, shift) == (1073741844, -6)  # float32 product: (1 << 30, -6)


def test_emulated_fully_connected_equals_tflm_at_a_half_way_value():
    rng = np.random.default_rng(0)
    left = np.concatenate([[[7, 30]], rng.integers(-127, 128, size=(15, 2))]).astype(np.int8)
    right = np.concatenate([[[-49, -76]], rng.integers(-127, 128, size=(15, 2))]).astype(np.int8)
    multiplier = fixed_point.tflm_multiplier(LEFT_SCALE, RIGHT_SCALE, OUT_SCALE)
    emulated = fixed_point.fully_connected(left, 0, right, None, multiplier, 0)
    assert emulated[0, 0] == -21  # acc -2623 x 2^-7 (1 + 1.8e-8): -1312 after the doubling high mul, then -20.5
    tflm = run_tflm(_fc_model(left.shape, right), left[None]).outputs.reshape(emulated.shape)
    assert np.array_equal(tflm, emulated)
