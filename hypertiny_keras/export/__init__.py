"""Export to int8 TFLite: frozen, or with a boot-time generator subgraph.

The pipeline, one module per stage: `analyze` (every input problem, before
conversion) -> `convert` (the TFLite converter) -> `rewrite` (the init
subgraph of a boot file) -> `verify` (TFLM as the reference, LiteRT on the
main graph) -> `write` (model and report, both or neither); `export_tflite`
runs them in order.

Names are imported on first use (PEP 562): `hypertiny inspect` reads a file
through `export.inspect` without importing Keras or TensorFlow. The stage
functions named like their modules are reached through them
(`export.analyze.analyze`, `export.convert.convert`, `export.verify.verify`).
"""
import importlib as _importlib

#: Public name -> the stage module it is defined in.
_LAZY = {
    "SYNTHESIS_MODES": "analyze",
    "ExportError": "analyze",
    "ExportPlan": "analyze",
    "convert_int8": "convert",
    "BootExportError": "rewrite",
    "Emitter": "rewrite",
    "GeneratedLayer": "rewrite",
    "Rewrite": "rewrite",
    "add_init_subgraph": "rewrite",
    "frozen_equivalent": "rewrite",
    "ExportReport": "tflite",
    "ExportVerificationError": "tflite",
    "export_tflite": "tflite",
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
