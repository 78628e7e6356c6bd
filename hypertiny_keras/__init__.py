"""hypertiny-keras: HyperTinyPW for Keras 3 and TensorFlow Lite Micro.

Pointwise (1x1) kernels are generated from tiny per-layer codes by one shared
micro-MLP; the generator runs once on the device and every inference after
that is a plain int8 CNN.

The public names below are imported on first use (PEP 562), so that
`import hypertiny_keras` and the `hypertiny` command start without
TensorFlow. The Keras layers are registered for `keras.saving.load_model`
as soon as Keras itself is imported.
"""

import importlib as _importlib
import importlib.abc as _importlib_abc
import importlib.util as _importlib_util
import sys as _sys
import types as _types

__version__ = "0.1.0"

#: Public name -> the module it is defined in, imported on first access.
_LAZY = {
    "ROLES": "hypertiny_keras.accounting",
    "ByteTable": "hypertiny_keras.accounting",
    "byte_table": "hypertiny_keras.accounting",
    "packed_bytes": "hypertiny_keras.accounting",
    "ExportReport": "hypertiny_keras.export",
    "ExportVerificationError": "hypertiny_keras.export",
    "export_tflite": "hypertiny_keras.export",
    "format_inspection": "hypertiny_keras.export",
    "inspect_tflite": "hypertiny_keras.export",
    "freeze": "hypertiny_keras.freeze",
    "generated_kernels": "hypertiny_keras.freeze",
    "HyperPointwise": "hypertiny_keras.layers",
    "PointwiseGenerator": "hypertiny_keras.layers",
    "Hyperized": "hypertiny_keras.hyperize",
    "HyperizeReport": "hypertiny_keras.hyperize",
    "hyperize": "hypertiny_keras.hyperize",
    "hypertiny_pw": "hypertiny_keras.models",
    "stored_pw_twin": "hypertiny_keras.models",
    "ExportError": "hypertiny_keras.export",
    "generated_layers": "hypertiny_keras.layers",
    "pareto": "hypertiny_keras.pareto_front",
    "plot_pareto": "hypertiny_keras.pareto_front",
}
#: Public submodules, imported on first access.
_SUBMODULES = ("data", "evaluation", "kernel_generators", "losses", "models", "training")

__all__ = [
    "ROLES",
    "ByteTable",
    "ExportError",
    "ExportReport",
    "ExportVerificationError",
    "HyperPointwise",
    "Hyperized",
    "HyperizeReport",
    "PointwiseGenerator",
    "byte_table",
    "data",
    "evaluation",
    "generated_layers",
    "kernel_generators",
    "losses",
    "models",
    "training",
    "export_tflite",
    "format_inspection",
    "freeze",
    "generated_kernels",
    "hyperize",
    "hypertiny_pw",
    "inspect_tflite",
    "packed_bytes",
    "pareto",
    "plot_pareto",
    "stored_pw_twin",
]


def __getattr__(name: str):
    """Import the public `name` on first access and keep it in the package namespace."""
    if name in _SUBMODULES:
        return _importlib.import_module(f"{__name__}.{name}")
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))


class _Package(_types.ModuleType):
    """The package module: importing the submodule `freeze` must not hide the function `freeze`.

    The import system binds every imported submodule as an attribute of its
    package. For a public name that is a function of the same-named
    submodule (`hypertiny_keras.freeze.freeze`) that binding is ignored, so
    `hypertiny_keras.freeze` stays the function, as with eager imports.
    """

    def __setattr__(self, name: str, value) -> None:
        if name in _LAZY and isinstance(value, _types.ModuleType) and value.__name__ == f"{__name__}.{name}":
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package


class _RegisterLayersOnKerasImport(_importlib_abc.MetaPathFinder):
    """Imports `hypertiny_keras.layers` right after `keras` is imported, so that its layers are registered.

    Finds `keras` through the other finders and wraps the loader's
    `exec_module`; removes itself from `sys.meta_path` once Keras has loaded
    (a mere `importlib.util.find_spec("keras")`, as TensorFlow does, leaves it
    in place).
    """

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras":
            return None
        for finder in _sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_keras = spec.loader.exec_module

        def exec_module(module):
            exec_keras(module)
            if self in _sys.meta_path:
                _sys.meta_path.remove(self)
            _importlib.import_module("hypertiny_keras.layers")

        spec.loader.exec_module = exec_module
        return spec


if "keras" in _sys.modules:
    _importlib.import_module("hypertiny_keras.layers")
elif not any(isinstance(finder, _RegisterLayersOnKerasImport) for finder in _sys.meta_path):
    _sys.meta_path.insert(0, _RegisterLayersOnKerasImport())
