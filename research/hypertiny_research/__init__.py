"""The paper's research harness: recipes' flags, results tables, the paper's baselines and HRV features.

Not part of the installed `hypertiny-keras` package: `recipes/`, `benchmarks/`
and `tests/` use it from a source checkout (`make install` installs it in
editable mode beside the package).
"""
from hypertiny_research.baselines import (
    BASELINE_NORMALIZATIONS,
    hrv_featnet,
    normalized_hrv_head,
    rebuild_separable,
    regular_cnn,
    resnet1d_small,
    tiny_separable_cnn,
)
from hypertiny_research.ternary import (
    TERNARY_LAYERS,
    TernaryConv1D,
    TernaryDense,
    TernaryDepthwiseConv1D,
    ternarize,
    ternary_bytes,
    ternary_kernel,
    ternary_separable_cnn,
)
from hypertiny_research.vae import GaussianLatent, tiny_vae_head

__all__ = [
    "BASELINE_NORMALIZATIONS",
    "TERNARY_LAYERS",
    "GaussianLatent",
    "TernaryConv1D",
    "TernaryDense",
    "TernaryDepthwiseConv1D",
    "hrv_featnet",
    "normalized_hrv_head",
    "rebuild_separable",
    "regular_cnn",
    "resnet1d_small",
    "ternarize",
    "ternary_bytes",
    "ternary_kernel",
    "ternary_separable_cnn",
    "tiny_separable_cnn",
    "tiny_vae_head",
]
