"""Stage 1 of the export, analyze: every problem of the model, data and paths, found before conversion.

`analyze` returns an `ExportPlan` or raises one `ExportError` whose message
names what is wrong (a layer, a weight, a path, a shape). Nothing after it
should fail on the user's input; what fails later is a converter or
verification finding.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib

import keras
import numpy as np

from hypertiny_keras.export.errors import ExportError
from hypertiny_keras.export.options import ExportOptions
from hypertiny_keras.export.write import check_paths
from hypertiny_keras.layers import HyperPointwise, PointwiseGenerator, all_layers, generated_layers, require_functional


@dataclasses.dataclass
class ExportPlan:
    """What `analyze` found and checked: the inputs of every later stage.

    `x` is the representative data as float32 `(n, *input_shape[1:])`;
    `layers` the generated layers in model order (nested models included);
    `generator` their one shared `PointwiseGenerator` (or `None`);
    `options` the export's validated choices.
    """

    model: keras.Model
    x: np.ndarray
    path: pathlib.Path
    report_path: pathlib.Path
    options: ExportOptions
    layers: list[HyperPointwise]
    generator: PointwiseGenerator | None


def check_representative_data(model: keras.Model, data) -> np.ndarray:
    """Validate calibration data: float, finite, not all one value, shaped `(n, *input_shape[1:])`; returns float32."""
    try:
        data = np.asarray(data)
    except (ValueError, TypeError) as error:
        raise ExportError(f"representative_data is not an array: {error}") from None
    if not np.issubdtype(data.dtype, np.floating):
        raise ExportError(
            f"representative_data must be float (the model's float inputs), got dtype {data.dtype}"
        )
    expected = tuple(model.inputs[0].shape[1:])
    if data.ndim != len(expected) + 1 or tuple(data.shape[1:]) != expected or len(data) == 0:
        raise ExportError(
            f"representative_data must have shape (n, {', '.join(map(str, expected))}) "
            f"with n >= 1, got {data.shape}"
        )
    if not np.isfinite(data).all():
        raise ExportError("representative_data contains NaN or infinite values")
    if float(data.max()) == float(data.min()):
        raise ExportError(
            f"representative_data holds one value only ({float(data.min()):g}): calibration needs inputs that span "
            "the range the model is fed"
        )
    return data.astype(np.float32)


def _check_structure(model: keras.Model) -> None:
    if not isinstance(model, keras.Model):
        raise ExportError(f"model must be a keras.Model, got {type(model).__name__}")
    inputs, outputs = list(model.inputs or []), list(model.outputs or [])
    if len(inputs) != 1:
        raise ExportError(
            f"model {model.name!r} has {len(inputs)} inputs ({', '.join(str(tuple(t.shape)) for t in inputs)}); "
            "export supports one input only"
        )
    unknown = [i for i, d in enumerate(inputs[0].shape) if d is None and i > 0]
    if unknown:
        raise ExportError(
            f"model {model.name!r} has the input shape {tuple(inputs[0].shape)}: export needs every size but the "
            "batch fixed (build the model with e.g. keras.Input(shape=(256, 1)))"
        )
    if len(outputs) != 1:
        raise ExportError(
            f"model {model.name!r} has {len(outputs)} outputs ({', '.join(str(tuple(t.shape)) for t in outputs)}); "
            "export supports one output only"
        )


def _check_weights(model: keras.Model) -> None:
    for layer in all_layers(model):
        if isinstance(layer, keras.Model):
            continue
        for weight in layer.weights:
            values = keras.ops.convert_to_numpy(weight)
            if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
                raise ExportError(
                    f"layer {layer.name!r}: weight {weight.path!r} holds {int((~np.isfinite(values)).sum())} "
                    "NaN or infinite values"
                )


def _check_generated(model: keras.Model, layers: list[HyperPointwise]) -> PointwiseGenerator | None:
    require_functional(model, "export", ExportError)
    names = [layer.name for layer in layers]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ExportError(f"generated layers must have distinct names; repeated: {', '.join(repeated)}")
    for layer in layers:
        rank = len(layer.input.shape)
        if rank not in (3, 4):
            raise ExportError(
                f"layer {layer.name!r} has a rank-{rank} input; generated layers need 1-D (batch, steps, C) "
                "or 2-D (batch, H, W, C) inputs"
            )
    generators: dict[int, tuple[PointwiseGenerator, list[str]]] = {}
    for layer in layers:
        if layer.kernel_generator.uses_generator:
            generators.setdefault(id(layer.generator), (layer.generator, []))[1].append(layer.name)
    if len(generators) > 1:
        groups = "; ".join(f"{g.name}: {', '.join(n)}" for g, n in generators.values())
        raise ExportError(f"boot export supports one shared generator per model, found {len(generators)} ({groups})")
    return next(iter(generators.values()))[0] if generators else None


def analyze(
    model: keras.Model,
    representative_data,
    path: str | os.PathLike,
    options: ExportOptions = ExportOptions(),
) -> ExportPlan:
    """Check everything `export_tflite` needs before it converts (see its arguments).

    The options were validated when they were made (`ExportOptions`); this
    checks the model, the data and the paths against them.

    Raises:
        ExportError: one message naming the first problem found.
    """
    path, report_path = check_paths(path)
    _check_structure(model)
    layers = generated_layers(model)
    if options.synthesis == "boot" and not layers:
        raise ExportError(f"boot export needs HyperPointwise layers; model {model.name!r} has none")
    generator = _check_generated(model, layers) if layers else None
    _check_weights(model)
    x = check_representative_data(model, representative_data)
    return ExportPlan(model=model, x=x, path=path, report_path=report_path, options=options, layers=layers,
                      generator=generator)
