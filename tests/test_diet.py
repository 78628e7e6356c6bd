"""The flatbuffer diet: every kind saves bytes, and TFLM computes what it computed before, bit for bit."""
import dataclasses

import keras
import numpy as np
import pytest

from hypertiny_keras import export_tflite, hypertiny_pw, inspect_tflite
from hypertiny_keras.cli import parser
from hypertiny_keras.data.synthetic import make_beats
from hypertiny_keras.export.diet import KINDS, diet
from hypertiny_keras.export.flatbuffer import OP_NAMES, builtin_code, compact, read_model, write_model
from hypertiny_keras.runtime import MAX_ARENA_BYTES, io_quantization, run_litert, run_tflm

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


MODELS = {  # name -> (builder, input shape of one sample)
    # PW3 and PW4 have one shape: their init-subgraph RESHAPE shapes are equal constants.
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


SAVES = {  # kind -> exports in which it must remove bytes
    "reshape_pairs": [("separable", "frozen"), ("separable", "boot"), ("residual", "frozen")],
    "quantization": [("separable", "frozen"), ("separable", "boot"), ("residual", "frozen"), ("conv2d", "frozen")],
    "empty_options": [("separable", "frozen"), ("residual", "frozen")],
    "shared_constants": [("separable", "boot")],
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


def _ops(data: bytes) -> tuple:
    """The main subgraph of `data` and its operator names."""
    model = read_model(data)
    return model.subgraphs[0], [OP_NAMES[builtin_code(model, op)] for op in model.subgraphs[0].operators]


def test_reshape_with_a_second_reader_stays(exported):
    e = exported("residual")
    _, plain_ops = _ops(e.plain)
    main, ops = _ops(e.dieted)
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
    assert e.report.arena_bytes < e.plain_report.arena_bytes


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
    assert e.report.arena_bytes < e.plain_report.arena_bytes
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
