"""Keras layers of HyperTinyPW."""
from hypertiny_keras.layers.generator import GENERATOR_ACTIVATIONS, PointwiseGenerator
from hypertiny_keras.layers.hyper_pointwise import HEAD_MODES, HyperPointwise
from hypertiny_keras.layers.search import all_layers, generated_layers, paired_layers

__all__ = [
    "GENERATOR_ACTIVATIONS",
    "HEAD_MODES",
    "HyperPointwise",
    "PointwiseGenerator",
    "all_layers",
    "generated_layers",
    "paired_layers",
]
