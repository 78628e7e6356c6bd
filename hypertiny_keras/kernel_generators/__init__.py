"""Kernel generators: the kinds of generated pointwise kernel, found by name.

Each kind is one class registered under a name (`"dense"`, `"factorized"`,
`"lowrank"`, `"kronecker"`, and their cross-layer forms `"lowrank_shared"`,
`"kronecker_shared"`) and resolved like Keras activations: `get(name_or_config)` and
`serialize(kind)`. A kind owns everything that depends on how its kernel is
made: the Keras weights it adds to a `HyperPointwise` layer, the float
kernel, the tensors counted by `accounting.byte_table`, and the init-subgraph
operators (with their exact int8 rounding) of the boot export. A new kind is
one class with `@register`.
"""
from hypertiny_keras.kernel_generators.base import (
    KernelGenerator,
    LinearHead,
    get,
    names,
    register,
    serialize,
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
    "Kronecker",
    "KroneckerShared",
    "LinearHead",
    "LowRank",
    "LowRankShared",
    "SharedFactors",
    "get",
    "names",
    "register",
    "serialize",
    "with_rank",
]
