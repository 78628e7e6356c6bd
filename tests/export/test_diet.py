"""The flatbuffer diet: every kind saves bytes, and TFLM computes what it computed before, bit for bit."""
import copy
import dataclasses

import keras
import numpy as np
import pytest

from hypertiny_keras import export_tflite, freeze, generated_layers, hypertiny_pw, inspect_tflite
from hypertiny_keras.cli.main import parser
from hypertiny_keras.data.synthetic import make_beats
from hypertiny_keras.device.runtime import MAX_ARENA_BYTES, io_quantization, run_litert, run_tflm
from hypertiny_keras.export.diet import KINDS, diet
from hypertiny_keras.tflite.flatbuffer import OP_NAMES, builtin_code, compact, read_model, write_model

LENGTH = 128
SAMPLES = 32


def _separable(length=LENGTH, **kwargs):
    return hypertiny_pw((length, 1), 2, code_dim=4, hidden_dim=12, **kwargs)


def _residual():
    """Conv1D -> Conv1D -> Add(both) -> Conv1D -> Conv1D: the first RESHAPE has two readers."""
    inputs = keras.Input((LENGTH, 1))
    a = keras.layers.Conv1D(8, 5, strides=2, padding="same", activation="relu")(inputs)
    b = keras.layers.Conv1D(8, 3, padding="same", activation="relu")(a)
    c = keras.layers.Conv1D(8, 1, activation="relu")(keras.layers.Add()([a, b]))
    d = keras.layers.Conv1D(8, 1, activation="relu")(c)
    return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(d)))


def _conv2d():
    inputs = keras.Input((16, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.Conv2D(8, 1, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))


def _twins():
    """Two frozen 1x1 convolutions with one initializer: the converter merges their equal constants."""
    inputs = keras.Input((LENGTH, 1))
    x = keras.layers.Conv1D(8, 5, strides=2, padding="same", activation="relu")(inputs)
    for _ in range(2):
        x = keras.layers.Conv1D(8, 1, activation="relu", trainable=False,
                                kernel_initializer=keras.initializers.GlorotUniform(seed=3))(x)
    return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(x)))


MODELS = {  # name -> (builder, input shape of one sample)
    "twins": (_twins, (LENGTH, 1)),
    "separable": (lambda: _separable(widths=(8, 12, 12, 12), stem_filters=8), (LENGTH, 1)),
    "residual": (_residual, (LENGTH, 1)),
    "conv2d": (_conv2d, (16, 8, 1)),
    "quickstart": (lambda: _separable(256), (256, 1)),  # the quickstart's architecture
}


@dataclasses.dataclass
class Exported:
    report: object  # ExportReport of the dieted file
    plain_report: object  # ... and of the undieted one
    dieted: bytes
    plain: bytes  # the same export with diet=False
    x: np.ndarray  # held-out inputs in the file's input dtype


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """`exported(model, synthesis)`: one model exported with and without the diet (cached)."""
    cache = {}
    beats, labels = make_beats(400, length=256, seed=5)

    def export(name: str, synthesis: str = "frozen") -> Exported:
        if (name, synthesis) not in cache:
            build, shape = MODELS[name]
            keras.utils.set_random_seed(0)
            model = build()
            x = beats[:, : int(np.prod(shape))].reshape(-1, *shape)
            model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
            model.fit(x[200:], labels[200:], batch_size=50, epochs=1, verbose=0)  # realistic weights and biases
            out = tmp_path_factory.mktemp(f"{name}_{synthesis}")
            kwargs = dict(synthesis=synthesis, verify_samples=16)
            report = export_tflite(model, x[:200], out / "dieted.tflite", **kwargs)
            plain_report = export_tflite(model, x[:200], out / "plain.tflite", diet=False, **kwargs)
            plain = (out / "plain.tflite").read_bytes()
            input_q, _ = io_quantization(plain)
            cache[name, synthesis] = Exported(
                report, plain_report, (out / "dieted.tflite").read_bytes(), plain,
                input_q.quantize(x[200 : 200 + SAMPLES]),
            )
        return cache[name, synthesis]

    return export


def _tflm(data: bytes, x: np.ndarray) -> np.ndarray:
    return run_tflm(data, x, MAX_ARENA_BYTES).outputs.astype(np.int64)


def _only(kind: str, data: bytes) -> bytes:
    """`data` with one diet kind applied."""
    model = read_model(data)
    KINDS[kind](model)
    compact(model)
    return write_model(model)


SAVES = {  # kind -> exports in which it must remove bytes (reshape_pairs, empty_options, shared_constants: below)
    "quantization": [("separable", "frozen"), ("separable", "boot"), ("residual", "frozen"), ("conv2d", "frozen")],
}


@pytest.mark.parametrize("kind,name,synthesis", [(k, *e) for k, exports in SAVES.items() for e in exports])
def test_kind_saves_bytes_and_tflm_outputs_stay_bit_exact(exported, kind, name, synthesis):
    e = exported(name, synthesis)
    assert set(e.report.diet_bytes) == set(KINDS) and e.report.diet_bytes[kind] > 0
    assert sum(e.report.diet_bytes.values()) == e.plain_report.file_bytes - e.report.file_bytes
    alone = _only(kind, e.plain)
    assert len(alone) < len(e.plain) and len(e.dieted) < len(e.plain)
    reference, litert_reference = _tflm(e.plain, e.x), run_litert(e.plain, e.x).outputs.astype(np.int64)
    for data in (alone, e.dieted):
        np.testing.assert_array_equal(_tflm(data, e.x), reference)
        litert = run_litert(data, e.x).outputs.astype(np.int64)
        np.testing.assert_array_equal(litert, litert_reference)
        assert np.abs(litert - reference).max() <= 1


def test_shared_constants_merges_a_copied_constant(exported):
    # The converter already merges equal constants (operators read one tensor) and the boot writer
    # emits none, so the kind is tested on a copy: the second reader gets its own tensor and buffer.
    e = exported("twins", "frozen")
    model = read_model(e.plain)
    main = model.subgraphs[0]
    readers = {}
    for op in main.operators:
        for position, t in enumerate(op.inputs):
            if t >= 0 and model.buffers[main.tensors[t].buffer].data is not None:
                readers.setdefault(t, []).append((op, position))
    shared, uses = next((t, u) for t, u in readers.items() if len(u) >= 2)
    twin = copy.deepcopy(main.tensors[shared])
    twin.buffer = len(model.buffers)
    model.buffers.append(copy.deepcopy(model.buffers[main.tensors[shared].buffer]))
    main.tensors.append(twin)
    op, position = uses[1]
    op.inputs[position] = len(main.tensors) - 1
    split = write_model(model)
    KINDS["shared_constants"](model)
    compact(model)
    merged = write_model(model)
    assert len(split) > len(e.plain) and len(merged) < len(split)
    reference = _tflm(e.plain, e.x)
    np.testing.assert_array_equal(_tflm(split, e.x), reference)
    np.testing.assert_array_equal(_tflm(merged, e.x), reference)


def _ops(data: bytes) -> tuple:
    """The main subgraph of `data` and its operator names."""
    model = read_model(data)
    return model.subgraphs[0], [OP_NAMES[builtin_code(model, op)] for op in model.subgraphs[0].operators]


@pytest.fixture(scope="module")
def dynamic_batch():
    """`dynamic_batch(name)`: (the converter's file of the model at a dynamic batch, int8 held-out inputs).

    Exports trace at batch 1, where the converter itself leaves no RESHAPE -> EXPAND_DIMS
    pair; at a dynamic batch (a file converted elsewhere) it writes one between neighbours.
    """
    from hypertiny_keras.export.convert import convert_int8

    beats, _ = make_beats(300, length=LENGTH, seed=5)
    x = beats.reshape(-1, LENGTH, 1)

    def convert(name):
        keras.utils.set_random_seed(0)
        model = MODELS[name][0]()
        data = convert_int8(freeze(model) if generated_layers(model) else model, x[:100], batch=None)
        return data, io_dtype_inputs(data, x[100 : 100 + SAMPLES])

    return convert


def io_dtype_inputs(data, x):
    input_q, _ = io_quantization(data)
    return input_q.quantize(x)


@pytest.mark.parametrize("kind", ["reshape_pairs", "empty_options"])
@pytest.mark.parametrize("name", ["separable", "residual"])
def test_kinds_of_dynamic_batch_files_save_bytes_bit_exact(dynamic_batch, exported, name, kind):
    """What the converter leaves at a dynamic batch (a file converted elsewhere) goes, outputs unchanged."""
    data, x = dynamic_batch(name)
    alone = _only(kind, data)
    assert len(alone) < len(data)
    if kind == "reshape_pairs":
        assert _ops(alone)[1].count("EXPAND_DIMS") < _ops(data)[1].count("EXPAND_DIMS")
    np.testing.assert_array_equal(_tflm(alone, x), _tflm(data, x))
    np.testing.assert_array_equal(run_litert(alone, x).outputs, run_litert(data, x).outputs)
    # The package's own exports are traced at batch 1: the converter leaves nothing of the kind.
    e = exported(name)
    assert e.report.diet_bytes[kind] == 0 and "EXPAND_DIMS" not in _ops(e.plain)[1]


def test_reshape_with_a_second_reader_stays(dynamic_batch):
    plain, _ = dynamic_batch("residual")
    dieted = _only("reshape_pairs", plain)
    _, plain_ops = _ops(plain)
    main, ops = _ops(dieted)
    # The pair between the last two convolutions goes; the RESHAPE that also feeds ADD stays.
    assert len(plain_ops) - len(ops) == 2 and plain_ops.count("RESHAPE") - ops.count("RESHAPE") == 1
    producer = {int(op.outputs[0]): name for op, name in zip(main.operators, ops)}
    readers = {}
    for op, name in zip(main.operators, ops):
        for t in op.inputs:
            readers.setdefault(int(t), []).append(name)
    add_inputs = [int(t) for t in main.operators[ops.index("ADD")].inputs]
    assert [producer[t] for t in add_inputs] == ["RESHAPE", "RESHAPE"]
    assert sorted(sorted(readers[t]) for t in add_inputs) == [["ADD"], ["ADD", "EXPAND_DIMS"]]


def _weighted(data: bytes) -> list:
    """(operator name, filter tensor, bias tensor) of the main graph's biased CONV_2D, DEPTHWISE_CONV_2D, FC."""
    main, ops = _ops(data)
    return [
        (name, main.tensors[int(op.inputs[1])], main.tensors[int(op.inputs[2])])
        for op, name in zip(main.operators, ops)
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED") and len(op.inputs) > 2 and op.inputs[2] >= 0
    ]


@pytest.mark.parametrize("name", ["conv2d", "separable"])
def test_biases_lose_only_unread_quantization(exported, name):
    e = exported(name)
    dieted, plain = _weighted(e.dieted), _weighted(e.plain)
    assert [d[0] for d in dieted] == [p[0] for p in plain] and "FULLY_CONNECTED" in [d[0] for d in dieted]
    for (op_name, weights, bias), (_, plain_weights, plain_bias) in zip(dieted, plain):
        # Filter scales and zero points stay one per channel (LiteRT refuses shorter zero-point arrays).
        assert list(weights.quantization.scale) == list(plain_weights.quantization.scale)
        assert list(weights.quantization.zeroPoint) == list(plain_weights.quantization.zeroPoint)
        if op_name == "FULLY_CONNECTED":  # TFLM reads bias->params.scale: the first scale stays
            assert list(bias.quantization.scale) == list(plain_bias.quantization.scale[:1])
            assert list(bias.quantization.zeroPoint) == list(plain_bias.quantization.zeroPoint[:1])
        else:
            assert bias.quantization is None and plain_bias.quantization is not None


def test_quickstart_like_frozen_file_loses_overhead_and_arena(exported):
    e = exported("quickstart")
    plain, dieted = inspect_tflite(e.plain)["bytes_by_role"], inspect_tflite(e.dieted)["bytes_by_role"]
    assert dieted["flatbuffer_overhead"] < plain["flatbuffer_overhead"]
    assert dieted["flatbuffer_overhead"] / len(e.dieted) < plain["flatbuffer_overhead"] / len(e.plain)
    assert e.report.file_bytes == len(e.dieted) < e.plain_report.file_bytes == len(e.plain)
    assert e.report.arena_bytes <= e.plain_report.arena_bytes
    np.testing.assert_array_equal(_tflm(e.dieted, e.x), _tflm(e.plain, e.x))


def test_diet_is_idempotent_measured_and_can_be_turned_off(exported):
    e = exported("separable")
    assert diet(read_model(e.dieted)) == dict.fromkeys(KINDS, 0)
    model = read_model(e.plain)
    assert sum(diet(model).values()) == len(e.plain) - len(write_model(model)) > 0
    assert e.plain_report.diet_bytes == {} and "flatbuffer diet: off" in str(e.plain_report)
    assert f"flatbuffer diet: {sum(e.report.diet_bytes.values()):,} bytes removed (reshape_pairs" in str(e.report)
    assert parser().parse_args(["export", "m.keras", "--no-diet"]).diet is False
    assert parser().parse_args(["export", "m.keras"]).diet is True
