"""The kernel-generator registry as an extension point: a kernel generator defined outside the package.

`ScaledDense` below is what a user would write: a subclass of the public
`LinearHead` with a setting of its own, registered under a new name. It
goes through everything the built-in kernel generators go through: model
building by name, `.keras` save/load, and the boot export, whose TFLM
outputs must equal the frozen file's bit for bit.
"""
import keras
import numpy as np
import pytest
from keras import ops

import hypertiny_keras as ht
from hypertiny_keras import kernel_generators
from hypertiny_keras.data.synthetic import make_beats
from hypertiny_keras.device.runtime import io_quantization, run_tflm

LENGTH = 128


class ScaledDense(kernel_generators.LinearHead):
    """`W_l = reshape(scale * g(z_l) @ H_l)`: the paper's dense head after a fixed gain `scale`.

    Head `H_l` `(d_h, C_out * C_in)`; the device runs FULLY_CONNECTED(z_l, g)
    -> h_l, then FULLY_CONNECTED(h_l, scale * H_l), solved for the exact
    int8 filter.
    """

    name = "scaled_dense"

    def __init__(self, scale: float = 0.5):
        self.scale = float(scale)

    def get_config(self) -> dict:
        return {"scale": self.scale}

    def rows(self, generator) -> int:
        return generator.hidden_dim

    def head_input(self, layer):
        return self.scale * layer.generator(ops.expand_dims(layer.code, 0))

    def emit(self, emitter, layer, target, value_scales):
        h = emitter.generator_output(layer)
        weights = self.scale * np.asarray(ops.convert_to_numpy(layer.head), np.float64)
        return (*emitter.exact_fully_connected(layer.name, h, weights, target, value_scales), None)


@pytest.fixture
def scaled_dense():
    """`ScaledDense` registered for one test, and unregistered after it (also when the test fails)."""
    kernel_generators.register(ScaledDense)
    try:
        yield ScaledDense
    finally:
        kernel_generators.unregister(ScaledDense.name)


def _tflm_int8(data: bytes, x: np.ndarray) -> np.ndarray:
    input_q, _ = io_quantization(data)
    return run_tflm(data, input_q.quantize(x)).outputs


def test_names_are_read_live(scaled_dense):
    assert "scaled_dense" in kernel_generators.names()
    assert kernel_generators.get({"class_name": "scaled_dense", "config": {"scale": 2.0}}) == ScaledDense(2.0)
    assert kernel_generators.get(kernel_generators.serialize(ScaledDense(0.25))) == ScaledDense(0.25)
    with pytest.raises(ValueError, match="scaled_dense"):  # the error lists the kernel generators registered now
        ht.HyperPointwise(4, ht.PointwiseGenerator(3, 6), head="nope")


def test_unregister_removes_the_name_and_refuses_an_unknown_one():
    kernel_generators.register(ScaledDense)
    assert kernel_generators.unregister("scaled_dense") is ScaledDense
    assert "scaled_dense" not in kernel_generators.names()
    with pytest.raises(ValueError, match="head must be one of"):
        ht.HyperPointwise(4, ht.PointwiseGenerator(3, 6), head="scaled_dense")
    with pytest.raises(ValueError, match="no kernel generator named 'scaled_dense'"):
        kernel_generators.unregister("scaled_dense")


def test_a_taken_name_is_refused_and_override_replaces_it():
    class Impostor(ScaledDense):
        name = "dense"

    original = kernel_generators.get("dense")
    with pytest.raises(ValueError, match=r"'dense' is already registered \(.*DenseHead\).*override=True"):
        kernel_generators.register(Impostor)
    assert type(kernel_generators.get("dense")) is type(original)
    try:
        assert kernel_generators.register(Impostor, override=True) is Impostor
        assert isinstance(kernel_generators.get("dense"), Impostor)
    finally:
        kernel_generators.register(type(original), override=True)
    assert kernel_generators.get("dense") == original
    assert kernel_generators.names()[:2] == ("dense", "factorized")  # overriding keeps the name's place


def test_register_as_a_decorator_with_and_without_arguments():
    try:
        @kernel_generators.register
        class Bare(ScaledDense):
            name = "bare_scaled"

        @kernel_generators.register(override=True)
        class Replacement(ScaledDense):
            name = "bare_scaled"

        assert isinstance(kernel_generators.get("bare_scaled"), Replacement) and Bare is not Replacement
    finally:
        kernel_generators.unregister("bare_scaled")
    with pytest.raises(TypeError, match="needs a class attribute `name`"):
        kernel_generators.register(type("Nameless", (ScaledDense,), {"name": ""}))
    with pytest.raises(TypeError, match="KernelGenerator subclass"):
        kernel_generators.register(dict)


def test_a_kernel_generator_from_outside_builds_saves_and_boots_bit_exact(tmp_path, scaled_dense):
    x, y = make_beats(600, length=LENGTH, seed=3)
    keras.utils.set_random_seed(0)
    head = {"class_name": "scaled_dense", "config": {"scale": 0.5}}
    model = ht.hypertiny_pw((LENGTH, 1), 2, widths=(8, 12, 16), stem_filters=8, head=head, code_dim=4, hidden_dim=12)
    layers = ht.generated_layers(model)
    assert len(layers) == 2 and all(layer.kernel_generator == ScaledDense(0.5) for layer in layers)
    # The kernel is scale * g(z) @ H, with the Glorot spread at initialisation like the built-in dense head.
    layer = layers[0]
    h = ops.convert_to_numpy(layer.generator(ops.expand_dims(layer.code, 0)))
    expected = (0.5 * h @ ops.convert_to_numpy(layer.head)).reshape(layer.filters, layer.in_channels)
    np.testing.assert_allclose(ops.convert_to_numpy(layer.generated_kernel()), expected, rtol=1e-5, atol=1e-6)
    assert expected.std() == pytest.approx(kernel_generators.glorot_std(layer), rel=0.25)

    model.compile(keras.optimizers.Adam(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:400], y[:400], batch_size=64, epochs=2, verbose=0)

    # A .keras file names the kernel generator and its config; loading finds it in the registry.
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert ht.generated_layers(loaded)[1].kernel_generator == ScaledDense(0.5)
    np.testing.assert_array_equal(model.predict(x[:32], verbose=0), loaded.predict(x[:32], verbose=0))

    frozen = ht.export_tflite(model, x[:200], tmp_path / "frozen.tflite", synthesis="frozen")
    boot = ht.export_tflite(model, x[:200], tmp_path / "boot.tflite", synthesis="boot")
    assert frozen.file_bytes > 0 and boot.file_bytes > 0
    held_out = x[400:600]
    frozen_out = _tflm_int8((tmp_path / "frozen.tflite").read_bytes(), held_out)
    boot_out = _tflm_int8((tmp_path / "boot.tflite").read_bytes(), held_out)
    np.testing.assert_array_equal(boot_out, frozen_out)


def test_the_default_gradient_fit_is_tensorflow_only(monkeypatch):
    generator = ht.PointwiseGenerator(3, 6, activation="linear")
    layer = ht.HyperPointwise(4, generator, head="lowrank_shared")
    layer.build((None, 8, 5))
    target = np.random.default_rng(0).normal(size=(4, 5))
    before = kernel_generators.base.relative_error(layer.generated_kernel(), target)
    assert layer.kernel_generator.fit(layer, target, steps=50) < before  # the gradient fit, on TensorFlow
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(NotImplementedError, match="needs the TensorFlow backend.*override fit"):
        layer.kernel_generator.fit(layer, target, steps=1)
