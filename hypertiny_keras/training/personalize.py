"""`personalize`: adapt one shipped model to one subject by fine-tuning only the named part of it.

The job only generation can do: every generated kernel is steered by its
layer's code `z_l` through the generator all layers share, so tuning the
codes alone (`trainable="codes"`) changes every generated layer, and the
deployed difference is a patch of a few dozen bytes (`tflite.patch`,
`personalized_file`). The other choices are the peers it is measured
against: `"classifier"` (the last Dense layer), `"bias"` (every bias and
BatchNorm beta, TinyTL-style), `"codes+bias"`, and `"all"` (every weight).

Training is full-batch Adam on the subject's labelled windows, BatchNorm in
inference mode (its statistics stay the global model's), with optional
rehearsal windows from the training set mixed in at equal weight (a subject
whose adaptation data holds no positive example then keeps the global
decision), and early stopping on a held-out part of the subject's data (the
weights of the step with the lowest held-out loss are kept). The gradient is
taken with TensorFlow (the package's backend); the rest is Keras 3 API.
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np

from hypertiny_keras.layers import all_layers, generated_layers, require_functional
from hypertiny_keras.training.checkpoint import copy_model
from hypertiny_keras.training.trainer import sample_weights

#: What `personalize` can tune.
TRAINABLE = ("codes", "codes+bias", "classifier", "bias", "all")


@dataclasses.dataclass
class Personalized:
    """What `personalize` returns.

    `model` is a new Keras model (the base is untouched); `trainable` the
    choice; `values` how many values it could change; `steps` the steps run
    and `best_step` the one kept (0: the base weights were best on the
    held-out windows); `history` the per-step `{"loss", "held_out_loss"}`.
    """

    model: keras.Model
    trainable: str
    values: int
    steps: int
    best_step: int
    history: list[dict]
    base_codes: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def codes(self) -> dict[str, np.ndarray]:
        """`{generated layer name: its code z_l}` of the personalized model, float32 `(d_z,)`."""
        return _codes(self.model)


def _codes(model: keras.Model) -> dict[str, np.ndarray]:
    return {layer.name: keras.ops.convert_to_numpy(layer.code) for layer in generated_layers(model)
            if getattr(layer, "code", None) is not None}


def _is_bias(variable, layer) -> bool:
    if isinstance(layer, keras.layers.BatchNormalization):
        return variable is layer.beta
    return variable.path.rsplit("/", 1)[-1] == "bias" and not hasattr(layer, "hidden_dim")  # not the generator's


def tuned_variables(model: keras.Model, trainable: str) -> list:
    """The variables `personalize(model, ..., trainable=trainable)` tunes, in model order.

    Raises:
        ValueError: an unknown choice, or a model without what it names (codes need generated
            layers whose kernel generator reads a code: dense, factorized, lowrank_shared,
            kronecker_shared).
    """
    if trainable not in TRAINABLE:
        raise ValueError(f"trainable must be one of {', '.join(TRAINABLE)}; got {trainable!r}")
    chosen: list = []
    if "codes" in trainable:
        codes = [layer.code for layer in generated_layers(model) if getattr(layer, "code", None) is not None]
        if not codes:
            raise ValueError("trainable='codes' needs generated layers that read a code (kernel generators dense, "
                             "factorized, lowrank_shared, kronecker_shared); this model has none")
        chosen += codes
    if trainable == "classifier":
        dense = [layer for layer in _layers(model) if isinstance(layer, keras.layers.Dense)]
        if not dense:
            raise ValueError("trainable='classifier' needs a Dense layer; this model has none")
        chosen += list(dense[-1].trainable_weights)
    if "bias" in trainable:
        chosen += [v for layer in _layers(model) for v in layer.weights if v.trainable and _is_bias(v, layer)]
    if trainable == "all":
        chosen = list(model.trainable_weights)
    seen: set[int] = set()
    return [v for v in chosen if not (id(v) in seen or seen.add(id(v)))]


def _layers(model: keras.Model) -> list:
    """The layers of `model` that hold weights of their own (nested models expanded, not listed)."""
    return [layer for layer in all_layers(model) if not isinstance(layer, keras.Model)]


def _check_windows(name: str, x, y, model: keras.Model) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, np.float32), np.asarray(y)
    expected = tuple(model.inputs[0].shape[1:])
    if x.ndim != len(expected) + 1 or tuple(x.shape[1:]) != expected or len(x) == 0:
        raise ValueError(f"{name} windows must have shape (n, {', '.join(map(str, expected))}) with n >= 1, "
                         f"got {x.shape}")
    if y.shape != (len(x),):
        raise ValueError(f"{name} labels must have shape ({len(x)},), got {y.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} windows hold NaN or infinite values")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ValueError(f"{name} labels must be integers >= 0")
    return x, y.astype(np.int64)


def personalize(
    model: keras.Model,
    x,
    y,
    trainable: str = "codes",
    rehearsal: tuple | None = None,
    held_out_fraction: float = 0.25,
    steps: int = 150,
    learning_rate: float = 1e-2,
    patience: int = 30,
    class_weight: str | None = "balanced",
    seed: int = 0,
) -> Personalized:
    """Fine-tune only `trainable` of a copy of `model` on one subject's labelled windows.

    Args:
        model: a functional Keras model (e.g. `hypertiny_pw`), trained on many subjects.
        x: the subject's adaptation windows `(n, *input_shape)`, in time order.
        y: their integer labels `(n,)`.
        trainable: one of `TRAINABLE`.
        rehearsal: `(x_r, y_r)` windows of the training set mixed into every step
            (weighted so that they count as much as the subject's windows), or None.
        held_out_fraction: the last part of the subject's windows (in time) held out
            for early stopping; 0 trains on all of them for `steps` steps.
        steps: most full-batch Adam steps.
        learning_rate: Adam's.
        patience: steps without a lower held-out loss before stopping.
        class_weight: `"balanced"`: the subject's windows are weighted so that each class
            present counts equally (a record with few positive beats still moves the decision
            for them); None: every window weighs 1.
        seed: seeds Keras (dropout, if any).

    Returns:
        `Personalized` (the new model, and what was tuned).

    Raises:
        ValueError: a subclassed model, windows or labels of the wrong shape, NaNs,
            a bad fraction, or a `trainable` the model cannot serve (`tuned_variables`).
    """
    import tensorflow as tf

    require_functional(model, "personalize")
    x, y = _check_windows("subject", x, y, model)
    if not 0 <= held_out_fraction < 1:
        raise ValueError(f"held_out_fraction must be in [0, 1), got {held_out_fraction}")
    held = int(round(len(x) * held_out_fraction))
    if held_out_fraction and (held == 0 or held == len(x)):
        raise ValueError(f"{len(x)} window(s) cannot be split {held_out_fraction:g} held out; give more or 0")
    if class_weight not in ("balanced", None):
        raise ValueError(f"class_weight must be 'balanced' or None, got {class_weight!r}")
    fit_x, fit_y, val_x, val_y = x[:len(x) - held], y[:len(y) - held], x[len(x) - held:], y[len(y) - held:]
    weights = sample_weights(fit_y, class_weight)
    if rehearsal is not None:
        rx, ry = _check_windows("rehearsal", *rehearsal, model)
        fit_x, fit_y = np.concatenate([fit_x, rx]), np.concatenate([fit_y, ry])
        weights = np.concatenate([weights, np.full(len(rx), len(weights) / len(rx), np.float32)])
    keras.utils.set_random_seed(seed)
    tuned = copy_model(model)
    base_codes = _codes(tuned)
    variables = tuned_variables(tuned, trainable)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(variables)

    def held_out_loss() -> float:
        return float(loss_fn(val_y, tuned(val_x, training=False))) if held else float("nan")

    best = (held_out_loss(), 0, [v.numpy() for v in variables])
    history, step = [], 0
    for step in range(1, steps + 1):
        with tf.GradientTape() as tape:
            loss = loss_fn(fit_y, tuned(fit_x, training=False), sample_weight=weights)  # BatchNorm in inference mode
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        current = held_out_loss()
        history.append({"loss": float(loss), "held_out_loss": current})
        if held and current < best[0]:
            best = (current, step, [v.numpy() for v in variables])
        elif held and step - best[1] >= patience:
            break
    if held:
        for variable, value in zip(variables, best[2]):
            variable.assign(value)
    return Personalized(model=tuned, trainable=trainable, values=int(sum(np.prod(v.shape) for v in variables)),
                        steps=step, best_step=best[1] if held else step, history=history, base_codes=base_codes)


def codes_file(base: bytes, personalized: Personalized) -> bytes:
    """The deployed personalized model: the base boot file with only its code bytes replaced.

    Each generated layer's tuned code is quantized with the scale and zero point
    its code tensor has in the base file (every other byte, scales included,
    stays the base's), so `tflite.patch.make_patch(base, codes_file(...), ...)`
    carries it to a device that holds the base. A code tensor of the file is
    matched to its layer by the base model's own quantized code.

    Args:
        base: the base model's boot `.tflite` bytes (exported from the model given to `personalize`).
        personalized: what `personalize(..., trainable="codes")` returned.

    Raises:
        ValueError: the file's code tensors do not hold the base model's codes (another
            model's file), or the personalization changed more than the codes.
    """
    from hypertiny_keras.tflite.flatbuffer import read_model
    from hypertiny_keras.tflite.patch import code_buffers

    if personalized.trainable != "codes":
        raise ValueError(f"only a codes-only personalization deploys as a code patch; this one tuned "
                         f"{personalized.trainable!r} (re-export the model instead)")
    spans = code_buffers(base)
    model = read_model(base)
    quantization = {t.buffer: t.quantization for g in model.subgraphs for t in g.tensors if t.buffer in spans}
    out = bytearray(base)
    free = dict(spans)
    for name, code in personalized.base_codes.items():
        matches = []
        for index, (offset, length) in free.items():
            q = quantization[index]
            scale, zero = float(q.scale[0]), int(q.zeroPoint[0])
            expected = np.clip(np.round(code / scale) + zero, -127, 127).astype(np.int8)
            if length == expected.size and bytes(base[offset:offset + length]) == expected.tobytes():
                matches.append((index, scale, zero))
        if not matches:
            raise ValueError(f"layer {name!r}: no code tensor of the base file holds its code: export the base "
                             "file from the model given to personalize")
        index, scale, zero = matches[0]
        offset, length = free.pop(index)
        tuned = personalized.codes()[name]
        out[offset:offset + length] = np.clip(np.round(tuned / scale) + zero, -127, 127).astype(np.int8).tobytes()
    return bytes(out)


def refine_codes(
    base: bytes,
    start: bytes,
    x,
    y,
    steps: tuple[int, ...] = (8, 2, 1),
    rounds: int = 2,
    class_weight: str | None = "balanced",
    held_out: tuple | None = None,
) -> tuple[bytes, dict]:
    """Search the int8 code values of a code-patched file directly, scored by the file itself in TFLM.

    `codes_file` rounds the tuned float codes with the base file's code scale;
    the base's later quantization (the generator output, the kernels) was
    fitted to the base codes, so new codes may saturate there. This search
    moves one code byte at a time by +-`steps` (coarse to fine), keeping a
    move when the cross-entropy of the patched file's dequantized TFLM outputs
    on `(x, y)` falls: what the device will compute is what is optimised.

    Args:
        base: the base boot file's bytes.
        start: a file whose code bytes start the search (`codes_file(base, ...)`, or `base`).
        x: windows `(n, *input_shape)` (the subject's adaptation windows, with rehearsal
            windows if wanted).
        y: their integer labels `(n,)`.
        steps: int8 step sizes tried, in order.
        rounds: passes over every code byte per step size.
        class_weight: `"balanced"` or None, as in `personalize`.
        held_out: `(x_h, y_h)` windows not searched on: after every pass the file is scored
            on them too, and the file returned is the one with the lowest held-out loss
            (the start included). None: the file with the lowest loss on `(x, y)`.

    Returns:
        `(file, info)`: the file kept (only code bytes differ from `base`) and
        `{"loss_start", "loss", "held_out_start", "held_out", "evaluations", "moves"}` (the
        held-out figures None without `held_out`).
    """
    from hypertiny_keras.device.runtime import io_quantization, run_tflm, tflm_arena_bytes
    from hypertiny_keras.tflite.patch import code_buffers

    spans = code_buffers(base)
    model = _check_model_bytes(base, start, spans)
    x, y = np.asarray(x, np.float32), np.asarray(y).astype(np.int64)
    input_q, output_q = io_quantization(model)
    inputs = input_q.quantize(x)
    arena = tflm_arena_bytes(model)  # the same for every candidate: only constant bytes change
    w = sample_weights(y, class_weight)
    weights = dict(zip(y.tolist(), w.tolist()))  # the held-out windows weigh as the searched ones of their class

    def cross_entropy(candidate: bytes, q_inputs, labels, weight) -> float:
        logits = output_q.dequantize(run_tflm(candidate, q_inputs, arena).outputs).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return float(-(weight * log_p[np.arange(len(labels)), labels]).sum() / weight.sum())

    def loss(candidate: bytes) -> float:
        return cross_entropy(candidate, inputs, y, w)

    if held_out is not None:
        hx, hy = np.asarray(held_out[0], np.float32), np.asarray(held_out[1]).astype(np.int64)
        h_inputs, h_w = input_q.quantize(hx), np.array([weights.get(c, 1.0) for c in hy.tolist()])
    best = bytearray(model)
    best_loss = start_loss = loss(bytes(best))
    kept = (cross_entropy(model, h_inputs, hy, h_w) if held_out is not None else start_loss, model)
    held_start = kept[0] if held_out is not None else None
    evaluations, moves = 1, 0
    positions = [offset + i for offset, length in spans.values() for i in range(length)]
    for step in steps:
        for _ in range(rounds):
            improved = False
            for position in positions:
                value = best[position] - 256 if best[position] > 127 else best[position]  # the int8 value
                for candidate_value in (value + step, value - step):
                    if not -127 <= candidate_value <= 127:
                        continue
                    candidate = bytearray(best)
                    candidate[position] = candidate_value & 0xFF
                    current = loss(bytes(candidate))
                    evaluations += 1
                    if current < best_loss:
                        best, best_loss, improved, moves = candidate, current, True, moves + 1
                        break
            score = cross_entropy(bytes(best), h_inputs, hy, h_w) if held_out is not None else best_loss
            if score < kept[0]:
                kept = (score, bytes(best))
            if not improved:
                break
    return kept[1], {"loss_start": start_loss, "loss": loss(kept[1]) if held_out is not None else best_loss,
                     "held_out_start": held_start, "held_out": kept[0] if held_out is not None else None,
                     "evaluations": evaluations, "moves": moves}


def _check_model_bytes(base: bytes, start: bytes, spans: dict[int, tuple[int, int]]) -> bytes:
    """`start`, checked to differ from `base` in code bytes only."""
    if len(start) != len(base):
        raise ValueError(f"start has {len(start):,} bytes, the base {len(base):,}: it must be a code-patched base")
    inside = np.zeros(len(base), bool)
    for offset, length in spans.values():
        inside[offset:offset + length] = True
    differs = np.frombuffer(base, np.uint8) != np.frombuffer(start, np.uint8)
    if (differs & ~inside).any():
        raise ValueError("start differs from the base outside its code tensors")
    return bytes(start)
