"""hyperize: a user's own model with generated pointwise layers; the DS-CNN; export boot == frozen."""
import keras
import numpy as np
import pytest

import hypertiny_keras as ht
from hypertiny_keras.layers import HyperPointwise, generated_layers
from hypertiny_keras.models import ds_cnn, stored_pw_twin

X = np.random.default_rng(0).normal(size=(32, 49, 10)).astype("float32")


def _trained_ds_cnn(width=12, seed=0):
    """A stored DS-CNN with trained-looking kernels (a few steps on random labels) and BN statistics."""
    keras.utils.set_random_seed(seed)
    model = ds_cnn((49, 10), 4, width=width, blocks=3, generated=False)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(X, np.arange(len(X)) % 4, epochs=2, verbose=0)
    return model


@pytest.fixture(scope="module")
def stored():
    return _trained_ds_cnn()


def _max_diff(a, b, x=X):
    return float(np.abs(a.predict(x, verbose=0) - b.predict(x, verbose=0)).max())


@pytest.mark.parametrize("head,rank", [("dense", None), ("factorized", 3)])
def test_exact_kernel_generators_reproduce_the_model(stored, head, rank):
    model, report = ht.hyperize(stored, head=head, rank=rank)
    assert [f.name for f in report.layers] == ["pw2", "pw3"]
    assert report.kept == {"pw1": "the first pointwise layer (keep_first)"}
    assert all(f.relative_error < 1e-5 for f in report.layers)
    assert isinstance(model.get_layer("pw2"), HyperPointwise) and not isinstance(model.get_layer("pw1"), HyperPointwise)
    generators = {id(layer.generator) for layer in generated_layers(model)}
    assert len(generators) == 1
    assert _max_diff(model, stored) < 1e-4
    # The input model is untouched and its other layers' weights were copied, not shared.
    assert not generated_layers(stored)
    assert model.get_layer("stem").kernel is not stored.get_layer("stem").kernel
    np.testing.assert_array_equal(model.get_layer("stem").get_weights()[0], stored.get_layer("stem").get_weights()[0])
    assert report.bytes_after > report.bytes_before  # dense/factorized heads store more than the kernels
    assert "pw2" in str(report)


@pytest.mark.parametrize("head", ["lowrank", "kronecker"])
def test_factor_kernel_generators_equal_the_model_with_their_best_kernels(stored, head):
    model, report = ht.hyperize(stored, head=head, rank=2)
    assert report.bytes_after < report.bytes_before
    # The fitted kernels are the best rank-2 ones: frozen, the model is the original with those kernels.
    fitted = ht.generated_kernels(model)
    for fit in report.layers:
        original = stored.get_layer(fit.name).get_weights()[0].reshape(-1, fit.shape[0]).T
        error = np.linalg.norm(fitted[fit.name] - original) / np.linalg.norm(original)
        assert abs(error - fit.relative_error) < 1e-5
        if head == "lowrank":  # Eckart-Young: the residual is the tail of the singular values
            s = np.linalg.svd(original, compute_uv=False)
            assert error == pytest.approx(np.sqrt((s[2:] ** 2).sum() / (s ** 2).sum()), rel=1e-4)
    assert _max_diff(model, ht.freeze(model)) < 1e-4


def test_shared_kernel_generator_fits_its_first_layer_like_lowrank_and_the_rest_along_the_bank(stored):
    """lowrank_shared: pw2 owns the bank (fitted with it, near the rank-2 optimum); pw3 moves only its code."""
    model, report = ht.hyperize(stored, head="lowrank_shared", rank=2, hidden_dim=2, steps=400)
    _, best = ht.hyperize(stored, head="lowrank", rank=2)
    first, second = report.layers
    assert model.get_layer("pw2").owns_factors and not model.get_layer("pw3").owns_factors
    assert first.relative_error < best.layers[0].relative_error + 0.05
    assert best.layers[1].relative_error <= second.relative_error < 1.5
    assert _max_diff(model, ht.freeze(model)) < 1e-4


def test_fresh_initialisation_and_chosen_layers(stored):
    model, report = ht.hyperize(stored, layers=["pw1", "pw3"], fit=None)
    assert [f.name for f in report.layers] == ["pw1", "pw3"] and report.layers[0].relative_error is None
    assert [layer.name for layer in generated_layers(model)] == ["pw1", "pw3"]


def test_refusals_name_the_layer():
    inputs = keras.Input((20, 6))
    x = keras.layers.Conv1D(8, 1, name="pw_a")(inputs)
    x = keras.layers.Conv1D(8, 1, strides=2, name="strided")(x)
    x = keras.layers.Conv1D(8, 1, dilation_rate=2, name="dilated")(x)
    x = keras.layers.Conv1D(8, 1, groups=2, name="grouped")(x)
    x = keras.layers.Conv1D(8, 1, name="pw_b")(x)
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling1D()(x))
    for name, why in [("strided", "strided"), ("dilated", "dilation"), ("grouped", "grouped")]:
        with pytest.raises(ValueError, match=rf"^hyperize: {name}: .*{why}"):
            ht.hyperize(model, layers=[name])
    with pytest.raises(ValueError, match="has no layer named 'nope'"):
        ht.hyperize(model, layers=["nope"])
    _, report = ht.hyperize(model)  # the default skips what it cannot convert and says why
    assert [f.name for f in report.layers] == ["pw_b"]
    assert set(report.kept) == {"pw_a", "strided", "dilated", "grouped"}
    with pytest.raises(ValueError, match="no pointwise"):
        ht.hyperize(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
    with pytest.raises(ValueError, match="fit must be"):
        ht.hyperize(model, fit="data")


def test_sequential_and_nested_models():
    keras.utils.set_random_seed(1)
    inner = keras.Sequential([keras.Input((10, 4)), keras.layers.Conv1D(6, 1, name="in_pw1"),
                              keras.layers.ReLU(), keras.layers.Conv1D(6, 1, name="in_pw2")], name="inner")
    inputs = keras.Input((10, 4))
    outputs = keras.layers.Conv1D(5, 1, activation="relu", name="outer_pw")(inner(inputs))
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(2).normal(size=(4, 10, 4)).astype("float32")
    new, report = ht.hyperize(model)
    assert [f.name for f in report.layers] == ["in_pw2", "outer_pw"]
    assert new.get_layer("outer_pw").activation is keras.activations.relu
    assert _max_diff(new, model, x) < 1e-4


def test_package_model_round_trip(tmp_path):
    """The package's stored twin hyperized: saved and loaded with exact values and one shared generator."""
    keras.utils.set_random_seed(3)
    twin = stored_pw_twin((64, 1), 2, widths=(8, 12, 12))
    model, _ = ht.hyperize(twin)
    x = np.random.default_rng(3).normal(size=(5, 64, 1)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert len({id(layer.generator) for layer in generated_layers(loaded)}) == 1


@pytest.mark.parametrize("head,rank", [("dense", None), ("lowrank", 2)])
def test_hyperized_ds_cnn_exports_boot_equal_to_frozen(stored, tmp_path, head, rank):
    model, _ = ht.hyperize(stored, head=head, rank=rank)
    calibration = np.random.default_rng(1).normal(size=(64, 49, 10)).astype("float32")
    boot = ht.export_tflite(model, calibration, tmp_path / "boot.tflite")
    assert boot.verification["boot_vs_frozen_identical"] in (True, None)
    frozen = ht.export_tflite(model, calibration, tmp_path / "frozen.tflite", synthesis="frozen")
    held_out = np.random.default_rng(2).normal(size=(40, 49, 10)).astype("float32")
    from hypertiny_keras.device.runtime import predict

    if head == "dense":  # exact kernel generators: the converter's frozen file; factor ones: its equivalent (verified)
        np.testing.assert_array_equal(predict(tmp_path / "boot.tflite", held_out),
                                      predict(tmp_path / "frozen.tflite", held_out))
    assert frozen.file_bytes > 0 and "AVERAGE_POOL_2D" in boot.operators[0]


def test_ds_cnn_builder():
    generated = ds_cnn((49, 10), 12, width=16)
    stored = ds_cnn((49, 10), 12, width=16, generated=False)
    assert [layer.name for layer in generated_layers(generated)] == ["pw2", "pw3", "pw4"]
    assert not generated_layers(stored) and stored.output_shape == (None, 12)
    assert stored.get_layer("stem").strides == (2, 2) and stored.get_layer("stem").kernel_size == (10, 4)
    assert ds_cnn((49, 10, 1), 3, generated=False).input_shape == (None, 49, 10, 1)
    with pytest.raises(ValueError, match="input_shape"):
        ds_cnn((49,), 3)
