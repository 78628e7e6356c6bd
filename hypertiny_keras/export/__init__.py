"""Export to int8 TFLite: frozen, or with a boot-time generator subgraph.

The pipeline, one module per stage: `analyze` (every input problem, before
conversion) -> `convert` (the TFLite converter) -> `rewrite` (the init
subgraph of a boot file, the frozen equivalent where it is the frozen
file) -> `shrink` (flatbuffer diet, names stripped) -> `verify` (TFLM as
the reference, LiteRT on the main graph) -> `write` (model and report, both
or neither); `export_tflite` runs them in order with one `ExportOptions`.
The rewrite's parts: `init_subgraph` (`add_init_subgraph`), `emitter`
(the API kernel generators emit their steps through), `solver` (integer
heads), `model_writer` (flatbuffer appends), `conv_matching`, `equivalent`
(`frozen_equivalent`), `fixed_point` (TFLM's arithmetic). Errors live in
`errors`, the report in `report`.

Names are imported on first use (PEP 562): importing the package imports
neither Keras nor TensorFlow. The stage functions named like their modules
are reached through them (`export.analyze.analyze`, `export.convert.convert`, `export.verify.verify`,
`export.rewrite.rewrite`, `export.shrink.shrink`).
"""
import importlib as _importlib

#: Public name -> the stage module it is defined in.
_LAZY = {
    "SYNTHESIS_MODES": "options",
    "ExportOptions": "options",
    "ExportError": "errors",
    "BootExportError": "errors",
    "ExportVerificationError": "errors",
    "ExportPlan": "analyze",
    "convert_int8": "convert",
    "Emitter": "emitter",
    "GeneratedLayer": "init_subgraph",
    "Rewrite": "init_subgraph",
    "add_init_subgraph": "init_subgraph",
    "frozen_equivalent": "equivalent",
    "ExportReport": "report",
    "export_tflite": "pipeline",
    "write_pair": "write",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    """Import the public `name` from its stage module on first access."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _importlib.import_module(f"{__name__}.{_LAZY[name]}")
    value = getattr(module, name)
    globals()[name] = value
    return value
