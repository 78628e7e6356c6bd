"""Kernel generators: the ways a `HyperPointwise` layer makes its pointwise kernel, found by name.

A kernel generator is one class registered under a name (`"dense"`,
`"factorized"`, `"lowrank"`, `"kronecker"`, and their cross-layer forms
`"lowrank_shared"`, `"kronecker_shared"`) and resolved like Keras
activations: `get(name_or_config)` and `serialize(kernel_generator)`.
`HyperPointwise(head=...)`, `hypertiny_pw(head=...)` and `hyperize(head=...)`
take any of these. A kernel generator owns everything that depends on how
its kernel is made: the Keras weights it adds to a `HyperPointwise` layer,
the float kernel, the tensors counted by `accounting.byte_table`, and the
init-subgraph operators (with their exact int8 rounding) of the boot export.

The registry is the extension point: a new kernel generator is one class,
defined anywhere, with `@register` (a taken name is refused unless
`register(cls, override=True)`; `unregister(name)` removes one). `names()`
reads the registry when called, so every part of the package sees kernel
generators registered after import.
"""
from hypertiny_keras.kernel_generators.base import (
    KernelGenerator,
    KernelGeneratorLike,
    LinearHead,
    factor_std,
    get,
    glorot_std,
    names,
    register,
    serialize,
    unregister,
    with_rank,
)
from hypertiny_keras.kernel_generators.dense import DenseHead
from hypertiny_keras.kernel_generators.factorized import FactorizedHead
from hypertiny_keras.kernel_generators.kronecker import Kronecker
from hypertiny_keras.kernel_generators.lowrank import LowRank
from hypertiny_keras.kernel_generators.product import FactorProduct
from hypertiny_keras.kernel_generators.shared import KroneckerShared, LowRankShared, SharedFactors

__all__ = [
    "DenseHead",
    "FactorProduct",
    "FactorizedHead",
    "KernelGenerator",
    "KernelGeneratorLike",
    "Kronecker",
    "KroneckerShared",
    "LinearHead",
    "LowRank",
    "LowRankShared",
    "SharedFactors",
    "factor_std",
    "get",
    "glorot_std",
    "names",
    "register",
    "serialize",
    "unregister",
    "with_rank",
]
