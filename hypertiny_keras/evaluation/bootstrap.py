"""Cluster bootstrap confidence intervals: resample records / patients, not windows."""
from __future__ import annotations

from typing import Callable

import numpy as np


def cluster_bootstrap_samples(
    statistic: Callable[..., float],
    clusters: np.ndarray,
    *arrays: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """The bootstrap distribution of ``statistic(*arrays)`` under cluster resampling.

    Each resample draws as many clusters as there are, uniformly with replacement, and keeps
    every window of each drawn cluster (a cluster drawn twice contributes its windows twice).

    Args:
        statistic: function of the resampled ``arrays`` returning a float or a 1-D array of
            floats (several metrics at once); NaN marks an undefined value.
        clusters: ``(N,)`` cluster id (record or patient) of each window; required.
        *arrays: ``(N, ...)`` arrays resampled together, e.g. labels and scores.
        n_resamples: number of resamples.
        seed: seed of the resampling.

    Returns:
        float64 ``(n_resamples,)`` (or ``(n_resamples, k)`` for vector statistics) values.
    """
    if clusters is None:
        raise ValueError("cluster ids are required for a cluster bootstrap (got None)")
    clusters = np.asarray(clusters)
    if clusters.size == 0 or any(len(a) != len(clusters) for a in arrays):
        raise ValueError("cluster ids must be given for every window (same length as the arrays)")
    if clusters.dtype.kind in "OUS" and np.any((clusters == "") | (clusters == None)):  # noqa: E711
        raise ValueError("cluster ids contain missing (empty or None) values")
    unique, inverse = np.unique(clusters, return_inverse=True)
    members = [np.flatnonzero(inverse == c) for c in range(len(unique))]
    rng = np.random.default_rng(seed)
    arrays = tuple(np.asarray(a) for a in arrays)
    out = []
    for _ in range(n_resamples):
        idx = np.concatenate([members[c] for c in rng.integers(0, len(unique), len(unique))])
        out.append(statistic(*(a[idx] for a in arrays)))
    return np.asarray(out, np.float64)


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of bootstrap ``samples`` (along axis 0) ignoring NaN resamples.

    Returns floats for ``(n_resamples,)`` samples, ``(k,)`` arrays for ``(n_resamples, k)``.
    """
    alpha = (1.0 - level) / 2.0
    lo, hi = np.nanpercentile(samples, [100 * alpha, 100 * (1 - alpha)], axis=0)
    return (float(lo), float(hi)) if np.ndim(lo) == 0 else (lo, hi)


def cluster_bootstrap_ci(
    statistic: Callable[..., float],
    clusters: np.ndarray,
    *arrays: np.ndarray,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """``(estimate, low, high)``: the statistic on all data and its cluster-bootstrap percentile CI.

    For vector statistics each of the three is a ``(k,)`` array.
    """
    samples = cluster_bootstrap_samples(statistic, clusters, *arrays, n_resamples=n_resamples, seed=seed)
    estimate = np.asarray(statistic(*arrays), np.float64)
    return (estimate.item() if estimate.ndim == 0 else estimate, *percentile_interval(samples, level))
