"""HyperPointwise / PointwiseGenerator: shapes, gradients, sharing, serialization, freeze."""
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from hypertiny_keras import HyperPointwise, PointwiseGenerator, freeze, kernel_generators
from hypertiny_keras.layers import is_functional, require_functional
from hypertiny_keras.transforms.accounting import byte_table


def _model(head="dense", rank=None, ndim=1, seed=0):
    keras.utils.set_random_seed(seed)
    generator = PointwiseGenerator(4, 12, rank=rank, name="gen")
    shape = (32, 3) if ndim == 1 else (8, 8, 3)
    conv = keras.layers.Conv1D if ndim == 1 else keras.layers.Conv2D
    inputs = keras.Input(shape)
    x = conv(8, 3, padding="same", activation="relu")(inputs)
    x = HyperPointwise(16, generator, head=head, activation="relu", name="pw2")(x)
    x = HyperPointwise(12, generator, head=head, name="pw3")(x)
    pool = keras.layers.GlobalAveragePooling1D() if ndim == 1 else keras.layers.GlobalAveragePooling2D()
    return keras.Model(inputs, keras.layers.Dense(3)(pool(x)))


def _inputs(model, n=5, seed=1):
    return np.random.default_rng(seed).normal(size=(n, *model.inputs[0].shape[1:])).astype("float32")


@pytest.mark.parametrize("ndim", [1, 2])
def test_output_shape_and_kernel_layout(ndim):
    model = _model(ndim=ndim)
    layer = model.get_layer("pw2")
    assert model(_inputs(model)).shape == (5, 3)
    assert tuple(layer.generated_kernel().shape) == (16, 8)  # (C_out, C_in): TFLite OHWI order
    x = _inputs(model)
    features = keras.Model(model.input, layer.input)(x)
    expected = np.maximum(
        np.einsum("...i,oi->...o", ops.convert_to_numpy(features), ops.convert_to_numpy(layer.generated_kernel()))
        + ops.convert_to_numpy(layer.bias),
        0,
    )
    np.testing.assert_allclose(keras.Model(model.input, layer.output)(x), expected, rtol=1e-5, atol=1e-5)


def test_kernel_follows_eq2_dense_and_eq3_factorized():
    for head, rank in (("dense", None), ("factorized", 3)):
        layer = _model(head, rank).get_layer("pw3")
        g = layer.generator
        z = ops.convert_to_numpy(layer.code)
        h = np.maximum(z @ ops.convert_to_numpy(g.kernel) + ops.convert_to_numpy(g.bias), 0)
        if head == "factorized":
            h = h @ ops.convert_to_numpy(g.basis)
        expected = (h @ ops.convert_to_numpy(layer.head)).reshape(12, 16)
        np.testing.assert_allclose(ops.convert_to_numpy(layer.generated_kernel()), expected, rtol=1e-5, atol=1e-6)


def test_initial_kernel_has_glorot_spread():
    layer = _model().get_layer("pw2")
    std = float(np.std(ops.convert_to_numpy(layer.generated_kernel())))
    assert std == pytest.approx(np.sqrt(2 / (8 + 16)), rel=0.35)


@pytest.mark.parametrize("head,rank", [("dense", None), ("factorized", 3)])
def test_gradients_reach_codes_generator_and_heads(head, rank):
    model = _model(head, rank)
    x, y = _inputs(model), np.array([0, 1, 2, 0, 1])
    with tf.GradientTape() as tape:
        loss = keras.losses.sparse_categorical_crossentropy(y, model(x), from_logits=True)
    grads = dict(zip([w.path for w in model.trainable_weights], tape.gradient(loss, model.trainable_weights)))
    for path in ["pw2/code", "pw3/code", "pw2/head", "pw3/head", "pw2/gen/kernel", "pw2/gen/bias"] + (
        ["pw2/gen/basis"] if rank else []
    ):
        assert grads[path] is not None and float(tf.reduce_max(tf.abs(grads[path]))) > 0, path


def test_generator_is_shared_and_counted_once():
    model = _model("factorized", 3)
    generator = model.get_layer("pw2").generator
    assert generator is model.get_layer("pw3").generator
    paths = [w.path for w in model.weights]
    assert len(paths) == len(set(paths))
    assert sum(p.startswith("pw2/gen/") for p in paths) == 3 and not any(p.startswith("pw3/gen") for p in paths)
    # summary rows: each layer's own values; the total counts the generator once
    own = {name: model.get_layer(name).count_params() for name in ("pw2", "pw3")}
    assert own["pw2"] == 4 + 3 * 16 * 8 + 16 and own["pw3"] == 4 + 3 * 12 * 16 + 12
    assert model.count_params() == sum(int(np.prod(w.shape)) for w in model.weights)


@pytest.mark.parametrize("head,rank", [("dense", None), ("factorized", 3)])
def test_keras_save_load_is_exact_and_keeps_sharing(tmp_path, head, rank):
    model = _model(head, rank)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = _inputs(model, 32)
    model.fit(x, np.arange(32) % 3, epochs=2, verbose=0)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.get_layer("pw2").generator is loaded.get_layer("pw3").generator
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(ops.convert_to_numpy(a), ops.convert_to_numpy(b))


def test_config_round_trip():
    layer = _model("factorized", 3).get_layer("pw2")
    config = layer.get_config()
    clone = HyperPointwise.from_config(config)
    assert clone.get_config() == config
    generator = PointwiseGenerator(5, 7, activation="relu6", rank=2)
    assert PointwiseGenerator.from_config(generator.get_config()).get_config() == generator.get_config()


@pytest.mark.parametrize("ndim", [1, 2])
def test_freeze_replaces_generated_layers_and_keeps_outputs(ndim):
    model = _model("factorized", 3, ndim=ndim)
    frozen = freeze(model)
    classes = {layer.name: type(layer).__name__ for layer in frozen.layers}
    assert classes["pw2"] == classes["pw3"] == ("Conv1D" if ndim == 1 else "Conv2D")
    assert not any(isinstance(layer, HyperPointwise) for layer in frozen.layers)
    x = _inputs(model, 16)
    assert np.abs(model.predict(x, verbose=0) - frozen.predict(x, verbose=0)).max() <= 1e-6


def test_bad_arguments():
    generator = PointwiseGenerator(4, 8)
    with pytest.raises(ValueError, match="factorized"):
        HyperPointwise(4, generator, head="factorized")
    with pytest.raises(ValueError, match="head must be"):
        HyperPointwise(4, generator, head="sparse")
    with pytest.raises(TypeError, match="PointwiseGenerator"):
        HyperPointwise(4, keras.layers.Dense(3))
    with pytest.raises(ValueError, match="activation"):
        PointwiseGenerator(4, 8, activation="tanh")
    with pytest.raises(ValueError, match="no HyperPointwise"):
        freeze(keras.Sequential([keras.Input((4, 2)), keras.layers.Conv1D(3, 1)]))


def _factor_model(head, rank=3, ndim=1, seed=0):
    """A model whose generated layers are `lowrank`/`kronecker` kernels (no shared generator)."""
    keras.utils.set_random_seed(seed)
    shape = (32, 3) if ndim == 1 else (8, 8, 3)
    conv = keras.layers.Conv1D if ndim == 1 else keras.layers.Conv2D
    inputs = keras.Input(shape)
    x = conv(8, 3, padding="same", activation="relu")(inputs)
    kernel_generator = {"class_name": head, "config": {"rank": rank}}
    x = HyperPointwise(16, None, head=kernel_generator, activation="relu", name="pw2")(x)
    x = HyperPointwise(12, None, head=kernel_generator, name="pw3")(x)
    pool = keras.layers.GlobalAveragePooling1D() if ndim == 1 else keras.layers.GlobalAveragePooling2D()
    return keras.Model(inputs, keras.layers.Dense(3)(pool(x)))


def test_lowrank_and_kronecker_kernels():
    layer = _factor_model("lowrank").get_layer("pw3")  # 16 -> 12, rank 3
    u, v = ops.convert_to_numpy(layer.left), ops.convert_to_numpy(layer.right)
    assert u.shape == (12, 3) and v.shape == (3, 16)
    np.testing.assert_allclose(ops.convert_to_numpy(layer.generated_kernel()), u @ v, rtol=1e-5, atol=1e-6)
    assert layer.count_params() == 3 * (12 + 16) + 12

    layer = _factor_model("kronecker").get_layer("pw3")  # C_out 12 = 3 x 4, C_in 16 = 4 x 4
    a, b = ops.convert_to_numpy(layer.left), ops.convert_to_numpy(layer.right)
    assert a.shape == (3, 3, 4) and b.shape == (3, 4, 4)
    expected = sum(np.kron(a[k], b[k]) for k in range(3))
    np.testing.assert_allclose(ops.convert_to_numpy(layer.generated_kernel()), expected, rtol=1e-5, atol=1e-6)
    assert layer.count_params() == 3 * (12 + 16) + 12


@pytest.mark.parametrize("head", ["lowrank", "kronecker"])
def test_factor_kernels_train_save_and_load_exactly(tmp_path, head):
    model = _factor_model(head, rank=2)
    assert not any(isinstance(layer, PointwiseGenerator) for layer in model._flatten_layers())
    std = float(np.std(ops.convert_to_numpy(model.get_layer("pw2").generated_kernel())))
    assert std == pytest.approx(np.sqrt(2 / (8 + 16)), rel=0.5)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = _inputs(model, 32)
    before = ops.convert_to_numpy(model.get_layer("pw2").left).copy()
    model.fit(x, np.arange(32) % 3, epochs=2, verbose=0)
    assert np.abs(ops.convert_to_numpy(model.get_layer("pw2").left) - before).max() > 0  # gradients reach factors
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.get_layer("pw2").kernel_generator == model.get_layer("pw2").kernel_generator
    assert loaded.get_layer("pw2").generator is None
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    frozen = freeze(model)
    assert np.abs(model.predict(x, verbose=0) - frozen.predict(x, verbose=0)).max() <= 1e-5


def _shared_model(head, rank=2, hidden=3, seed=0):
    """Three generated layers of one shape (16 -> 16) and one of another (16 -> 12), one generator."""
    keras.utils.set_random_seed(seed)
    generator = PointwiseGenerator(4, hidden, activation="linear", name="generator")
    kernel_generator = {"class_name": head, "config": {"rank": rank}}
    inputs = keras.Input((32, 3))
    x = keras.layers.Conv1D(16, 3, padding="same", activation="relu")(inputs)
    for i in (2, 3, 4):
        x = HyperPointwise(16, generator, head=kernel_generator, activation="relu", name=f"pw{i}")(x)
    x = HyperPointwise(12, generator, head=kernel_generator, name="pw5")(x)
    return keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(x)))


@pytest.mark.parametrize("head,per_layer", [("lowrank_shared", "lowrank"), ("kronecker_shared", "kronecker")])
def test_shared_factor_kernels_mix_one_bank_per_shape(tmp_path, head, per_layer):
    model = _shared_model(head)
    pw2, pw3, pw4, pw5 = (model.get_layer(f"pw{i}") for i in (2, 3, 4, 5))
    assert pw2.owns_factors and not pw3.owns_factors and not pw4.owns_factors and pw5.owns_factors
    assert pw3.bank is pw2.bank and pw4.right is pw2.right and pw5.bank is not pw2.bank
    assert pw3.count_params() == 4 + 16  # its code and bias: the bank and right factor are pw2's
    # Each kernel is the per-layer kernel generator's kernel of left factor g(z_l) @ bank and shared right factor.
    generator = model.get_layer("pw2").generator
    reference = kernel_generators.get({"class_name": per_layer, "config": {"rank": 2}})
    for layer in (pw2, pw3, pw5):
        h = ops.convert_to_numpy(generator(ops.expand_dims(layer.code, 0)))
        left_matrix = (h @ ops.convert_to_numpy(layer.bank)).reshape(-1, 2)
        left, right = reference.weights_from_device(left_matrix, ops.convert_to_numpy(layer.right), layer)
        probe = types.SimpleNamespace(left=left, right=right, filters=layer.filters, in_channels=layer.in_channels)
        np.testing.assert_allclose(ops.convert_to_numpy(layer.generated_kernel()),
                                   ops.convert_to_numpy(reference.kernel(probe)), rtol=1e-5, atol=1e-6)
    # Codes differ, so the kernels of one shape differ; bytes: the bank and right factor once per shape.
    assert np.abs(ops.convert_to_numpy(pw2.generated_kernel()) - ops.convert_to_numpy(pw3.generated_kernel())).max() > 0
    table = byte_table(model, bits=(8,))
    banks = 3 * (16 * 2 + 12 * 2)  # d_h x rows x r per shape; rows 16 and 12 for both (kronecker: 4 x 4, 3 x 4)
    assert table.by_role["codes"][8] == 4 * 4
    assert table.by_role["generator"][8] == 4 * 3 + 3 * 4 + banks
    # Training moves the shared bank; a .keras file restores the sharing and the outputs exactly.
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = _inputs(model, 32)
    before = ops.convert_to_numpy(pw2.bank).copy()
    model.fit(x, np.arange(32) % 3, epochs=2, verbose=0)
    assert np.abs(ops.convert_to_numpy(pw2.bank) - before).max() > 0
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.get_layer("pw4").bank is loaded.get_layer("pw2").bank
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    frozen = freeze(model)
    assert np.abs(model.predict(x, verbose=0) - frozen.predict(x, verbose=0)).max() <= 1e-5


def test_kernel_generators_that_need_a_generator_refuse_none():
    with pytest.raises(ValueError, match="needs a shared PointwiseGenerator"):
        HyperPointwise(8, None, head="dense")
    with pytest.raises(ValueError, match="rank must be >= 1"):
        HyperPointwise(8, None, head={"class_name": "lowrank", "config": {"rank": 0}})


def test_summary_shows_the_shared_generator_once_in_a_row_of_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # rich's console width: the whole row on one line
    model = _model("factorized", rank=3)
    generator = model.get_layer("pw2").generator

    def rows(m):
        lines = []
        m.summary(expand_nested=True, line_length=150, print_fn=lambda line, **_: lines.append(line))
        return [line for line in "\n".join(lines).splitlines() if "PointwiseGenerator" in line]

    for m in (model, _saved_and_loaded(model, tmp_path)):
        found = rows(m)
        assert len(found) == 1 and "gen (PointwiseGenerator)" in found[0], found
        assert f"{generator.count_params():,}" in found[0]  # 4 x 12 kernel, 12 bias, 12 x 3 basis
    assert generator.count_params() == 4 * 12 + 12 + 12 * 3
    assert model.get_layer("pw3").layers == []


def _saved_and_loaded(model, tmp_path):
    model.save(tmp_path / "summary.keras")
    return keras.saving.load_model(tmp_path / "summary.keras")


class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.pw = HyperPointwise(4, PointwiseGenerator(3, 6), name="pw")

    def call(self, x):
        return self.pw(x)


def test_require_functional_refuses_subclassed_models_nested_ones_included():
    subclassed = _Subclassed(name="sub")
    subclassed(np.zeros((1, 8, 3), "float32"))
    inputs = keras.Input((8, 3))
    nested = keras.Model(inputs, subclassed(inputs), name="outer")
    sequential = keras.Sequential([keras.layers.Dense(2)])  # unbuilt: no inputs yet, still Sequential
    assert is_functional(_model()) and is_functional(sequential) and not is_functional(subclassed)
    require_functional(_model(), "check")
    for model in (subclassed, nested):
        with pytest.raises(ValueError, match=r"freeze: 'sub' is a subclassed model \(_Subclassed\)"):
            freeze(model)
    with pytest.raises(KeyError, match="'sub' is a subclassed"):
        require_functional(nested, "check", KeyError)


def test_shared_state_lives_on_the_generator_of_each_model():
    first, second = _shared_model("lowrank_shared"), _shared_model("lowrank_shared")
    # Two models of the same architecture: each generator shares its own banks, none leaks into the other.
    assert first.get_layer("pw3").bank is first.get_layer("pw2").bank
    assert second.get_layer("pw3").bank is second.get_layer("pw2").bank
    assert second.get_layer("pw2").bank is not first.get_layer("pw2").bank and second.get_layer("pw2").owns_factors
    generator = first.get_layer("pw2").generator
    assert generator.is_first_reader(first.get_layer("pw2")) and not generator.is_first_reader(first.get_layer("pw3"))
