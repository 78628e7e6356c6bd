"""Stage 6 of the export, write: the model and its JSON report, as one pair or not at all."""
from __future__ import annotations

import json
import math
import os
import pathlib
from typing import Iterable

from hypertiny_keras.export.errors import ExportError
from hypertiny_keras.export.report import is_report, report_file
from hypertiny_keras.utils.fileio import atomic_write_all, check_output


def check_paths(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> tuple[pathlib.Path, pathlib.Path]:
    """The model path and its report's path (beside it, `.json`), checked by `utils.fileio.check_output`.

    Neither may be one of `inputs`, a directory, a link or another
    non-regular file; an existing `.json` is replaced only if it is an
    earlier export report (`report.is_report`).

    Raises:
        ExportError: one line naming the path and the problem.
    """
    path = pathlib.Path(path)
    report = report_file(path)
    if path.suffix.lower() == ".json" or report == path:
        raise ExportError(f"{path}: the model path must not end in .json (the report goes beside it as .json)")
    inputs = list(inputs)
    try:
        check_output(path, inputs)
        check_output(report, inputs, replaceable=is_report)
    except ValueError as error:
        raise ExportError(str(error)) from None
    return path, report


def json_ready(value):
    """`value` with NaN/inf floats as `None` and numpy scalars as Python numbers, at every depth."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def report_json(report: dict) -> bytes:
    """Strict JSON (no NaN) of a report dict."""
    return json.dumps(json_ready(report), indent=2, allow_nan=False).encode()


def write_pair(model_path: pathlib.Path, model: bytes, report_path: pathlib.Path, report: dict) -> None:
    """Write `model` and `report` (as JSON) so that either both are new or neither changed.

    Raises:
        ExportError: when either cannot be written (nothing is left behind).
    """
    try:
        atomic_write_all([(report_path, report_json(report)), (model_path, model)])
    except OSError as error:
        raise ExportError(f"cannot write {model_path} and its report: {error.strerror or error}") from None
