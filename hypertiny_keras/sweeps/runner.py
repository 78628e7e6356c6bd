"""One experiment run: train a model on a dataset split, evaluate float and int8-in-TFLM, export, count bytes.

The recipes in `recipes/` call `run_model` once per (model, seed) and
`save_model_results` to write `benchmarks/results/<dataset>/<model>.json`.
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import tempfile
import time
from collections.abc import Callable

import keras
import numpy as np

from hypertiny_keras.data.windows import Windows
from hypertiny_keras.device.runtime import predict
from hypertiny_keras.evaluation.evaluate import evaluate_logits
from hypertiny_keras.export import ExportVerificationError, export_tflite
from hypertiny_keras.layers import generated_layers
from hypertiny_keras.transforms.accounting import byte_table
from hypertiny_keras.utils.fileio import atomic_write

#: Weight widths of the packed-byte accounting reported for every model.
BITS = (8, 6, 4)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model of the suite: `build(input_shape, num_classes) -> keras.Model` (logits).

    `loss` holds `HyperTinyLoss` term weights for this model (cross-entropy
    only when empty); a model whose loss uses `kd` or `feature` is trained
    against the recipe's teacher.

    `inputs` computes the model's inputs from the windows (e.g. `(N, 16)` HRV
    features; default: the windows themselves). `deploy` splits a trained
    model into the part exported to int8 and the float step the device runs
    on its inputs before it (default: the whole model, no step).
    `export_options` are passed to every `export_tflite` of the model (e.g.
    `{"init_weight_bits": 4}`).
    """

    name: str
    build: Callable[[tuple, int], keras.Model]
    description: str = ""
    loss: dict = dataclasses.field(default_factory=dict)
    inputs: Callable[[Windows], np.ndarray] | None = None
    deploy: Callable[[keras.Model], tuple[keras.Model, Callable[[np.ndarray], np.ndarray]]] | None = None
    export_options: dict = dataclasses.field(default_factory=dict)

    @property
    def needs_teacher(self) -> bool:
        return bool(self.loss.get("kd") or self.loss.get("feature"))


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Training and evaluation settings shared by every model of a recipe."""

    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 3e-3
    patience: int | None = 5  # early stopping on validation macro-F1
    kernel: int = 5  # median-smoothing length in windows (binary tasks)
    bootstrap: int = 1000
    export: bool = True
    calibration: int = 200  # representative windows for int8 calibration
    packed_bits: tuple[int, ...] = BITS  # widths at which generated models are also evaluated packed


def _split_arrays(windows: Windows, split: str) -> Windows:
    part = windows.select(split)
    if len(part) == 0:
        raise ValueError(f"split {split!r} has no windows")
    return part


def _evaluate_logits(val: Windows, test: Windows, val_logits, test_logits, settings: RunSettings, seed: int) -> dict:
    return evaluate_logits(val, test, val_logits, test_logits, kernel=settings.kernel,
                           n_resamples=settings.bootstrap, seed=seed)


def evaluate_file(
    data: bytes,
    windows: Windows,
    settings: RunSettings,
    seed: int,
    device_step: Callable[[np.ndarray], np.ndarray] = lambda x: x,
) -> dict:
    """An int8 `.tflite` run in TFLM on the `val` and `test` splits of `windows`, scored as the float model is.

    `device_step` maps the windows to the file's input (the identity unless a
    spec deploys a front end). Returns the evaluation dict (t* from `val`,
    metrics on `test`) of `_evaluate_model`.
    """
    val, test = _split_arrays(windows, "val"), _split_arrays(windows, "test")
    return _evaluate_logits(val, test, predict(data, device_step(val.x)), predict(data, device_step(test.x)),
                            settings, seed)


def flash_bytes(model: keras.Model) -> int:
    """Eq. 6 packed flash bytes of the deployed model: 8-bit weights, or 2-bit kernels for ternary models."""
    from hypertiny_research.ternary import TERNARY_LAYERS, ternary_bytes

    if any(isinstance(layer, TERNARY_LAYERS) for layer in model.layers):
        return int(ternary_bytes(model)["total"])
    return int(byte_table(model, bits=(8,)).total[8])


def _adapt_input_normalization(model: keras.Model, x: np.ndarray) -> None:
    """Adapt every `Normalization` layer that reads the model input to the training inputs `x`."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Normalization) and layer.input is model.input:
            layer.adapt(x)


def _evaluate_model(model, val: Windows, test: Windows, settings: RunSettings, seed: int) -> dict:
    return _evaluate_logits(
        val,
        test,
        model.predict(val.x, verbose=0, batch_size=256),
        model.predict(test.x, verbose=0, batch_size=256),
        settings,
        seed,
    )


def run_model(
    spec: ModelSpec,
    windows: Windows,
    seed: int,
    settings: RunSettings,
    export_dir: str | pathlib.Path | None = None,
    teacher: keras.Model | None = None,
) -> tuple[dict, keras.Model]:
    """Train `spec` on `train` (early stopping on `val`), evaluate on `val`/`test`, export and run in TFLM.

    Training is `hypertiny_keras.training.train` (AdamW, clipping, EMA,
    NaN-safe). The RAW weights and the EMA weights are each evaluated with
    their own validation-tuned t*; models with generated layers are also
    evaluated with generator, heads and codes packed to 8, 6 and 4 bits.

    Returns the JSON-ready result (config, seed, epochs, wall time, float
    RAW/EMA metrics, packed-width metrics, int8 metrics from TFLM, packed
    bytes at 8/6/4 bits, per exported file its bytes by role, arena bytes and
    generated-weight RAM bytes) and the trained RAW model.
    """
    from hypertiny_keras.training import TrainConfig, pack_model
    from hypertiny_keras.training import train as train_model

    start = time.perf_counter()
    if spec.inputs is not None:
        windows = dataclasses.replace(windows, x=np.asarray(spec.inputs(windows), np.float32))
    train, val, test = (_split_arrays(windows, s) for s in ("train", "val", "test"))
    if spec.needs_teacher and teacher is None:
        raise ValueError(f"{spec.name} is trained with KD / feature matching and needs a teacher")
    keras.utils.set_random_seed(seed)
    model = spec.build(tuple(windows.x.shape[1:]), len(windows.class_names))
    _adapt_input_normalization(model, train.x)
    config = TrainConfig(
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.learning_rate,
        patience=settings.patience,
        seed=seed,
        loss=dict(spec.loss),
    )
    trained = train_model(model, (train.x, train.y), (val.x, val.y), config,
                          teacher=teacher if spec.needs_teacher else None)
    model = trained.model
    generated = bool(generated_layers(model))
    result = {
        "model": spec.name,
        "description": spec.description,
        "seed": seed,
        "settings": dataclasses.asdict(settings),
        "train_config": config.to_json(),
        "params": int(model.count_params()),
        "train_seconds": trained.wall_time,
        "epochs_run": trained.epochs_run,
        "best_epoch": trained.best_epoch,
        "stop_reason": trained.stop_reason,
        "float": _evaluate_model(model, val, test, settings, seed),
        "float_ema": (
            _evaluate_model(trained.ema_model, val, test, settings, seed) if trained.ema_model is not None else None
        ),
        "packed": {},
        "packed_bytes": byte_table(model, bits=BITS).to_dict(),
        "flash_bytes": flash_bytes(model),
        "exports": {},
    }
    if generated:
        for bits in settings.packed_bits:
            packed = pack_model(model, bits)
            result["packed"][str(bits)] = {
                "bytes": packed.table.total[bits],
                "evaluation": _evaluate_model(packed.model, val, test, settings, seed),
            }
    if settings.export:
        deployed, device_step = spec.deploy(model) if spec.deploy else (model, lambda x: x)
        with tempfile.TemporaryDirectory() as tmp:
            directory = pathlib.Path(export_dir or tmp)
            directory.mkdir(parents=True, exist_ok=True)
            calibration = train.x[np.random.default_rng(seed).permutation(len(train))[: settings.calibration]]
            for mode in ("frozen", "boot") if generated else ("frozen",):
                path = directory / f"{spec.name}_seed{seed}_{mode}.tflite"
                try:
                    options = spec.export_options if mode == "boot" else {}
                    report = export_tflite(deployed, device_step(calibration), path, synthesis=mode, **options)
                except ExportVerificationError as error:  # recorded; the other runs go on
                    result["exports"][mode] = {"error": str(error)}
                    continue
                entry = {k: getattr(report, k) for k in ("file_bytes", "bytes_by_role", "arena_bytes",
                                                         "generated_weight_ram_bytes", "verification")}
                if mode == ("boot" if generated else "frozen"):
                    entry["int8_tflm"] = evaluate_file(path.read_bytes(), windows, settings, seed, device_step)
                result["exports"][mode] = entry
    result["wall_seconds"] = time.perf_counter() - start
    return result, model


def _summary(runs: list[dict], path: tuple[str, ...]) -> dict[str, float]:
    values = []
    for run in runs:
        node = run
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            values.append(float(node))
    if not values:
        return {}
    return {"mean": float(np.mean(values)), "std": float(np.std(values)), "n": len(values)}


def save_model_results(path: str | pathlib.Path, dataset: str, command: str, runs: list[dict]) -> dict:
    """Write one model's runs (one per seed) with mean and std of the headline figures."""
    deployed = "boot" if any("boot" in r["exports"] for r in runs) else "frozen"
    metric_names = runs[0]["float"]["metrics"].keys()
    summary = {
        "float": {m: _summary(runs, ("float", "metrics", m, "value")) for m in metric_names},
        "float_ema": {m: _summary(runs, ("float_ema", "metrics", m, "value")) for m in metric_names},
        "packed_macro_f1": {
            bits: _summary(runs, ("packed", bits, "evaluation", "metrics", "macro_f1", "value"))
            for bits in ("8", "6", "4")
        },
        "int8_tflm": {
            m: _summary(runs, ("exports", deployed, "int8_tflm", "metrics", m, "value")) for m in metric_names
        },
        "flash_bytes": _summary(runs, ("flash_bytes",)),
        "tflite_bytes": _summary(runs, ("exports", deployed, "file_bytes")),
        "arena_bytes": _summary(runs, ("exports", deployed, "arena_bytes")),
        "wall_seconds": _summary(runs, ("wall_seconds",)),
    }
    content = {
        "dataset": dataset,
        "model": runs[0]["model"],
        "command": command,
        "deployed_file": deployed,
        "seeds": [r["seed"] for r in runs],
        "summary": summary,
        "runs": runs,
    }
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(content, indent=2).encode())
    return content
