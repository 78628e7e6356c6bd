"""Reading (and optionally downloading) PhysioNet WFDB records with errors that name the file."""
from __future__ import annotations

import pathlib
from typing import Sequence

import numpy as np
import wfdb

from hypertiny_keras.data.errors import DataError


def require_dir(data_dir: str | pathlib.Path, what: str) -> pathlib.Path:
    """``data_dir`` as a path; raises `DataError` if it is not an existing directory."""
    path = pathlib.Path(data_dir).expanduser()
    if not path.is_dir():
        raise DataError(f"{path}: {what} directory does not exist (pass download=True to fetch it)")
    return path


def require_file(path: pathlib.Path, what: str) -> pathlib.Path:
    """``path``; raises `DataError` if the file is missing."""
    if not path.is_file():
        raise DataError(f"{path}: missing {what}")
    return path


def require_files(paths: list[pathlib.Path]) -> list[pathlib.Path]:
    """``paths``; raises `DataError` naming the first missing file and its record."""
    for path in paths:
        require_file(path, f"file of record {path.stem}")
    return paths


def read_header(record: pathlib.Path) -> wfdb.Record:
    """The parsed ``<record>.hea``; raises `DataError` if it is missing or corrupt."""
    hea = require_file(record.with_name(record.name + ".hea"), "header file (.hea)")
    try:
        return wfdb.rdheader(str(record))
    except Exception as err:  # wfdb raises many types for malformed headers
        raise DataError(f"{hea}: corrupt header ({type(err).__name__}: {err})") from err


def read_channel(record: pathlib.Path, channel: int | str) -> tuple[np.ndarray, float]:
    """One channel of a WFDB record in physical units.

    Args:
        record: record path without extension (``.../mitdb/100``).
        channel: channel index, or signal name as in the header (``"MLII"``, ``"II"``).

    Returns:
        ``(signal, fs)``: float64 ``(n_samples,)`` and the sampling rate in Hz.
    """
    header = read_header(record)
    if isinstance(channel, str):
        if channel not in header.sig_name:
            raise DataError(f"{record}.hea: no signal named {channel!r} (has {header.sig_name})")
        channel = header.sig_name.index(channel)
    if not 0 <= channel < header.n_sig:
        raise DataError(f"{record}.hea: no channel {channel} ({header.n_sig} signals)")
    dat = record.with_name(header.file_name[channel])
    require_file(dat, "signal file (.dat)")
    try:
        signal = wfdb.rdrecord(str(record), channels=[channel]).p_signal[:, 0]
    except Exception as err:
        raise DataError(f"{dat}: cannot read signal ({type(err).__name__}: {err})") from err
    if signal.size == 0:
        raise DataError(f"{dat}: signal is empty")
    return signal, float(header.fs)


def read_annotation(
    record: pathlib.Path, extension: str, n_samples: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """Sample positions and symbols of ``<record>.<extension>``.

    Args:
        record: record path without extension.
        extension: annotator, e.g. ``"atr"``, ``"qrs"``, ``"apn"``.
        n_samples: signal length in samples; any annotation at or beyond it raises. ``None``
            skips the check.

    Returns:
        ``(sample, symbol)``: int64 ``(K,)`` sample indices and str ``(K,)`` symbols.
    """
    path = require_file(record.with_name(f"{record.name}.{extension}"), f"annotation file (.{extension})")
    try:
        ann = wfdb.rdann(str(record), extension)
    except Exception as err:
        raise DataError(f"{path}: cannot read annotations ({type(err).__name__}: {err})") from err
    sample = np.asarray(ann.sample, np.int64)
    if n_samples is not None and sample.size and (sample.max() >= n_samples or sample.min() < 0):
        bad = sample[(sample >= n_samples) | (sample < 0)][0]
        raise DataError(
            f"{path}: annotation at sample {bad} is beyond the signal ({n_samples} samples)"
        )
    return sample, np.asarray(ann.symbol, str)


def download_database(database: str, data_dir: pathlib.Path, records: Sequence[str] | str = "all") -> None:
    """Download a PhysioNet database into ``data_dir`` with `wfdb.dl_database` (needs network)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    wfdb.dl_database(database, str(data_dir), records=records, annotators="all")
