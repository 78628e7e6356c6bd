"""Registers the package's Keras layers as soon as Keras is imported, without importing Keras first.

`import hypertiny_keras` must stay fast (the `hypertiny` command starts
without TensorFlow), yet `keras.saving.load_model` must find
`HyperPointwise` after only `import hypertiny_keras`. Keras resolves a
custom class only from its registry, so `hypertiny_keras.layers` (which
registers the classes) is imported right after `keras` itself: now if Keras
is loaded, else by a `sys.meta_path` finder that wraps Keras's loader and
removes itself once Keras has loaded (a mere `importlib.util.find_spec`,
as TensorFlow does, leaves it in place).
"""
from __future__ import annotations

import importlib
import importlib.abc
import sys

LAYERS_MODULE = "hypertiny_keras.layers"


class _AfterKeras(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != "keras":
            return None
        others = (f for f in sys.meta_path if f is not self and hasattr(f, "find_spec"))
        spec = next((s for s in (f.find_spec(fullname, path, target) for f in others) if s is not None), None)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_keras = spec.loader.exec_module

        def exec_module(module):
            exec_keras(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            importlib.import_module(LAYERS_MODULE)

        spec.loader.exec_module = exec_module
        return spec


def register_layers_with_keras() -> None:
    """Import `hypertiny_keras.layers` now if Keras is loaded, else right after Keras is first imported."""
    if "keras" in sys.modules:
        importlib.import_module(LAYERS_MODULE)
    elif not any(isinstance(finder, _AfterKeras) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterKeras())
