"""Baseline models: sizes, one training step, frozen int8 export run in TFLM, serialization, VAE, ternary."""
import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import ops

from hypertiny_keras import ExportVerificationError, byte_table, export_tflite
from hypertiny_keras.data.synthetic import make_beats
from hypertiny_keras.device.runtime import predict
from hypertiny_keras.models import hypertiny_pw, stored_pw_twin
from hypertiny_keras.tflite.flatbuffer import op_names, read_model
from hypertiny_research import (
    TERNARY_LAYERS,
    TernaryDepthwiseConv1D,
    hrv_featnet,
    normalized_hrv_head,
    regular_cnn,
    resnet1d_small,
    ternarize,
    ternary_bytes,
    ternary_kernel,
    ternary_separable_cnn,
    tiny_separable_cnn,
    tiny_vae_head,
)
from hypertiny_research.hrv import hrv_features_from_rr

LENGTH = 256
#: (builder, paper's packed kB, our bytes at (1800, 1) with 2 classes) -- 1 kB = 1024 bytes.
SIZES = {
    "regular_cnn": (regular_cnn, 1422, 1_457_864),
    "resnet1d_small": (resnet1d_small, 62, 63_000),
    "tiny_separable_cnn": (tiny_separable_cnn, 14, 14_040),
    "tiny_vae_head": (tiny_vae_head, 10, 10_056),
}


@pytest.fixture(scope="module")
def beats():
    return make_beats(96, length=LENGTH, seed=5)


def _one_step(model, x, y):
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x[:32], y[:32], batch_size=32, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    return model


def _export_and_run(model, x, tmp_path):
    report = export_tflite(model, x, tmp_path / f"{model.name}.tflite", synthesis="frozen")
    data = (tmp_path / f"{model.name}.tflite").read_bytes()
    out = predict(data, x[:8], engine="tflm")
    assert out.shape == (8, model.output.shape[-1]) and np.isfinite(out).all()
    return report, data


@pytest.mark.parametrize("name", sorted(SIZES))
def test_size_and_features_layer_at_1800_samples(name):
    builder, paper_kb, expected = SIZES[name]
    model = builder((1800, 1), 2)
    total = byte_table(model).total[8]
    assert total == expected
    assert abs(total / 1024 - paper_kb) / paper_kb < 0.05
    assert model.output.shape == (None, 2)
    features = keras.Model(model.input, [model.output, model.get_layer("features").output])
    assert len(features.outputs) == 2 and features.outputs[1].shape[0] is None


def test_ternary_size_at_two_bits():
    assert ternary_bytes(ternary_separable_cnn((1800, 1), 2))["total"] == 6_872  # paper: 6.7 kB


@pytest.mark.parametrize(
    "builder,kwargs",
    [
        (regular_cnn, {}),  # full width (1.46 MB of int8 weights) on 256-sample windows
        (resnet1d_small, {}),
        (tiny_separable_cnn, {}),
        (tiny_vae_head, {"seed": 1}),
        (ternary_separable_cnn, {}),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_trains_one_step_and_runs_int8_in_tflm(builder, kwargs, beats, tmp_path):
    keras.utils.set_random_seed(0)
    x, y = beats
    model = _one_step(builder((LENGTH, 1), 2, **kwargs), x, y)
    report, _ = _export_and_run(model, x, tmp_path)
    assert report.verification["tflm_vs_litert_max_steps"] <= 1
    assert report.verification["tflm_vs_float_top1"] >= 0.9


def test_hrv_featnet_trains_and_runs_int8_in_tflm(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(240) / 4.0
    rr = 0.6 + 0.4 * rng.random((64, 1)) + 0.05 * np.sin(2 * np.pi * rng.uniform(0.05, 0.35, (64, 1)) * t)
    features = hrv_features_from_rr(rr, 4.0)
    y = (rr.mean(1) > 0.8).astype(int)
    keras.utils.set_random_seed(0)
    model = _one_step(hrv_featnet(2, features), features, y)
    normalized = keras.Model(model.input, model.get_layer("features").output)(features)
    np.testing.assert_allclose(ops.convert_to_numpy(normalized).mean(0), 0, atol=1e-3)
    with pytest.raises(ExportVerificationError, match="output steps from the Keras float model"):
        export_tflite(model, features, tmp_path / "raw.tflite", synthesis="frozen")  # one int8 scale for all 16
    head = normalized_hrv_head(model)
    report, data = _export_and_run(head, ops.convert_to_numpy(normalized), tmp_path)
    assert report.verification["tflm_vs_float_top1"] >= 0.9
    quantized = predict(data, ops.convert_to_numpy(normalized), engine="tflm")
    assert np.mean(quantized.argmax(-1) == model.predict(features, verbose=0).argmax(-1)) >= 0.95


@pytest.mark.parametrize("builder", [ternary_separable_cnn, tiny_vae_head], ids=lambda f: f.__name__)
def test_keras_round_trip_is_exact(builder, beats, tmp_path):
    keras.utils.set_random_seed(0)
    x, y = beats
    model = _one_step(builder((LENGTH, 1), 2, widths=(8, 16)), x, y)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    assert [type(a) for a in model.layers] == [type(b) for b in loaded.layers]
    assert [layer.get_config() for layer in model.layers[1:]] == [layer.get_config() for layer in loaded.layers[1:]]


def test_vae_is_stochastic_in_training_and_the_mean_at_inference(beats):
    keras.utils.set_random_seed(0)
    x = beats[0][:16]
    model = tiny_vae_head((LENGTH, 1), 2, widths=(8, 16), seed=3)
    a, b = model(x, training=True), model(x, training=True)
    assert not np.allclose(a, b)
    assert len(model.losses) == 1 and float(model.losses[0]) >= 0  # the KL term, only in training
    inference = model(x, training=False)
    np.testing.assert_array_equal(inference, model(x, training=False))
    mean = keras.Model(model.input, model.get_layer("latent_mean").output)(x, training=False)
    np.testing.assert_allclose(inference, model.get_layer("classifier")(mean), rtol=1e-6, atol=1e-6)


def _distinct_per_channel(values: np.ndarray, channel_axis: int) -> int:
    per_channel = np.moveaxis(values, channel_axis, 0).reshape(values.shape[channel_axis], -1)
    return max(len(np.unique(row)) for row in per_channel)


def test_ternarize_values_and_straight_through_gradient():
    w = tf.Variable(np.random.default_rng(0).normal(size=(5, 3, 4)).astype("float32"))
    upstream = np.random.default_rng(1).normal(size=(5, 3, 4)).astype("float32")
    with tf.GradientTape() as tape:
        q = ternarize(w)
        loss = tf.reduce_sum(q * upstream)
    np.testing.assert_allclose(tape.gradient(loss, w), upstream)  # identity: straight through
    q = q.numpy()
    assert _distinct_per_channel(q, -1) == 3
    for c in range(4):
        kept = np.abs(w.numpy()[..., c]) > 0.7 * np.abs(w.numpy()[..., c]).mean()
        np.testing.assert_array_equal(q[..., c] != 0, kept)
        np.testing.assert_allclose(np.abs(q[..., c][kept]), np.abs(w.numpy()[..., c][kept]).mean(), rtol=1e-6)


def test_ternary_model_has_three_values_per_channel_in_keras_and_in_the_int8_file(beats, tmp_path):
    keras.utils.set_random_seed(0)
    x, y = beats
    model = _one_step(ternary_separable_cnn((LENGTH, 1), 2, widths=(8, 16)), x, y)
    ternary = [layer for layer in model.layers if isinstance(layer, TERNARY_LAYERS)]
    assert len(ternary) == 2 * 2 + 2  # stem, 2 x (DW, PW), classifier
    for layer in ternary:
        kernel = ops.convert_to_numpy(ternary_kernel(layer))
        if isinstance(layer, TernaryDepthwiseConv1D):  # (k, C_in, multiplier): channel = (C_in, multiplier)
            kernel = kernel.reshape(kernel.shape[0], -1)
        assert _distinct_per_channel(kernel, -1) <= 3
    _, data = _export_and_run(model, x, tmp_path)
    flat = read_model(data)
    graph = flat.subgraphs[0]
    axes = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": -1, "FULLY_CONNECTED": 0}
    checked = 0
    for op, name in zip(graph.operators, op_names(flat)[0]):
        if name in axes:
            tensor = graph.tensors[op.inputs[1]]
            filt = np.frombuffer(bytes(flat.buffers[tensor.buffer].data), np.int8).reshape(tensor.shape)
            assert _distinct_per_channel(filt, axes[name]) <= 3, (name, np.unique(filt))
            if name != "FULLY_CONNECTED":  # per-channel scales: {-alpha, 0, alpha} -> {-127, 0, 127}
                assert set(np.unique(np.abs(filt)).tolist()) <= {0, 127}, name
            checked += 1
    assert checked == len(ternary)


def test_group_norm_lowers_to_many_ops_with_a_float_island_and_still_runs_in_tflm(beats, tmp_path):
    """GroupNormalization(groups=1) has no fused int8 kernel: pin what the converter makes of it."""
    keras.utils.set_random_seed(0)
    x, y = beats
    model = _one_step(stored_pw_twin((LENGTH, 1), 2, widths=(8, 16), stem_filters=8, norm="group"), x, y)
    group_norms = sum(isinstance(layer, keras.layers.GroupNormalization) for layer in model.layers)
    assert group_norms == 5  # stem, dw1, pw1, dw2, pw2
    report, _ = _export_and_run(model, x, tmp_path)
    ops_list = report.operators[0]
    for op in ("RSQRT", "SQUARED_DIFFERENCE", "DEQUANTIZE", "NEG", "QUANTIZE"):
        assert ops_list.count(op) == group_norms, op
    assert ops_list.count("MEAN") == 2 * group_norms  # mean and variance per norm (pooling: AVERAGE_POOL_2D)
    plain = export_tflite(
        stored_pw_twin((LENGTH, 1), 2, widths=(8, 16), stem_filters=8, norm="batch"), x, tmp_path / "bn.tflite",
        synthesis="frozen",
    )
    assert len(ops_list) > 3 * len(plain.operators[0])


def test_stored_low_rank_twin_is_two_convolutions_and_fewer_bytes(beats, tmp_path):
    """`stored_pw_twin(pw_rank=r)`: PW2..PWL as C_in -> r -> C_out stored convolutions, no synthesis."""
    keras.utils.set_random_seed(0)
    x, y = beats
    kwargs = dict(widths=(16, 64, 64), stem_filters=8)
    full = stored_pw_twin((LENGTH, 1), 2, **kwargs)
    low = _one_step(stored_pw_twin((LENGTH, 1), 2, pw_rank=4, **kwargs), x, y)
    assert [layer.name for layer in low.layers if layer.name.startswith("pw")][:4] == [
        "pw1", "pw1_bn", "pw1_relu", "pw2_v"]
    assert tuple(low.get_layer("pw2_v").kernel.shape) == (1, 16, 4)
    assert tuple(low.get_layer("pw3_u").kernel.shape) == (1, 4, 64)
    pointwise = byte_table(low).by_role["pointwise"][8]
    assert pointwise == 16 * 8 + 4 * (16 + 64) + 4 * (64 + 64) < byte_table(full).by_role["pointwise"][8]
    report, data = _export_and_run(low, x, tmp_path)
    assert report.verification["tflm_vs_litert_max_steps"] <= 1
    assert "VAR_HANDLE" not in op_names(read_model(data))[0]
    with pytest.raises(ValueError, match="pw_rank"):
        stored_pw_twin((LENGTH, 1), 2, pw_rank=0)


def test_average_pool_lowers_global_pooling_to_average_pool_2d_in_boot_and_frozen(beats, tmp_path):
    """`pool="average_pool"`: AVERAGE_POOL_2D (a CMSIS-NN kernel) instead of MEAN; same float outputs."""
    keras.utils.set_random_seed(0)
    x, y = beats
    model = _one_step(hypertiny_pw((LENGTH, 1), 2, widths=(8, 16, 16)), x, y)  # the default
    twin = hypertiny_pw((LENGTH, 1), 2, widths=(8, 16, 16), pool="mean")
    twin.set_weights(model.get_weights())
    np.testing.assert_allclose(model.predict(x[:8], verbose=0), twin.predict(x[:8], verbose=0), rtol=1e-5, atol=1e-5)
    for mode in ("frozen", "boot"):
        report = export_tflite(model, x, tmp_path / f"{mode}.tflite", synthesis=mode)
        main = report.operators[0]
        assert "AVERAGE_POOL_2D" in main and "MEAN" not in main, main
        assert report.verification["tflm_vs_litert_max_steps"] <= 1
    with pytest.raises(ValueError, match="pool must be one of"):
        hypertiny_pw((LENGTH, 1), 2, pool="max")
