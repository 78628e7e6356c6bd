"""Median smoothing of window scores inside each record, in temporal order."""
from __future__ import annotations

import numpy as np


def median_smooth(
    scores: np.ndarray, record_ids: np.ndarray, order: np.ndarray, kernel: int = 5
) -> np.ndarray:
    """Running median of ``scores`` over each record's windows sorted by ``order``.

    Each record is smoothed on its own (never across records); windows are sorted by ``order``
    (their time position) before filtering and the result is returned in the input order. The
    ends of a record use a shrinking window (the median of the available neighbours), so no
    value is invented.

    Args:
        scores: ``(N,)`` or ``(N, C)`` window scores (probabilities).
        record_ids: ``(N,)`` record id of each window.
        order: ``(N,)`` time position of each window within its record (any sortable unit).
        kernel: odd window length in windows; 1 returns the scores unchanged.

    Returns:
        float64 array shaped like ``scores``.
    """
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be a positive odd integer, got {kernel}")
    scores = np.asarray(scores, np.float64)
    record_ids, order = np.asarray(record_ids), np.asarray(order)
    if not (len(scores) == len(record_ids) == len(order)):
        raise ValueError("scores, record_ids and order must have the same length")
    out = scores.copy()
    half = kernel // 2
    for record in np.unique(record_ids):
        idx = np.flatnonzero(record_ids == record)
        idx = idx[np.argsort(order[idx], kind="stable")]
        seq = scores[idx]
        out[idx] = [np.median(seq[max(0, i - half) : i + half + 1], axis=0) for i in range(len(seq))]
    return out
