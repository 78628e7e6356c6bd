"""MIT-BIH Arrhythmia Database: one window centred on every beat, AAMI labels, patient-wise splits.

Reads the PhysioNet distribution (``<record>.hea``, ``.dat``, ``.atr``) with `wfdb`. Beats are the
annotations whose symbol belongs to an AAMI class (15 symbols); rhythm, noise and other non-beat
annotations (``+ ~ | " ! x [ ]``) are skipped and counted in ``meta["skipped_symbols"]``.
A beat whose window would run off either end of the signal is dropped and counted in
``meta["dropped"]["edge"]`` (no padding).
"""
from __future__ import annotations

import pathlib
from typing import Sequence

import numpy as np
from scipy.signal import resample_poly
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
    verify_checksums,
)
from hypertiny_keras.data.splits import assign_groups
from hypertiny_keras.data.windows import Windows, finish_windows

FS = 360.0  # Hz, native sampling rate
AAMI_CLASSES = ("N", "S", "V", "F", "Q")
AAMI_MAP = {
    **dict.fromkeys("NLRej", "N"),
    **dict.fromkeys("AaJS", "S"),
    **dict.fromkeys("VE", "V"),
    "F": "F",
    **dict.fromkeys("/fQ", "Q"),
}
TASKS = {
    "v_vs_rest": ("rest", "V"),
    "abnormal_vs_normal": ("normal", "abnormal"),
    "aami5": AAMI_CLASSES,
}
PACED_RECORDS = ("102", "104", "107", "217")
# de Chazal et al. 2004 inter-patient division (paced records excluded).
DS1 = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122",
       "124", "201", "203", "205", "207", "208", "209", "215", "220", "223", "230")
DS2 = ("100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210",
       "212", "213", "214", "219", "221", "222", "228", "231", "232", "233", "234")
SAME_PATIENT = {"202": "201"}  # records 201 and 202 come from the same patient


def patient_of(record: str) -> str:
    """Patient id of an MIT-BIH record (records 201 and 202 share patient ``"201"``)."""
    return SAME_PATIENT.get(record, record)


def aami_labels(symbols: np.ndarray, task: str) -> np.ndarray:
    """Labels of beat symbols for ``task`` (symbols must all be AAMI beat symbols).

    ``v_vs_rest``: 1 for AAMI V (``V``, ``E``); ``abnormal_vs_normal``: 1 for any non-N AAMI
    class; ``aami5``: index into ``("N", "S", "V", "F", "Q")``.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    aami = np.array([AAMI_MAP[s] for s in symbols], dtype="<U1")
    if task == "v_vs_rest":
        return (aami == "V").astype(np.int64)
    if task == "abnormal_vs_normal":
        return (aami != "N").astype(np.int64)
    return np.array([AAMI_CLASSES.index(a) for a in aami], np.int64)


def list_records(data_dir: str | pathlib.Path) -> list[str]:
    """Record names from the database's ``RECORDS`` file."""
    path = require_dir(data_dir, "MIT-BIH") / "RECORDS"
    if not path.is_file():
        raise DataError(f"{path}: missing RECORDS file (is this the mitdb directory?)")
    records = path.read_text().split()
    if not records:
        raise DataError(f"{path}: lists no records")
    return records


def read_beats(data_dir: str | pathlib.Path, record: str) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Beat annotations of one record, without reading its signal.

    Returns:
        ``(sample, symbol, skipped)``: beat positions in samples at 360 Hz ``(B,)``, their
        symbols ``(B,)``, and counts of the non-beat symbols that were skipped.
    """
    path = pathlib.Path(data_dir) / record
    n_samples = read_header(path).sig_len
    sample, symbol = read_annotation(path, "atr", n_samples)
    is_beat = np.isin(symbol, list(AAMI_MAP))
    skipped_symbols, counts = np.unique(symbol[~is_beat], return_counts=True)
    return sample[is_beat], symbol[is_beat], dict(zip(skipped_symbols.tolist(), counts.tolist()))


def split_records(
    records: Sequence[str], split: str, seed: int, val_fraction: float, exclude_paced: bool
) -> dict[str, str]:
    """``{record: split}`` for the ``"dechazal"`` or ``"paper"`` protocol.

    ``dechazal``: DS1 records -> train/val (``val_fraction`` of DS1 patients, seeded), DS2 -> test.
    ``paper``: patients shuffled with ``seed`` and cut 80/10/10.
    Paced records are left out when ``exclude_paced`` (always for ``dechazal``).
    """
    if exclude_paced or split == "dechazal":
        records = [r for r in records if r not in PACED_RECORDS]
    if split == "dechazal":
        ds1 = [r for r in records if r in DS1]
        by_patient = assign_groups(
            [patient_of(r) for r in ds1], (1 - val_fraction, val_fraction), seed, ("train", "val")
        )
        out = {r: by_patient[patient_of(r)] for r in ds1}
        out.update({r: "test" for r in records if r in DS2})
        return out
    if split == "paper":
        by_patient = assign_groups([patient_of(r) for r in records], (0.8, 0.1, 0.1), seed)
        return {r: by_patient[patient_of(r)] for r in records}
    raise ValueError(f"split must be 'dechazal' or 'paper', got {split!r}")


def load_mitbih(
    data_dir: str | pathlib.Path,
    task: str = "v_vs_rest",
    split: str = "dechazal",
    records: Sequence[str] | None = None,
    window_seconds: float = 5.0,
    fs: float = FS,
    channel: int | str = 0,
    exclude_paced: bool = False,
    val_fraction: float = 0.2,
    seed: int = 0,
    zscore: bool = True,
    clip: float | None = None,
    use_cache: bool = True,
    download: bool = False,
) -> Windows:
    """Beat-centred windows of the MIT-BIH Arrhythmia Database.

    Args:
        data_dir: the ``mitdb`` directory (``RECORDS``, ``100.hea``, ``100.dat``, ``100.atr``...).
        task: ``"v_vs_rest"`` (AAMI V vs rest), ``"abnormal_vs_normal"`` (non-N vs N) or
            ``"aami5"`` (N, S, V, F, Q).
        split: ``"dechazal"`` (inter-patient DS1 -> train/val, DS2 -> test, paced records
            excluded) or ``"paper"`` (patient-wise 80/10/10 by ``seed``).
        records: restrict to these records (default: all of ``RECORDS``); records missing from
            the chosen protocol are ignored.
        window_seconds: window length in seconds (default 5 s = 1800 samples at 360 Hz).
        fs: output sampling rate in Hz; the signal is polyphase-resampled when it differs from 360.
        channel: channel index or signal name (channel 0 is MLII in 45 of 48 records).
        exclude_paced: also drop the paced records 102, 104, 107, 217 from the ``paper`` split.
        val_fraction: share of DS1 patients used for validation (``dechazal`` only).
        seed: split seed.
        zscore, clip: per-window normalisation (see `normalize_windows`).
        use_cache: read / write the disk cache.
        download: first fetch ``mitdb`` from PhysioNet into ``data_dir`` (needs network).

    Returns:
        `Windows` with ``x`` of shape ``(N, round(window_seconds * fs), 1)``; ``order`` is the
        beat position in samples at ``fs``.
    """
    data_dir = pathlib.Path(data_dir).expanduser()
    if download:
        download_database("mitdb", data_dir)
    if records is not None and len(records) == 0:
        raise DataError(f"{data_dir}: no records given (records is empty)")
    candidates = list(records) if records is not None else list_records(data_dir)
    try:
        assignment = split_records(candidates, split, seed, val_fraction, exclude_paced)
    except DataError as err:
        paced = ", paced records left out" if split == "dechazal" or exclude_paced else ""
        shown = candidates if len(candidates) <= 10 else f"{len(candidates)} records"
        raise DataError(f"{data_dir}: records {shown} under split={split!r}{paced}: {err}") from err
    if records is not None:
        assignment = {r: s for r, s in assignment.items() if r in records}
    params = dict(task=task, split=split, window_seconds=window_seconds, fs=fs, channel=channel,
                  assignment=assignment, zscore=zscore, clip=clip)
    inputs = require_files([data_dir / f"{r}.{ext}" for r in assignment for ext in ("hea", "dat", "atr")])

    def build() -> Windows:
        checked = verify_checksums(data_dir, inputs)
        windows = _build(data_dir, assignment, task, window_seconds, fs, channel, zscore, clip)
        windows.meta["checksums"] = checked
        return windows

    return cached_windows("mitbih", params, inputs, build, use_cache)


def _build(data_dir, assignment, task, window_seconds, fs, channel, zscore, clip) -> Windows:
    length = int(round(window_seconds * fs))
    xs, ys, recs, orders, skipped, edge = [], [], [], [], {}, 0
    for record in tqdm(sorted(assignment), desc="MIT-BIH records", unit="rec"):
        signal, native_fs = read_channel(data_dir / record, channel)
        sample, symbol, skip = read_beats(data_dir, record)
        for s, n in skip.items():
            skipped[s] = skipped.get(s, 0) + n
        if fs != native_fs:
            signal = resample_poly(signal, int(round(fs)), int(round(native_fs)))
            sample = np.round(sample * fs / native_fs).astype(np.int64)
        start = sample - length // 2
        inside = (start >= 0) & (start + length <= signal.size)
        edge += int((~inside).sum())
        start = start[inside]
        xs.append(signal[start[:, None] + np.arange(length)].astype(np.float32))
        ys.append(aami_labels(symbol[inside], task))
        recs.append(np.full(start.size, record))
        orders.append(sample[inside])
    record = np.concatenate(recs)
    return finish_windows(
        x=np.concatenate(xs)[..., None],
        y=np.concatenate(ys),
        record=record,
        patient=np.array([patient_of(r) for r in record]),
        split=np.array([assignment[r] for r in record]),
        order=np.concatenate(orders),
        class_names=TASKS[task],
        fs=fs,
        meta=dict(source=str(data_dir), dataset="mitbih", task=task, skipped_symbols=skipped,
                  dropped={"edge": edge}),
        zscore=zscore,
        clip=clip,
    )
