"""`train()`: the paper's recipe (Eq. 5, AdamW, clipping, EMA) on `model.fit`.

What one call does:

1. seeds Python, numpy and the backend (`keras.utils.set_random_seed`);
   build the model after seeding too for a reproducible initialisation;
2. wraps the student (and teacher) in a `Distiller` with
   `HyperTinyLoss(**config.loss)`, compiled with
   `AdamW(lr, weight_decay, clipnorm)`;
3. runs `Distiller.fit` with the callbacks `NonFiniteLossGuard`, `WeightEMA`,
   `ValidationMacroF1` (early stopping) and `EpochSnapshot` (checkpoint),
   plus the caller's own;
4. returns the best RAW weights (by raw validation macro-F1) in the student
   and a copy holding the best EMA weights (by EMA validation macro-F1),
   each with its own validation threshold t*.

Reproducibility and resume: batches of epoch `e` are a permutation drawn
from `numpy.random.default_rng([seed, e])`, independent of what ran before;
a checkpoint holds the student, optimizer variables, EMA, best snapshots,
early-stopping state and history. A resumed run therefore repeats the
uninterrupted one (to float rounding), provided the model has no random
layers (dropout noise is not part of the checkpoint).

A non-finite loss stops training at that batch; the student, optimizer, EMA
and best snapshots go back to the end of the last epoch with a finite loss
(the checkpoint on disk is never overwritten by the bad epoch), and the
stop reason says where it happened.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
import warnings
from collections.abc import Iterator

import keras
import numpy as np

from hypertiny_keras.losses import HyperTinyLoss
from hypertiny_keras.training.callbacks import (
    EpochSnapshot,
    NonFiniteLossGuard,
    ValidationMacroF1,
    WeightEMA,
)
from hypertiny_keras.training.checkpoint import copy_model, read_checkpoint, write_checkpoint
from hypertiny_keras.training.distiller import Distiller

#: `TrainConfig` fields that may differ between a checkpoint and the run resuming it.
RESUMABLE_CHANGES = ("epochs", "verbose")


@dataclasses.dataclass
class TrainConfig:
    """Hyper-parameters of `train`.

    Attributes:
        epochs: total epochs (a resumed run continues up to this number).
        batch_size: windows per batch.
        lr: AdamW learning rate.
        weight_decay: AdamW decoupled weight decay.
        clipnorm: per-variable gradient-norm clip; `None` for none.
        ema_momentum: momentum of the weight EMA; `None` disables the EMA.
        patience: epochs without a validation macro-F1 improvement before
            stopping; `None` never stops early.
        seed: seed of initialisation, batch order and the projection.
        class_weight: `None`, `"balanced"` (`n / (K n_k)` from the training
            labels) or `{class: weight}`; applied as sample weights.
        loss: keyword arguments of `HyperTinyLoss` (term weights, gamma, T).
        student_features, teacher_features: feature layers for feature
            matching (`None`: the penultimate outputs; see `Distiller`).
        binary_f1: validation macro-F1 of binary tasks, `"tuned"` (at the
            validation-tuned t*) or `"argmax"`; multi-class uses argmax.
        verbose: `fit` verbosity.
    """

    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    clipnorm: float | None = 1.0
    ema_momentum: float | None = 0.99
    patience: int | None = 5
    seed: int = 0
    class_weight: str | dict | None = None
    loss: dict = dataclasses.field(default_factory=dict)
    student_features: str | None = None
    teacher_features: str | None = None
    binary_f1: str = "tuned"
    verbose: int = 0

    def to_json(self) -> dict:
        """The config as JSON types (class-weight keys become strings)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


@dataclasses.dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
        model: the student holding its best RAW weights.
        ema_model: a copy holding the best EMA weights (`None` without EMA).
        history: `{name: [value per epoch]}` over all epochs, resumed ones
            included (`loss`, each active term, `val_macro_f1`, ...).
        wall_time: seconds of training, summed over resumed runs.
        epochs_run: epochs completed with a finite loss.
        best_epoch, best_ema_epoch: 0-based epochs of the best RAW / EMA weights.
        val_macro_f1: `{"raw": f, "ema": f}` validation macro-F1 of those weights
            (`-inf`, and `ema_model` `None`, when no epoch ended with a finite loss).
        thresholds: `{"raw": t*, "ema": t*}`, each tuned on validation for its
            own weights (`None` for argmax scoring).
        stop_reason: why training ended.
    """

    model: keras.Model
    ema_model: keras.Model | None
    history: dict[str, list[float]]
    wall_time: float
    epochs_run: int
    best_epoch: int
    best_ema_epoch: int | None
    val_macro_f1: dict[str, float]
    thresholds: dict[str, float | None]
    stop_reason: str


def sample_weights(y: np.ndarray, class_weight) -> np.ndarray:
    """Per-window weights `(n,)` float32: None -> 1, `"balanced"` -> each class present counts equally,
    or a `{label: weight}` table (labels missing from it weigh 1)."""
    if class_weight is None:
        return np.ones(len(y), np.float32)
    if class_weight == "balanced":
        classes, counts = np.unique(y, return_counts=True)
        class_weight = {int(c): len(y) / (len(classes) * n) for c, n in zip(classes, counts)}
    table = {int(k): float(v) for k, v in dict(class_weight).items()}
    return np.array([table.get(int(label), 1.0) for label in y], np.float32)


def _batches(x, y, w, batch_size: int, seed: int, first_epoch: int, epochs: int) -> Iterator:
    """`(x, y, w)` batches of epochs `first_epoch..epochs-1`, each epoch its own permutation."""
    for epoch in range(first_epoch, epochs):
        order = np.random.default_rng([seed, epoch]).permutation(len(y))
        for start in range(0, len(y), batch_size):
            idx = order[start:start + batch_size]
            yield x[idx], y[idx], w[idx]


def _optimizer(config: TrainConfig) -> keras.optimizers.Optimizer:
    return keras.optimizers.AdamW(
        learning_rate=config.lr, weight_decay=config.weight_decay, clipnorm=config.clipnorm)


def _set_weights(variables, arrays) -> None:
    for variable, array in zip(variables, arrays, strict=True):
        variable.assign(array)


def _check_resumable(saved: dict, config: TrainConfig, directory) -> None:
    current = config.to_json()
    changed = sorted(k for k in current if k not in RESUMABLE_CHANGES and saved.get(k) != current[k])
    if changed:
        raise ValueError(
            f"checkpoint in {directory} was written with another TrainConfig "
            f"(different: {', '.join(changed)}); use a new checkpoint_dir")


def train(
    model: keras.Model,
    train_data,
    val: tuple[np.ndarray, np.ndarray],
    config: TrainConfig | None = None,
    teacher: keras.Model | None = None,
    checkpoint_dir: str | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> TrainResult:
    """Train `model` (logits `(N, K)`) with the Eq. 5 objective.

    Args:
        model: the student, built; trained in place.
        train_data: `(x, y)` arrays (batched and shuffled per epoch here, see
            the module docstring), or a dataset `fit` accepts (`tf.data`,
            `PyDataset`) yielding `(x, y)` batches, shuffled by itself
            (`class_weight` must then be a dict or `None`, and a resumed run
            only matches an uninterrupted one if the dataset is deterministic).
        val: `(x, y)` validation arrays for macro-F1 (early stopping, best
            snapshots, t*).
        config: hyper-parameters (`TrainConfig()` if `None`).
        teacher: frozen teacher for KD / feature matching.
        checkpoint_dir: where the state of the last good epoch is written;
            if it already holds a checkpoint, training resumes from it.
        callbacks: more Keras callbacks for `fit` (they run after the trainer's
            own; `self.model` is the `Distiller`).

    Returns:
        `TrainResult`.
    """
    config = config or TrainConfig()
    keras.utils.set_random_seed(config.seed)
    distiller = Distiller(model, HyperTinyLoss(**config.loss), teacher=teacher,
                          student_features=config.student_features,
                          teacher_features=config.teacher_features)
    distiller.compile(optimizer=_optimizer(config))
    distiller.optimizer.build(distiller.trainable_variables)
    projection = distiller.projection.weights if distiller.projection is not None else []
    ema = WeightEMA(model, config.ema_momentum) if config.ema_momentum is not None else None
    monitor = ValidationMacroF1(*val, model=model, make_copy=copy_model, ema=ema,
                                patience=config.patience, binary=config.binary_f1)
    guard = NonFiniteLossGuard()
    progress = {"epoch": 0, "history": {}, "wall_time": 0.0}  # wall_time: of earlier runs
    started = time.perf_counter()

    def wall_time() -> float:
        return progress["wall_time"] + time.perf_counter() - started

    def capture(epoch: int | None, logs: dict | None) -> dict:
        if epoch is not None:
            progress["epoch"] = epoch
            for name, value in logs.items():
                progress["history"].setdefault(name, []).append(float(value))
        return {
            "epoch": progress["epoch"],
            "history": {k: list(v) for k, v in progress["history"].items()},
            "wall_time": wall_time(),
            "monitor": {k: getattr(monitor, k) for k in ValidationMacroF1.SCALARS},
            "arrays": {
                "student": model.get_weights(),
                "projection": [v.numpy() for v in projection],
                "optimizer": [v.numpy() for v in distiller.optimizer.variables],
                "ema": None if ema is None else [a.copy() for a in ema.average],
                "best_raw": monitor.best_weights,
                "best_ema": monitor.best_ema_weights,
            },
        }

    def restore(state: dict) -> None:
        arrays = state["arrays"]
        model.set_weights(arrays["student"])
        _set_weights(projection, arrays["projection"])
        _set_weights(distiller.optimizer.variables, arrays["optimizer"])
        if ema is not None:
            ema.average = [a.copy() for a in arrays["ema"]]
        for name, value in state["monitor"].items():
            setattr(monitor, name, value)
        monitor.best_weights, monitor.best_ema_weights = arrays.get("best_raw"), arrays.get("best_ema")
        progress.update(epoch=state["epoch"], history=state["history"])

    saved = read_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
    if saved is not None:
        _check_resumable(saved[1], config, checkpoint_dir)
        restore(saved[0])
        progress["wall_time"] = saved[0]["wall_time"]
    save = None
    if checkpoint_dir is not None:
        def save(state):
            write_checkpoint(checkpoint_dir, state, model, config.to_json())
    snapshot = EpochSnapshot(capture, save)
    first_epoch = progress["epoch"]
    fit_kwargs = {"shuffle": False}
    if isinstance(train_data, tuple):
        x, y = (np.asarray(a) for a in train_data)
        w = sample_weights(y, config.class_weight)
        data = _batches(x, y, w, config.batch_size, config.seed, first_epoch, config.epochs)
        fit_kwargs["steps_per_epoch"] = math.ceil(len(y) / config.batch_size)
    else:
        if config.class_weight == "balanced":
            raise ValueError("class_weight='balanced' needs (x, y) arrays; pass a dict for a dataset")
        data = train_data
        fit_kwargs["class_weight"] = config.class_weight
    if first_epoch < config.epochs and not monitor.stopped:
        distiller.fit(
            data, epochs=config.epochs, initial_epoch=first_epoch, verbose=config.verbose,
            callbacks=[guard, *([ema] if ema else []), monitor, snapshot, *(callbacks or [])],
            **fit_kwargs)
        if guard.message is not None:
            restore(snapshot.last_good)
    last_good = snapshot.last_good or capture(None, None)
    if guard.message is not None:
        where = f", checkpoint {checkpoint_dir}" if checkpoint_dir is not None else ""
        stop_reason = (f"{guard.message}; training stopped and the state after epoch "
                       f"{last_good['epoch']} (the last with a finite loss{where}) was restored")
        warnings.warn(stop_reason, RuntimeWarning, stacklevel=2)
    elif monitor.stopped:
        stop_reason = (f"early stopping: val_macro_f1 did not improve for {config.patience} epochs "
                       f"(best {monitor.best:.4f} after epoch {monitor.best_epoch})")
    else:
        stop_reason = f"completed {last_good['epoch']} epochs"
    if monitor.best_weights is not None:
        model.set_weights(monitor.best_weights)
    ema_model = None
    if ema is not None and monitor.best_ema_weights is not None:
        ema_model = copy_model(model)
        ema_model.set_weights(monitor.best_ema_weights)
    return TrainResult(
        model=model,
        ema_model=ema_model,
        history=last_good["history"],
        wall_time=wall_time(),
        epochs_run=last_good["epoch"],
        best_epoch=monitor.best_epoch,
        best_ema_epoch=monitor.best_ema_epoch if ema is not None else None,
        val_macro_f1={"raw": monitor.best, **({"ema": monitor.best_ema} if ema else {})},
        thresholds={"raw": monitor.best_threshold,
                    **({"ema": monitor.best_ema_threshold} if ema else {})},
        stop_reason=stop_reason,
    )
