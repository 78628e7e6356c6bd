"""The export's errors, one module so that every stage raises the same classes.

- `ExportError` (a `ValueError`): the model, its data, the options or the
  paths cannot be exported; found before anything is written.
- `BootExportError` (an `ExportError`): the converted model cannot be given
  an init subgraph that computes its kernels exactly.
- `ExportVerificationError` (a `RuntimeError`): the file was made but did not
  run as it must (`verify`); nothing was written.
"""
from __future__ import annotations

#: How the problem sentence of the float-distance check (`verify`) starts.
FLOAT_DISTANCE_PROBLEM = "int8 outputs in TFLM are"


class ExportError(ValueError):
    """The model, its data or the paths cannot be exported; nothing was written."""


class BootExportError(ExportError):
    """The converted model cannot be given an init subgraph that computes its kernels exactly."""


class ExportVerificationError(RuntimeError):
    """The exported file did not run as it must; nothing was written.

    `problems` holds one sentence per failed check; `only_float_distance`
    says whether every failure is a distance of the int8 model from the
    float one (its 99th-percentile steps or its top-1 agreement: quantization
    too coarse for this model, the file computes what it should, but not what
    the float model computes).
    """

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = list(problems or [])
        self.only_float_distance = bool(self.problems) and all(
            p.startswith(FLOAT_DISTANCE_PROBLEM) for p in self.problems
        )
