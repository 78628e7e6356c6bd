"""Reading (and optionally downloading) PhysioNet WFDB records with errors that name the file."""
from __future__ import annotations

import pathlib
from typing import Sequence

import numpy as np
import wfdb

from hypertiny_keras.data.errors import DataError
from hypertiny_keras.utils.fileio import sha256_of_file

# MIT annotation format: 16-bit little-endian words, code in the top 6 bits, value in the low 10.
_ANN_SKIP = 59  # followed by two words: a 32-bit interval
_ANN_AUX = 63  # followed by ``value`` bytes of text, padded to whole words
# Bytes per sample of the WFDB signal formats whose file size follows from the header.
_BYTES_PER_SAMPLE = {"8": 1.0, "16": 2.0, "24": 3.0, "32": 4.0, "61": 2.0, "80": 1.0,
                     "160": 2.0, "212": 1.5, "310": 4 / 3, "311": 4 / 3}


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


#: The checksum list PhysioNet ships with each database (``<sha256> <path>`` per line).
SHA256SUMS = "SHA256SUMS.txt"


def verify_checksums(data_dir: pathlib.Path, files: Sequence[pathlib.Path]) -> str:
    """Check ``files`` against the database's ``SHA256SUMS.txt`` in ``data_dir``, where it ships one.

    Returns:
        What was checked, one sentence for ``Windows.meta["checksums"]``: how many files matched
        the list, or that ``data_dir`` has no list (files then not verified).

    Raises:
        DataError: a file whose SHA-256 differs from the list (naming it), a file the list
            does not name, or an unreadable list.
    """
    listing = data_dir / SHA256SUMS
    if not listing.is_file():
        return f"not verified: {data_dir} has no {SHA256SUMS} (a database without one, or a copy made without it)"
    sums = {}
    try:
        for line in listing.read_text().splitlines():
            if line.strip():
                digest, name = line.split(maxsplit=1)
                sums[name.strip().lstrip("*")] = digest.lower()
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{listing}: cannot read the checksum list ({err})") from err
    for path in files:
        name = path.relative_to(data_dir).as_posix()
        if name not in sums:
            raise DataError(f"{path}: not listed in {listing}")
        if sha256_of_file(path) != sums[name]:
            raise DataError(f"{path}: SHA-256 differs from {listing} (the file is damaged or was changed)")
    return f"{len(files)} files verified against {listing}"


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
    check_signal_size(header, dat)
    try:
        signal = wfdb.rdrecord(str(record), channels=[channel]).p_signal[:, 0]
    except Exception as err:
        raise DataError(f"{dat}: cannot read signal ({type(err).__name__}: {err})") from err
    if signal.size == 0:
        raise DataError(f"{dat}: signal is empty")
    return signal, float(header.fs)


def check_signal_size(header: wfdb.Record, dat: pathlib.Path) -> None:
    """Raise `DataError` if ``dat`` holds fewer bytes than the header's samples need.

    Checked when every signal stored in ``dat`` has the same format with a fixed size per sample
    (``8``, ``16``, ``212``, ...): ``byte_offset + ceil(sig_len * samples_per_frame * bytes)``.
    Longer files are accepted (WFDB ignores trailing bytes); other formats are left to `wfdb`.
    """
    in_file = [i for i, name in enumerate(header.file_name) if name == dat.name]
    formats = {header.fmt[i] for i in in_file}
    if header.sig_len is None or len(formats) != 1 or (fmt := formats.pop()) not in _BYTES_PER_SAMPLE:
        return
    per_frame = sum((header.samps_per_frame or [1] * header.n_sig)[i] or 1 for i in in_file)
    offset = (header.byte_offset or [0] * header.n_sig)[in_file[0]] or 0
    needed = offset + int(np.ceil(header.sig_len * per_frame * _BYTES_PER_SAMPLE[fmt]))
    size = dat.stat().st_size
    if size < needed:
        raise DataError(
            f"{dat}: truncated signal file ({size} bytes; the header's {header.sig_len} samples x "
            f"{per_frame} signal(s) in format {fmt} need {needed})"
        )


def check_annotation_file(path: pathlib.Path) -> None:
    """Raise `DataError` unless ``path`` is a complete MIT-format annotation file.

    A complete file is a whole number of 16-bit words whose last word is the end-of-file marker
    (``0x0000``) and where that marker is reached by walking the annotations (skipping the
    payload of ``SKIP`` and ``AUX`` words), so a file cut short anywhere is caught, also one
    cut right after an annotation. `wfdb.rdann` does not check this: it silently returns the
    annotations of a truncated file.
    """
    raw = np.fromfile(path, np.uint8)
    if raw.size == 0:
        raise DataError(f"{path}: annotation file is empty (0 bytes)")
    if raw.size % 2:
        raise DataError(f"{path}: truncated annotation file ({raw.size} bytes, an odd number)")
    words = raw[0::2].astype(np.int64) | (raw[1::2].astype(np.int64) << 8)
    code, value = words >> 10, words & 0x3FF
    stops = np.flatnonzero((words == 0) | (code == _ANN_SKIP) | (code == _ANN_AUX))
    i = 0  # index of the next word that starts an annotation field
    while True:
        k = int(np.searchsorted(stops, i))
        if k == stops.size:
            raise DataError(
                f"{path}: truncated annotation file (no end-of-file marker in its {raw.size} bytes)"
            )
        j = int(stops[k])
        if words[j] == 0:
            if j != words.size - 1:
                raise DataError(
                    f"{path}: corrupt annotation file ({2 * (words.size - 1 - j)} bytes after "
                    f"the end-of-file marker at byte {2 * j})"
                )
            return
        i = j + 3 if code[j] == _ANN_SKIP else j + 1 + (int(value[j]) + 1) // 2


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

    Raises:
        DataError: the file is missing, empty, truncated (see `check_annotation_file`) or
            unreadable, or an annotation lies outside the signal.
    """
    path = require_file(record.with_name(f"{record.name}.{extension}"), f"annotation file (.{extension})")
    check_annotation_file(path)
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
