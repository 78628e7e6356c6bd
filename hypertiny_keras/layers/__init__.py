"""Keras layers of HyperTinyPW."""
from hypertiny_keras.layers.activations import GENERATOR_ACTIVATIONS
from hypertiny_keras.layers.generator import PointwiseGenerator
from hypertiny_keras.layers.hyper_pointwise import HyperPointwise
from hypertiny_keras.layers.search import (
    all_layers,
    generated_layers,
    is_functional,
    paired_layers,
    require_functional,
)

__all__ = [
    "GENERATOR_ACTIVATIONS",
    "HyperPointwise",
    "PointwiseGenerator",
    "all_layers",
    "generated_layers",
    "is_functional",
    "paired_layers",
    "require_functional",
]
