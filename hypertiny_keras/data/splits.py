"""Group-wise (record / patient / speaker) train-val-test assignment: no group is in two splits."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from hypertiny_keras.data.errors import DataError


def assign_groups(
    groups: Sequence[str],
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    names: tuple[str, ...] = ("train", "val", "test"),
) -> dict[str, str]:
    """Shuffle the distinct groups with ``seed`` and cut them into splits by ``fractions``.

    Split sizes are ``round(fraction * n_groups)`` for all but the first split, which takes the
    rest; every split gets at least one group.

    Args:
        groups: group ids (duplicates allowed; each distinct id is assigned once).
        fractions: one fraction per name, summing to 1.
        seed: seed of the shuffle.
        names: split names, in the order of ``fractions``.

    Returns:
        ``{group_id: split_name}``.

    Raises:
        DataError: when there are fewer groups than splits.
    """
    if len(fractions) != len(names) or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions {fractions} must give one value per split {names} and sum to 1")
    unique = sorted(set(groups))
    if len(unique) < len(names):
        raise DataError(f"{len(unique)} groups cannot fill the {len(names)} splits {names}")
    order = np.random.default_rng(seed).permutation(len(unique))
    sizes = [max(1, round(f * len(unique))) for f in fractions[1:]]
    sizes.insert(0, len(unique) - sum(sizes))
    bounds = np.cumsum([0, *sizes])
    return {
        unique[i]: names[k] for k in range(len(names)) for i in order[bounds[k] : bounds[k + 1]]
    }
