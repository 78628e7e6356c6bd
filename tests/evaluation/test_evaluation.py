"""Evaluation protocol against scikit-learn and brute force."""
import itertools

import numpy as np
import pytest
from sklearn import metrics as skm

from hypertiny_keras import evaluation as ev


@pytest.mark.parametrize("seed", range(5))
def test_binary_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300), 2)  # rounding creates ties for the AUC
    t = 0.4
    pred = (scores >= t).astype(int)
    m = ev.binary_metrics(y, scores, t)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, scores))
    p, r, f, _ = skm.precision_recall_fscore_support(y, pred, labels=[0, 1], zero_division=0)
    for k in (0, 1):
        assert (m[f"precision_{k}"], m[f"recall_{k}"], m[f"f1_{k}"]) == pytest.approx((p[k], r[k], f[k]))


@pytest.mark.parametrize("seed", range(3))
def test_multiclass_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 12, 500)
    pred = np.where(rng.random(500) < 0.6, y, rng.integers(0, 12, 500))
    m = ev.multiclass_metrics(y, pred, 12)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(
        skm.f1_score(y, pred, average="macro", labels=range(12), zero_division=0))
    np.testing.assert_array_equal(ev.confusion_matrix(y, pred, 12), skm.confusion_matrix(y, pred, labels=range(12)))


def test_roc_auc_undefined_with_one_class():
    assert np.isnan(ev.roc_auc(np.zeros(5), np.arange(5.0)))


def test_median_smooth_stays_inside_each_record_in_time_order():
    rng = np.random.default_rng(0)
    records = np.repeat(["a", "b"], 7)
    order = np.concatenate([rng.permutation(7), rng.permutation(7)])
    scores = rng.random(14)
    perm = rng.permutation(14)  # shuffled input must give the same per-window result
    out = ev.median_smooth(scores[perm], records[perm], order[perm], kernel=3)
    back = np.empty(14)
    back[perm] = out
    for rec in "ab":
        idx = np.flatnonzero(records == rec)
        seq = scores[idx][np.argsort(order[idx])]
        expected = [np.median(seq[max(0, i - 1): i + 2]) for i in range(7)]
        np.testing.assert_allclose(back[idx][np.argsort(order[idx])], expected)


def test_median_smooth_does_not_mix_records():
    # record "a" is all zeros, "b" all ones, interleaved in the input: nothing may change.
    records = np.array(list("abababab"))
    scores = (records == "b").astype(float)
    np.testing.assert_array_equal(ev.median_smooth(scores, records, np.arange(8), 5), scores)


def test_median_smooth_rejects_even_kernel():
    with pytest.raises(ValueError, match="odd"):
        ev.median_smooth(np.zeros(3), np.zeros(3), np.arange(3), kernel=4)


def test_tune_threshold_is_the_best_grid_point_by_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    scores = np.clip(0.3 * y + 0.7 * rng.random(400), 0, 1)
    t, f = ev.tune_threshold(y, scores)
    best = max(skm.f1_score(y, (scores >= g).astype(int), average="macro") for g in ev.THRESHOLD_GRID)
    assert f == pytest.approx(best)
    assert skm.f1_score(y, (scores >= t).astype(int), average="macro") == pytest.approx(best)
    assert t in ev.THRESHOLD_GRID


def test_cluster_bootstrap_matches_enumeration_of_all_resamples():
    # 3 clusters of different sizes: the 27 equally likely ordered draws give the exact
    # bootstrap distribution of the mean.
    clusters = np.array([0, 0, 1, 2, 2, 2])
    values = np.array([1.0, 3.0, 10.0, 0.0, 0.0, 6.0])
    members = [values[clusters == c] for c in range(3)]
    exact = np.array([np.concatenate([members[c] for c in draw]).mean()
                      for draw in itertools.product(range(3), repeat=3)])
    samples = ev.cluster_bootstrap_samples(np.mean, clusters, values, n_resamples=20000, seed=3)
    support, exact_counts = np.unique(np.round(exact, 9), return_counts=True)
    got_support, got_counts = np.unique(np.round(samples, 9), return_counts=True)
    assert set(got_support) <= set(support)  # never a value a cluster resample cannot give
    freq = dict(zip(got_support, got_counts / len(samples)))
    for value, count in zip(support, exact_counts):
        assert freq.get(value, 0.0) == pytest.approx(count / 27, abs=0.015)
    est, lo, hi = ev.cluster_bootstrap_ci(np.mean, clusters, values, n_resamples=20000, seed=3)
    assert est == pytest.approx(values.mean())
    # percentile interval of the exact distribution (27 atoms, each 1/27 of the mass)
    exact_sorted = np.sort(exact)
    cdf = np.arange(1, 28) / 27
    assert lo == pytest.approx(exact_sorted[np.searchsorted(cdf, 0.025)])
    assert hi == pytest.approx(exact_sorted[np.searchsorted(cdf, 0.975)])


def test_cluster_bootstrap_is_seeded_and_needs_cluster_ids():
    y = np.arange(10.0)
    c = np.repeat(np.arange(5), 2)
    a = ev.cluster_bootstrap_samples(np.mean, c, y, n_resamples=50, seed=7)
    np.testing.assert_array_equal(a, ev.cluster_bootstrap_samples(np.mean, c, y, n_resamples=50, seed=7))
    with pytest.raises(ValueError, match="cluster"):
        ev.cluster_bootstrap_samples(np.mean, None, y)
    with pytest.raises(ValueError, match="cluster"):
        ev.cluster_bootstrap_samples(np.mean, np.array(["a", ""] * 5), y)
    with pytest.raises(ValueError, match="cluster"):
        ev.cluster_bootstrap_samples(np.mean, c[:3], y)


def test_evaluate_binary_applies_validation_threshold_to_test():
    rng = np.random.default_rng(0)

    def split(n_records):
        rec = np.repeat(np.arange(n_records).astype(str), 40)
        y = np.repeat(rng.integers(0, 2, n_records), 40)
        score = np.clip(0.5 * y + 0.5 * rng.random(y.size), 0, 1)
        return {"y": y, "score": score, "record": rec, "order": np.tile(np.arange(40), n_records), "cluster": rec}

    val, test = split(6), split(8)
    out = ev.evaluate_binary(val, test, kernel=5, n_resamples=200)
    smoothed_val = ev.median_smooth(val["score"], val["record"], val["order"], 5)
    assert out["threshold"] == ev.tune_threshold(val["y"], smoothed_val)[0]
    smoothed = ev.median_smooth(test["score"], test["record"], test["order"], 5)
    pred = (smoothed >= out["threshold"]).astype(int)
    m = out["metrics"]
    assert m["macro_f1"]["value"] == pytest.approx(skm.f1_score(test["y"], pred, average="macro"))
    assert m["roc_auc"]["value"] == pytest.approx(skm.roc_auc_score(test["y"], smoothed))
    for v in m.values():
        assert v["low"] <= v["value"] + 1e-12 and v["value"] <= v["high"] + 1e-12
    assert "macro_f1" in ev.format_table({"model": out})


def test_evaluate_multiclass_accuracy():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 12, 300)
    score = rng.random((300, 12)) + 0.8 * np.eye(12)[y]
    out = ev.evaluate_multiclass({"y": y, "score": score, "cluster": np.arange(300) % 30}, 12, n_resamples=100)
    assert out["metrics"]["accuracy"]["value"] == pytest.approx(skm.accuracy_score(y, score.argmax(1)))
