"""hypertiny-keras: HyperTinyPW for Keras 3 and TensorFlow Lite Micro.

Pointwise (1x1) kernels are generated from tiny per-layer codes by one shared
micro-MLP; the generator runs once on the device and every inference after
that is a plain int8 CNN.

The public API. Names are imported on first use (PEP 562), so that
`import hypertiny_keras` and the `hypertiny` command start without
TensorFlow; the Keras layers are registered for `keras.saving.load_model`
as soon as Keras is imported (`utils.keras_registration`).
"""
import importlib as _importlib

from hypertiny_keras.utils.keras_registration import register_layers_with_keras as _register

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_API = {
    "HyperPointwise": "hypertiny_keras.layers",
    "PointwiseGenerator": "hypertiny_keras.layers",
    "generated_layers": "hypertiny_keras.layers",
    "hypertiny_pw": "hypertiny_keras.models",
    "stored_pw_twin": "hypertiny_keras.models",
    "ROLES": "hypertiny_keras.tflite.roles",
    "ByteTable": "hypertiny_keras.transforms.accounting",
    "byte_table": "hypertiny_keras.transforms.accounting",
    "packed_bytes": "hypertiny_keras.transforms.accounting",
    "freeze": "hypertiny_keras.transforms.freezing",
    "generated_kernels": "hypertiny_keras.transforms.freezing",
    "Hyperized": "hypertiny_keras.transforms.hyperizing",
    "HyperizeReport": "hypertiny_keras.transforms.hyperizing",
    "hyperize": "hypertiny_keras.transforms.hyperizing",
    "ExportError": "hypertiny_keras.export",
    "ExportOptions": "hypertiny_keras.export",
    "ExportReport": "hypertiny_keras.export",
    "ExportVerificationError": "hypertiny_keras.export",
    "export_tflite": "hypertiny_keras.export",
    "format_inspection": "hypertiny_keras.device.boards",
    "inspect_tflite": "hypertiny_keras.tflite.inspect",
    "personalize": "hypertiny_keras.training.personalize",
    "codes_file": "hypertiny_keras.training.personalize",
    "personalize_many": "hypertiny_keras.training.fleet",
    "pareto": "hypertiny_keras.sweeps.pareto_front",
    "plot_pareto": "hypertiny_keras.sweeps.pareto_front",
    "run_tasks": "hypertiny_keras.execution",
}
#: Public subpackages.
_SUBPACKAGES = (
    "data", "device", "evaluation", "execution", "export", "kernel_generators", "losses", "models", "sweeps", "tflite",
    "training",
)

__all__ = sorted(_API) + list(_SUBPACKAGES)


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return _importlib.import_module(f"{__name__}.{name}")
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


_register()
