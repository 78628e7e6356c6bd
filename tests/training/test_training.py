"""train(): EMA against a hand computation, resume == uninterrupted, NaN stop keeps the last
good checkpoint, early stopping; pack_model rounding."""
import keras
import numpy as np
import pytest
import tensorflow as tf

from hypertiny_keras import byte_table, generated_kernels, hypertiny_pw
from hypertiny_keras.data import make_beats
from hypertiny_keras.training import (
    TrainConfig,
    pack_model,
    packed_variables,
    quantize_symmetric,
    read_checkpoint,
    train,
)
from hypertiny_keras.training.trainer import sample_weights

X, Y = make_beats(100, length=32, seed=3)  # 100 windows: batches of 32 leave a short last one
VAL = make_beats(60, length=32, seed=4)


def tiny(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    return hypertiny_pw((32, 1), 2, widths=(4, 6, 6), stem_filters=4, code_dim=3,
                        hidden_dim=5, norm="none", **kwargs)


class RecordWeights(keras.callbacks.Callback):
    def __init__(self, model):
        super().__init__()
        self.target, self.seen = model, []

    def on_train_begin(self, logs=None):
        self.seen.append([v.numpy().copy() for v in self.target.trainable_weights])

    def on_train_batch_end(self, batch, logs=None):
        self.on_train_begin()


def test_ema_equals_hand_computed_average_and_differs_from_raw():
    model = tiny()
    record = RecordWeights(model)
    config = TrainConfig(epochs=1, batch_size=40, lr=1e-2, ema_momentum=0.6, patience=None)
    result = train(model, (X, Y), VAL, config, callbacks=[record])
    assert len(record.seen) == 4  # initial weights + 3 steps
    expected = record.seen[0]
    for step in record.seen[1:]:
        expected = [0.6 * e + 0.4 * w for e, w in zip(expected, step)]
    ema = [v.numpy() for v in result.ema_model.trainable_weights]
    raw = [v.numpy() for v in result.model.trainable_weights]
    for e, got, r in zip(expected, ema, raw):
        np.testing.assert_allclose(got, e, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(raw[0], record.seen[-1][0])  # the model keeps its raw weights
    assert any(not np.allclose(e, r) for e, r in zip(ema, raw))
    assert set(result.thresholds) == set(result.val_macro_f1) == {"raw", "ema"}
    assert result.epochs_run == 1 and result.stop_reason == "completed 1 epochs"


def test_resume_equals_uninterrupted_run(tmp_path):
    config = dict(batch_size=32, lr=5e-3, ema_momentum=0.9, patience=None,
                  loss={"focal": 0.5, "spectral": 1e-3, "size": 1e-4})
    straight = train(tiny(), (X, Y), VAL, TrainConfig(epochs=3, **config))
    first = train(tiny(), (X, Y), VAL, TrainConfig(epochs=2, **config), checkpoint_dir=tmp_path)
    assert first.epochs_run == 2 and read_checkpoint(tmp_path)[0]["epoch"] == 2
    resumed = train(tiny(seed=99), (X, Y), VAL, TrainConfig(epochs=3, **config),
                    checkpoint_dir=tmp_path)
    assert resumed.epochs_run == 3 and len(resumed.history["loss"]) == 3
    np.testing.assert_allclose(resumed.history["loss"], straight.history["loss"], rtol=1e-5)
    for name in ("model", "ema_model"):
        for a, b in zip(getattr(resumed, name).get_weights(), getattr(straight, name).get_weights()):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="different: lr"):
        train(tiny(), (X, Y), VAL, TrainConfig(epochs=4, **{**config, "lr": 1e-3}),
              checkpoint_dir=tmp_path)


class BlowUp(keras.callbacks.Callback):
    """A huge learning rate from epoch 1 on: the weights overflow and the loss turns non-finite."""

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            self.model.optimizer.learning_rate.assign(1e30)


def test_nan_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    model = tiny()
    config = TrainConfig(epochs=4, batch_size=32, patience=None)
    with pytest.warns(RuntimeWarning, match=r"non-finite loss \(\w+\) at epoch 1, batch \d"):
        result = train(model, (X, Y), VAL, config, checkpoint_dir=tmp_path, callbacks=[BlowUp()])
    assert result.stop_reason.startswith("non-finite loss")
    assert "state after epoch 1" in result.stop_reason and str(tmp_path) in result.stop_reason
    assert result.epochs_run == 1 and len(result.history["loss"]) == 1
    state, _ = read_checkpoint(tmp_path)
    assert state["epoch"] == 1
    for got, kept in zip(model.get_weights(), state["arrays"]["student"]):
        assert np.all(np.isfinite(got))
        np.testing.assert_array_equal(got, kept)
    assert all(np.all(np.isfinite(w)) for w in result.ema_model.get_weights())


def test_early_stopping_on_validation_macro_f1_with_a_dataset():
    data = tf.data.Dataset.from_tensor_slices((X, Y)).batch(32)
    config = TrainConfig(epochs=10, lr=0.0, weight_decay=0.0, patience=2, ema_momentum=None)
    result = train(tiny(), data, VAL, config)  # lr 0: validation macro-F1 never improves
    assert result.epochs_run == 3 and result.best_epoch == 0
    assert result.stop_reason.startswith("early stopping")
    assert len(set(result.history["val_macro_f1"])) == 1
    assert result.ema_model is None and set(result.thresholds) == {"raw"}


def test_class_weight_balanced():
    w = sample_weights(np.array([0, 0, 0, 1]), "balanced")
    np.testing.assert_allclose(w, [4 / 6, 4 / 6, 4 / 6, 2.0])
    np.testing.assert_allclose(sample_weights(np.array([0, 1]), {1: 3.0}), [1.0, 3.0])


def test_quantize_symmetric_grid():
    values = np.array([-1.0, -0.3, 0.0, 0.26, 0.55], np.float32)
    rounded, scale = quantize_symmetric(values, 4)
    assert scale == pytest.approx(1 / 7)
    np.testing.assert_allclose(rounded / scale, [-7, -2, 0, 2, 4], atol=1e-5)


def test_pack_model_rounds_only_the_generated_path():
    model = tiny(head="factorized", rank=3)
    packed = {bits: pack_model(model, bits) for bits in (8, 4)}
    kernels = generated_kernels(model)
    errors = {}
    for bits, p in packed.items():
        rounded = {id(v) for v in packed_variables(p.model)}
        assert len(rounded) == len(p.scales) == 2 + 2 * 2  # kernel, basis, 2 heads, 2 codes
        assert len(p.model.weights) == len(model.weights)
        for original, v in zip(model.weights, p.model.weights):
            assert original.shape == v.shape
            if id(v) in rounded:
                step = p.scales[v.path]
                assert np.max(np.abs(v.numpy() - original.numpy())) <= step / 2 * (1 + 1e-5)
                assert len(np.unique(v.numpy())) <= 2 ** bits - 1
            else:
                np.testing.assert_array_equal(v.numpy(), original.numpy())
        errors[bits] = max(np.max(np.abs(k - kernels[name]))
                           for name, k in generated_kernels(p.model).items())
        assert p.total_bytes == byte_table(model, bits=(bits,)).total[bits]
    assert 0 < errors[8] < errors[4]
