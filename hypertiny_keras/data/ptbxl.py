"""PTB-XL: lead II of the 100 Hz records, NORM-only (0) vs any non-NORM diagnostic statement (1).

Reads ``ptbxl_database.csv``, ``scp_statements.csv`` and ``records100/`` as distributed. A
record's diagnostic statements are its ``scp_codes`` keys whose row in ``scp_statements.csv`` has
``diagnostic == 1`` (any likelihood). Records with no diagnostic statement are dropped and counted
in ``meta["dropped"]["no_diagnostic"]``. Splits follow ``strat_fold`` (patient-disjoint by
construction): folds 1-8 train, 9 val, 10 test. Each window is the whole 10 s record
(1000 samples at 100 Hz).
"""
from __future__ import annotations

import ast
import csv
import pathlib

import numpy as np
from tqdm.auto import tqdm

from hypertiny_keras.data.cache import cached_windows
from hypertiny_keras.data.errors import DataError
from hypertiny_keras.data.physionet import (
    download_database,
    read_channel,
    require_dir,
    require_file,
    require_files,
)
from hypertiny_keras.data.windows import Windows, finish_windows

FS = 100.0  # Hz, records100/
WINDOW = 1000  # samples = 10 s
CLASS_NAMES = ("NORM", "diagnostic")
#: Columns of ``ptbxl_database.csv`` the loader reads.
DATABASE_COLUMNS = ("ecg_id", "patient_id", "strat_fold", "filename_lr", "scp_codes")


def fold_split(fold: int) -> str:
    """``strat_fold`` 1-8 -> ``"train"``, 9 -> ``"val"``, 10 -> ``"test"``."""
    return "test" if fold == 10 else "val" if fold == 9 else "train"


def diagnostic_codes(data_dir: pathlib.Path) -> set[str]:
    """SCP codes with ``diagnostic == 1`` in ``scp_statements.csv``."""
    path = require_file(data_dir / "scp_statements.csv", "scp_statements.csv")
    with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: a byte-order mark is not part of the header
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            raise DataError(f"{path}: file is empty")
        if "" not in reader.fieldnames or "diagnostic" not in reader.fieldnames:
            raise DataError(f"{path}: header has no code column ('') or no 'diagnostic' column")
        codes = {row[""] for row in reader if (row.get("diagnostic") or "").strip() in ("1", "1.0")}
    if not codes:
        raise DataError(f"{path}: lists no diagnostic statements (no row with diagnostic == 1)")
    return codes


def read_labels(data_dir: str | pathlib.Path) -> tuple[list[dict], int]:
    """Labelled rows of ``ptbxl_database.csv``.

    Returns:
        ``(rows, n_without_diagnostic)``; each row has ``ecg_id``, ``patient_id``, ``fold``,
        ``filename`` (``filename_lr``, relative to ``data_dir``) and ``label`` (0 NORM only,
        1 any other diagnostic statement).
    """
    data_dir = pathlib.Path(data_dir)
    diagnostic = diagnostic_codes(data_dir)
    path = require_file(data_dir / "ptbxl_database.csv", "ptbxl_database.csv")
    rows, dropped, seen = [], 0, {}
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            raise DataError(f"{path}: file is empty")
        absent = [c for c in DATABASE_COLUMNS if c not in reader.fieldnames]
        if absent:
            raise DataError(f"{path}: the header has no column {', '.join(absent)}")
        for line, row in enumerate(reader, start=2):
            missing = [k for k, v in row.items() if v is None]
            if missing:
                raise DataError(f"{path}:{line}: row has {len(row) - len(missing)} of "
                                f"{len(row)} fields (file cut short?)")
            try:
                scp = ast.literal_eval(row["scp_codes"])
                if not isinstance(scp, dict):
                    raise ValueError(f"scp_codes {row['scp_codes']!r} is not a dict of codes")
                codes = set(scp) & diagnostic
                entry = dict(ecg_id=str(int(float(row["ecg_id"]))),
                             patient_id=str(int(float(row["patient_id"]))),
                             fold=int(row["strat_fold"]), filename=row["filename_lr"])
            except (KeyError, ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as err:
                raise DataError(f"{path}:{line}: cannot parse row ({type(err).__name__}: {err})") from err
            if entry["ecg_id"] in seen:
                raise DataError(f"{path}:{line}: ecg_id {entry['ecg_id']} repeats the row of line "
                                f"{seen[entry['ecg_id']]}")
            seen[entry["ecg_id"]] = line
            if not codes:
                dropped += 1
                continue
            rows.append({**entry, "label": int(codes != {"NORM"})})
    return rows, dropped


def load_ptbxl(
    data_dir: str | pathlib.Path,
    max_records: int | None = None,
    zscore: bool = True,
    clip: float | None = None,
    use_cache: bool = True,
    download: bool = False,
) -> Windows:
    """Lead-II windows of PTB-XL at 100 Hz, binary NORM vs diagnostic, strat_fold splits.

    Args:
        data_dir: the PTB-XL directory (``ptbxl_database.csv``, ``scp_statements.csv``,
            ``records100/``); the full release or any subset whose CSV lists only present records.
        max_records: keep the first ``max_records`` labelled rows (by ``ecg_id``) of the CSV.
        zscore, clip: per-window normalisation (see `normalize_windows`).
        use_cache: read / write the disk cache.
        download: first fetch PTB-XL (CSV files and ``records100``) from PhysioNet (needs network).

    Returns:
        `Windows` with ``x`` ``(N, 1000, 1)`` (lead II, 10 s at 100 Hz), ``record`` = ecg_id,
        ``patient`` = patient_id, ``order`` = 0.
    """
    data_dir = pathlib.Path(data_dir).expanduser()
    if download:
        download_ptbxl(data_dir)
    require_dir(data_dir, "PTB-XL")
    rows, no_diagnostic = read_labels(data_dir)
    csv_path = data_dir / "ptbxl_database.csv"
    if not rows:
        raise DataError(f"{csv_path}: lists no records" if not no_diagnostic else
                        f"{csv_path}: none of its {no_diagnostic} records has a diagnostic statement")
    if max_records is not None and max_records < 1:
        raise DataError(f"{csv_path}: max_records={max_records} keeps no records")
    rows = sorted(rows, key=lambda r: int(r["ecg_id"]))[:max_records]
    inputs = [data_dir / "ptbxl_database.csv", data_dir / "scp_statements.csv"]
    inputs += require_files([data_dir / f"{r['filename']}.{ext}" for r in rows for ext in ("hea", "dat")])
    params = dict(ecg_ids=[r["ecg_id"] for r in rows], zscore=zscore, clip=clip)

    def build() -> Windows:
        signals = []
        for row in tqdm(rows, desc="PTB-XL records", unit="rec"):
            signal, fs = read_channel(data_dir / row["filename"], "II")
            if fs != FS or signal.size != WINDOW:
                raise DataError(f"{data_dir / row['filename']}.hea: expected {WINDOW} samples at "
                                f"{FS:g} Hz, found {signal.size} at {fs:g} Hz")
            signals.append(signal.astype(np.float32))
        return finish_windows(
            x=np.stack(signals)[..., None],
            y=np.array([r["label"] for r in rows]),
            record=np.array([r["ecg_id"] for r in rows]),
            patient=np.array([r["patient_id"] for r in rows]),
            split=np.array([fold_split(r["fold"]) for r in rows]),
            order=np.zeros(len(rows), np.int64),
            class_names=CLASS_NAMES,
            fs=FS,
            meta=dict(source=str(data_dir), dataset="ptbxl", dropped={"no_diagnostic": no_diagnostic}),
            zscore=zscore,
            clip=clip,
        )

    return cached_windows("ptbxl", params, inputs, build, use_cache)


def download_ptbxl(data_dir: pathlib.Path) -> None:
    """Fetch PTB-XL's CSV files and the 100 Hz records (about 1.7 GB with records500 skipped)."""
    import wfdb

    data_dir.mkdir(parents=True, exist_ok=True)
    wfdb.dl_files("ptb-xl", str(data_dir), ["ptbxl_database.csv", "scp_statements.csv"])
    rows, _ = read_labels(data_dir)
    download_database("ptb-xl", data_dir, records=[r["filename"] for r in rows])
