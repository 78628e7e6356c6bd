"""Export to int8 TFLite: frozen, or with a boot-time generator subgraph."""
from hypertiny_keras.export.boot import BootExportError, GeneratedLayer, add_init_subgraph
from hypertiny_keras.export.convert import convert_int8
from hypertiny_keras.export.inspect import format_inspection, inspect_tflite
from hypertiny_keras.export.tflite import (
    SYNTHESIS_MODES,
    ExportReport,
    ExportVerificationError,
    export_tflite,
)

__all__ = [
    "SYNTHESIS_MODES",
    "BootExportError",
    "ExportReport",
    "ExportVerificationError",
    "GeneratedLayer",
    "add_init_subgraph",
    "convert_int8",
    "export_tflite",
    "format_inspection",
    "inspect_tflite",
]
