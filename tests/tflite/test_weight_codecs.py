"""Weight codecs of int8 files (int4, 4-bit look-up tables): smaller files that TFLM runs, close to the int8 file."""
import numpy as np
import pytest

from hypertiny_keras import export_tflite
from hypertiny_keras.device.runtime import predict
from hypertiny_keras.models import stored_pw_twin
from hypertiny_keras.tflite import weight_codecs
from hypertiny_keras.tflite.flatbuffer import read_model, schema
from hypertiny_keras.tflite.inspect import inspect_tflite

LENGTH = 128


@pytest.fixture(scope="module")
def int8_file(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    model = stored_pw_twin((LENGTH, 1), 3, widths=(48, 48, 48))
    x = np.random.default_rng(0).normal(size=(64, LENGTH, 1)).astype(np.float32)
    path = tmp_path_factory.mktemp("codecs") / "stored.tflite"
    export_tflite(model, x, path, synthesis="frozen")
    return path.read_bytes(), x


def test_pack_int4_round_trips_with_tflite_nibble_order():
    values = np.array([-8, 7, 1, -1, 0], np.int8)
    packed = weight_codecs.pack_int4(values)
    assert packed.tolist() == [0x78, 0xF1, 0x00]  # element 0 in the low nibble of byte 0
    assert weight_codecs.unpack_int4(packed, 5).tolist() == values.tolist()
    with pytest.raises(ValueError, match="-8..7"):
        weight_codecs.pack_int4(np.array([8]))


def test_cluster_keeps_at_most_k_levels_and_few_levels_unchanged():
    rng = np.random.default_rng(1)
    values = rng.integers(-127, 128, size=500).astype(np.int8)
    clustered = weight_codecs.cluster_1d(values, 16)
    assert len(np.unique(clustered)) <= 16
    assert np.abs(clustered.astype(int) - values).max() <= 16  # 255 levels in 16 clusters: within one cluster width
    few = np.array([3, -3, 3, 0], np.int8)
    assert weight_codecs.cluster_1d(few, 16).tolist() == few.tolist()


def _outputs(data, x):
    return predict(data, x)


@pytest.mark.parametrize("name", ["int4", "lut4"])
def test_codec_files_are_smaller_run_in_tflm_and_stay_close(int8_file, name):
    data, x = int8_file
    out = weight_codecs.get(name)(data)
    assert len(out) < len(data)
    assert inspect_tflite(out)["bytes_by_role"]["flatbuffer_overhead"] > 0
    reference, coded = _outputs(data, x), _outputs(out, x)
    assert coded.shape == reference.shape
    # Lossy, but the same network: most windows keep their class.
    assert (coded.argmax(1) == reference.argmax(1)).mean() >= 0.8
    model = read_model(out)
    types = {t.type for t in model.subgraphs[0].tensors}
    if name == "int4":
        assert schema.TensorType.INT4 in types and schema.TensorType.INT8 in types


def test_int4_filter_values_are_the_rounded_int8_weights(int8_file):
    data, _ = int8_file
    before, after = read_model(data), read_model(weight_codecs.int4(data))
    filters = weight_codecs.filters(before)
    assert len(filters) >= 4  # PW convolutions, depthwise and the classifier
    for s, f, _ in filters:  # the codec keeps tensor indices; only types, scales and buffers change
        old, new = before.subgraphs[s].tensors[f], after.subgraphs[s].tensors[f]
        assert new.type == schema.TensorType.INT4
        w8 = np.asarray(before.buffers[old.buffer].data, np.uint8).view(np.int8).astype(np.float64)
        w4 = weight_codecs.unpack_int4(after.buffers[new.buffer].data, w8.size).astype(np.float64)
        real8 = w8.reshape(old.shape) * _scales(old)
        real4 = w4.reshape(new.shape) * _scales(new)
        step = np.max(np.atleast_1d(new.quantization.scale))
        assert np.abs(real8 - real4).max() <= step / 2 * (1 + 1e-5)


def _scales(tensor):
    scale = np.asarray(tensor.quantization.scale, np.float64)
    if scale.size == 1:
        return scale[0]
    shape = [1] * len(tensor.shape)
    shape[tensor.quantization.quantizedDimension] = -1
    return scale.reshape(shape)


def test_lut4_strips_only_unread_quantization(int8_file):
    from tflite_micro import compression

    data, x = int8_file
    out = weight_codecs.lut4(data)
    model = read_model(out)
    decodes = [op for op in model.subgraphs[0].operators
               if model.operatorCodes[op.opcodeIndex].customCode in (b"TFLM_DECODE", "TFLM_DECODE")]
    assert decodes and all(model.subgraphs[0].tensors[op.inputs[0]].quantization is None for op in decodes)
    assert all(model.subgraphs[0].tensors[op.outputs[0]].quantization.scale is not None for op in decodes)
    # The unstripped compressor output gives the same outputs bit for bit, and is larger.
    unstripped = _unstripped_lut4(data)
    assert len(unstripped) > len(out)
    assert np.array_equal(_outputs(unstripped, x), _outputs(out, x))
    assert compression is not None


def _unstripped_lut4(data):
    return weight_codecs.lut4_tables(data)


def test_lut4_refuses_a_file_with_nothing_to_gain(tmp_path):
    model = stored_pw_twin((LENGTH, 1), 2, widths=(8, 8))
    x = np.random.default_rng(0).normal(size=(16, LENGTH, 1)).astype(np.float32)
    export_tflite(model, x, tmp_path / "tiny.tflite", synthesis="frozen")
    with pytest.raises(ValueError, match="would not save bytes"):
        weight_codecs.lut4((tmp_path / "tiny.tflite").read_bytes())
    with pytest.raises(ValueError, match="unknown weight codec"):
        weight_codecs.get("int3")


def test_int4_packs_the_init_subgraph_weights_of_a_boot_file(tmp_path):
    import keras

    from hypertiny_keras.models import hypertiny_pw

    keras.utils.set_random_seed(0)
    model = hypertiny_pw((LENGTH, 1), 2, widths=(16, 16, 16), head="kronecker", rank=2)
    x = np.random.default_rng(0).normal(size=(32, LENGTH, 1)).astype(np.float32)
    export_tflite(model, x, tmp_path / "boot.tflite", synthesis="boot")
    data = (tmp_path / "boot.tflite").read_bytes()
    out = weight_codecs.int4(data)
    model = read_model(out)
    init = [t.type for sg in model.subgraphs[1:] for t in sg.tensors]
    assert schema.TensorType.INT4 in init  # the factors that FULLY_CONNECTED reads as weights
    reference, coded = predict(data, x), predict(out, x)
    assert (coded.argmax(1) == reference.argmax(1)).mean() >= 0.8


def test_int4_packs_a_generator_read_by_every_layer_once(tmp_path):
    """Dense heads: one generator kernel feeds every layer's first FULLY_CONNECTED; it is packed once."""
    import keras

    from hypertiny_keras.models import hypertiny_pw

    keras.utils.set_random_seed(0)
    model = hypertiny_pw((LENGTH, 1), 2, widths=(16, 16, 16), head="dense")
    x = np.random.default_rng(0).normal(size=(32, LENGTH, 1)).astype(np.float32)
    export_tflite(model, x, tmp_path / "boot.tflite", synthesis="boot")
    data = (tmp_path / "boot.tflite").read_bytes()
    out = weight_codecs.int4(data)
    init = read_model(out).subgraphs[1]
    readers = [op.inputs[1] for op in init.operators if len(op.inputs) > 1]
    assert len(readers) > len(set(readers))  # a shared weight tensor
    assert (predict(out, x).argmax(1) == predict(data, x).argmax(1)).mean() >= 0.5
