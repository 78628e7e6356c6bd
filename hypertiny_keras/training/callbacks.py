"""Keras callbacks of the trainer: weight EMA, validation macro-F1 with early stopping,
non-finite-loss guard and per-epoch state snapshots."""
from __future__ import annotations

import math
from collections.abc import Callable

import keras
import numpy as np

from hypertiny_keras.evaluation import macro_f1, softmax, tune_threshold

BINARY_F1 = ("tuned", "argmax")


def validation_macro_f1(
    model: keras.Model, x: np.ndarray, y: np.ndarray, binary: str = "tuned", batch_size: int = 256
) -> tuple[float, float | None]:
    """Macro-F1 of `model` (logits `(N, K)`) on `(x, y)` and the threshold used.

    Two classes with `binary="tuned"`: the threshold t* on the softmax
    probability of class 1 that maximises macro-F1 over
    `evaluation.THRESHOLD_GRID` (`evaluation.tune_threshold`, no smoothing).
    Otherwise (more classes, or `binary="argmax"`): macro-F1 of the argmax,
    threshold `None`.
    """
    if binary not in BINARY_F1:
        raise ValueError(f"binary must be one of {BINARY_F1}, got {binary!r}")
    logits = [keras.ops.convert_to_numpy(model(x[i:i + batch_size], training=False))
              for i in range(0, len(x), batch_size)]
    probs = softmax(np.concatenate(logits))
    y = np.asarray(y).reshape(-1)
    if probs.shape[-1] == 2 and binary == "tuned":
        return tune_threshold(y, probs[:, 1])[::-1]
    return macro_f1(y, probs.argmax(axis=-1), probs.shape[-1]), None


def finite_loss(logs: dict | None) -> bool:
    """Whether `logs["loss"]` is a finite number (missing counts as finite)."""
    loss = (logs or {}).get("loss")
    return loss is None or math.isfinite(float(loss))


class WeightEMA(keras.callbacks.Callback):
    """Exponential moving average of a model's trainable weights, updated after every batch.

    `average = momentum * average + (1 - momentum) * weights`, starting from
    the weights at the start of training (not bias-corrected). Kept in numpy
    beside the model, so the raw weights stay in the model and both can be
    evaluated. Non-trainable weights (BatchNorm statistics) are not averaged;
    `ema_weights()` takes them from the model.

    Args:
        model: the model whose weights are averaged (the student, not the
            `Distiller` wrapper the callback is attached to).
        momentum: in [0, 1).
    """

    def __init__(self, model: keras.Model, momentum: float):
        super().__init__()
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"ema momentum must be in [0, 1), got {momentum}")
        self.target = model
        self.momentum = float(momentum)
        self.average: list[np.ndarray] | None = None
        trainable = {id(v) for v in model.trainable_weights}
        self._positions = [i for i, v in enumerate(model.weights) if id(v) in trainable]

    def on_train_begin(self, logs=None):
        if self.average is None:
            self.average = [np.array(v.numpy()) for v in self.target.trainable_weights]

    def on_train_batch_end(self, batch, logs=None):
        m = self.momentum
        for average, variable in zip(self.average, self.target.trainable_weights):
            average *= m
            average += (1.0 - m) * variable.numpy()

    def ema_weights(self) -> list[np.ndarray]:
        """`model.get_weights()` with the trainable entries replaced by their averages."""
        weights = self.target.get_weights()
        for position, average in zip(self._positions, self.average):
            weights[position] = average.copy()
        return weights


class ValidationMacroF1(keras.callbacks.Callback):
    """Validation macro-F1 after every epoch, best snapshots and early stopping.

    Logs `val_macro_f1` (and `val_threshold` when tuned) for the raw weights
    and, with an EMA, `val_macro_f1_ema` for the averaged ones, each with its
    own threshold. Keeps the best raw weights and, separately, the best EMA
    weights (strict improvement). Stops training like
    `EarlyStopping(monitor="val_macro_f1", mode="max", patience=patience)`:
    after `patience` epochs without a raw improvement. Epochs whose loss is
    not finite are skipped.

    Args:
        x, y: validation windows and integer labels.
        model: the student.
        make_copy: returns a copy of the student (to evaluate EMA weights on).
        ema: the `WeightEMA` callback, or `None`.
        patience: epochs without improvement before stopping; `None` never stops.
        binary: `"tuned"` or `"argmax"` (see `validation_macro_f1`).
    """

    SCALARS = ("best", "best_epoch", "best_threshold", "wait", "stopped",
               "best_ema", "best_ema_epoch", "best_ema_threshold")

    def __init__(self, x, y, model: keras.Model, make_copy: Callable[[keras.Model], keras.Model],
                 ema: WeightEMA | None = None, patience: int | None = None, binary: str = "tuned"):
        super().__init__()
        self.x, self.y, self.target, self.ema = x, y, model, ema
        self.patience, self.binary = patience, binary
        self.ema_model = make_copy(model) if ema is not None else None
        self.best = self.best_ema = -math.inf
        self.best_epoch = self.best_ema_epoch = -1
        self.best_threshold = self.best_ema_threshold = None
        self.wait, self.stopped = 0, False
        self.best_weights = self.best_ema_weights = None

    def on_epoch_end(self, epoch, logs=None):
        if not finite_loss(logs):
            return
        f1, threshold = validation_macro_f1(self.target, self.x, self.y, self.binary)
        logs["val_macro_f1"] = f1
        if threshold is not None:
            logs["val_threshold"] = threshold
        if f1 > self.best:
            self.best, self.best_epoch, self.best_threshold, self.wait = f1, epoch, threshold, 0
            self.best_weights = self.target.get_weights()
        else:
            self.wait += 1
        if self.ema is not None:
            weights = self.ema.ema_weights()
            self.ema_model.set_weights(weights)
            f1, threshold = validation_macro_f1(self.ema_model, self.x, self.y, self.binary)
            logs["val_macro_f1_ema"] = f1
            if f1 > self.best_ema:
                self.best_ema, self.best_ema_epoch, self.best_ema_threshold = f1, epoch, threshold
                self.best_ema_weights = weights
        if self.patience is not None and self.wait >= self.patience:
            self.stopped = True
            self.model.stop_training = True


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops training at the first batch whose running loss is NaN or infinite.

    Like `keras.callbacks.TerminateOnNaN`, but records where it happened in
    `message` (`None` while the loss stays finite) for the trainer, which
    then restores the last good state.
    """

    def __init__(self):
        super().__init__()
        self.message: str | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if not finite_loss(logs):
            self.message = (f"non-finite loss ({float(logs['loss'])}) at epoch {self._epoch}, "
                            f"batch {batch}")
            self.model.stop_training = True


class EpochSnapshot(keras.callbacks.Callback):
    """Keeps the training state of the last epoch with a finite loss.

    `capture(epoch_count, logs)` returns the state after an epoch (called
    with `logs=None` at the start of training); `save(state)`, if given,
    writes it (a checkpoint). `last_good` is the latest state.
    """

    def __init__(self, capture: Callable[[int, dict | None], dict],
                 save: Callable[[dict], None] | None = None):
        super().__init__()
        self.capture, self.save = capture, save
        self.last_good: dict | None = None

    def on_train_begin(self, logs=None):
        self.last_good = self.capture(None, None)

    def on_epoch_end(self, epoch, logs=None):
        if not finite_loss(logs):
            return
        self.last_good = self.capture(epoch + 1, logs)
        if self.save is not None:
            self.save(self.last_good)
