"""The HyperTinyPW training objective (Eq. 5 of the paper).

    L = ce * CE + focal * Focal_gamma + kd * T^2 KL(p_teacher^T || p_student^T)
        + feature * MSE(P f_student, f_teacher) + soft_f1 * (1 - softF1)
        + spectral * sum_M sigma_max(M)^2 + size * (|heads|_1 + |codes|_1)

Every weight is a constructor argument of `HyperTinyLoss`; a weight of 0
removes its term: it is not computed at all (no teacher forward pass, no
power iteration), and the total equals the sum of the remaining terms.

How the terms get their inputs
------------------------------
A Keras loss only sees `(y_true, y_pred)`. The terms split in three groups:

- label terms (CE, focal, soft-F1) need labels and student logits only, so
  `HyperTinyLoss` works directly in `model.compile(loss=HyperTinyLoss(...))`
  when only these are on;
- teacher terms (KD, feature matching) need the teacher's logits and
  features, and the student's penultimate features;
- weight terms (spectral, L1) need the model's `HyperPointwise` layers and
  their shared `PointwiseGenerator`.

`HyperTinyLoss.terms(y_true, logits, teacher_logits=, features=,
teacher_features=, model=)` computes every active term from explicit inputs
(that is what the tests check by hand). `hypertiny_keras.training.Distiller`
is a `keras.Model` wrapper in the style of the Keras knowledge-distillation
example: it wraps the student, an optional frozen teacher and the loss,
overrides `compute_loss` to run the teacher and pass everything to `terms`,
and so plugs into `model.fit` unchanged. Calling the loss with a teacher or
weight term switched on but without those inputs raises a `ValueError`
naming the missing input, never silently drops the term.

Conventions
-----------
- `y_true`: integer class labels `(N,)`; logits `(N, K)`, K >= 2.
- Per-sample terms (CE, focal, KD, feature) are reduced like Keras's
  `"sum_over_batch_size"`: `sum_i w_i l_i / N` (a plain mean without weights).
- Soft-F1 is a batch statistic: per class `k`, soft counts
  `tp = sum w p_k y_k`, `fp = sum w p_k (1 - y_k)`, `fn = sum w (1 - p_k) y_k`
  with `p = softmax(logits)`; the term is `1 - mean_k 2tp / (2tp + fp + fn + eps)`.
- KD uses Hinton's direction `KL(teacher || student)` on temperature-softened
  softmaxes, times `T^2` so its gradients keep their scale when T changes.
- Spectral: the squared largest singular value of each generator matrix
  (generator kernel `(d_z, d_h)`, shared basis `(d_h, r)`) and each head
  `(rows, C_out*C_in)`, counted once per shared generator, by
  `power_iterations` steps of power iteration on the small Gram matrix
  `M M^T` (or `M^T M`) from the unit vector `1/sqrt(k)`, as the Rayleigh
  quotient `v^T G v` with `v` held constant for the gradient (the gradient of
  sigma_max^2 at the converged vector, as in spectral normalisation).
- Size: the L1 norm (sum of absolute values) of every head and code.
"""
from __future__ import annotations

import keras
from keras import ops

from hypertiny_keras.layers import generated_layers

#: Names of the terms, in the order they are summed.
TERMS = ("ce", "focal", "kd", "feature", "soft_f1", "spectral", "size")
_EPS = 1e-7


@keras.saving.register_keras_serializable(package="hypertiny")
class HyperTinyLoss(keras.losses.Loss):
    """Eq. 5: CE + focal + KD + feature matching + soft-F1 + spectral + L1 size.

    Args:
        ce: weight of the cross-entropy of the logits.
        focal: weight of the focal loss `-(1 - p_y)^gamma log p_y`.
        gamma: focusing parameter of the focal loss.
        kd: weight of the distillation term (needs teacher logits).
        temperature: KD temperature T.
        feature: weight of feature matching, the per-sample mean squared
            difference of (projected) student and teacher features.
        soft_f1: weight of `1 - soft macro-F1`.
        spectral: weight of the sum of squared largest singular values of the
            generator matrices and heads (needs the model).
        size: weight of the L1 norm of heads and codes (needs the model).
        power_iterations: power-iteration steps of the spectral term.
        name: loss name.

    Calling the loss, `loss(y_true, logits, sample_weight=None)`, returns the
    scalar sum of the label terms; use `terms` (or `training.Distiller`) for
    the others.
    """

    def __init__(
        self,
        ce: float = 1.0,
        focal: float = 0.0,
        gamma: float = 2.0,
        kd: float = 0.0,
        temperature: float = 2.0,
        feature: float = 0.0,
        soft_f1: float = 0.0,
        spectral: float = 0.0,
        size: float = 0.0,
        power_iterations: int = 5,
        name: str = "hypertiny_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.term_weights = {
            "ce": float(ce), "focal": float(focal), "kd": float(kd), "feature": float(feature),
            "soft_f1": float(soft_f1), "spectral": float(spectral), "size": float(size),
        }
        if any(w < 0 for w in self.term_weights.values()):
            raise ValueError(f"loss weights must be >= 0, got {self.term_weights}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if int(power_iterations) < 1:
            raise ValueError(f"power_iterations must be >= 1, got {power_iterations}")
        self.gamma = float(gamma)
        self.temperature = float(temperature)
        self.power_iterations = int(power_iterations)

    @property
    def active_terms(self) -> tuple[str, ...]:
        """Names of the terms with a non-zero weight, in summation order."""
        return tuple(t for t in TERMS if self.term_weights[t] > 0)

    @property
    def needs_teacher(self) -> bool:
        return self.term_weights["kd"] > 0 or self.term_weights["feature"] > 0

    def terms(
        self,
        y_true,
        logits,
        *,
        teacher_logits=None,
        features=None,
        teacher_features=None,
        model: keras.Model | None = None,
        sample_weight=None,
    ) -> dict:
        """The weighted active terms, `{name: scalar tensor}` in `TERMS` order.

        Args:
            y_true: `(N,)` integer labels.
            logits: `(N, K)` student logits.
            teacher_logits: `(N, K)` teacher logits (KD).
            features: `(N, D)` student features, already projected to the
                teacher's width (feature matching).
            teacher_features: `(N, D)` teacher features.
            model: the student, whose `HyperPointwise` layers the spectral
                and size terms read.
            sample_weight: optional `(N,)` per-sample weights.
        """
        logits = ops.convert_to_tensor(logits, "float32")
        n_classes = logits.shape[-1]
        labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
        onehot = ops.one_hot(labels, n_classes)
        weight = None if sample_weight is None else ops.reshape(
            ops.cast(sample_weight, "float32"), (-1,))
        active = self.active_terms
        self._require(active, teacher_logits=teacher_logits, features=features,
                      teacher_features=teacher_features, model=model)

        def batch_mean(per_sample):
            if weight is None:
                return ops.mean(per_sample)
            return ops.sum(per_sample * weight) / ops.cast(ops.shape(per_sample)[0], "float32")

        out = {}
        log_p = ops.log_softmax(logits, axis=-1)
        log_p_true = ops.sum(log_p * onehot, axis=-1)
        if "ce" in active:
            out["ce"] = batch_mean(-log_p_true)
        if "focal" in active:
            p_true = ops.exp(log_p_true)
            out["focal"] = batch_mean(-ops.power(1.0 - p_true, self.gamma) * log_p_true)
        if "kd" in active:
            out["kd"] = batch_mean(self._distillation(logits, teacher_logits))
        if "feature" in active:
            diff = ops.convert_to_tensor(features, "float32") - ops.convert_to_tensor(
                teacher_features, "float32")
            out["feature"] = batch_mean(ops.mean(ops.square(diff), axis=-1))
        if "soft_f1" in active:
            out["soft_f1"] = _soft_f1_loss(onehot, ops.exp(log_p), weight)
        if "spectral" in active:
            out["spectral"] = ops.sum(ops.stack(
                [top_singular_value_squared(m, self.power_iterations)
                 for m in regularized_matrices(model)]))
        if "size" in active:
            values = [ops.sum(ops.abs(v)) for layer in generated_layers(model)
                      for v in (layer.head, layer.code)]
            out["size"] = ops.sum(ops.stack(values))
        return {name: self.term_weights[name] * value for name, value in out.items()}

    def _distillation(self, logits, teacher_logits):
        """Per-sample `T^2 KL(softmax(teacher/T) || softmax(student/T))`, shape `(N,)`."""
        t = self.temperature
        log_q = ops.log_softmax(ops.convert_to_tensor(teacher_logits, "float32") / t, axis=-1)
        log_p = ops.log_softmax(logits / t, axis=-1)
        return t * t * ops.sum(ops.exp(log_q) * (log_q - log_p), axis=-1)

    def _require(self, active, **inputs):
        needs = {"kd": ("teacher_logits",), "feature": ("features", "teacher_features"),
                 "spectral": ("model",), "size": ("model",)}
        for term in active:
            for arg in needs.get(term, ()):
                if inputs[arg] is None:
                    raise ValueError(
                        f"HyperTinyLoss: the {term!r} term (weight {self.term_weights[term]}) needs "
                        f"`{arg}`; train with hypertiny_keras.training.Distiller (or train()), "
                        f"or set {term}=0")

    def __call__(self, y_true, y_pred, sample_weight=None):
        return total(self.terms(y_true, y_pred, sample_weight=sample_weight))

    def call(self, y_true, y_pred):
        return self(y_true, y_pred)

    def get_config(self):
        return {
            **super().get_config(),
            **self.term_weights,
            "gamma": self.gamma,
            "temperature": self.temperature,
            "power_iterations": self.power_iterations,
        }


def total(terms: dict):
    """Sum of a `terms` dict in its order (a scalar tensor; 0 when empty)."""
    values = list(terms.values())
    if not values:
        return ops.zeros(())
    out = values[0]
    for value in values[1:]:
        out = out + value
    return out


def _soft_f1_loss(onehot, probs, weight):
    """`1 - mean_k soft-F1_k` from `(N, K)` one-hot labels and probabilities."""
    if weight is not None:
        onehot_w, probs_w = onehot * weight[:, None], probs * weight[:, None]
    else:
        onehot_w, probs_w = onehot, probs
    tp = ops.sum(probs_w * onehot, axis=0)
    fp = ops.sum(probs_w, axis=0) - tp
    fn = ops.sum(onehot_w, axis=0) - tp
    f1 = 2.0 * tp / (2.0 * tp + fp + fn + _EPS)
    return 1.0 - ops.mean(f1)


def regularized_matrices(model: keras.Model) -> list:
    """The matrices the spectral term penalises: each shared generator's kernel
    `(d_z, d_h)` and basis `(d_h, r)` (once per generator), and every head
    (for `lowrank`/`kronecker` layers: their factors; a 3-D kronecker factor
    `(r, a, b)` counts as the matrix `(r, a * b)`)."""
    layers = generated_layers(model)
    if not layers:
        raise ValueError(f"model {model.name!r} has no HyperPointwise layer")
    generators = {id(layer.generator): layer.generator for layer in layers if layer.kernel_generator.uses_generator}
    out = []
    for generator in generators.values():
        out.append(generator.kernel)
        if generator.basis is not None:
            out.append(generator.basis)
    return out + [w for layer in layers for role, w in layer.kernel_generator.stored(layer) if role == "heads"]


def top_singular_value_squared(matrix, iterations: int = 5):
    """Power-iteration estimate of `sigma_max(matrix)^2` (a scalar tensor).

    Iterates on the Gram matrix of the shorter side from `1/sqrt(k)`; the
    returned Rayleigh quotient treats the iterate as a constant, so its
    gradient is `2 sigma u v^T` at convergence.
    """
    matrix = ops.convert_to_tensor(matrix, "float32")
    if len(matrix.shape) != 2:
        matrix = ops.reshape(matrix, (matrix.shape[0], -1))
    rows, cols = matrix.shape
    gram = (ops.matmul(matrix, ops.transpose(matrix)) if rows <= cols
            else ops.matmul(ops.transpose(matrix), matrix))
    k = gram.shape[0]
    v = ops.ones((k,), "float32") / float(k) ** 0.5
    for _ in range(iterations):
        v = ops.matmul(gram, v)
        v = v / (ops.norm(v) + _EPS)
    v = ops.stop_gradient(v)
    return ops.sum(v * ops.matmul(gram, v))
