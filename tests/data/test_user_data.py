"""A user's own arrays: Windows.from_arrays, Windows validation, evaluation.evaluate of models and int8 files."""
import dataclasses

import keras
import numpy as np
import pytest

import hypertiny_keras as ht
from hypertiny_keras import evaluation
from hypertiny_keras.data import DataError, Windows, format_summary, summarize
from hypertiny_keras.data.synthetic import make_beats

LENGTH = 96


def user_windows(n=360, classes=2, seed=0):
    x, y = make_beats(n, length=LENGTH, seed=seed)
    if classes > 2:
        y = np.arange(n) % classes
    subjects = np.repeat([f"subject{i:02d}" for i in range(n // 12)], 12)
    return Windows.from_arrays(x, y, subjects, fs=128.0, class_names=tuple(f"c{i}" for i in range(classes)),
                               source="my beats")


def test_from_arrays_splits_by_group_and_orders_within_groups():
    w = user_windows()
    assert len(w) == 360 and w.x.dtype == np.float32 and w.class_names == ("c0", "c1")
    for split in ("train", "val", "test"):
        assert np.any(w.split == split)
    groups = {s: set(w.record[w.split == s]) for s in ("train", "val", "test")}
    assert not (groups["train"] & groups["val"]) and not (groups["train"] & groups["test"])
    assert list(w.order[w.record == "subject00"]) == list(range(12))
    again = user_windows()
    np.testing.assert_array_equal(again.split, w.split)  # the seed fixes the split
    text = format_summary(summarize(w))
    assert text.splitlines()[0] == "my beats" and "at 128 Hz; 2 classes" in text


def test_from_arrays_string_labels_and_given_splits():
    x = np.zeros((6, 4, 1)) + np.arange(6)[:, None, None]
    w = Windows.from_arrays(x, ["b", "a", "b", "a", "b", "a"], ["g1", "g1", "g2", "g2", "g3", "g3"],
                            split=["train", "train", "val", "val", "test", "test"])
    assert w.class_names == ("a", "b") and list(w.y) == [1, 0, 1, 0, 1, 0]
    assert np.isnan(w.fs) and summarize(w)["fs_hz"] is None
    assert "Hz" not in format_summary(summarize(w)).splitlines()[1]


@pytest.mark.parametrize("change,message", [
    (dict(y=np.zeros(9)), r"x has 10 windows but y has 9"),
    (dict(groups=np.array(["a"] * 3)), r"groups has 3"),
    (dict(x=np.full((10, 4, 1), np.nan)), r"10 window\(s\) hold NaN or inf values \(first at row 0\)"),
    (dict(y=np.full(10, 0.5)), r"labels must be integers"),
    (dict(y=-np.ones(10)), r"labels must be >= 0"),
    (dict(split=(0.5, 0.5)), r"three positive train/val/test fractions"),
    (dict(groups=np.array(["a", "b"] * 5)), r"2 groups cannot fill the 3 splits"),
    (dict(x=np.zeros(10)), r"x must be \(N, \.\.\.\)"),
])
def test_from_arrays_refuses_bad_input_in_one_line(change, message):
    args = dict(x=np.zeros((10, 4, 1)), y=np.arange(10) % 2, groups=np.array([f"g{i}" for i in range(10)]))
    args.update(change)
    with pytest.raises(DataError, match=message) as error:
        Windows.from_arrays(**args, source="mine")
    assert str(error.value).startswith("mine: ") and "\n" not in str(error.value)


def test_windows_validate_their_arrays():
    w = user_windows()
    with pytest.raises(DataError, match=r"x has 360 windows but y has 359"):
        dataclasses.replace(w, y=w.y[:-1])
    split = w.split.copy()
    first = w.record[0]
    split[np.flatnonzero(w.record == first)[0]] = "test" if split[0] != "test" else "val"
    with pytest.raises(DataError, match=rf"record '{first}' has windows in splits"):
        dataclasses.replace(w, split=split)
    with pytest.raises(DataError, match=r"labels must be integers 0\.\.1"):
        dataclasses.replace(w, y=w.y + 5)
    with pytest.raises(DataError, match=r"split names must be"):
        dataclasses.replace(w, split=np.where(w.split == "val", "valid", w.split))


def _model(classes):
    keras.utils.set_random_seed(0)
    return ht.hypertiny_pw((LENGTH, 1), classes, widths=(8, 12), stem_filters=8, code_dim=4, hidden_dim=8)


def test_evaluate_keras_model_and_int8_file_binary(tmp_path):
    w = user_windows()
    model = _model(2)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    train = w.select("train")
    model.fit(train.x, train.y, epochs=3, verbose=0)
    val, test = w.select("val"), w.select("test")
    float_result = evaluation.evaluate(model, val, test, kernel=1, n_resamples=20, progress=False)
    assert 0 <= float_result["threshold"] <= 1 and 0 <= float_result["metrics"]["macro_f1"]["value"] <= 1
    ht.export_tflite(model, train.x[:100], tmp_path / "m.tflite")
    int8_result = evaluation.evaluate(tmp_path / "m.tflite", val, test, kernel=1, n_resamples=20, progress=False)
    # The same numbers as the protocol applied to TFLM's outputs by hand.
    from hypertiny_keras.device.runtime import predict

    by_hand = evaluation.evaluate_logits(val, test, predict(tmp_path / "m.tflite", val.x),
                                         predict(tmp_path / "m.tflite", test.x), kernel=1, n_resamples=20)
    assert int8_result == by_hand
    # Bytes work as well as a path, and batches of any size give the same outputs.
    data = (tmp_path / "m.tflite").read_bytes()
    np.testing.assert_array_equal(evaluation.model_outputs(data, test.x, batch_size=7, progress=False),
                                  predict(tmp_path / "m.tflite", test.x))


def test_evaluate_multiclass_and_its_errors(tmp_path):
    w = user_windows(classes=3)
    model = _model(3)
    result = evaluation.evaluate(model, w.select("val"), w.select("test"), n_resamples=10, progress=False)
    assert set(result["metrics"]) == {"accuracy", "balanced_accuracy", "macro_f1"}
    with pytest.raises(ValueError, match=r"the model has 2 outputs per window but the windows have 3 classes"):
        evaluation.evaluate(_model(2), w.select("val"), w.select("test"), progress=False)
    with pytest.raises(ValueError, match=r"takes inputs of shape \(N, 96, 1\), the windows are \(\d+, 50, 1\)"):
        short = w.take(np.arange(len(w)))
        short = dataclasses.replace(short, x=short.x[:, :50])
        evaluation.evaluate(model, short.select("val"), short.select("test"), progress=False)
    with pytest.raises(TypeError, match=r"val must be data.Windows"):
        evaluation.evaluate(model, w.select("val").x, w.select("test"))
    with pytest.raises(FileNotFoundError, match="nothing.tflite"):
        evaluation.evaluate(tmp_path / "nothing.tflite", w.select("val"), w.select("test"), progress=False)


def test_evaluate_binary_says_what_it_wants():
    w = user_windows()
    val, test = w.select("val"), w.select("test")
    with pytest.raises(TypeError, match=r"evaluation.evaluate\(model, val, test\)"):
        evaluation.evaluate_binary(val, test)
    logits = np.zeros((len(val), 2))
    with pytest.raises(ValueError, match=r"\(N,\) positive-class probabilities, got shape \(\d+, 2\); .*softmax"):
        evaluation.evaluate_binary(evaluation.score_inputs(val, logits), evaluation.score_inputs(test, logits[:, 0]))
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\].*logits"):
        scores = evaluation.score_inputs(val, np.linspace(-3, 3, len(val)))
        evaluation.evaluate_binary(scores, evaluation.score_inputs(test, np.zeros(len(test))))
    with pytest.raises(ValueError, match=r"lacks cluster"):
        scored = {"y": test.y, "score": np.zeros(len(test)), "record": test.record, "order": test.order}
        evaluation.evaluate_binary(evaluation.score_inputs(val, np.zeros(len(val))), scored)
    assert evaluation.positive_probability(np.array([[0.2], [0.9]])).tolist() == [0.2, 0.9]
    assert evaluation.positive_probability(np.array([0.0, 2.0]))[0] == pytest.approx(0.5)
