"""Model builders: HyperTinyPW, its stored twin, and the paper's baselines."""
from hypertiny_keras.models.baselines import (
    BASELINE_NORMALIZATIONS,
    hrv_featnet,
    normalized_hrv_head,
    rebuild_separable,
    regular_cnn,
    resnet1d_small,
    tiny_separable_cnn,
)
from hypertiny_keras.models.ds_cnn import ds_cnn
from hypertiny_keras.models.separable import NORMALIZATIONS, hypertiny_pw, stored_pw_twin
from hypertiny_keras.models.ternary import (
    TERNARY_LAYERS,
    TernaryConv1D,
    TernaryDense,
    TernaryDepthwiseConv1D,
    ternarize,
    ternary_bytes,
    ternary_kernel,
    ternary_separable_cnn,
)
from hypertiny_keras.models.vae import GaussianLatent, tiny_vae_head

__all__ = [
    "BASELINE_NORMALIZATIONS",
    "NORMALIZATIONS",
    "TERNARY_LAYERS",
    "GaussianLatent",
    "TernaryConv1D",
    "TernaryDense",
    "TernaryDepthwiseConv1D",
    "ds_cnn",
    "hrv_featnet",
    "hypertiny_pw",
    "normalized_hrv_head",
    "rebuild_separable",
    "regular_cnn",
    "resnet1d_small",
    "stored_pw_twin",
    "ternarize",
    "ternary_bytes",
    "ternary_kernel",
    "ternary_separable_cnn",
    "tiny_separable_cnn",
    "tiny_vae_head",
]
