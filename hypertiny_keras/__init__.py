"""hypertiny-keras: HyperTinyPW for Keras 3 and TensorFlow Lite Micro.

Pointwise (1x1) kernels are generated from tiny per-layer codes by one shared
micro-MLP; the generator runs once on the device and every inference after
that is a plain int8 CNN.
"""
from hypertiny_keras import data, evaluation, losses, training
from hypertiny_keras.accounting import ROLES, ByteTable, byte_table, packed_bytes
from hypertiny_keras.export import (
    ExportReport,
    ExportVerificationError,
    export_tflite,
    format_inspection,
    inspect_tflite,
)
from hypertiny_keras.freeze import freeze, generated_kernels
from hypertiny_keras.layers import HyperPointwise, PointwiseGenerator
from hypertiny_keras.models import hypertiny_pw, stored_pw_twin

__version__ = "0.1.0"

__all__ = [
    "ROLES",
    "ByteTable",
    "ExportReport",
    "ExportVerificationError",
    "HyperPointwise",
    "PointwiseGenerator",
    "byte_table",
    "data",
    "evaluation",
    "losses",
    "training",
    "export_tflite",
    "format_inspection",
    "freeze",
    "generated_kernels",
    "hypertiny_pw",
    "inspect_tflite",
    "packed_bytes",
    "stored_pw_twin",
]
