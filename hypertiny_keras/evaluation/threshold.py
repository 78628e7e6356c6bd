"""Decision threshold tuned on validation to maximise macro-F1 over one fixed grid."""
from __future__ import annotations

import numpy as np

from hypertiny_keras.evaluation.metrics import macro_f1

THRESHOLD_GRID = np.round(np.linspace(0.01, 0.99, 99), 2)
"""The grid used for every model: 0.01, 0.02, ..., 0.99 (99 thresholds on probabilities)."""


def tune_threshold(
    y_true: np.ndarray, scores: np.ndarray, grid: np.ndarray = THRESHOLD_GRID
) -> tuple[float, float]:
    """The threshold t* of ``grid`` with the highest macro-F1 (predict 1 when score >= t).

    Ties go to the smallest threshold.

    Args:
        y_true: ``(N,)`` binary labels of the validation windows.
        scores: ``(N,)`` positive-class scores (after the same smoothing used on test).
        grid: candidate thresholds.

    Returns:
        ``(t_star, macro_f1_at_t_star)``.
    """
    scores = np.asarray(scores, np.float64)
    f1 = np.array([macro_f1(y_true, (scores >= t).astype(np.int64), 2) for t in grid])
    best = int(np.argmax(f1))
    return float(grid[best]), float(f1[best])
