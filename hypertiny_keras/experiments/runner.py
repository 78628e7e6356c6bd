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

from hypertiny_keras.accounting import byte_table
from hypertiny_keras.data.windows import Windows
from hypertiny_keras.evaluation import evaluate_binary, evaluate_multiclass
from hypertiny_keras.export import export_tflite
from hypertiny_keras.fileio import atomic_write
from hypertiny_keras.layers import HyperPointwise
from hypertiny_keras.runtime import predict

#: Weight widths of the packed-byte accounting reported for every model.
BITS = (8, 6, 4)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model of the suite: `build(input_shape, num_classes) -> keras.Model` (logits)."""

    name: str
    build: Callable[[tuple, int], keras.Model]
    description: str = ""


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """Training and evaluation settings shared by every model of a recipe."""

    epochs: int = 20
    batch_size: int = 64
    learning_rate: float = 3e-3
    kernel: int = 5  # median-smoothing length in windows (binary tasks)
    bootstrap: int = 1000
    export: bool = True
    calibration: int = 200  # representative windows for int8 calibration


def _split_arrays(windows: Windows, split: str) -> Windows:
    part = windows.select(split)
    if len(part) == 0:
        raise ValueError(f"split {split!r} has no windows")
    return part


def _eval_inputs(part: Windows, scores: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "y": part.y,
        "score": scores,
        "record": part.record,
        "order": part.order,
        "cluster": part.patient,
    }


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def evaluate_logits(val: Windows, test: Windows, val_logits, test_logits, settings: RunSettings, seed: int) -> dict:
    """The evaluation protocol for logits `(N, C)`: binary (smoothing, t*, CIs) or multi-class (CIs)."""
    classes = val_logits.shape[-1]
    if classes == 2:
        return evaluate_binary(
            _eval_inputs(val, _softmax(val_logits)[:, 1]),
            _eval_inputs(test, _softmax(test_logits)[:, 1]),
            kernel=settings.kernel,
            n_resamples=settings.bootstrap,
            seed=seed,
        )
    return evaluate_multiclass(
        {"y": test.y, "score": test_logits, "cluster": test.patient},
        classes,
        n_resamples=settings.bootstrap,
        seed=seed,
    )


def run_model(
    spec: ModelSpec,
    windows: Windows,
    seed: int,
    settings: RunSettings,
    export_dir: str | pathlib.Path | None = None,
) -> dict:
    """Train `spec` on the `train` split, evaluate on `val`/`test`, export int8 and evaluate in TFLM.

    Returns a JSON-ready dict: config, seed, epochs, wall time (s), float
    metrics, int8 metrics from TFLM (same protocol, their own t*), packed
    bytes by role at 8/6/4 bits, and per exported file its bytes, bytes by
    role, arena bytes and generated-weight RAM bytes.
    """
    start = time.perf_counter()
    train, val, test = (_split_arrays(windows, s) for s in ("train", "val", "test"))
    keras.utils.set_random_seed(seed)
    model = spec.build(tuple(windows.x.shape[1:]), len(windows.class_names))
    model.compile(
        optimizer=keras.optimizers.AdamW(settings.learning_rate, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(
        train.as_tf_dataset(batch_size=settings.batch_size, seed=seed),
        epochs=settings.epochs,
        verbose=0,
    )
    train_seconds = time.perf_counter() - start
    val_logits = model.predict(val.x, verbose=0, batch_size=256)
    test_logits = model.predict(test.x, verbose=0, batch_size=256)
    result = {
        "model": spec.name,
        "description": spec.description,
        "seed": seed,
        "settings": dataclasses.asdict(settings),
        "params": int(model.count_params()),
        "train_seconds": train_seconds,
        "float": evaluate_logits(val, test, val_logits, test_logits, settings, seed),
        "packed_bytes": byte_table(model, bits=BITS).to_dict(),
        "exports": {},
    }
    if settings.export:
        generated = any(isinstance(layer, HyperPointwise) for layer in model.layers)
        with tempfile.TemporaryDirectory() as tmp:
            directory = pathlib.Path(export_dir or tmp)
            directory.mkdir(parents=True, exist_ok=True)
            calibration = train.x[np.random.default_rng(seed).permutation(len(train))[: settings.calibration]]
            for mode in ("frozen", "boot") if generated else ("frozen",):
                path = directory / f"{spec.name}_seed{seed}_{mode}.tflite"
                report = export_tflite(model, calibration, path, synthesis=mode)
                entry = {k: getattr(report, k) for k in ("file_bytes", "bytes_by_role", "arena_bytes",
                                                         "generated_weight_ram_bytes", "verification")}
                if mode == ("boot" if generated else "frozen"):
                    data = path.read_bytes()
                    entry["int8_tflm"] = evaluate_logits(
                        val, test, predict(data, val.x), predict(data, test.x), settings, seed
                    )
                result["exports"][mode] = entry
    result["wall_seconds"] = time.perf_counter() - start
    return result


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
        "int8_tflm": {
            m: _summary(runs, ("exports", deployed, "int8_tflm", "metrics", m, "value")) for m in metric_names
        },
        "packed_bytes_8bit": _summary(runs, ("packed_bytes", "total", "8")),
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
