"""The HyperTinyPW training objective (`HyperTinyLoss`, Eq. 5 of the paper) and its weight terms."""
from hypertiny_keras.losses.hypertiny_loss import (
    TERMS,
    HyperTinyLoss,
    regularized_matrices,
    top_singular_value_squared,
    total,
)

__all__ = ["TERMS", "HyperTinyLoss", "regularized_matrices", "top_singular_value_squared", "total"]
