"""int8 export: boot files run in TFLM and LiteRT, match the frozen twin, hold no generated kernel."""
import json
import os

import keras
import numpy as np
import pytest

from hypertiny_keras import ExportError, ExportVerificationError, export_tflite, hypertiny_pw, inspect_tflite
from hypertiny_keras.data.synthetic import make_beats
from hypertiny_keras.device.runtime import io_quantization, run_litert, run_tflm
from hypertiny_keras.layers import HyperPointwise
from hypertiny_keras.tflite.flatbuffer import op_names, read_model, schema

LENGTH = 128


@pytest.fixture(scope="module")
def beats():
    x, y = make_beats(900, length=LENGTH, seed=3)
    return x, y


def _trained(beats, widths, head="dense", rank=None, norm="batch", seed=0):
    """A small HyperTinyPW model trained briefly, so weights have a realistic spread."""
    x, y = beats
    keras.utils.set_random_seed(seed)
    model = hypertiny_pw((LENGTH, 1), 2, widths=widths, stem_filters=8, head=head, rank=rank, norm=norm,
                         code_dim=4, hidden_dim=12)
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:600], y[:600], batch_size=64, epochs=2, verbose=0)
    return model


def _tflm_int8(path, x):
    data = open(path, "rb").read()
    input_q, _ = io_quantization(data)
    return run_tflm(data, input_q.quantize(x)).outputs.astype(np.int64)


GRID = [  # widths (generated layers = len - 1), head, rank, norm
    ((8, 12), "dense", None, "batch"),
    ((8, 12, 16), "factorized", 3, "batch"),
    ((12, 12, 16, 16), "dense", None, "none"),
    ((8, 16, 16), "factorized", 2, "none"),
]


@pytest.mark.parametrize("widths,head,rank,norm", GRID)
def test_boot_export_matches_frozen_in_tflm_and_litert(tmp_path, beats, widths, head, rank, norm):
    x = beats[0]
    model = _trained(beats, widths, head, rank, norm)
    frozen = export_tflite(model, x[:200], tmp_path / "frozen.tflite", synthesis="frozen")
    boot = export_tflite(model, x[:200], tmp_path / "boot.tflite", synthesis="boot")
    generated = len(widths) - 1

    # Structure: CALL_ONCE first, one init subgraph writing one variable per generated layer.
    ops = op_names(read_model((tmp_path / "boot.tflite").read_bytes()))
    assert ops[0][0] == "CALL_ONCE" and len(ops) == 2
    assert ops[0].count("READ_VARIABLE") == generated and ops[1].count("ASSIGN_VARIABLE") == generated
    assert ops[1].count("FULLY_CONNECTED") == generated * (3 if head == "factorized" else 2)
    assert [o for o in ops[0] if o not in ("CALL_ONCE", "VAR_HANDLE", "READ_VARIABLE")] == frozen.operators[0]

    # Verification recorded by the export itself.
    for report in (frozen, boot):
        assert report.verification["tflm_vs_litert_max_steps"] <= 1
    assert all(layer["exact_fraction"] == 1.0 for layer in boot.generated_layers)

    # Independent runs: boot within one output step of frozen on >= 99% of elements (here: identical).
    held_out = x[600:900]
    a, b = _tflm_int8(tmp_path / "frozen.tflite", held_out), _tflm_int8(tmp_path / "boot.tflite", held_out)
    assert np.mean(np.abs(a - b) <= 1) >= 0.99
    data = (tmp_path / "boot.tflite").read_bytes()
    input_q, _ = io_quantization(data)
    litert = run_litert(data, input_q.quantize(held_out)).outputs.astype(np.int64)
    assert np.abs(litert - b).max() <= 1

    # The report JSON lies beside the model.
    saved = json.loads((tmp_path / "boot.json").read_text())
    assert saved["file_bytes"] == len(data) and saved["synthesis"] == "boot"


def test_boot_file_holds_no_generated_kernel(tmp_path, beats):
    model = _trained(beats, (8, 16, 16), norm="none")
    export_tflite(model, beats[0][:200], tmp_path / "frozen.tflite", synthesis="frozen")
    report = export_tflite(model, beats[0][:200], tmp_path / "boot.tflite", synthesis="boot")
    frozen_model = read_model((tmp_path / "frozen.tflite").read_bytes())
    boot_model = read_model((tmp_path / "boot.tflite").read_bytes())
    boot_buffers = {bytes(np.asarray(b.data, np.uint8)) for b in boot_model.buffers if b.data is not None}
    shapes = [[layer["filters"], 1, 1, layer["in_channels"]] for layer in report.generated_layers]
    assert shapes == [[16, 1, 1, 8], [16, 1, 1, 16]]  # PW1 (8 x 8) stays stored
    main = frozen_model.subgraphs[0]
    generated_filters = [
        bytes(np.asarray(frozen_model.buffers[t.buffer].data, np.uint8))
        for t in main.tensors
        if frozen_model.buffers[t.buffer].data is not None and [int(v) for v in t.shape] in shapes
    ]
    assert len(generated_filters) == 2
    assert not any(f in boot_buffers for f in generated_filters)
    info = inspect_tflite((tmp_path / "boot.tflite").read_bytes())
    assert info["resource_variables"] == 2
    assert info["generated_weight_ram_bytes"] == 16 * 8 + 16 * 16


@pytest.mark.parametrize("head,norm", [("lowrank", "batch"), ("kronecker", "batch"), ("lowrank", "none")])
def test_factor_kernels_boot_exactly_and_store_less_than_the_kernel(tmp_path, beats, head, norm):
    """lowrank/kronecker: the device kernel is the int8 FULLY_CONNECTED of the factors; boot == its frozen twin."""
    x = beats[0]
    model = _trained(beats, (16, 64, 64), head, 2, norm)
    frozen = export_tflite(model, x[:200], tmp_path / "frozen.tflite", synthesis="frozen")
    boot = export_tflite(model, x[:200], tmp_path / "boot.tflite", synthesis="boot")
    v = boot.verification
    assert v["boot_vs_equivalent_identical"] and v["tflm_vs_litert_max_steps"] <= 1
    ops = op_names(read_model((tmp_path / "boot.tflite").read_bytes()))
    assert ops[1].count("FULLY_CONNECTED") == 2 and ops[1].count("ASSIGN_VARIABLE") == 2
    assert ops[1].count("TRANSPOSE") == (2 if head == "kronecker" else 0)
    for layer in boot.generated_layers:
        assert layer["head_mode"] == head and layer["exact_fraction"] == 1.0
        assert len(layer["filter_scales"]) == layer["filters"]  # one kernel scale times the folded BatchNorm
        assert layer["kernel_error_lsb"] <= 2.0  # per-tensor int8 of the factors and the kernel
    # The file stores the factors instead of the 64 x 64 kernels, and is smaller for it.
    assert boot.bytes_by_role["heads"] < frozen.bytes_by_role["pointwise"] / 4
    assert boot.file_bytes < frozen.file_bytes
    # One truth: the frozen file stores the kernel the device synthesises (not the converter's rounding of the
    # float kernel), so boot and frozen give the same outputs bit for bit on held-out data too.
    held_out = x[600:900]
    a, b = _tflm_int8(tmp_path / "frozen.tflite", held_out), _tflm_int8(tmp_path / "boot.tflite", held_out)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("head", ["lowrank_shared", "kronecker_shared"])
def test_shared_factor_kernels_write_each_bank_once_and_boot_exactly(tmp_path, beats, head):
    """Cross-layer forms: per layer g(z_l) -> bank -> product; bank and right factor once per shape; boot == twin."""
    x, y = beats
    keras.utils.set_random_seed(0)
    model = hypertiny_pw((LENGTH, 1), 2, widths=(16, 64, 64, 64, 64), stem_filters=8, head=head, rank=2,
                         code_dim=4, hidden_dim=2, generator_activation="linear")
    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:600], y[:600], batch_size=64, epochs=2, verbose=0)
    boot = export_tflite(model, x[:200], tmp_path / "boot.tflite", synthesis="boot")
    assert boot.verification["boot_vs_equivalent_identical"] and boot.verification["tflm_vs_litert_max_steps"] <= 1
    ops = op_names(read_model((tmp_path / "boot.tflite").read_bytes()))
    assert ops[1].count("FULLY_CONNECTED") == 4 * 3 and ops[1].count("ASSIGN_VARIABLE") == 4
    assert all(layer["exact_fraction"] == 1.0 and layer["head_mode"] == head for layer in boot.generated_layers)
    # Two shapes (64 x 16, then three 64 x 64): a bank (d_h x rows x r) and a right factor (cols x r) each.
    # lowrank: rows = C_out, cols = C_in; kronecker: rows = a_out a_in (8 x 4, 8 x 8), cols = b_out b_in.
    rows, cols = ((64, 64), (16, 64)) if head == "lowrank_shared" else ((32, 64), (32, 64))
    roles = boot.bytes_by_role
    assert roles["generator"] == sum(2 * r * 2 for r in rows) + 4 * 2 + 2 * 4  # + generator kernel and int32 bias
    assert roles["heads"] == sum(c * 2 for c in cols)
    assert roles["codes"] == 4 * 4
    # One truth: the frozen export stores the boot file's kernels; the same outputs bit for bit on held-out data.
    frozen = export_tflite(model, x[:200], tmp_path / "frozen.tflite", synthesis="frozen")
    held_out = x[600:900]
    a, b = _tflm_int8(tmp_path / "frozen.tflite", held_out), _tflm_int8(tmp_path / "boot.tflite", held_out)
    np.testing.assert_array_equal(a, b)
    assert frozen.file_bytes > boot.file_bytes


@pytest.mark.parametrize("head,rank", [("dense", None), ("factorized", 3), ("kronecker", 2)])
def test_int4_init_weights_halve_their_bytes_and_keep_boot_equal_to_frozen(tmp_path, beats, head, rank):
    """init_weight_bits=4: the init subgraph's FULLY_CONNECTED weights are packed INT4 in the file."""
    x = beats[0]
    model = _trained(beats, (16, 32, 32), head, rank)
    eight = export_tflite(model, x[:200], tmp_path / "boot8.tflite", synthesis="boot")
    four = export_tflite(model, x[:200], tmp_path / "boot4.tflite", synthesis="boot", init_weight_bits=4)
    assert four.init_weight_bits == 4 and eight.init_weight_bits == 8
    v = four.verification
    assert v["boot_vs_equivalent_identical"] and v["tflm_vs_litert_max_steps"] <= 1
    init = read_model((tmp_path / "boot4.tflite").read_bytes()).subgraphs[1]
    weights = [init.tensors[op.inputs[1]] for op in init.operators if len(op.inputs) > 1
               and init.tensors[op.inputs[1]].type in (schema.TensorType.INT4, schema.TensorType.INT8)
               and init.tensors[op.inputs[1]].buffer > 0]
    int4_layers = [layer for layer in four.generated_layers if layer["weight_bits"] == 4]
    assert int4_layers, four.generated_layers  # int8 only where int4 heads cannot hit every target
    assert sum(t.type == schema.TensorType.INT4 for t in weights) >= len(int4_layers) >= 1
    assert four.bytes_by_role["heads"] < eight.bytes_by_role["heads"]
    if len(int4_layers) == len(four.generated_layers):
        assert four.bytes_by_role["heads"] <= eight.bytes_by_role["heads"] // 2 + 16 * len(four.generated_layers)
    assert four.file_bytes < eight.file_bytes
    assert f"int4 in {len(int4_layers)} of {len(four.generated_layers)} layers" in str(four)
    assert "init-subgraph weights" not in str(eight)
    if head != "kronecker":  # solved heads: the same int8 filters as the converter's, so the frozen file's outputs
        assert all(layer["exact_fraction"] == 1.0 for layer in four.generated_layers)
        held_out = x[600:700]
        assert np.array_equal(_tflm_int8(tmp_path / "boot4.tflite", held_out),
                              _tflm_int8(tmp_path / "boot8.tflite", held_out))
    with pytest.raises(ExportError, match="init_weight_bits must be 8 or 4"):
        export_tflite(model, x[:200], tmp_path / "boot6.tflite", init_weight_bits=6)


def test_factor_kernel_after_a_sign_flipping_batch_norm_is_refused(tmp_path, beats):
    model = _trained(beats, (8, 16), "lowrank", 2)
    bn = model.get_layer("pw2_bn")
    gamma, beta, mean, var = bn.get_weights()
    gamma[3] = -abs(gamma[3])
    bn.set_weights([gamma, beta, mean, var])
    with pytest.raises(ExportError, match=r"pw2: the converter's filter flips or zeroes 1 output channel"):
        export_tflite(model, beats[0][:200], tmp_path / "boot.tflite", synthesis="boot")
    assert not list(tmp_path.iterdir())
    # The frozen file stores the factor product with the flipped channel's sign in its values.
    frozen = export_tflite(model, beats[0][:200], tmp_path / "frozen.tflite", synthesis="frozen")
    assert frozen.verification["tflm_vs_litert_max_steps"] <= 1


def test_per_tensor_filters_are_the_rounded_kernel(tmp_path, beats):
    model = _trained(beats, (8, 12, 16), norm="none")
    report = export_tflite(model, beats[0][:200], tmp_path / "boot.tflite", per_channel=False)
    for layer in report.generated_layers:
        assert len(layer["filter_scales"]) == 1
        assert layer["exact_fraction"] == 1.0
        assert layer["kernel_error_lsb"] <= 0.5 + 1e-3  # as good as rounding the float kernel
    # The cost of per-channel generated filters: the arena is measured, not assumed.
    per_channel = export_tflite(model, beats[0][:200], tmp_path / "boot_pc.tflite", per_channel=True)
    assert all(len(layer["filter_scales"]) == layer["filters"] for layer in per_channel.generated_layers)
    assert per_channel.arena_bytes <= report.arena_bytes
    # One truth: the frozen file of the same options stores the per-tensor filters the boot file synthesises.
    export_tflite(model, beats[0][:200], tmp_path / "frozen.tflite", synthesis="frozen", per_channel=False)
    held_out = beats[0][600:700]
    np.testing.assert_array_equal(_tflm_int8(tmp_path / "frozen.tflite", held_out),
                                  _tflm_int8(tmp_path / "boot.tflite", held_out))


def test_float_io_and_keras_round_trip(tmp_path, beats):
    model = _trained(beats, (8, 12), norm="none")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    export_tflite(model, beats[0][:200], tmp_path / "a.tflite")
    export_tflite(loaded, beats[0][:200], tmp_path / "b.tflite")
    assert (tmp_path / "a.tflite").read_bytes() == (tmp_path / "b.tflite").read_bytes()
    report = export_tflite(model, beats[0][:200], tmp_path / "f.tflite", io_dtype="float32")
    assert report.verification["tflm_vs_float_top1"] >= 0.95
    operators = inspect_tflite((tmp_path / "f.tflite").read_bytes())["subgraphs"][0]["operators"]
    # QUANTIZE first; CALL_ONCE goes after it (the int8 copy of the input is 4x smaller: fewer live bytes)
    assert operators[:2] == ["QUANTIZE", "CALL_ONCE"]


def test_strip_removes_names_and_reports_saving(tmp_path, beats):
    model = _trained(beats, (8, 12), norm="none")
    kept = export_tflite(model, beats[0][:200], tmp_path / "kept.tflite", keep_metadata=True)
    stripped = export_tflite(model, beats[0][:200], tmp_path / "stripped.tflite")
    assert kept.stripped_bytes == 0 and stripped.stripped_bytes > 0
    assert kept.file_bytes - stripped.file_bytes == stripped.stripped_bytes
    flat = read_model((tmp_path / "stripped.tflite").read_bytes())
    assert not flat.signatureDefs and not flat.metadata
    assert all(not t.name for sg in flat.subgraphs for t in sg.tensors)


@pytest.fixture(scope="module")
def small_model(beats):
    return _trained(beats, (8, 12), norm="none")


@pytest.mark.parametrize(
    "data,match",
    [
        (lambda x: x.astype(np.int8), "must be float"),
        (lambda x: x[:, :64], "must have shape"),
        (lambda x: np.where(np.arange(x.size).reshape(x.shape) == 7, np.nan, x), "NaN"),
        (lambda x: x[:0], "must have shape"),
    ],
)
def test_bad_representative_data_writes_nothing(tmp_path, beats, small_model, data, match):
    with pytest.raises(ValueError, match=match):
        export_tflite(small_model, data(beats[0][:50]), tmp_path / "m.tflite")
    assert os.listdir(tmp_path) == []


def test_bad_model_and_path_write_nothing(tmp_path, beats, small_model):
    plain = keras.Sequential([keras.Input((LENGTH, 1)), keras.layers.Conv1D(4, 1), keras.layers.Flatten(),
                              keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="HyperPointwise"):
        export_tflite(plain, beats[0][:50], tmp_path / "m.tflite", synthesis="boot")
    with pytest.raises(ValueError, match="not a writable directory"):
        export_tflite(small_model, beats[0][:50], tmp_path / "missing" / "m.tflite")
    with pytest.raises(ValueError, match="synthesis"):
        export_tflite(small_model, beats[0][:50], tmp_path / "m.tflite", synthesis="lazy")
    with pytest.raises(ExportVerificationError, match="not written"):
        export_tflite(small_model, beats[0][:50], tmp_path / "m.tflite", tolerance_steps=0.0)
    assert os.listdir(tmp_path) == []
    assert any(isinstance(layer, HyperPointwise) for layer in small_model.layers)
