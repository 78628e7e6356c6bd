"""The export pipeline's promises on the defects a review measured: each test fails on the old code."""
import json
import os
import signal
import zipfile

import keras
import numpy as np
import pytest

from hypertiny_keras import export_tflite, kernel_generators
from hypertiny_keras.device.runtime import TFLMCrash, io_quantization, run_tflm, tflm_worker
from hypertiny_keras.export import ExportError
from hypertiny_keras.export.analyze import analyze
from hypertiny_keras.layers import HyperPointwise, PointwiseGenerator, generated_layers
from hypertiny_keras.testing.fuzzing import Architecture, build, representative_data


def _arch(**changes):
    base = dict(dims=1, channels=1, widths=(8, 12, 16), head="dense", rank=2, code_dim=4, hidden_dim=8,
                generator_activation="relu", pw_activation="relu", use_bias=True, batch_norm=True,
                residual=False, style="functional", seed=7)
    return Architecture(**{**base, **changes})


def _tflm(path, x):
    data = path.read_bytes()
    return run_tflm(data, io_quantization(data)[0].quantize(x)).outputs


@pytest.mark.parametrize("changes", [
    dict(style="nested"),                                   # used to find no HyperPointwise layer
    dict(head="factorized", rank=1),                        # rank-1 heads used to miss 9-62% of values
    dict(dims=2, widths=(1, 8, 24)),                        # C_in <= 3: 20 output steps off
    dict(widths=(3, 2, 96), head="factorized", rank=5),     # used to be refused by LiteRT's init rounding
])
def test_boot_equals_frozen_where_it_used_to_break(tmp_path, changes):
    arch = _arch(**changes)
    model, x = build(arch), representative_data(arch)
    boot = export_tflite(model, x, tmp_path / "boot.tflite")
    export_tflite(model, x, tmp_path / "frozen.tflite", synthesis="frozen")
    assert boot.verification["boot_vs_frozen_identical"]
    assert all(layer["exact_fraction"] == 1.0 for layer in boot.generated_layers)
    np.testing.assert_array_equal(_tflm(tmp_path / "boot.tflite", x), _tflm(tmp_path / "frozen.tflite", x))
    json.loads((tmp_path / "boot.json").read_text())  # strict JSON


@pytest.mark.parametrize("synthesis", ["boot", "frozen"])
def test_nan_weights_are_refused_before_conversion(tmp_path, synthesis):
    arch = _arch()
    model = build(arch)
    layer = generated_layers(model)[0]
    layer.code.assign(np.full(layer.code.shape, np.nan, np.float32))
    with pytest.raises(ExportError, match="pw2.*NaN"):
        export_tflite(model, representative_data(arch), tmp_path / "m.tflite", synthesis=synthesis)
    assert not list(tmp_path.iterdir())


def test_paths_are_checked_before_conversion(tmp_path):
    arch = _arch()
    model, x = build(arch), representative_data(arch)
    with pytest.raises(ExportError, match=r"must not end in \.json"):
        analyze(model, x, tmp_path / "model.json")
    (tmp_path / "dir.tflite").mkdir()
    with pytest.raises(ExportError, match="is a directory"):
        analyze(model, x, tmp_path / "dir.tflite")
    (tmp_path / "clash").mkdir()
    (tmp_path / "clash" / "m.json").mkdir()
    with pytest.raises(ExportError, match="m.json: it is a directory"):
        analyze(model, x, tmp_path / "clash" / "m.tflite")


def test_degenerate_data_and_unfixed_input_lengths_are_refused_before_conversion(tmp_path):
    """All-equal calibration data (every real input would saturate) and a variable-length input."""
    arch = _arch()
    model, x = build(arch), representative_data(arch)
    with pytest.raises(ExportError, match="holds one value only"):
        analyze(model, np.zeros_like(x), tmp_path / "m.tflite")
    inputs = keras.Input((None, 1))
    pooled = keras.layers.GlobalAveragePooling1D()(keras.layers.Conv1D(4, 3)(inputs))
    variable = keras.Model(inputs, keras.layers.Dense(2)(pooled))
    with pytest.raises(ExportError, match=r"input shape \(None, None, 1\): export needs every size but the batch"):
        analyze(variable, np.ones((4, 32, 1), np.float32), tmp_path / "m.tflite")
    assert not list(tmp_path.iterdir())


def test_models_with_two_inputs_or_outputs_are_refused(tmp_path):
    generator = PointwiseGenerator(3, 6)
    a, b = keras.Input((16, 2)), keras.Input((16, 2))
    y = HyperPointwise(4, generator, name="pw")(keras.layers.Add()([a, b]))
    with pytest.raises(ExportError, match="2 inputs"):
        analyze(keras.Model([a, b], y), np.zeros((4, 16, 2), np.float32), tmp_path / "m.tflite")
    with pytest.raises(ExportError, match="2 outputs"):
        z = HyperPointwise(4, generator, name="pw_single")(a)
        analyze(keras.Model(a, [z, a]), np.zeros((4, 16, 2), np.float32), tmp_path / "m.tflite")


def test_two_generators_are_refused(tmp_path):
    inputs = keras.Input((16, 2))
    x = HyperPointwise(4, PointwiseGenerator(3, 6, name="g1"), name="pw_a")(inputs)
    x = HyperPointwise(4, PointwiseGenerator(3, 6, name="g2"), name="pw_b")(x)
    with pytest.raises(ExportError, match="one shared generator.*g1: pw_a; g2: pw_b"):
        analyze(keras.Model(inputs, x), np.zeros((4, 16, 2), np.float32), tmp_path / "m.tflite")


def test_keras_file_with_disagreeing_generator_configs_fails_to_load(tmp_path):
    model = build(_arch())
    path = tmp_path / "m.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(files["config.json"])
    layers = [layer for layer in config["config"]["layers"] if layer["class_name"] == "HyperPointwise"]
    layers[1]["config"]["generator"]["config"]["activation"] = "linear"
    files["config.json"] = json.dumps(config).encode()
    edited = tmp_path / "edited.keras"
    with zipfile.ZipFile(edited, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    keras.saving.load_model(path)  # the original loads
    with pytest.raises(ValueError, match="'pw2' and 'pw3' share generator 'generator'.*activation"):
        keras.saving.load_model(edited)


def test_tflm_worker_crash_is_an_error_and_the_worker_restarts(tmp_path):
    arch = _arch()
    export_tflite(build(arch), representative_data(arch), tmp_path / "m.tflite", synthesis="frozen")
    x = io_quantization((tmp_path / "m.tflite").read_bytes())[0].quantize(representative_data(arch))
    first = run_tflm(tmp_path / "m.tflite", x).outputs
    worker = tflm_worker()
    os.kill(worker.process.pid, signal.SIGKILL)
    with pytest.raises(TFLMCrash, match=r"crashed \(signal SIGKILL\) running .*m\.tflite"):
        run_tflm(tmp_path / "m.tflite", x, arena_size=1 << 20)
    np.testing.assert_array_equal(run_tflm(tmp_path / "m.tflite", x).outputs, first)


def test_kernel_generator_registry():
    assert set(kernel_generators.names()) >= {"dense", "factorized"}
    for name in kernel_generators.names():
        kind = kernel_generators.get(name)
        assert kernel_generators.get(kernel_generators.serialize(kind)) == kind
    with pytest.raises(ValueError, match="head must be one of"):
        kernel_generators.get("nope")
    layer = HyperPointwise(4, PointwiseGenerator(3, 6, rank=2), head="factorized")
    assert layer.kernel_generator == kernel_generators.get("factorized")
    assert HyperPointwise.from_config(layer.get_config()).head_mode == "factorized"
