"""Random small architectures for checking the export's promises (the fuzz test and `benchmarks/fuzz.py`).

`Architecture` describes one model: 1-D or 2-D, widths, generated layers,
kernel generator, bias, activations, BatchNorm, residual Add, Sequential or
nested sub-model. `build` makes it with a realistic spread of weights
(Glorot kernels, codes and heads as initialised, BatchNorm statistics
drawn around their defaults); `check_export` exports it and returns its
outcome class. The promise: every model either exports with the boot file
bit-exact to its frozen equivalent in TFLM, and to the converter's frozen
file for kinds that solve for it (`dense`, `factorized`), the main graph
within 1 step of LiteRT, or is refused with an `ExportError` before
anything is written.
"""
from __future__ import annotations

import dataclasses
import pathlib

import keras
import numpy as np

from hypertiny_keras import kernel_generators
from hypertiny_keras.layers.activations import ACTIVATIONS
from hypertiny_keras.layers import HyperPointwise, PointwiseGenerator

WIDTHS = (1, 2, 3, 4, 8, 12, 16, 24, 32, 64, 96, 128)
PW_ACTIVATIONS = ("relu", "relu6", "tanh", None)
GENERATOR_ACTIVATIONS = tuple(ACTIVATIONS)
STYLES = ("functional", "sequential", "nested")
#: Kernel generators drawn (`rank`: `factorized`'s basis, the factor kinds' own; see `with_rank`).
HEADS = ("dense", "factorized", "lowrank", "kronecker", "lowrank_shared", "kronecker_shared")


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


def random_architecture(rng: np.random.Generator, heads: tuple[str, ...] = HEADS) -> Architecture:
    """An architecture drawn uniformly from the space above, its kernel generator from `heads`.

    The draws depend on `heads` only through its length and order: the
    first four `HEADS` give the architectures of runs made before the
    cross-layer kinds existed.
    """
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
    for layer in model.layers + [l for m in model.layers if isinstance(m, keras.Model) for l in m.layers]:
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


def check_export(arch: Architecture, directory: pathlib.Path) -> tuple[str, str]:
    """Export `arch` (boot) and classify what happened.

    Returns:
        (outcome, detail): `"exported"` (every promise checked by the
        export held), `"refused"` (an `ExportError` before or at the
        rewrite, or int8 outputs too far from the float model; nothing
        written), or `"broken"` (anything else: a
        verification failure, an unexpected exception, or a file written
        despite an error).
    """
    from hypertiny_keras.export import ExportError, ExportVerificationError, export_tflite

    model = build(arch)
    x = representative_data(arch)
    path = pathlib.Path(directory) / "model.tflite"
    try:
        report = export_tflite(model, x, path, synthesis="boot", verify_samples=32)
    except ExportError as error:
        if path.exists():
            return "broken", f"file written despite: {error}"
        message = str(error)
        head, _, rest = message.partition(": ")
        if rest and " " not in head:  # "<layer>: why" -> the why, so refusals group by reason
            message = rest
        return "refused", message.split(":")[0][:80]
    except ExportVerificationError as error:
        if error.only_float_distance and not path.exists():
            return "refused", "int8 too far from the float model"
        return "broken", str(error)
    except Exception as error:  # noqa: BLE001 (an unexpected failure is a broken promise)
        return "broken", f"{type(error).__name__}: {error}"
    v = report.verification
    # Kinds that solve for the converter's filter must equal the converter's frozen file; the factor
    # kinds (one kernel scale, no free value per kernel value) equal their own frozen equivalent.
    same_as_frozen = v["boot_vs_frozen_identical"] or (
        v["boot_vs_frozen_identical"] is None and not kernel_generators.get(arch.head).solves_target
    )
    if not (v["boot_vs_equivalent_identical"] and same_as_frozen and v["tflm_vs_litert_max_steps"] <= 1):
        return "broken", f"report accepted: {v}"
    return "exported", ""
