"""personalize: only the named part of a copy changes; codes deploy as the base file with code bytes changed."""
import keras
import numpy as np
import pytest

from hypertiny_keras import export_tflite, hypertiny_pw
from hypertiny_keras.data.synthetic import make_beats
from hypertiny_keras.tflite import patch as hp
from hypertiny_keras.training.personalize import codes_file, personalize, tuned_variables

KEY = b"k" * 32


@pytest.fixture(scope="module")
def base():
    keras.utils.set_random_seed(0)
    x, y = make_beats(600, seed=0)
    model = hypertiny_pw(x.shape[1:], 2, widths=(8, 12, 12), code_dim=4, hidden_dim=8)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, verbose=0)
    xs, ys = make_beats(240, seed=5)
    return model, (x, y), (-xs, ys)  # the subject: a reversed lead (inverted beats)


def _weights(model):
    return [keras.ops.convert_to_numpy(v) for v in model.weights]


@pytest.mark.parametrize("trainable", ["codes", "bias", "classifier"])
def test_only_the_named_part_of_a_copy_changes(base, trainable):
    model, (x, y), (xs, ys) = base
    before = _weights(model)
    result = personalize(model, xs, ys, trainable=trainable, rehearsal=(x[:120], y[:120]), steps=25, patience=25)
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(model)))  # the base is untouched
    chosen = {id(v) for v in tuned_variables(result.model, trainable)}
    tuned = {i for i, v in enumerate(result.model.weights) if id(v) in chosen}
    after = _weights(result.model)
    assert len(after) == len(before)  # the copy has the base's weights, in the base's order
    changed = {i for i, (a, b) in enumerate(zip(after, before)) if not np.array_equal(a, b)}
    assert changed and changed <= tuned, changed - tuned
    assert result.values == sum(int(np.prod(after[i].shape)) for i in tuned)
    history = result.history
    assert result.best_step == 0 or history[result.best_step - 1]["held_out_loss"] <= min(
        h["held_out_loss"] for h in history)
    if trainable == "codes":
        assert result.values == 2 * 4 and set(result.base_codes) == set(result.codes())


def test_codes_deploy_as_a_patch_of_the_base_file(base, tmp_path):
    model, (x, y), (xs, ys) = base
    path = tmp_path / "base.tflite"
    export_tflite(model, x[:64], path, synthesis="boot")
    base_file = path.read_bytes()
    result = personalize(model, xs, ys, trainable="codes", steps=30, patience=30)
    deployed = codes_file(base_file, result)
    patch = hp.make_patch(base_file, deployed, KEY, counter=1)  # refuses a byte changed outside the codes
    assert len(patch) <= 51 and hp.apply_patch(base_file, patch, KEY) == deployed
    with pytest.raises(ValueError, match="codes-only"):
        codes_file(base_file, personalize(model, xs, ys, trainable="bias", steps=2))


def test_refusals_in_one_line(base):
    model, _, (xs, ys) = base
    lowrank = hypertiny_pw(xs.shape[1:], 2, widths=(8, 12, 12), head="lowrank", rank=2)
    cases = [
        (lambda: personalize(lowrank, xs, ys), "read a code"),
        (lambda: personalize(model, xs, ys, trainable="heads"), "trainable must be one of"),
        (lambda: personalize(model, np.full_like(xs, np.nan), ys), "NaN"),
        (lambda: personalize(model, xs[:, :100], ys), "shape"),
        (lambda: personalize(model, xs, ys[:5]), "labels must have shape"),
        (lambda: personalize(model, xs, ys, held_out_fraction=1.0), "held_out_fraction"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message) as error:
            call()
        assert "\n" not in str(error.value)


def test_refine_codes_lowers_the_files_own_loss_and_changes_codes_only(base, tmp_path):
    from hypertiny_keras.training.personalize import refine_codes

    model, (x, y), (xs, ys) = base
    path = tmp_path / "base.tflite"
    export_tflite(model, x[:64], path, synthesis="boot")
    base_file = path.read_bytes()
    start = codes_file(base_file, personalize(model, xs, ys, trainable="codes", steps=20, patience=20))
    found, info = refine_codes(base_file, start, xs[:120], ys[:120], steps=(8,), rounds=1)
    assert info["loss"] <= info["loss_start"] and info["evaluations"] >= 2 and info["held_out"] is None
    assert (info["moves"] > 0) == (found != start)
    kept, held = refine_codes(base_file, start, xs[:80], ys[:80], steps=(8,), rounds=1, held_out=(xs[80:], ys[80:]))
    assert held["held_out"] <= held["held_out_start"]
    assert (kept == start) == (held["held_out"] == held["held_out_start"])
    hp.make_patch(base_file, found, KEY, counter=1)  # refuses any byte changed outside the codes
    with pytest.raises(ValueError, match="outside its code tensors"):
        refine_codes(base_file, base_file[:-1] + bytes([base_file[-1] ^ 1]), xs[:10], ys[:10])
