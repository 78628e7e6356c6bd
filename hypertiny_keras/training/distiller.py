"""`Distiller`: the student, an optional frozen teacher and `HyperTinyLoss` as one `keras.Model`."""
from __future__ import annotations

import math

import keras
from keras import ops

from hypertiny_keras.losses import HyperTinyLoss, total


def _with_features(model: keras.Model, feature_layer: str | None) -> keras.Model:
    """`model` with two outputs, `[logits, features]`, sharing its layers.

    `feature_layer` names the layer whose output are the features; `None`
    takes the input of the output layer (the penultimate features).
    """
    if feature_layer is None:
        features = model.layers[-1].input
    else:
        features = model.get_layer(feature_layer).output
    return keras.Model(model.input, [model.outputs[0], features], name=f"{model.name}_with_features")


def _width(tensor) -> int:
    return int(math.prod(tensor.shape[1:]))


class Distiller(keras.Model):
    """Trains `student` on the full Eq. 5 objective with `model.fit`.

    Like the Keras knowledge-distillation example, the wrapper's `call`
    runs the student and `compute_loss` adds what a plain loss cannot see:
    the frozen teacher's logits and features (run on the same batch in
    inference mode, only when `kd` or `feature` is on) and the student itself
    for the spectral and L1 terms. The student's weights are the wrapper's
    weights, so `fit` trains the student in place; evaluate, save and export
    the student, not the wrapper.

    Feature matching compares flattened student features `(N, D_s)` with
    teacher features `(N, D_t)`; when `D_s != D_t` a learned linear map
    `feature_projection` (`Dense(D_t, use_bias=False)`, trained with the
    student, not part of it) projects the student's features first.

    Every active term is logged by `fit` under its name (`ce`, `kd`, ...),
    next to `loss`, the total (plus any `add_loss` losses of the layers).

    Args:
        student: Functional/Sequential model returning logits `(N, K)`.
        loss: the `HyperTinyLoss`.
        teacher: model returning logits `(N, K)`; needed when `loss.kd` or
            `loss.feature` is non-zero (it is then frozen:
            `teacher.trainable = False`), ignored otherwise.
        student_features, teacher_features: names of the layers whose
            outputs are the features; `None` is the penultimate output (the
            input of the output layer, e.g. the teacher's `features` layer).

    `call(x)` returns `{"logits": (N, K), "features": (N, ...)}`.
    """

    def __init__(
        self,
        student: keras.Model,
        loss: HyperTinyLoss,
        teacher: keras.Model | None = None,
        student_features: str | None = None,
        teacher_features: str | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if loss.needs_teacher and teacher is None:
            raise ValueError(
                f"kd={loss.term_weights['kd']} and feature={loss.term_weights['feature']} need a teacher")
        self.student = student
        self.hypertiny_loss = loss
        self.student_outputs = _with_features(student, student_features)
        self.teacher_outputs = None
        self.projection = None
        if loss.needs_teacher:
            teacher.trainable = False
            self.teacher_outputs = _with_features(teacher, teacher_features)
            width = _width(self.student_outputs.outputs[1])
            teacher_width = _width(self.teacher_outputs.outputs[1])
            if loss.term_weights["feature"] > 0 and width != teacher_width:
                self.projection = keras.layers.Dense(
                    teacher_width, use_bias=False, name="feature_projection")
                self.projection.build((None, width))
        self.term_trackers = [keras.metrics.Mean(name=t) for t in loss.active_terms]

    def call(self, x, training=None):
        logits, features = self.student_outputs(x, training=training)
        return {"logits": logits, "features": features}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        teacher_logits = teacher_features = features = None
        if self.teacher_outputs is not None:
            teacher_logits, teacher_features = self.teacher_outputs(x, training=False)
            teacher_features = ops.reshape(teacher_features, (ops.shape(teacher_features)[0], -1))
            features = ops.reshape(y_pred["features"], (ops.shape(y_pred["features"])[0], -1))
            if self.projection is not None:
                features = self.projection(features)
        terms = self.hypertiny_loss.terms(
            y, y_pred["logits"], teacher_logits=teacher_logits, features=features,
            teacher_features=teacher_features, model=self.student, sample_weight=sample_weight)
        for tracker in self.term_trackers:
            tracker.update_state(terms[tracker.name])
        extra = [ops.sum(loss) for loss in self.losses]
        return total(terms) + (ops.sum(ops.stack(extra)) if extra else 0.0)

