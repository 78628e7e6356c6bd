"""`evaluate`: run a Keras model or an int8 `.tflite` file on validation and test `Windows` and score it."""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from hypertiny_keras.evaluation.metrics import softmax
from hypertiny_keras.evaluation.protocol import evaluate_binary, evaluate_multiclass


def score_inputs(part, scores: np.ndarray) -> dict[str, np.ndarray]:
    """The score dict of `evaluate_binary` / `evaluate_multiclass` for the windows `part` and their `scores`.

    Args:
        part: `data.Windows` of one split (N windows).
        scores: `(N,)` positive-class probabilities or `(N, K)` class scores.
    """
    return {"y": part.y, "score": scores, "record": part.record, "order": part.order, "cluster": part.patient}


def positive_probability(outputs: np.ndarray) -> np.ndarray:
    """`(N,)` positive-class probabilities from a binary model's outputs.

    `(N, 2)` outputs are logits (softmax); `(N,)` or `(N, 1)` outputs are
    probabilities when they all lie in [0, 1] (a sigmoid output), else logits.
    """
    outputs = np.asarray(outputs, np.float64)
    if outputs.ndim == 2 and outputs.shape[1] == 2:
        return softmax(outputs)[:, 1]
    if outputs.ndim == 1 or (outputs.ndim == 2 and outputs.shape[1] == 1):
        p = outputs.reshape(-1)
        return p if p.min() >= 0 and p.max() <= 1 else 1 / (1 + np.exp(-p))
    raise ValueError(f"a binary model must output (N, 2) logits or (N, 1) scores, got shape {outputs.shape}")


def evaluate_logits(
    val, test, val_logits: np.ndarray, test_logits: np.ndarray, kernel: int = 5, n_resamples: int = 1000, seed: int = 0
) -> dict:
    """The evaluation protocol on a model's outputs for `val` and `test` (`data.Windows`).

    Two classes: `evaluate_binary` (median smoothing over `kernel` windows,
    t* on validation, CIs on test); more: `evaluate_multiclass` on test.

    Args:
        val, test: the validation and test windows.
        val_logits, test_logits: `(N, K)` outputs (logits, or `(N, 1)` sigmoid scores for K = 2).
        kernel: median-smoothing length in windows (1 = none), binary tasks only.
        n_resamples, seed: cluster-bootstrap settings (clusters: `Windows.patient`).
    """
    classes = len(test.class_names)
    for part, logits, label in ((val, val_logits, "validation"), (test, test_logits, "test")):
        if len(logits) != len(part):
            raise ValueError(f"{label}: {len(logits)} outputs for {len(part)} windows")
        if not np.all(np.isfinite(logits)):
            raise ValueError(f"{label}: the model's outputs hold NaN or inf")
        width = 1 if np.ndim(logits) == 1 else np.shape(logits)[1]
        if width != classes and not (classes == 2 and width == 1):
            raise ValueError(f"{label}: the model has {width} outputs per window but the windows have "
                             f"{classes} classes {tuple(test.class_names)}")
    if classes == 2:
        return evaluate_binary(
            score_inputs(val, positive_probability(val_logits)),
            score_inputs(test, positive_probability(test_logits)),
            kernel=kernel, n_resamples=n_resamples, seed=seed,
        )
    return evaluate_multiclass(score_inputs(test, np.asarray(test_logits)), classes, n_resamples=n_resamples, seed=seed)


def model_outputs(
    model, x: np.ndarray, batch_size: int = 256, progress: bool = True, engine: str = "tflm"
) -> np.ndarray:
    """Outputs of a Keras model, or of a `.tflite` file (bytes or path) in TFLM / LiteRT, for inputs `x` `(N, ...)`.

    Files are run with their own int8 input/output quantization (floats in, floats out).
    """
    from hypertiny_keras.device import runtime

    x = np.asarray(x, np.float32)
    if isinstance(model, (bytes, bytearray, memoryview, str, os.PathLike)):
        return runtime.predict(model, x, engine=engine, batch_size=batch_size, progress=progress)
    if not hasattr(model, "predict"):
        raise TypeError(f"model must be a Keras model, .tflite bytes or a path, got {type(model).__name__}")
    shape = model.input_shape
    expected = None if isinstance(shape, list) else tuple(shape[1:])
    if expected is not None and (len(expected) != x.ndim - 1
                                 or any(e not in (None, g) for e, g in zip(expected, x.shape[1:]))):
        raise ValueError(f"{model.name} takes inputs of shape (N, {', '.join(map(str, expected))}), "
                         f"the windows are {x.shape}")
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=1 if progress else 0))


def evaluate(
    model,
    val,
    test,
    kernel: int = 5,
    n_resamples: int = 1000,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = True,
    engine: str = "tflm",
) -> dict[str, Any]:
    """Run `model` on the windows `val` and `test` and apply the evaluation protocol.

    Args:
        model: a Keras model, or an int8 `.tflite` file as bytes or a path
            (run in TFLM, the deployment reference; `engine="litert"` for LiteRT).
        val, test: `data.Windows` of the validation and test splits (e.g.
            `windows.select("val")`); validation tunes the binary threshold t*.
        kernel: median-smoothing length in windows along each record (binary tasks; 1 = none).
        n_resamples, seed: cluster-bootstrap resamples over `Windows.patient` and their seed.
        batch_size: windows per batch; `progress`: show a progress bar.

    Returns:
        `evaluate_binary` (two classes: `threshold`, `val_macro_f1`, `metrics`) or
        `evaluate_multiclass` (`metrics`) of the test split; each metric is
        `{"value", "low", "high"}`.
    """
    for part, label in ((val, "val"), (test, "test")):
        if not hasattr(part, "class_names") or not hasattr(part, "x"):
            raise TypeError(f"{label} must be data.Windows (e.g. windows.select({label!r})), got {type(part).__name__}")
    if tuple(val.class_names) != tuple(test.class_names):
        raise ValueError(f"val and test name different classes: {val.class_names} vs {test.class_names}")
    outputs = [model_outputs(model, part.x, batch_size, progress, engine) for part in (val, test)]
    return evaluate_logits(val, test, *outputs, kernel=kernel, n_resamples=n_resamples, seed=seed)
