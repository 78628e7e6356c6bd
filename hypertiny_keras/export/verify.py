"""Stage 5 of the export, verify: the file computes what it must, in the runtime that deploys it.

TFLM is the reference. Checks, on `verify_samples` rows of the representative data:

- the main graph (the frozen file; for a boot file, its frozen equivalent:
  the same graph with the synthesised filters stored) in TFLM and in
  LiteRT's reference kernels: within 1 output step;
- a boot file in TFLM equals its frozen equivalent in TFLM bit for bit
  (LiteRT is not asked about the init subgraph: it rounds some
  FULLY_CONNECTED steps its own way, which the device never does), and,
  with per-channel filters, the converter's frozen file too (unless the
  caller accepted inexact synthesis: then the difference is reported);
- the written file's int8 outputs in TFLM against the Keras float model:
  99th percentile within `tolerance_steps` output steps (catches broken
  files, not quantization error), and, for a model with several outputs
  (classes), the same top-1 class on at least `MIN_TOP1_AGREEMENT` of the
  samples the float model decides by `DECISIVE_MARGIN_STEPS` output steps
  or more;
- an int8 input scale of at least `MIN_SCALE` (a smaller one means
  calibration data without range: every real input saturates). The output
  scale is not checked: a model whose output is constant on the data (a
  dead unit) has a collapsed output scale and is still exported exactly.

Every comparison is NaN-safe: a NaN figure fails its check.
"""
from __future__ import annotations

import math

import numpy as np

from hypertiny_keras.device.runtime import MAX_ARENA_BYTES, io_quantization, run_litert, run_tflm
from hypertiny_keras.export.analyze import ExportPlan
from hypertiny_keras.export.errors import FLOAT_DISTANCE_PROBLEM

#: Smallest share of the decisive verification samples whose top-1 class must agree between TFLM int8 and
#: Keras float (a model quantized with its own data agrees on nearly all; 0.5 only rejects broken calibration).
MIN_TOP1_AGREEMENT = 0.5
#: A sample is decisive when the float model's two largest outputs differ by this many output steps or more
#: (closer classes may swap by rounding alone, e.g. in an untrained model).
DECISIVE_MARGIN_STEPS = 4.0
#: Smallest int8 input scale accepted (a step of 1e-7: an int8 range of 2.6e-5, collapsed calibration).
MIN_SCALE = 1e-7


def _within(value: float, limit: float) -> bool:
    """`value <= limit`, False for NaN."""
    return bool(value <= limit)


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def verify(
    plan: ExportPlan, data: bytes, arena: int, main_graph: bytes | None = None, frozen: bytes | None = None
) -> tuple[dict, dict, list[str]]:
    """Run the checks above on `data` (the file to write).

    Args:
        plan: the export plan (model, representative data, limits).
        data: the `.tflite` bytes that will be written.
        arena: the TFLM arena bytes for `data`.
        main_graph: for a boot file, its frozen equivalent; `None` for a frozen file.
        frozen: for a boot file with per-channel filters, the converter's frozen file.

    Returns:
        (verification figures, host timings in microseconds, problems:
        one sentence each; empty when the file passed).
    """
    x = plan.x[: plan.options.verify_samples]
    input_q, output_q = io_quantization(data)
    x_model = input_q.quantize(x)
    written = run_tflm(data, x_model, arena)
    reference_file = data if main_graph is None else main_graph
    main_tflm = written if main_graph is None else run_tflm(main_graph, x_model, MAX_ARENA_BYTES)
    litert = run_litert(reference_file, x_model)
    reference = np.asarray(plan.model.predict(x, verbose=0), np.float64)
    problems = []
    if not np.isfinite(reference).all():
        problems.append("the Keras float model gives NaN or infinite outputs on the representative data")

    step = output_q.scale or (float(np.nanmax(reference) - np.nanmin(reference)) / 255.0 or 1.0)

    def steps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if output_q.dtype == np.float32:
            return np.abs(a.astype(np.float64) - b.astype(np.float64)) / step
        return np.abs(a.astype(np.int64) - b.astype(np.int64)).astype(np.float64)

    runtime_steps = steps(main_tflm.outputs, litert.outputs)
    boot_steps = steps(written.outputs, main_tflm.outputs)
    frozen_steps = None
    if frozen is not None:
        frozen_steps = steps(written.outputs, run_tflm(frozen, x_model, MAX_ARENA_BYTES).outputs)
    tflm_float = output_q.dequantize(written.outputs).reshape(reference.shape)
    float_steps = np.abs(tflm_float - reference) / step
    top1 = decisive_top1 = None
    decisive = np.zeros(len(reference), bool)
    if reference.shape[-1] > 1:
        agree = tflm_float.argmax(-1) == reference.argmax(-1)
        top1 = float(np.mean(agree))
        ranked = np.sort(reference.reshape(len(reference), -1), axis=-1)
        decisive = ranked[:, -1] - ranked[:, -2] >= DECISIVE_MARGIN_STEPS * step
        decisive_top1 = float(np.mean(agree[decisive])) if decisive.any() else None
    litert_float = output_q.dequantize(litert.outputs).reshape(reference.shape)
    verification = {
        "samples": int(len(x)),
        "reference": "TFLM (tflite-micro wheel, reference kernels)",
        "main_graph": "frozen file" if main_graph is None else "frozen equivalent of the boot file",
        "tflm_vs_litert_max_steps": _finite(runtime_steps.max()),
        "tflm_vs_litert_exact_rate": _finite(np.mean(runtime_steps == 0)),
        "boot_vs_equivalent_identical": None if main_graph is None else bool(np.all(boot_steps == 0)),
        "boot_vs_frozen_max_steps": None if frozen_steps is None else _finite(frozen_steps.max()),
        "boot_vs_frozen_identical": None if frozen_steps is None else bool(np.all(frozen_steps == 0)),
        "tflm_vs_float_max_steps": _finite(np.max(float_steps)),
        "tflm_vs_float_p99_steps": _finite(np.percentile(float_steps, 99)),
        "tflm_vs_float_mean_steps": _finite(np.mean(float_steps)),
        "tflm_vs_float_top1": top1,
        "tflm_vs_float_top1_decisive": decisive_top1,
        "decisive_samples": int(decisive.sum()),
        "litert_vs_tflm_top1": float(np.mean(litert_float.argmax(-1) == tflm_float.argmax(-1))),
        "output_step": float(step),
        "litert_kernels": "reference (BUILTIN_REF), on the main graph",
        "tolerance_steps": plan.options.tolerance_steps,
    }
    if not _within(float(runtime_steps.max()), 1):
        problems.append(
            f"TFLM and LiteRT differ by {runtime_steps.max():.0f} output steps on the main graph (limit 1)"
        )
    if main_graph is not None and not np.all(boot_steps == 0):
        problems.append(
            f"the boot file in TFLM differs from its frozen equivalent by up to {boot_steps.max():.0f} output "
            "steps: the device does not synthesise the kernels the export computed"
        )
    if frozen_steps is not None and not np.all(frozen_steps == 0) and not plan.options.allow_inexact:
        problems.append(
            f"the boot file in TFLM differs from the frozen file by up to {frozen_steps.max():.0f} output steps "
            "(they must be identical)"
        )
    p99 = float(np.percentile(float_steps, 99))
    if not _within(p99, plan.options.tolerance_steps):
        problems.append(
            f"{FLOAT_DISTANCE_PROBLEM} {p99:.1f} output steps from the Keras float model at the 99th "
            f"percentile (limit {plan.options.tolerance_steps})"
        )
    if decisive_top1 is not None and not _within(MIN_TOP1_AGREEMENT, decisive_top1):
        problems.append(  # a distance from the float model too (`ExportVerificationError.only_float_distance`)
            f"{FLOAT_DISTANCE_PROBLEM} of the Keras float model's top-1 class on {100 * decisive_top1:.1f}% of the "
            f"{int(decisive.sum())} samples it decides by {DECISIVE_MARGIN_STEPS:g} output steps or more (at least "
            f"{100 * MIN_TOP1_AGREEMENT:.0f}% required): is the representative data what the model is fed?"
        )
    if input_q.dtype != np.float32 and not input_q.scale >= MIN_SCALE:
        problems.append(
            f"the input scale collapsed to {input_q.scale:.3g} (below {MIN_SCALE:g}): the representative data "
            "has (next to) no range"
        )
    timing = {
        "tflm_first": written.first_invoke_s * 1e6,
        "tflm_median": written.median_invoke_s * 1e6,
        "litert_first": litert.first_invoke_s * 1e6,
        "litert_median": litert.median_invoke_s * 1e6,
    }
    return verification, timing, problems
