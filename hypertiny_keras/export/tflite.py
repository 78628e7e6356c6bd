"""`export_tflite`: Keras model -> verified int8 `.tflite` (frozen or with boot-time synthesis)."""
from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import keras
import numpy as np

from hypertiny_keras.accounting import byte_table
from hypertiny_keras.export.boot import add_init_subgraph
from hypertiny_keras.export.convert import check_representative_data, convert_int8
from hypertiny_keras.export.flatbuffer import compact, read_model, strip, write_model
from hypertiny_keras.export.inspect import inspect_tflite
from hypertiny_keras.fileio import atomic_write
from hypertiny_keras.freeze import freeze
from hypertiny_keras.layers import HyperPointwise
from hypertiny_keras.runtime import io_quantization, run_litert, run_tflm, tflm_arena_bytes

SYNTHESIS_MODES = ("boot", "frozen")


class ExportVerificationError(RuntimeError):
    """The exported file did not run as it must; nothing was written."""


@dataclasses.dataclass
class ExportReport:
    """What an export produced and measured. Saved as JSON beside the model.

    Byte figures are bytes of the written file; `arena_bytes` is the smallest
    TFLM arena that ran the model on this host (64-bit build of the
    `tflite-micro` wheel: a 32-bit MCU needs less). Times are microseconds on
    this host; the first TFLM/LiteRT invoke includes the init subgraph
    (weight synthesis) when there is one.
    """

    path: str
    synthesis: str
    io_dtype: str
    per_channel: bool
    file_bytes: int
    stripped_bytes: int
    bytes_by_role: dict
    operators: list
    arena_bytes: int
    arena_note: str
    generated_weight_ram_bytes: int
    generated_layers: list
    verification: dict
    timing_us: dict
    packed_bytes: dict

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        v, t = self.verification, self.timing_us
        lines = [
            f"{self.path}: {self.file_bytes:,} bytes ({self.synthesis}, {self.io_dtype} I/O); "
            f"{self.stripped_bytes:,} bytes of names/metadata/unused buffers removed",
            "  bytes by role: "
            + ", ".join(f"{k} {v:,}" for k, v in self.bytes_by_role.items() if v),
            f"  TFLM arena {self.arena_bytes:,} B ({self.arena_note}); "
            f"generated weights in RAM {self.generated_weight_ram_bytes:,} B",
            f"  verified on {v['samples']} samples: TFLM vs LiteRT max {v['tflm_vs_litert_max_steps']} step(s), "
            f"exact {100 * v['tflm_vs_litert_exact_rate']:.2f}%; int8 vs Keras float max "
            f"{v['tflm_vs_float_max_steps']:.2f} steps (p99 {v['tflm_vs_float_p99_steps']:.2f})"
            + (
                f", top-1 agreement {100 * v['tflm_vs_float_top1']:.1f}%"
                if v["tflm_vs_float_top1"] is not None
                else ""
            ),
            f"  invoke: TFLM first {t['tflm_first']:.0f} us, median {t['tflm_median']:.0f} us; "
            f"LiteRT first {t['litert_first']:.0f} us, median {t['litert_median']:.0f} us",
        ]
        return "\n".join(lines)


def _verify(model: keras.Model, data: bytes, x: np.ndarray, tolerance_steps: float, arena: int):
    input_q, output_q = io_quantization(data)
    x_model = input_q.quantize(x)
    tflm = run_tflm(data, x_model, arena)
    litert = run_litert(data, x_model)
    reference = np.asarray(model.predict(x, verbose=0), np.float64)
    step = output_q.scale or (float(reference.max() - reference.min()) / 255.0 or 1.0)
    if output_q.dtype == np.float32:
        runtime_steps = np.abs(tflm.outputs.astype(np.float64) - litert.outputs) / step
    else:
        runtime_steps = np.abs(tflm.outputs.astype(np.int64) - litert.outputs.astype(np.int64))
    tflm_float = output_q.dequantize(tflm.outputs).reshape(reference.shape)
    float_steps = np.abs(tflm_float - reference) / step
    top1 = None
    if reference.shape[-1] > 1:
        top1 = float(np.mean(tflm_float.argmax(-1) == reference.argmax(-1)))
    verification = {
        "samples": int(len(x)),
        "tflm_vs_litert_max_steps": float(runtime_steps.max()),
        "tflm_vs_litert_exact_rate": float(np.mean(runtime_steps == 0)),
        "tflm_vs_float_max_steps": float(float_steps.max()),
        "tflm_vs_float_p99_steps": float(np.percentile(float_steps, 99)),
        "tflm_vs_float_mean_steps": float(float_steps.mean()),
        "tflm_vs_float_top1": top1,
        "litert_vs_tflm_top1": float(
            np.mean(
                output_q.dequantize(litert.outputs).reshape(reference.shape).argmax(-1)
                == tflm_float.argmax(-1)
            )
        ),
        "output_step": float(step),
        "litert_kernels": "reference (BUILTIN_REF)",
        "tolerance_steps": float(tolerance_steps),
    }
    problems = []
    if verification["tflm_vs_litert_max_steps"] > 1:
        problems.append(
            f"TFLM and LiteRT differ by {verification['tflm_vs_litert_max_steps']:.0f} output steps (limit 1)"
        )
    if verification["tflm_vs_float_p99_steps"] > tolerance_steps:
        problems.append(
            f"int8 outputs in TFLM are {verification['tflm_vs_float_p99_steps']:.1f} output steps from the "
            f"Keras float model at the 99th percentile (limit {tolerance_steps})"
        )
    timing = {
        "tflm_first": tflm.first_invoke_s * 1e6,
        "tflm_median": tflm.median_invoke_s * 1e6,
        "litert_first": litert.first_invoke_s * 1e6,
        "litert_median": litert.median_invoke_s * 1e6,
    }
    return verification, timing, problems


def export_tflite(
    model: keras.Model,
    representative_data: np.ndarray,
    path: str | os.PathLike,
    synthesis: str = "boot",
    io_dtype: str = "int8",
    per_channel: bool = True,
    keep_metadata: bool = False,
    verify_samples: int = 64,
    tolerance_steps: float = 64.0,
) -> ExportReport:
    """Export `model` to a full-integer int8 `.tflite` and verify it before writing.

    Args:
        model: a Functional/Sequential Keras model, usually with `HyperPointwise` layers.
        representative_data: float inputs `(n, *input_shape[1:])` for
            calibration and verification.
        path: where the `.tflite` goes; the report goes beside it as `.json`.
        synthesis: `"boot"` (generated kernels are computed on the device by
            an init subgraph run once through CALL_ONCE) or `"frozen"`
            (generated kernels stored as ordinary int8 filters).
        io_dtype: `"int8"` inputs/outputs, or `"float32"`.
        per_channel: boot only. `True`: the device synthesises exactly the
            converter's per-channel int8 filter, so boot and frozen files
            compute the same thing. `False`: one scale per generated filter.
        keep_metadata: keep tensor names, signatures and metadata that TFLM
            never reads.
        verify_samples: samples of `representative_data` run in TFLM and LiteRT.
        tolerance_steps: largest 99th-percentile distance, in output
            quantization steps, between TFLM int8 outputs and the Keras float
            model. The default (a quarter of the int8 range) rejects broken
            files, not quantization error: a trained Apnea-ECG model's plain
            converter output was measured 30 steps away at the 99th percentile.

    Returns:
        The `ExportReport`.

    Raises:
        ValueError: bad arguments (shape, dtype, NaN, synthesis mode, a boot
            export of a model with no `HyperPointwise`, an unwritable path).
        ExportVerificationError: TFLM and LiteRT disagree by more than one
            output step, or the int8 model is too far from the float one.
    """
    if synthesis not in SYNTHESIS_MODES:
        raise ValueError(f"synthesis must be one of {SYNTHESIS_MODES}, got {synthesis!r}")
    path = pathlib.Path(path)
    if not path.parent.is_dir() or not os.access(path.parent, os.W_OK):
        raise ValueError(f"cannot write {path}: {path.parent} is not a writable directory")
    x = check_representative_data(model, representative_data)
    generated = any(isinstance(layer, HyperPointwise) for layer in model.layers)
    if synthesis == "boot" and not generated:
        raise ValueError(f"boot export needs HyperPointwise layers; model {model.name!r} has none")

    converted = convert_int8(freeze(model) if generated else model, x, io_dtype)
    flat = read_model(converted)
    layers = add_init_subgraph(flat, model, per_channel) if synthesis == "boot" else []
    compact(flat)
    unstripped = len(write_model(flat))
    if not keep_metadata:
        strip(flat)
        compact(flat)
    data = write_model(flat)

    arena = tflm_arena_bytes(data)
    verification, timing, problems = _verify(model, data, x[:verify_samples], tolerance_steps, arena)
    if problems:
        raise ExportVerificationError(f"{path.name} not written: " + "; ".join(problems))
    info = inspect_tflite(data)
    report = ExportReport(
        path=str(path),
        synthesis=synthesis,
        io_dtype=io_dtype,
        per_channel=per_channel,
        file_bytes=len(data),
        stripped_bytes=unstripped - len(data),
        bytes_by_role=info["bytes_by_role"],
        operators=[sg["operators"] for sg in info["subgraphs"]],
        arena_bytes=arena,
        arena_note="64-bit host build of TFLM (tflite-micro wheel); smaller on a 32-bit MCU",
        generated_weight_ram_bytes=info["generated_weight_ram_bytes"],
        generated_layers=[dataclasses.asdict(layer) for layer in layers],
        verification=verification,
        timing_us=timing,
        packed_bytes=byte_table(model).to_dict(),
    )
    atomic_write(path, data)
    atomic_write(path.with_suffix(".json"), json.dumps(report.to_dict(), indent=2).encode())
    return report
