"""The embedded synthetic ECG beats: shapes, determinism, morphology and learnability."""
import numpy as np
import pytest

from hypertiny_keras.data.synthetic import CLASS_NAMES, make_beats

FS = 500.0  # Hz; the morphology checks use a fine grid, 2 s windows
LENGTH = 1000


@pytest.fixture(scope="module")
def clean():
    """Noiseless windows (baseline wander and hum remain)."""
    return make_beats(1500, length=LENGTH, fs=FS, noise_std=0.0, seed=1)


@pytest.fixture(scope="module")
def rhythm():
    """Noiseless 5 s windows: two beats before the centre and one after always fit."""
    return make_beats(800, length=1280, fs=256.0, noise_std=0.0, seed=5)


@pytest.fixture(scope="module")
def default():
    """Windows with the default length, rate and noise."""
    return make_beats(3000, seed=2)


def _region(x, start, stop, fs):
    """Samples from `start` to `stop` seconds relative to the window centre."""
    c = x.shape[1] // 2
    return x[:, c + int(round(start * fs)):c + int(round(stop * fs))]


def _qrs_width(x, fs):
    """Width in s of the centre peak at half its height above the PR-level baseline."""
    x = x[..., 0]
    c = x.shape[1] // 2
    base = np.median(_region(x, -0.30, -0.07, fs), axis=1)
    above = x > (base + 0.5 * (x[:, c] - base))[:, None]
    return (np.argmin(above[:, c:], axis=1) + np.argmin(above[:, c::-1], axis=1)) / fs


def _p_wave(x, fs):
    """Largest rise in mV above the straight line across 0.25-0.11 s before the R peak."""
    seg = _region(x[..., 0], -0.25, -0.11, fs)
    line = seg[:, :1] + (seg[:, -1:] - seg[:, :1]) * np.linspace(0, 1, seg.shape[1])
    return (seg - line).max(axis=1)


def _best_threshold_accuracy(feature, y):
    """Accuracy of the best single threshold on `feature`, either direction (optimistic)."""
    order = np.argsort(feature)
    ones_below = np.concatenate([[0], np.cumsum(y[order])])
    below = np.arange(len(y) + 1)
    acc = (below - ones_below + y.sum() - ones_below) / len(y)  # 0 below, 1 above
    return max(acc.max(), 1 - acc.min())


def test_shapes_dtypes_and_names():
    x, y = make_beats(17, length=100, fs=250.0, seed=3)
    assert x.shape == (17, 100, 1) and x.dtype == np.float32
    assert y.shape == (17,) and y.dtype == np.int32
    assert set(np.unique(y)) <= {0, 1}
    assert CLASS_NAMES == ("normal", "ectopic")


def test_same_seed_is_bit_identical_other_seed_differs():
    x1, y1 = make_beats(200, seed=7)
    x2, y2 = make_beats(200, seed=7)
    x3, y3 = make_beats(200, seed=8)
    assert x1.tobytes() == x2.tobytes() and np.array_equal(y1, y2)
    assert not np.array_equal(x1, x3) and not np.array_equal(y1, y3)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.3, 0.5, 1.0])
def test_class_balance_matches_ectopic_fraction(fraction):
    _, y = make_beats(501, ectopic_fraction=fraction, seed=4)
    assert abs(y.mean() - fraction) <= 1 / 501


def test_values_are_finite_and_millivolt_sized(default):
    x, _ = default
    assert np.isfinite(x).all()
    peak = np.abs(x).max(axis=(1, 2))
    assert 0.2 < np.median(peak) < 3.0 and peak.max() < 8.0


def test_r_peak_is_at_the_window_centre_for_both_classes(clean):
    x, y = clean
    near = _region(x[..., 0], -0.2, 0.2 + 1 / FS, FS)  # the centre is index 0.2 * FS
    offset = np.abs(np.argmax(near, axis=1) - int(0.2 * FS))
    for label in (0, 1):
        assert offset[y == label].max() <= 0.008 * FS  # within 8 ms


def test_ectopic_qrs_is_wider_than_normal(clean):
    x, y = clean
    width = _qrs_width(x, FS)
    normal, ectopic = np.median(width[y == 0]), np.median(width[y == 1])
    assert 0.015 < normal < 0.04
    assert ectopic > 1.5 * normal


def test_ectopic_beats_lack_a_p_wave(clean):
    x, y = clean
    p = _p_wave(x, FS)
    assert np.median(p[y == 0]) > 0.08  # mV
    assert np.median(p[y == 1]) < 0.3 * np.median(p[y == 0])


def _r_times(x, fs):
    """Times in s of the R peaks two and one beats before and one beat after the centre.

    An R peak is a local maximum above half the centre beat's height over the window
    median (T waves stay below it but for rare tall-T records); peaks closer than
    0.25 s to a later-found one belong to the same beat.
    """
    x = x[..., 0]
    t = (np.arange(x.shape[1]) - x.shape[1] // 2) / fs
    base = np.median(x, axis=1, keepdims=True)
    high = x > base + 0.5 * (x[:, x.shape[1] // 2:][:, :1] - base)
    peak = np.zeros_like(high)
    peak[:, 1:-1] = high[:, 1:-1] & (x[:, 1:-1] > x[:, :-2]) & (x[:, 1:-1] >= x[:, 2:])
    before = np.where(peak & (t < -0.25), t, -np.inf).max(axis=1)
    before2 = np.where(peak & (t < before[:, None] - 0.25), t, -np.inf).max(axis=1)
    after = np.where(peak & (t > 0.25), t, np.inf).min(axis=1)
    return before2, before, after


def test_ectopic_beats_are_premature_with_a_compensatory_pause(rhythm):
    x, y = rhythm
    before2, before, after = _r_times(x, 256.0)
    found = np.isfinite(before2) & np.isfinite(after)
    assert found.mean() > 0.95
    x, y, before2, before, after = x[found], y[found], before2[found], before[found], after[found]
    prior = before - before2  # the RR interval preceding the coupling interval
    coupling, pause = -before / prior, (after - before) / prior
    assert 0.95 < np.median(coupling[y == 0]) < 1.05
    assert np.median(coupling[y == 1]) < 0.85
    # Full compensation: the beats around an ectopic one are two sinus RR apart.
    assert 1.9 < np.median(pause[y == 1]) < 2.1


def test_learnable_from_morphology_but_not_from_amplitude(default):
    x, y = default
    features = np.stack([_qrs_width(x, 128.0), _p_wave(x, 128.0)], axis=1)
    features = (features - features.mean(0)) / features.std(0)
    train, test = slice(0, 2000), slice(2000, None)
    w, b = np.zeros(2), 0.0
    for _ in range(300):  # logistic regression, full-batch gradient descent
        p = 1 / (1 + np.exp(-(features[train] @ w + b)))
        w -= 0.5 * features[train].T @ (p - y[train]) / 2000
        b -= 0.5 * (p - y[train]).mean()
    accuracy = ((features[test] @ w + b > 0) == y[test]).mean()
    assert accuracy > 0.8
    for amplitude in (x.max(axis=(1, 2)), x[:, x.shape[1] // 2, 0]):  # window max, R height
        assert _best_threshold_accuracy(amplitude, y) < 0.9


@pytest.mark.parametrize("kwargs, match", [
    ({"n": 0}, "n must be positive"),
    ({"n": -3}, "n must be positive"),
    ({"n": 4, "length": 31}, "length"),
    ({"n": 4, "fs": 0.0}, "fs"),
    ({"n": 4, "fs": float("inf")}, "fs"),
    ({"n": 4, "ectopic_fraction": -0.1}, "ectopic_fraction"),
    ({"n": 4, "ectopic_fraction": 1.5}, "ectopic_fraction"),
    ({"n": 4, "ectopic_fraction": float("nan")}, "ectopic_fraction"),
    ({"n": 4, "noise_std": float("nan")}, "noise_std"),
    ({"n": 4, "noise_std": -0.01}, "noise_std"),
])
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_beats(**kwargs)
