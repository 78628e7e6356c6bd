"""The paper's evaluation protocol: smooth, tune t* on validation, apply to test, bootstrap CIs."""
from __future__ import annotations

import numpy as np

from hypertiny_keras.evaluation.bootstrap import cluster_bootstrap_ci
from hypertiny_keras.evaluation.metrics import binary_metrics, multiclass_metrics
from hypertiny_keras.evaluation.smoothing import median_smooth
from hypertiny_keras.evaluation.threshold import THRESHOLD_GRID, tune_threshold

BINARY_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "roc_auc",
                  "precision_0", "recall_0", "f1_0", "precision_1", "recall_1", "f1_1")
MULTICLASS_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


def evaluate_binary(
    val: dict[str, np.ndarray],
    test: dict[str, np.ndarray],
    kernel: int = 5,
    grid: np.ndarray = THRESHOLD_GRID,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Binary evaluation of one model.

    Scores of each split are median-smoothed within records in time order (``kernel``), t* is
    the grid threshold maximising validation macro-F1, and the same smoothing and t* are applied
    to test. Test metrics get cluster-bootstrap percentile CIs over ``cluster`` ids.

    Args:
        val, test: dicts with ``y`` ``(N,)`` labels, ``score`` ``(N,)`` positive-class
            probabilities, ``record`` ``(N,)`` record ids, ``order`` ``(N,)`` time positions and
            ``cluster`` ``(N,)`` bootstrap cluster ids (records or patients).
        kernel: median-filter length in windows (odd).
        grid: threshold grid (the same for every model).
        n_resamples, seed, level: bootstrap settings.

    Returns:
        ``{"threshold": t*, "val_macro_f1": f, "metrics": {name: {"value", "low", "high"}}}``.
    """
    _check_scores(val, "val", ("y", "score", "record", "order"), binary=True)
    _check_scores(test, "test", ("y", "score", "record", "order", "cluster"), binary=True)
    val_scores = median_smooth(val["score"], val["record"], val["order"], kernel)
    test_scores = median_smooth(test["score"], test["record"], test["order"], kernel)
    t_star, val_f1 = tune_threshold(val["y"], val_scores, grid)

    def statistic(y, s):
        m = binary_metrics(y, s, t_star)
        return [m[k] for k in BINARY_METRICS]

    values = cluster_bootstrap_ci(
        statistic, test["cluster"], test["y"], test_scores,
        n_resamples=n_resamples, seed=seed, level=level,
    )
    return {"threshold": t_star, "val_macro_f1": val_f1,
            "metrics": _metric_table(BINARY_METRICS, *values)}


def evaluate_multiclass(
    test: dict[str, np.ndarray],
    n_classes: int,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Accuracy, balanced accuracy and macro-F1 of argmax predictions (e.g. keyword spotting).

    Args:
        test: dict with ``y`` ``(N,)`` labels, ``score`` ``(N, n_classes)`` class scores and
            ``cluster`` ``(N,)`` bootstrap cluster ids (speakers).
        n_classes: number of classes.

    Returns:
        ``{"metrics": {name: {"value", "low", "high"}}}``.
    """
    _check_scores(test, "test", ("y", "score", "cluster"), binary=False)
    if np.ndim(test["score"]) != 2 or np.shape(test["score"])[1] != n_classes:
        raise ValueError(f"evaluate_multiclass: test['score'] must be (N, {n_classes}) class scores, "
                         f"got shape {np.shape(test['score'])}")

    def statistic(y, s):
        m = multiclass_metrics(y, np.argmax(s, axis=1), n_classes)
        return [m[k] for k in MULTICLASS_METRICS]

    values = cluster_bootstrap_ci(
        statistic, test["cluster"], test["y"], test["score"],
        n_resamples=n_resamples, seed=seed, level=level,
    )
    return {"metrics": _metric_table(MULTICLASS_METRICS, *values)}


def _check_scores(part, label: str, keys: tuple[str, ...], binary: bool) -> None:
    """One-line errors for what the protocol functions are given instead of score dicts."""
    caller = "evaluate_binary" if binary else "evaluate_multiclass"
    if not isinstance(part, dict):
        hint = (" For a model and data.Windows use evaluation.evaluate(model, val, test)."
                if hasattr(part, "class_names") else "")
        raise TypeError(f"{caller}: {label} must be a dict with {', '.join(keys)} arrays, "
                        f"got {type(part).__name__}.{hint}")
    missing = [k for k in keys if k not in part]
    if missing:
        raise ValueError(f"{caller}: {label} lacks {', '.join(missing)} (it needs {', '.join(keys)})")
    n = len(part["y"])
    wrong = [f"{k} has {len(part[k])}" for k in keys if len(part[k]) != n]
    if wrong:
        raise ValueError(f"{caller}: {label} has {n} labels but {', '.join(wrong)}")
    score = np.asarray(part["score"])
    if binary and score.ndim != 1:
        raise ValueError(f"evaluate_binary: {label}['score'] must be (N,) positive-class probabilities, got shape "
                         f"{score.shape}; for (N, 2) logits pass softmax(logits)[:, 1]")
    if not np.all(np.isfinite(score)):
        raise ValueError(f"{caller}: {label}['score'] holds NaN or inf")
    if binary and (score.min(initial=0) < 0 or score.max(initial=0) > 1):
        raise ValueError(f"evaluate_binary: {label}['score'] must be probabilities in [0, 1], got values in "
                         f"[{score.min():.3g}, {score.max():.3g}] (logits? apply softmax or a sigmoid)")


def _metric_table(names, value, low, high) -> dict[str, dict[str, float]]:
    return {n: {"value": float(v), "low": float(lo), "high": float(hi)}
            for n, v, lo, hi in zip(names, value, low, high)}


def format_table(
    results: dict[str, dict], metrics: tuple[str, ...] = ("macro_f1", "roc_auc", "accuracy", "balanced_accuracy")
) -> str:
    """Markdown table, one row per model: ``value [low, high]`` for each metric (and t* if any).

    Args:
        results: ``{model_name: evaluate_binary(...) or evaluate_multiclass(...)}``.
        metrics: columns to show (those a result lacks are left blank).
    """
    header = "| model | t* | " + " | ".join(metrics) + " |"
    lines = [header, "|" + "---|" * (len(metrics) + 2)]
    for model, result in results.items():
        cells = []
        for name in metrics:
            m = result["metrics"].get(name)
            cells.append(f"{m['value']:.3f} [{m['low']:.3f}, {m['high']:.3f}]" if m else "")
        t = result.get("threshold")
        lines.append(f"| {model} | {'' if t is None else f'{t:.2f}'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
