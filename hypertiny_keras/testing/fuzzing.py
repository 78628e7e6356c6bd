"""Random small architectures for checking the export's promises (the fuzz test and `benchmarks/fuzz.py`).

`Architecture` describes one model: 1-D or 2-D, widths, generated layers,
kernel generator (any registered kind, read live from
`kernel_generators.names()`), bias, activations, BatchNorm, residual Add,
Sequential or nested sub-model. `build` makes it with a realistic spread of
weights (Glorot kernels, codes and heads as initialised, BatchNorm
statistics drawn around their defaults); `check_export` exports it in both
synthesis modes and returns its outcome class. The promise: every model
either exports with the boot file bit-exact to its frozen equivalent in
TFLM and to the frozen file `export_tflite(synthesis="frozen")` writes
(one truth per model, every kind), the main graph within 1 step of LiteRT,
or its boot export is refused with an `ExportError` before anything is
written (its frozen export then still works or is refused the same way).
"""
from __future__ import annotations

import dataclasses
import pathlib

import keras
import numpy as np

from hypertiny_keras import kernel_generators
from hypertiny_keras.layers import HyperPointwise, PointwiseGenerator
from hypertiny_keras.layers.activations import ACTIVATIONS

WIDTHS = (1, 2, 3, 4, 8, 12, 16, 24, 32, 64, 96, 128)
PW_ACTIVATIONS = ("relu", "relu6", "tanh", None)
GENERATOR_ACTIVATIONS = tuple(ACTIVATIONS)
STYLES = ("functional", "sequential", "nested")


def kinds() -> tuple[str, ...]:
    """The kernel generators drawn: every registered kind, read from the registry when called.

    (`Architecture.rank` is `factorized`'s basis rank, the factor kinds' own; see `with_rank`.)
    """
    return kernel_generators.names()


@dataclasses.dataclass(frozen=True)
class Architecture:
    """One random model. `widths[0]` is the stored PW1's width; `widths[1:]` the generated layers'."""

    dims: int
    channels: int
    widths: tuple[int, ...]
    head: str
    rank: int
    code_dim: int
    hidden_dim: int
    generator_activation: str
    pw_activation: str | None
    use_bias: bool
    batch_norm: bool
    residual: bool
    style: str
    seed: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (24, self.channels) if self.dims == 1 else (8, 6, self.channels)


def random_architecture(rng: np.random.Generator, heads: tuple[str, ...] | None = None) -> Architecture:
    """An architecture drawn uniformly from the space above, its kernel generator from `heads` (default `kinds()`).

    The draws depend on `heads` only through its length and order (the
    registry's order: registering a kind changes the architectures a seed
    draws).
    """
    heads = kinds() if heads is None else tuple(heads)
    generated = int(rng.integers(1, 5))
    style = STYLES[int(rng.integers(len(STYLES)))]
    return Architecture(
        dims=int(rng.integers(1, 3)),
        channels=int(rng.integers(1, 4)),
        widths=tuple(int(w) for w in rng.choice(WIDTHS, generated + 1)),
        head=heads[int(rng.integers(len(heads)))],
        rank=int(rng.integers(1, 6)),
        code_dim=int(rng.integers(2, 7)),
        hidden_dim=int(rng.integers(4, 17)),
        generator_activation=GENERATOR_ACTIVATIONS[int(rng.integers(3))],
        pw_activation=PW_ACTIVATIONS[int(rng.integers(4))],
        use_bias=bool(rng.integers(2)),
        batch_norm=bool(rng.integers(2)),
        residual=bool(rng.integers(2)) and style != "sequential",
        style=style,
        seed=int(rng.integers(1 << 30)),
    )


def _blocks(arch: Architecture, generator: PointwiseGenerator) -> list[list[keras.layers.Layer]]:
    conv = keras.layers.Conv1D if arch.dims == 1 else keras.layers.Conv2D
    depthwise = keras.layers.DepthwiseConv1D if arch.dims == 1 else keras.layers.DepthwiseConv2D
    blocks = [[conv(arch.widths[0], 3, padding="same", activation="relu", name="stem")]]
    kind = kernel_generators.with_rank(arch.head, arch.rank)
    for i, width in enumerate(arch.widths[1:], start=2):
        block = [
            depthwise(3, padding="same", activation="relu", name=f"dw{i}"),
            HyperPointwise(width, generator if kind.uses_generator else None, head=kind,
                           activation=arch.pw_activation, use_bias=arch.use_bias, name=f"pw{i}"),
        ]
        if arch.batch_norm:
            block.append(keras.layers.BatchNormalization(name=f"bn{i}"))
        blocks.append(block)
    return blocks


def build(arch: Architecture) -> keras.Model:
    """The model of `arch`, with realistic random weights (no training)."""
    keras.utils.set_random_seed(arch.seed)
    rank = arch.rank if kernel_generators.get(arch.head).uses_basis else None
    generator = PointwiseGenerator(arch.code_dim, arch.hidden_dim, arch.generator_activation, rank=rank,
                                   bias_initializer="random_normal", name="generator")
    pool = keras.layers.GlobalAveragePooling1D if arch.dims == 1 else keras.layers.GlobalAveragePooling2D
    blocks = _blocks(arch, generator)
    tail = [pool(name="pool"), keras.layers.Dense(3, name="classifier")]
    if arch.style == "sequential":
        model = keras.Sequential([keras.Input(arch.input_shape)] + sum(blocks, []) + tail, name="fuzz")
    else:
        inputs = keras.Input(arch.input_shape)
        x = inputs
        for block in blocks:
            y = x
            for layer in block:
                y = layer(y)
            x = keras.layers.Add()([x, y]) if arch.residual and y.shape == x.shape and block is not blocks[0] else y
        body = keras.Model(inputs, x, name="body")
        if arch.style == "nested":
            outer = keras.Input(arch.input_shape)
            y = body(outer)
            for layer in tail:
                y = layer(y)
            model = keras.Model(outer, y, name="fuzz")
        else:
            y = x
            for layer in tail:
                y = layer(y)
            model = keras.Model(inputs, y, name="fuzz")
    rng = np.random.default_rng(arch.seed)
    for layer in model.layers + [inner for m in model.layers if isinstance(m, keras.Model) for inner in m.layers]:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), rng.normal(0, 0.3, c),
                               rng.uniform(0.3, 2.0, c)])
    return model


def representative_data(arch: Architecture, samples: int = 48) -> np.ndarray:
    """Float inputs `(samples, *arch.input_shape)`: smooth random signals."""
    rng = np.random.default_rng(arch.seed + 1)
    x = rng.normal(0, 1, (samples, *arch.input_shape)).cumsum(axis=1) / 3.0
    return x.astype(np.float32)


def _classify_refusal(error: Exception) -> str:
    """The reason of an `ExportError`, without its layer name, so that refusals group by reason."""
    message = str(error)
    head, _, rest = message.partition(": ")
    if rest and " " not in head:  # "<layer>: why" -> the why
        message = rest
    return message.split(":")[0][:80]


def _export(model, x, path: pathlib.Path, synthesis: str):
    """(report or None, outcome, detail) of one `export_tflite` call; outcome `None` when it exported."""
    from hypertiny_keras.export import ExportError, ExportVerificationError, export_tflite

    try:
        return export_tflite(model, x, path, synthesis=synthesis, verify_samples=32), None, ""
    except ExportError as error:
        if path.exists():
            return None, "broken", f"{synthesis}: file written despite: {error}"
        return None, "refused", _classify_refusal(error)
    except ExportVerificationError as error:
        if error.only_float_distance and not path.exists():
            return None, "refused", "int8 too far from the float model"
        return None, "broken", f"{synthesis}: {error}"
    except Exception as error:  # noqa: BLE001 (an unexpected failure is a broken promise)
        return None, "broken", f"{synthesis}: {type(error).__name__}: {error}"


def tflm_outputs(path: pathlib.Path, x: np.ndarray) -> tuple[np.ndarray, object]:
    """TFLM's raw outputs of the `.tflite` at `path` on float inputs `x`, and the file's output quantization."""
    from hypertiny_keras.device.runtime import io_quantization, run_tflm

    data = path.read_bytes()
    input_q, output_q = io_quantization(data)
    return run_tflm(data, input_q.quantize(x)).outputs, output_q


def check_architecture(arch: Architecture) -> list[str]:
    """`[outcome, detail]` of `check_export(arch, ...)` in a fresh temporary folder: one `execution` task."""
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        return list(check_export(arch, pathlib.Path(directory)))


def check_export(arch: Architecture, directory: pathlib.Path) -> tuple[str, str]:
    """Export `arch` boot and frozen (two `export_tflite` calls) and classify what happened.

    Returns:
        (outcome, detail): `"exported"` (both files written, every promise
        checked by the export held, and the boot and frozen files give the
        same outputs bit for bit in TFLM on the representative data),
        `"refused"` (the boot export raised an `ExportError` before or at
        the rewrite, or its int8 outputs were too far from the float model;
        nothing written; the frozen export then exported or was refused
        too), or `"broken"` (anything else: a verification failure, an
        unexpected exception, a file written despite an error, a frozen
        export failing where the boot export worked, boot != frozen).
    """
    model = build(arch)
    x = representative_data(arch)
    directory = pathlib.Path(directory)
    boot_path, frozen_path = directory / "boot.tflite", directory / "frozen.tflite"
    boot, outcome, detail = _export(model, x, boot_path, "boot")
    if outcome == "broken":
        return outcome, detail
    frozen, frozen_outcome, frozen_detail = _export(model, x, frozen_path, "frozen")
    if frozen_outcome == "broken" or (boot is not None and frozen is None):
        return "broken", f"frozen export failed where boot worked: {frozen_detail}"
    if boot is None:
        return outcome, detail
    v = boot.verification
    if not (v["boot_vs_equivalent_identical"] and v["tflm_vs_litert_max_steps"] <= 1
            and frozen.verification["tflm_vs_litert_max_steps"] <= 1):
        return "broken", f"report accepted: {v}"
    (boot_out, boot_q), (frozen_out, frozen_q) = tflm_outputs(boot_path, x), tflm_outputs(frozen_path, x)
    if boot_q != frozen_q or not np.array_equal(boot_out, frozen_out):
        steps = np.abs(boot_out.astype(np.int64) - frozen_out.astype(np.int64))
        return "broken", f"boot != frozen in TFLM: {int(np.sum(steps > 0))} outputs differ, by up to {steps.max()}"
    return "exported", ""
