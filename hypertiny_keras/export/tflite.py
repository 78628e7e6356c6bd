"""`export_tflite`: Keras model -> verified int8 `.tflite`, as a pipeline of one module per stage.

    analyze -> convert -> rewrite -> verify -> write
    (plan)     (converter) (init subgraph, boot only; flatbuffer diet; names and metadata stripped)
                                      (TFLM reference, LiteRT on the main graph)
                                                (model + report, both or neither)
"""
from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np

from hypertiny_keras.transforms.accounting import byte_table
from hypertiny_keras.export.analyze import SYNTHESIS_MODES, analyze
from hypertiny_keras.export.convert import convert
from hypertiny_keras.export.diet import diet as flatbuffer_diet
from hypertiny_keras.tflite.flatbuffer import compact, read_model, strip, write_model
from hypertiny_keras.tflite.inspect import inspect_tflite
from hypertiny_keras.export.rewrite import add_init_subgraph, frozen_equivalent
from hypertiny_keras.export.verify import FLOAT_DISTANCE_PROBLEM, verify
from hypertiny_keras.export.write import write_pair
from hypertiny_keras.device.runtime import tflm_arena_bytes


class ExportVerificationError(RuntimeError):
    """The exported file did not run as it must; nothing was written.

    `problems` holds one sentence per failed check; `only_float_distance`
    says whether the one failure is the distance of the int8 model from the
    float one (quantization too coarse for this model: the file computes
    what it should, but not what the float model computes).
    """

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = list(problems or [])
        self.only_float_distance = bool(self.problems) and all(
            p.startswith(FLOAT_DISTANCE_PROBLEM) for p in self.problems
        )


@dataclasses.dataclass
class ExportReport:
    """What an export produced and measured. Saved as JSON beside the model.

    Byte figures are bytes of the written file; `diet_bytes` what each kind
    of the flatbuffer diet (`export.diet`) removed (empty when it was
    turned off); `arena_bytes` is the smallest
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
    diet_bytes: dict
    bytes_by_role: dict
    operators: list
    arena_bytes: int
    arena_note: str
    generated_weight_ram_bytes: int
    generated_layers: list
    verification: dict
    timing_us: dict
    packed_bytes: dict
    layers: list = dataclasses.field(default_factory=list)
    macs: dict = dataclasses.field(default_factory=dict)
    dense_per_tensor: bool = False
    init_weight_bits: int = 8

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def inspection(self) -> dict:
        """The `inspect_tflite` fields this report holds (the input of `format_inspection` and `boards`)."""
        return {"file_bytes": self.file_bytes, "has_init_subgraph": len(self.operators) > 1,
                "subgraphs": [{"index": i, "role": "main" if i == 0 else "init", "operators": ops}
                              for i, ops in enumerate(self.operators)],
                "layers": self.layers, "macs": self.macs, "bytes_by_role": self.bytes_by_role,
                "resource_variables": len(self.generated_layers),
                "generated_weight_ram_bytes": self.generated_weight_ram_bytes}

    def format(self, board: str | None = None) -> str:
        """The report with the per-operator table and the flash/RAM splits (as % of `board`, e.g. `"nano33ble"`)."""
        from hypertiny_keras.device.boards import format_inspection

        return str(self) + "\n" + format_inspection(self.inspection(), board, self.arena_bytes)

    def plot(self, path, board: str = "nano33ble"):
        """A PNG of the flash and RAM bars of this file on `board` (`boards.plot_budget`)."""
        from hypertiny_keras.device.boards import plot_budget

        return plot_budget(self.inspection(), path, board, self.arena_bytes)

    def __str__(self) -> str:
        from hypertiny_keras.device.boards import flash_split

        v, t = self.verification, self.timing_us
        lines = [
            f"{self.path}: {self.file_bytes:,} bytes ({self.synthesis}, {self.io_dtype} I/O); "
            f"{self.stripped_bytes:,} bytes of names/metadata/unused buffers removed",
            "  flatbuffer diet: "
            + (
                f"{sum(self.diet_bytes.values()):,} bytes removed ("
                + ", ".join(f"{k} {v:,}" for k, v in self.diet_bytes.items()) + ")"
                if self.diet_bytes
                else "off"
            ),
            "  bytes by role: "
            + ", ".join(f"{k} {v:,}" for k, v in self.bytes_by_role.items() if v),
            "  flash: " + ", ".join(f"{k} {v:,}" for k, v in flash_split(self.inspection()).items() if v),
            f"  MACs: {self.macs.get('steady', 0):,} per inference, {self.macs.get('synthesis', 0):,} once at synthesis"
            f" ({len(self.layers)} operators; `format(board=...)` for the per-operator table and % of a board)",
            f"  TFLM arena {self.arena_bytes:,} B ({self.arena_note}); "
            f"generated weights in RAM {self.generated_weight_ram_bytes:,} B",
            f"  verified on {v['samples']} samples: main graph TFLM vs LiteRT max {v['tflm_vs_litert_max_steps']:.0f} "
            f"step(s), exact {100 * v['tflm_vs_litert_exact_rate']:.2f}%; "
            + (
                ""
                if v["boot_vs_frozen_identical"] is None
                else "boot vs frozen in TFLM "
                + ("identical" if v["boot_vs_frozen_identical"] else f"max {v['boot_vs_frozen_max_steps']:.0f} steps")
                + "; "
            )
            + "int8 vs Keras float max "
            f"{v['tflm_vs_float_max_steps']:.2f} steps (p99 {v['tflm_vs_float_p99_steps']:.2f})"
            + (
                f", top-1 agreement {100 * v['tflm_vs_float_top1']:.1f}%"
                if v["tflm_vs_float_top1"] is not None
                else ""
            ),
            *(
                [f"  init-subgraph weights: int4 in {sum(g['weight_bits'] == 4 for g in self.generated_layers)} of "
                 f"{len(self.generated_layers)} layers (int8 where int4 heads cannot hit every target)"]
                if self.init_weight_bits == 4 else []
            ),
            f"  invoke: TFLM first {t['tflm_first']:.0f} us, median {t['tflm_median']:.0f} us; "
            f"LiteRT first {t['litert_first']:.0f} us, median {t['litert_median']:.0f} us "
            "(this host; not device figures: hypertiny emulate counts a Cortex-M4's instructions)",
        ]
        return "\n".join(lines)


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
    allow_inexact: bool = False,
    diet: bool = True,
    dense_per_tensor: bool = False,
    init_weight_bits: int = 8,
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
        allow_inexact: boot only. Write the file even where the device cannot
            synthesise a generated kernel exactly (the report then gives the
            misses per layer and the measured boot vs frozen difference).
            By default such a model is refused, naming the layers.
        diet: shrink every file with the flatbuffer diet (`export.diet`:
            identity RESHAPE -> EXPAND_DIMS pairs, bias quantization and
            options tables TFLM does not read, duplicated constants). TFLM
            computes the same outputs either way; `False` keeps the
            converter's structure.
        dense_per_tensor: one scale per FULLY_CONNECTED weight tensor (the
            converter's default is one per output channel, which TFLM reads
            only since 2024-09: both Arduino libraries' snapshots would use the
            first scale for every channel, and `export_arduino` refuses such
            a file for them).
        init_weight_bits: boot only. Bits of the init subgraph's
            FULLY_CONNECTED weights (shared generator, basis, heads, right
            factors): 8, or 4 (packed int4: half their bytes; codes and
            left factors are FULLY_CONNECTED inputs and stay int8). Heads of
            dense/factorized kinds are still solved for the exact int8 filter
            (boot == frozen bit for bit, or the layer is refused as inexact);
            lowrank/kronecker kernels are what the int4 factors give, and the
            frozen equivalent is built from them.

    Returns:
        The `ExportReport`.

    Raises:
        ExportError (a ValueError): bad input, found before conversion by
            `analyze` (shape, dtype, NaN data or weights, synthesis mode, a
            boot export of a model with no `HyperPointwise`, several inputs,
            outputs or generators, unwritable or clashing paths), a model
            the converter refuses, or a boot model whose kernels the device
            cannot synthesise exactly (`BootExportError`).
        ExportVerificationError: the main graph differs by more than one
            output step between TFLM and LiteRT, the boot file differs from
            the frozen one in TFLM, or the int8 model is too far from the
            float one.
    """
    plan = analyze(
        model, representative_data, path, synthesis, io_dtype, per_channel, keep_metadata, verify_samples,
        tolerance_steps, allow_inexact, dense_per_tensor, init_weight_bits,
    )
    converted = convert(plan)

    diet_by_file: dict[bytes, dict] = {}  # bytes each diet kind removed, by the file's bytes

    def finish(flat) -> tuple[bytes, int]:
        """The file's bytes (dieted unless turned off, names stripped unless kept) and how many bytes
        stripping removed; the bytes each diet kind removed from the file go to `diet_by_file`."""
        compact(flat)
        dieted = flatbuffer_diet(flat, stripped=not plan.keep_metadata) if diet else {}
        unstripped = len(write_model(flat))
        if not plan.keep_metadata:
            strip(flat)
            compact(flat)
        data = write_model(flat)
        diet_by_file[data] = dieted
        return data, unstripped - len(data)

    frozen, frozen_stripped = finish(read_model(converted))
    layers, main_graph, same_as_converter = [], None, False
    data, stripped = frozen, frozen_stripped
    if plan.synthesis == "boot":
        flat = read_model(converted)
        rewrite = add_init_subgraph(flat, plan.layers, plan.per_channel, plan.allow_inexact, plan.init_weight_bits)
        layers, same_as_converter = rewrite.layers, rewrite.matches_converter
        main_graph, _ = finish(frozen_equivalent(flat, rewrite))
        data, stripped = finish(flat)

    arena = tflm_arena_bytes(data, name=str(plan.path))
    verification, timing, problems = verify(
        plan, data, arena, main_graph, frozen if same_as_converter else None
    )
    if problems:
        raise ExportVerificationError(f"{plan.path.name} not written: " + "; ".join(problems), problems)
    info = inspect_tflite(data)
    report = ExportReport(
        path=str(plan.path),
        synthesis=plan.synthesis,
        io_dtype=plan.io_dtype,
        per_channel=plan.per_channel,
        dense_per_tensor=plan.dense_per_tensor,
        init_weight_bits=plan.init_weight_bits if plan.synthesis == "boot" else 8,
        file_bytes=len(data),
        stripped_bytes=stripped,
        diet_bytes=diet_by_file[data],
        bytes_by_role=info["bytes_by_role"],
        operators=[sg["operators"] for sg in info["subgraphs"]],
        arena_bytes=arena,
        arena_note="64-bit host build of TFLM (tflite-micro wheel); smaller on a 32-bit MCU",
        generated_weight_ram_bytes=info["generated_weight_ram_bytes"],
        generated_layers=[dataclasses.asdict(layer) for layer in layers],
        verification=verification,
        timing_us=timing,
        packed_bytes=byte_table(model).to_dict(),
        layers=info["layers"],
        macs=info["macs"],
    )
    write_pair(plan.path, data, plan.report_path, report.to_dict())
    return report
