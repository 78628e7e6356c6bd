"""`ExportOptions`: every choice of an export, validated in one place and passed through the stages."""
from __future__ import annotations

import dataclasses
import math

from hypertiny_keras.export.errors import ExportError

SYNTHESIS_MODES = ("boot", "frozen")
IO_DTYPES = ("int8", "float32")
INIT_WEIGHT_BITS = (8, 4)


@dataclasses.dataclass(frozen=True)
class ExportOptions:
    """How `export_tflite` writes a model; see its docstring for what each option buys and costs.

    Built from `export_tflite`'s keywords, or given whole as its `options`.
    Every field is checked and normalised (bools, ints, floats) when the
    options are made, so a bad value raises `ExportError` before anything is
    converted.

    Attributes:
        synthesis: `"boot"` (an init subgraph computes the generated kernels
            once on the device) or `"frozen"` (they are stored).
        io_dtype: `"int8"` or `"float32"` model inputs and outputs.
        per_channel: generated filters carry one scale per output channel
            (the converter's own filter) rather than one per filter.
        keep_metadata: keep tensor names, signatures and metadata.
        verify_samples: rows of the representative data run in TFLM and LiteRT (>= 1).
        tolerance_steps: largest 99th-percentile distance from the float
            model, in output quantization steps (>= 0).
        allow_inexact: write a boot file whose kernels miss their target.
        diet: run the flatbuffer diet (`export.diet`).
        dense_per_tensor: one scale per FULLY_CONNECTED weight tensor.
        init_weight_bits: bits of the init subgraph's FULLY_CONNECTED weights, 8 or 4.
    """

    synthesis: str = "boot"
    io_dtype: str = "int8"
    per_channel: bool = True
    keep_metadata: bool = False
    verify_samples: int = 64
    tolerance_steps: float = 64.0
    allow_inexact: bool = False
    diet: bool = True
    dense_per_tensor: bool = True
    init_weight_bits: int = 8

    def __post_init__(self):
        if self.synthesis not in SYNTHESIS_MODES:
            raise ExportError(f"synthesis must be one of {SYNTHESIS_MODES}, got {self.synthesis!r}")
        if self.io_dtype not in IO_DTYPES:
            raise ExportError(f"io_dtype must be one of {IO_DTYPES}, got {self.io_dtype!r}")
        if self.init_weight_bits not in INIT_WEIGHT_BITS:
            raise ExportError(f"init_weight_bits must be 8 or 4, got {self.init_weight_bits!r}")
        try:
            samples, tolerance = int(self.verify_samples), float(self.tolerance_steps)
        except (TypeError, ValueError):
            raise ExportError(
                f"verify_samples and tolerance_steps must be numbers, got {self.verify_samples!r} and "
                f"{self.tolerance_steps!r}"
            ) from None
        if samples < 1:
            raise ExportError(f"verify_samples must be >= 1, got {self.verify_samples}")
        if not tolerance >= 0 or math.isnan(tolerance):  # NaN fails too
            raise ExportError(f"tolerance_steps must be a number >= 0, got {self.tolerance_steps}")
        normalised = dict(
            per_channel=bool(self.per_channel), keep_metadata=bool(self.keep_metadata), verify_samples=samples,
            tolerance_steps=tolerance, allow_inexact=bool(self.allow_inexact), diet=bool(self.diet),
            dense_per_tensor=bool(self.dense_per_tensor), init_weight_bits=int(self.init_weight_bits),
        )
        for name, value in normalised.items():
            object.__setattr__(self, name, value)
