"""Export to int8 TFLite: frozen, or with a boot-time generator subgraph.

The pipeline, one module per stage: `analyze` (every input problem, before
conversion) -> `convert` (the TFLite converter) -> `rewrite` (the init
subgraph of a boot file) -> `verify` (TFLM as the reference, LiteRT on the
main graph) -> `write` (model and report, both or neither); `export_tflite`
runs them in order.
"""
from hypertiny_keras.export.analyze import SYNTHESIS_MODES, ExportError, ExportPlan, analyze
from hypertiny_keras.export.convert import convert, convert_int8
from hypertiny_keras.export.inspect import format_inspection, inspect_tflite
from hypertiny_keras.export.rewrite import (
    BootExportError,
    Emitter,
    GeneratedLayer,
    Rewrite,
    add_init_subgraph,
    frozen_equivalent,
)
from hypertiny_keras.export.tflite import ExportReport, ExportVerificationError, export_tflite
from hypertiny_keras.export.verify import verify
from hypertiny_keras.export.write import write_pair

__all__ = [
    "SYNTHESIS_MODES",
    "BootExportError",
    "Emitter",
    "ExportError",
    "ExportPlan",
    "ExportReport",
    "ExportVerificationError",
    "GeneratedLayer",
    "Rewrite",
    "add_init_subgraph",
    "analyze",
    "convert",
    "convert_int8",
    "export_tflite",
    "format_inspection",
    "frozen_equivalent",
    "inspect_tflite",
    "verify",
    "write_pair",
]
