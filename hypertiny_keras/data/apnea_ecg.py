"""Apnea-ECG: per-minute apnea (A = 1) / normal (N = 0) labels with raw-ECG or RR-interval inputs.

Labels come from ``<record>.apn`` (learning set a01-a20, b01-b05, c01-c10) and
``x-answers/<record>.apn`` (test set x01-x35); minute m covers samples ``[6000 m, 6000 (m+1))``
at 100 Hz. Each record is one patient id (the database does not say which records share a subject).

Inputs:
    ``signal="ecg"``: three 18 s windows (1800 samples at 100 Hz) per labelled minute, at offsets
        0, 18 and 36 s; ``order = 3 m + k``. Needs the ``.dat`` files.
    ``signal="rr"``: the RR-interval series (seconds) from the ``.qrs`` R-peak annotations.
        Intervals outside ``rr_range`` (physiologically impossible, default 0.3-2.0 s, i.e.
        30-200 bpm) are removed and counted (``meta["removed_rr_intervals"]``); the remaining
        values, placed at the time of the closing R peak, are linearly interpolated at ``rr_fs``
        Hz over ``context_minutes`` minutes either side of the labelled minute, giving
        ``(2 c + 1) * 60 * rr_fs`` samples; ``order = m``.

Dropped and counted windows (``meta["dropped"]``): ``edge`` (the window or its context runs off
the recording), ``low_rr_coverage`` (valid RR intervals cover less than ``min_rr_coverage`` of
the window), ``nan`` / ``flat``.

Splits: ``"official"``: learning set -> train / val by record (``val_fraction``, seeded),
x01-x35 -> test; ``"record"``: all records shuffled with ``seed`` and cut 80/10/10.
"""
from __future__ import annotations

import pathlib
import re
from typing import Sequence

import numpy as np
from tqdm.auto import tqdm

from hypertiny_keras.data.cache import cached_windows
from hypertiny_keras.data.errors import DataError
from hypertiny_keras.data.physionet import (
    download_database,
    read_annotation,
    read_channel,
    read_header,
    require_dir,
    require_files,
)
from hypertiny_keras.data.splits import assign_groups
from hypertiny_keras.data.windows import Windows, finish_windows

FS = 100.0  # Hz
MINUTE = 6000  # samples per labelled minute
ECG_WINDOW = 1800  # samples = 18 s
ECG_OFFSETS = (0, 1800, 3600)  # samples into the minute
CLASS_NAMES = ("normal", "apnea")
RECORD_NAME = re.compile(r"^[abcx]\d\d$")


def list_records(data_dir: str | pathlib.Path) -> list[str]:
    """The 70 ECG records (a01..c10, x01..x35) named in ``RECORDS`` (respiration records skipped)."""
    path = require_dir(data_dir, "Apnea-ECG") / "RECORDS"
    if not path.is_file():
        raise DataError(f"{path}: missing RECORDS file (is this the apnea-ecg directory?)")
    records = [r for r in path.read_text().split() if RECORD_NAME.match(r)]
    if not records:
        raise DataError(f"{path}: lists no ECG records (a01..c10, x01..x35)")
    return records


def read_minute_labels(data_dir: str | pathlib.Path, record: str) -> tuple[np.ndarray, np.ndarray]:
    """``(minute, label)``: int64 ``(M,)`` minute indices and labels (1 apnea, 0 normal).

    Test records (``x..``) are read from ``x-answers/``. Raises `DataError` for a label beyond
    the signal length in the header or a symbol other than A / N.
    """
    data_dir = pathlib.Path(data_dir)
    n_samples = read_header(data_dir / record).sig_len
    label_path = data_dir / "x-answers" / record if record.startswith("x") else data_dir / record
    sample, symbol = read_annotation(label_path, "apn", n_samples)
    bad = ~np.isin(symbol, ["A", "N"])
    if bad.any():
        raise DataError(f"{label_path}.apn: unexpected label {symbol[bad][0]!r} (expected A or N)")
    return sample // MINUTE, (symbol == "A").astype(np.int64)


def split_records(records: Sequence[str], split: str, seed: int, val_fraction: float) -> dict[str, str]:
    """``{record: split}`` for the ``"official"`` or ``"record"`` protocol (see module doc)."""
    if split == "official":
        learning = [r for r in records if not r.startswith("x")]
        out = assign_groups(learning, (1 - val_fraction, val_fraction), seed, ("train", "val"))
        out.update({r: "test" for r in records if r.startswith("x")})
        return out
    if split == "record":
        return assign_groups(records, (0.8, 0.1, 0.1), seed)
    raise ValueError(f"split must be 'official' or 'record', got {split!r}")


def rr_windows(
    peaks: np.ndarray,
    minutes: np.ndarray,
    n_samples: int,
    context_minutes: int,
    rr_fs: float,
    rr_range: tuple[float, float],
    min_rr_coverage: float,
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Resampled RR-interval windows of one record.

    Args:
        peaks: R-peak positions in samples at 100 Hz.
        minutes: labelled minute indices.
        n_samples: recording length in samples.
        context_minutes, rr_fs, rr_range, min_rr_coverage: see `load_apnea_ecg`.

    Returns:
        ``(x, keep, counts)``: float32 ``(K, (2c+1)*60*rr_fs)`` RR values in seconds for the kept
        minutes, boolean mask over ``minutes``, and counts of removed intervals / dropped windows.
    """
    rr = np.diff(peaks) / FS
    t = peaks[1:] / FS
    valid = (rr >= rr_range[0]) & (rr <= rr_range[1])
    rr, t = rr[valid], t[valid]
    length = int(round((2 * context_minutes + 1) * 60 * rr_fs))
    start_s = (minutes - context_minutes) * 60.0
    end_s = (minutes + context_minutes + 1) * 60.0
    inside = (start_s >= 0) & (end_s <= n_samples / FS)
    cumulative = np.concatenate([[0.0], np.cumsum(rr)])
    covered = (cumulative[np.searchsorted(t, end_s)] - cumulative[np.searchsorted(t, start_s)]) / (
        end_s - start_s
    )
    enough = covered >= min_rr_coverage
    keep = inside & enough
    grid = start_s[keep, None] + np.arange(length) / rr_fs
    x = np.interp(grid, t, rr).astype(np.float32) if rr.size else np.zeros(grid.shape, np.float32)
    counts = {"removed_rr_intervals": int((~valid).sum()), "edge": int((~inside).sum()),
              "low_rr_coverage": int((inside & ~enough).sum())}
    return x, keep, counts


def ecg_windows(signal: np.ndarray, minutes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Three 18 s windows per labelled minute.

    Returns:
        ``(x, minute_of_window, order, n_edge)``: float32 ``(K, 1800)``, the minute of each
        window, ``3 m + k``, and how many windows ran off the signal (dropped).
    """
    starts = (minutes[:, None] * MINUTE + np.array(ECG_OFFSETS)).ravel()
    order = (minutes[:, None] * 3 + np.arange(3)).ravel()
    inside = starts + ECG_WINDOW <= signal.size
    starts = starts[inside]
    x = signal[starts[:, None] + np.arange(ECG_WINDOW)].astype(np.float32)
    return x, np.repeat(minutes, 3)[inside], order[inside], int((~inside).sum())


def load_apnea_ecg(
    data_dir: str | pathlib.Path,
    signal: str = "rr",
    split: str = "official",
    records: Sequence[str] | None = None,
    context_minutes: int = 2,
    rr_fs: float = 4.0,
    rr_range: tuple[float, float] = (0.3, 2.0),
    min_rr_coverage: float = 0.5,
    val_fraction: float = 0.2,
    seed: int = 0,
    zscore: bool = True,
    clip: float | None = None,
    use_cache: bool = True,
    download: bool = False,
) -> Windows:
    """Per-minute apnea windows of the Apnea-ECG database.

    Args:
        data_dir: the ``apnea-ecg`` directory (``RECORDS``, ``a01.hea``, ``a01.apn``,
            ``a01.qrs``, ``a01.dat``, ``x-answers/x01.apn``...).
        signal: ``"rr"`` (RR intervals from ``.qrs``) or ``"ecg"`` (raw 100 Hz ECG from ``.dat``).
        split: ``"official"`` or ``"record"`` (see module doc).
        records: restrict to these records (default all 70).
        context_minutes: RR only: minutes of context on each side of the labelled minute.
        rr_fs: RR only: resampling rate of the RR series in Hz.
        rr_range: RR only: plausible RR interval range in seconds.
        min_rr_coverage: RR only: minimum share of the window covered by valid intervals.
        val_fraction: share of learning-set records used for validation (``official``).
        seed: split seed.
        zscore, clip: per-window normalisation (see `normalize_windows`).
        use_cache: read / write the disk cache.
        download: first fetch ``apnea-ecg`` from PhysioNet into ``data_dir`` (needs network).

    Returns:
        `Windows`: ``x`` ``(N, 1800, 1)`` at 100 Hz (ecg) or ``(N, (2c+1)*60*rr_fs, 1)`` at
        ``rr_fs`` Hz (rr).
    """
    if signal not in ("rr", "ecg"):
        raise ValueError(f"signal must be 'rr' or 'ecg', got {signal!r}")
    data_dir = pathlib.Path(data_dir).expanduser()
    if download:
        download_database("apnea-ecg", data_dir)
    if records is not None and len(records) == 0:
        raise DataError(f"{data_dir}: no records given (records is empty)")
    candidates = list(records) if records is not None else list_records(data_dir)
    try:
        assignment = split_records(candidates, split, seed, val_fraction)
    except DataError as err:
        shown = candidates if len(candidates) <= 10 else f"{len(candidates)} records"
        raise DataError(f"{data_dir}: records {shown} under split={split!r}: {err}") from err
    label_file = {r: (data_dir / "x-answers" / r if r.startswith("x") else data_dir / r) for r in assignment}
    inputs = [data_dir / f"{r}.hea" for r in assignment] + [p.with_name(p.name + ".apn") for p in label_file.values()]
    inputs += [data_dir / f"{r}.{'qrs' if signal == 'rr' else 'dat'}" for r in assignment]
    require_files(inputs)
    params = dict(signal=signal, assignment=assignment, zscore=zscore, clip=clip,
                  rr=(context_minutes, rr_fs, list(rr_range), min_rr_coverage) if signal == "rr" else None)

    def build() -> Windows:
        xs, ys, recs, orders = [], [], [], []
        counts: dict[str, int] = {}
        for record in tqdm(sorted(assignment), desc=f"Apnea-ECG records ({signal})", unit="rec"):
            minutes, labels = read_minute_labels(data_dir, record)
            n_samples = read_header(data_dir / record).sig_len
            if signal == "rr":
                peaks, _ = read_annotation(data_dir / record, "qrs", n_samples)
                x, keep, c = rr_windows(peaks, minutes, n_samples, context_minutes, rr_fs,
                                        rr_range, min_rr_coverage)
                y, order = labels[keep], minutes[keep]
            else:
                ecg, _ = read_channel(data_dir / record, 0)
                x, minute_of, order, edge = ecg_windows(ecg, minutes)
                y, c = labels[np.searchsorted(minutes, minute_of)], {"edge": edge}
            for k, v in c.items():
                counts[k] = counts.get(k, 0) + v
            xs.append(x)
            ys.append(y)
            recs.append(np.full(len(y), record))
            orders.append(order)
        record = np.concatenate(recs)
        removed = counts.pop("removed_rr_intervals", None)
        meta = dict(source=str(data_dir), dataset="apnea_ecg", signal=signal, dropped=counts)
        if removed is not None:
            meta["removed_rr_intervals"] = removed
        return finish_windows(
            x=np.concatenate(xs)[..., None], y=np.concatenate(ys), record=record, patient=record,
            split=np.array([assignment[r] for r in record]), order=np.concatenate(orders),
            class_names=CLASS_NAMES, fs=rr_fs if signal == "rr" else FS, meta=meta,
            zscore=zscore, clip=clip,
        )

    return cached_windows("apnea_ecg", params, inputs, build, use_cache)
