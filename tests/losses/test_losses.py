"""HyperTinyLoss (Eq. 5): each term against numpy, switching terms off, serialization,
and the Distiller (KD and projected feature matching) inside model.fit."""
import keras
import numpy as np
import pytest

from hypertiny_keras import hypertiny_pw, stored_pw_twin
from hypertiny_keras.data import make_beats
from hypertiny_keras.layers import generated_layers
from hypertiny_keras.losses import TERMS, HyperTinyLoss, top_singular_value_squared
from hypertiny_keras.training import Distiller

RNG = np.random.default_rng(7)
Y = np.array([0, 2, 1, 1, 0, 2])
LOGITS = RNG.normal(size=(6, 3)).astype(np.float32) * 2
TEACHER = RNG.normal(size=(6, 3)).astype(np.float32) * 2
FEATURES = RNG.normal(size=(6, 4)).astype(np.float32)
TEACHER_FEATURES = RNG.normal(size=(6, 4)).astype(np.float32)
WEIGHTS = np.array([1.0, 0.5, 2.0, 1.0, 0.0, 3.0], np.float32)
ALL_ON = {t: 0.5 + i / 10 for i, t in enumerate(TERMS)}


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(1)
    return hypertiny_pw((32, 1), 3, widths=(4, 5, 6), stem_filters=4, code_dim=3,
                        hidden_dim=5, head="factorized", rank=3, norm="none")


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def weighted_mean(values, w):
    return values.mean() if w is None else (values * w).sum() / len(values)


def power_sigma2(m, iterations):
    gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    v = np.ones(len(gram)) / np.sqrt(len(gram))
    for _ in range(iterations):
        v = gram @ v
        v /= np.linalg.norm(v) + 1e-7
    return v @ gram @ v


def numpy_term(name, model, w=None, gamma=2.0, t=2.0):
    log_p = log_softmax(LOGITS.astype(np.float64))
    log_p_true = log_p[np.arange(6), Y]
    if name == "ce":
        return weighted_mean(-log_p_true, w)
    if name == "focal":
        return weighted_mean(-(1 - np.exp(log_p_true)) ** gamma * log_p_true, w)
    if name == "kd":
        log_q, log_ps = log_softmax(TEACHER / t), log_softmax(LOGITS / t)
        return weighted_mean(t * t * (np.exp(log_q) * (log_q - log_ps)).sum(-1), w)
    if name == "feature":
        return weighted_mean(((FEATURES - TEACHER_FEATURES) ** 2).mean(-1), w)
    if name == "soft_f1":
        p, onehot = np.exp(log_p), np.eye(3)[Y]
        ww = np.ones(6) if w is None else w
        tp = (ww[:, None] * p * onehot).sum(0)
        fp = (ww[:, None] * p * (1 - onehot)).sum(0)
        fn = (ww[:, None] * (1 - p) * onehot).sum(0)
        return 1 - (2 * tp / (2 * tp + fp + fn + 1e-7)).mean()
    layers = generated_layers(model)
    if name == "spectral":
        g = layers[0].generator
        mats = [g.kernel, g.basis] + [layer.head for layer in layers]
        return sum(power_sigma2(np.asarray(m.numpy(), np.float64), 5) for m in mats)
    return sum(np.abs(layer.head.numpy()).sum() + np.abs(layer.code.numpy()).sum() for layer in layers)


def all_terms(loss, model, w=None):
    return loss.terms(Y, LOGITS, teacher_logits=TEACHER, features=FEATURES,
                      teacher_features=TEACHER_FEATURES, model=model, sample_weight=w)


@pytest.mark.parametrize("name", TERMS)
@pytest.mark.parametrize("weighted", [False, True])
def test_each_term_matches_numpy(name, weighted, model):
    w = WEIGHTS if weighted else None
    loss = HyperTinyLoss(**{t: 0.7 if t == name else 0.0 for t in TERMS}, gamma=1.5, temperature=3.0)
    terms = all_terms(loss, model, w)
    assert list(terms) == [name]
    expected = 0.7 * numpy_term(name, model, w if name not in ("spectral", "size") else None,
                                gamma=1.5, t=3.0)
    np.testing.assert_allclose(float(terms[name]), expected, rtol=2e-5)


@pytest.mark.parametrize("name", TERMS)
def test_zero_weight_removes_exactly_that_term(name, model):
    full = all_terms(HyperTinyLoss(**ALL_ON), model)
    off = HyperTinyLoss(**{**ALL_ON, name: 0.0})
    assert name not in off.active_terms
    rest = {k: v for k, v in full.items() if k != name}
    assert float(sum(all_terms(off, model).values())) == float(sum(rest.values()))
    assert all(float(off.terms(Y, LOGITS, **_only_needed(off, model))[k]) == float(v)
               for k, v in rest.items())


def _only_needed(loss, model):
    """Only the inputs the active terms need: switched-off terms need nothing."""
    kw = {}
    if loss.term_weights["kd"]:
        kw["teacher_logits"] = TEACHER
    if loss.term_weights["feature"]:
        kw.update(features=FEATURES, teacher_features=TEACHER_FEATURES)
    if loss.term_weights["spectral"] or loss.term_weights["size"]:
        kw["model"] = model
    return kw


def test_missing_input_is_an_error_not_a_dropped_term():
    with pytest.raises(ValueError, match="'kd' term.*teacher_logits"):
        HyperTinyLoss(kd=1.0)(Y, LOGITS)
    with pytest.raises(ValueError, match="'spectral' term.*model"):
        HyperTinyLoss(spectral=1.0)(Y, LOGITS)


def test_call_is_the_sum_of_label_terms_and_config_round_trips():
    loss = HyperTinyLoss(ce=0.3, focal=0.5, gamma=1.0, soft_f1=0.2, power_iterations=3)
    expected = 0.3 * numpy_term("ce", None) + 0.5 * numpy_term("focal", None, gamma=1.0) \
        + 0.2 * numpy_term("soft_f1", None)
    np.testing.assert_allclose(float(loss(Y, LOGITS)), expected, rtol=2e-5)
    copy = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(copy) is HyperTinyLoss and copy.get_config() == loss.get_config()
    assert {*TERMS, "gamma", "temperature", "power_iterations"} <= set(loss.get_config())


def test_power_iteration_converges_to_the_largest_singular_value():
    m = RNG.normal(size=(5, 40)).astype(np.float32)
    sigma = np.linalg.svd(m, compute_uv=False)[0]
    np.testing.assert_allclose(float(top_singular_value_squared(m, 200)), sigma**2, rtol=1e-4)
    np.testing.assert_allclose(float(top_singular_value_squared(m.T, 200)), sigma**2, rtol=1e-4)


def test_distiller_kd_and_projected_features_through_fit(model):
    keras.utils.set_random_seed(0)
    teacher = stored_pw_twin((32, 1), 3, widths=(6, 6, 8), stem_filters=4, norm="none")
    teacher_before = [w.copy() for w in teacher.get_weights()]
    loss = HyperTinyLoss(kd=0.5, temperature=2.0, feature=1.0, spectral=0.01, size=1e-4)
    distiller = Distiller(model, loss, teacher=teacher)
    assert distiller.projection is not None and distiller.projection.kernel.shape == (6, 8)
    projection_before = distiller.projection.kernel.numpy().copy()
    student_before = [w.copy() for w in model.get_weights()]
    x, y = make_beats(64, length=32)
    y = y + (x[:, 0, 0] > 0)  # three classes
    distiller.compile(optimizer=keras.optimizers.AdamW(1e-2))
    history = distiller.fit(x, y, batch_size=32, epochs=1, verbose=0).history
    assert set(loss.active_terms) <= set(history)
    assert all(np.isfinite(v[0]) for v in history.values())
    assert not np.allclose(distiller.projection.kernel.numpy(), projection_before)
    assert any(not np.allclose(a, b) for a, b in zip(model.get_weights(), student_before))
    assert all(np.array_equal(a, b) for a, b in zip(teacher.get_weights(), teacher_before))

    # compute_loss is exactly the loss's terms on the teacher's outputs and the projected features
    out = distiller(x[:8])
    t_logits, t_features = distiller.teacher_outputs(x[:8])
    terms = loss.terms(y[:8], out["logits"], teacher_logits=t_logits,
                       features=distiller.projection(out["features"]),
                       teacher_features=t_features, model=model)
    np.testing.assert_allclose(float(distiller.compute_loss(x[:8], y[:8], out)),
                               float(sum(terms.values())), rtol=1e-6)


def test_distiller_without_teacher_terms_never_runs_the_teacher(model):
    teacher = stored_pw_twin((32, 1), 3, widths=(6, 6, 8), stem_filters=4, norm="none")
    distiller = Distiller(model, HyperTinyLoss(focal=1.0), teacher=teacher)
    assert distiller.teacher_outputs is None and distiller.projection is None
    with pytest.raises(ValueError, match="need a teacher"):
        Distiller(model, HyperTinyLoss(kd=1.0))
