"""`export_tflite`: Keras model -> verified int8 `.tflite`, as a pipeline of one module per stage.

    analyze -> convert -> rewrite -> shrink -> verify -> write
    (plan)     (converter) (init subgraph for boot; the frozen equivalent where it is the truth)
                                      (flatbuffer diet; names and metadata stripped)
                                                (TFLM reference, LiteRT on the main graph)
                                                          (model + report, both or neither)
"""
from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np

from hypertiny_keras.device.runtime import tflm_arena_bytes
from hypertiny_keras.export.analyze import analyze
from hypertiny_keras.export.convert import convert
from hypertiny_keras.export.errors import ExportError, ExportVerificationError
from hypertiny_keras.export.options import ExportOptions
from hypertiny_keras.export.report import ExportReport, file_sha256
from hypertiny_keras.export.rewrite import rewrite
from hypertiny_keras.export.shrink import shrink
from hypertiny_keras.export.verify import verify
from hypertiny_keras.export.write import write_pair
from hypertiny_keras.tflite.flatbuffer import read_model
from hypertiny_keras.tflite.inspect import inspect_tflite
from hypertiny_keras.transforms.accounting import byte_table

_ARENA_NOTE = ("64-bit host build of TFLM (tflite-micro wheel, its own variable kernels); smaller on a 32-bit MCU "
               "and, for a boot file, with the device core (tflm_app)")


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
    dense_per_tensor: bool = True,
    init_weight_bits: int = 8,
    options: ExportOptions | None = None,
) -> ExportReport:
    """Export `model` to a full-integer int8 `.tflite` and verify it before writing.

    One truth per model: the boot and the frozen file of a model, exported
    with the same options, compute the same outputs bit for bit in TFLM.
    Where the device's generated kernel is the converter's own per-channel
    filter (`dense`, `factorized`, with `per_channel`), the frozen file is
    the converter's file and the boot file is verified equal to it. Where it
    is not (`lowrank`, `kronecker`, `lowrank_shared`, `kronecker_shared`:
    their kernel is what the int8 FULLY_CONNECTED of their factors gives,
    one scale per layer; or `per_channel=False`), the frozen file stores
    that kernel (the boot file's frozen equivalent) instead of the
    converter's rounding of the float kernel.

    Args:
        model: a Functional/Sequential Keras model, usually with `HyperPointwise` layers.
        representative_data: float inputs `(n, *input_shape[1:])` for
            calibration and verification.
        path: where the `.tflite` goes; the report goes beside it as `.json`.
        synthesis: `"boot"` (generated kernels are computed on the device by
            an init subgraph run once through CALL_ONCE) or `"frozen"`
            (generated kernels stored as ordinary int8 filters).
        io_dtype: `"int8"` inputs/outputs, or `"float32"`.
        per_channel: `True`: the device synthesises exactly the converter's
            per-channel int8 filter (solved kinds), so boot and frozen files
            compute the same thing. `False`: one scale per generated filter,
            in both modes (the frozen file stores what the boot file
            synthesises).
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
        dense_per_tensor: `True` (default): one scale per FULLY_CONNECTED
            weight tensor (the classifier), which every TFLM reads, including
            both Arduino libraries' 2023 snapshots (`hypertiny export
            --arduino` with the default library refuses anything else).
            `False`: one scale per output channel (the converter's default):
            each output unit keeps its own range, so a classifier whose rows
            differ widely in size loses less to rounding, at 4 bytes more
            scale per unit; TFLM reads it only since 2024-09 (tflite-micro
            #2673), and older snapshots would use the first scale for every
            channel, so `export_arduino` refuses such a file for them.
        init_weight_bits: Bits of the init subgraph's FULLY_CONNECTED
            weights (shared generator, basis, heads, right factors): 8, or 4
            (packed int4: half their bytes; codes and left factors are
            FULLY_CONNECTED inputs and stay int8). Heads of dense/factorized
            kinds are still solved for the exact int8 filter (boot == frozen
            bit for bit, or the layer is refused as inexact);
            lowrank/kronecker kernels are what the int4 factors give, and
            their frozen file stores those kernels too.
        options: all of the above as one `ExportOptions`, instead of the
            keywords (give one or the other).

    Returns:
        The `ExportReport`.

    Raises:
        ExportError (a ValueError): bad input, found before conversion by
            `ExportOptions` and `analyze` (shape, dtype, NaN data or weights,
            synthesis mode, a boot export of a model with no
            `HyperPointwise`, several inputs, outputs or generators,
            unwritable or clashing paths), a model the converter refuses, or
            a boot model whose kernels the device cannot synthesise exactly
            (`BootExportError`).
        ExportVerificationError: the main graph differs by more than one
            output step between TFLM and LiteRT, the boot file differs from
            the frozen one in TFLM, or the int8 model is too far from the
            float one.
    """
    keywords = dict(
        synthesis=synthesis, io_dtype=io_dtype, per_channel=per_channel, keep_metadata=keep_metadata,
        verify_samples=verify_samples, tolerance_steps=tolerance_steps, allow_inexact=allow_inexact, diet=diet,
        dense_per_tensor=dense_per_tensor, init_weight_bits=init_weight_bits,
    )
    if options is None:
        options = ExportOptions(**keywords)
    else:
        defaults = ExportOptions()
        given = sorted(k for k, v in keywords.items() if v != getattr(defaults, k))
        if given:
            raise ExportError(f"give options= or the keywords, not both (also given: {', '.join(given)})")

    plan = analyze(model, representative_data, path, options)
    converted = convert(plan)
    rewritten = rewrite(plan, converted)
    main_graph = None if rewritten.main_graph is None else shrink(rewritten.main_graph, options.diet,
                                                                  options.keep_metadata).data
    frozen = None
    if options.synthesis == "boot" and rewritten.matches_converter:  # the converter's own frozen file
        frozen = shrink(read_model(converted), options.diet, options.keep_metadata).data
    file = shrink(rewritten.model, options.diet, options.keep_metadata)

    arena = tflm_arena_bytes(file.data, name=str(plan.path))
    verification, timing, problems = verify(plan, file.data, arena, main_graph, frozen)
    if problems:
        raise ExportVerificationError(f"{plan.path.name} not written: " + "; ".join(problems), problems)
    info = inspect_tflite(file.data)
    report = ExportReport(
        path=str(plan.path),
        synthesis=options.synthesis,
        io_dtype=options.io_dtype,
        per_channel=options.per_channel,
        dense_per_tensor=options.dense_per_tensor,
        init_weight_bits=options.init_weight_bits if options.synthesis == "boot" else 8,
        file_bytes=len(file.data),
        sha256=file_sha256(file.data),
        stripped_bytes=file.stripped_bytes,
        diet_bytes=file.diet_bytes,
        bytes_by_role=info["bytes_by_role"],
        operators=[sg["operators"] for sg in info["subgraphs"]],
        arena_bytes=arena,
        arena_note=_ARENA_NOTE,
        generated_weight_ram_bytes=info["generated_weight_ram_bytes"],
        generated_layers=[dataclasses.asdict(layer) for layer in rewritten.layers],
        verification=verification,
        timing_us=timing,
        packed_bytes=byte_table(model).to_dict(),
        layers=info["layers"],
        macs=info["macs"],
    )
    write_pair(plan.path, file.data, plan.report_path, report.to_dict())
    return report
