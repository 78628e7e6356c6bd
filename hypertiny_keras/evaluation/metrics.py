"""Classification metrics in numpy: accuracy, balanced accuracy, macro-F1, ROC-AUC, per class."""
from __future__ import annotations

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities ``(N, C)`` (float64) of logits ``(N, C)``."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``(n_classes, n_classes)`` counts, rows = true class, columns = predicted class."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes**2).reshape(
        n_classes, n_classes
    )


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall and F1 per class from a confusion matrix (0 where undefined)."""
    tp = np.diag(cm).astype(np.float64)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1}


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of binary labels (1 = positive), ties counted as 1/2.

    Computed as the Mann-Whitney U statistic with average ranks. NaN when one class is absent.
    """
    y_true = np.asarray(y_true).astype(bool)
    n_pos, n_neg = int(y_true.sum()), int((~y_true).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    scores = np.asarray(scores, np.float64)
    sorter = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[sorter]
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg_rank = first + (counts + 1) / 2.0  # 1-based average rank of each distinct score
    ranks = np.empty_like(scores)
    ranks[sorter] = np.repeat(avg_rank, counts)
    return float((ranks[y_true].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def multiclass_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro-F1 of class predictions, plus per-class scores.

    Balanced accuracy is the mean recall over the classes present in ``y_true``; macro-F1 is
    the mean F1 over all ``n_classes`` classes (an absent, never-predicted class scores 0).
    Per-class entries are ``precision_k``, ``recall_k``, ``f1_k``.
    """
    cm = confusion_matrix(y_true, y_pred, n_classes)
    scores = per_class_scores(cm)
    present = cm.sum(axis=1) > 0
    out = {
        "accuracy": float(np.trace(cm) / cm.sum()),
        "balanced_accuracy": float(scores["recall"][present].mean()),
        "macro_f1": float(scores["f1"].mean()),
    }
    for name, values in scores.items():
        out.update({f"{name}_{k}": float(v) for k, v in enumerate(values)})
    return out


def binary_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """All binary metrics of positive-class scores thresholded at ``threshold`` (score >= t -> 1).

    Returns accuracy, balanced_accuracy, macro_f1 (mean of both classes' F1), roc_auc and
    per-class ``precision_k``, ``recall_k``, ``f1_k`` for k in {0, 1}.
    """
    scores = np.asarray(scores, np.float64)
    out = multiclass_metrics(y_true, (scores >= threshold).astype(np.int64), 2)
    out["roc_auc"] = roc_auc(y_true, scores)
    return out


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean of the per-class F1 over all ``n_classes`` classes."""
    return float(per_class_scores(confusion_matrix(y_true, y_pred, n_classes))["f1"].mean())
