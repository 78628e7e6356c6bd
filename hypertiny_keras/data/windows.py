"""`Windows`: the arrays every loader returns, plus per-window cleaning and normalisation."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import numpy as np

from hypertiny_keras.data.errors import DataError

SPLITS = ("train", "val", "test")
FLAT_STD = 1e-6  # a window whose standard deviation is below this is "flat"


@dataclasses.dataclass(frozen=True)
class Windows:
    """Fixed-length model inputs cut from recordings, one row per window.

    Attributes:
        x: float32 inputs, channels last. ECG / RR windows: ``(N, T, 1)`` with T samples at
            ``fs`` Hz; Speech Commands: ``(N, 101, 40)`` MFCC frames or ``(N, 16000)`` waveforms.
        y: int64 labels ``(N,)``, indices into ``class_names``.
        record: str ``(N,)`` recording each window was cut from.
        patient: str ``(N,)`` patient / speaker id (the bootstrap cluster).
        split: str ``(N,)`` one of ``"train"``, ``"val"``, ``"test"``.
        order: int64 ``(N,)`` temporal position of the window inside its record (e.g. the centre
            sample, or the minute index); used for smoothing scores in time order.
        class_names: name of each label value.
        fs: sampling rate of the window's time axis in Hz.
        meta: JSON-serialisable facts about the load (parameters, dropped-window counts).
    """

    x: np.ndarray
    y: np.ndarray
    record: np.ndarray
    patient: np.ndarray
    split: np.ndarray
    order: np.ndarray
    class_names: tuple[str, ...]
    fs: float
    meta: dict[str, Any]

    def __post_init__(self) -> None:
        validate_windows(self)

    def __len__(self) -> int:
        return int(self.y.shape[0])

    @classmethod
    def from_arrays(
        cls,
        x,
        y,
        groups,
        order=None,
        split=(0.7, 0.15, 0.15),
        seed: int = 0,
        fs: float | None = None,
        class_names=None,
        source: str = "arrays",
    ) -> "Windows":
        """`Windows` from a user's own arrays, split by group (no group in two splits).

        Args:
            x: ``(N, ...)`` finite float inputs, channels last as the model takes them, e.g.
                ``(N, T, 1)`` for T samples of one ECG lead or ``(N, frames, coefficients)``.
            y: ``(N,)`` labels: integers ``0..K-1``, or strings (then ``class_names`` are their
                sorted distinct values unless given).
            groups: ``(N,)`` the recording / patient / speaker of each window; a group's windows all
                go to one split and groups are the bootstrap clusters.
            order: ``(N,)`` time position of each window inside its group (for score smoothing);
                default: the order of the rows within each group.
            split: train/val/test fractions of the distinct groups, or ``(N,)`` split names
                (``"train"``, ``"val"``, ``"test"``) chosen by the caller.
            seed: seed of the group shuffle.
            fs: sampling rate of the time axis in Hz, if it has one (``None``: unknown).
            class_names: one name per label value (default ``"0"``, ``"1"``, ...).
            source: what the arrays are, shown in summaries and errors.

        Raises:
            DataError: for unequal lengths, non-finite inputs, labels outside ``class_names``,
                a group in two given splits, too few groups for three splits, or an empty split.
        """
        return from_arrays(x, y, groups, order, split, seed, fs, class_names, source)

    def select(self, split: str) -> "Windows":
        """The windows of one split (``"train"``, ``"val"`` or ``"test"``); raises if it is empty."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        require_split(self.split, split, self.meta.get("source", "?"))
        return self.take(np.flatnonzero(self.split == split))

    def take(self, idx: np.ndarray) -> "Windows":
        """The windows at integer positions ``idx`` (arrays are copied out of any memory map)."""
        arrays = {f: np.asarray(getattr(self, f)[idx]) for f in ARRAY_FIELDS}
        return dataclasses.replace(self, **arrays)

    def as_tf_dataset(
        self,
        batch_size: int = 64,
        shuffle: bool = True,
        seed: int = 0,
        map_fn: Callable | None = None,
    ):
        """A batched, prefetched ``tf.data.Dataset`` of ``(x, y)``.

        Args:
            batch_size: windows per batch.
            shuffle: shuffle all windows (buffer = the whole set) with ``seed``, reshuffled each epoch.
            seed: shuffle seed.
            map_fn: optional ``(x_batch, y_batch) -> (x_batch, y_batch)`` applied per batch
                (e.g. Speech Commands augmentation + MFCC frontend).
        """
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices((np.asarray(self.x), np.asarray(self.y)))
        if shuffle:
            ds = ds.shuffle(len(self), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size)
        if map_fn is not None:
            ds = ds.map(map_fn, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)


ARRAY_FIELDS = ("x", "y", "record", "patient", "split", "order")


def validate_windows(windows: Windows) -> None:
    """Raise `DataError` (naming ``meta["source"]``) unless the arrays of `windows` fit together.

    Checks: every array has one row per window, ``x`` has a window axis and at
    least one more, labels are integers indexing ``class_names``, split names
    are ``train``/``val``/``test``, and no record has windows in two splits.
    Values of ``x`` are not read (loaders drop non-finite windows; `from_arrays`
    checks them).
    """
    source = windows.meta.get("source", "windows") if isinstance(windows.meta, dict) else "windows"
    x = windows.x
    if getattr(x, "ndim", 0) < 2:
        raise DataError(f"{source}: x must be (N, ...) with at least one axis per window, got shape {np.shape(x)}")
    n = x.shape[0]
    lengths = {f: len(getattr(windows, f)) for f in ARRAY_FIELDS[1:]}
    wrong = {f: m for f, m in lengths.items() if m != n}
    if wrong:
        shown = ", ".join(f"{f} has {m}" for f, m in wrong.items())
        raise DataError(f"{source}: x has {n} windows but {shown}; every array needs one row per window")
    if not windows.class_names:
        raise DataError(f"{source}: class_names is empty")
    y = np.asarray(windows.y)
    if n and (not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= len(windows.class_names)):
        raise DataError(f"{source}: labels must be integers 0..{len(windows.class_names) - 1} indexing class_names "
                        f"{tuple(windows.class_names)}, got {y.dtype} values {np.unique(y)[:5].tolist()}...")
    split = np.asarray(windows.split)
    names, split_code = np.unique(split, return_inverse=True)
    unknown = sorted(set(names.tolist()) - set(SPLITS))
    if unknown:
        raise DataError(f"{source}: split names must be {SPLITS}, got {unknown}")
    records, record_code = np.unique(np.asarray(windows.record), return_inverse=True)
    if n and len(names) > 1:
        low = np.full(len(records), len(names))
        high = np.full(len(records), -1)
        np.minimum.at(low, record_code, split_code)
        np.maximum.at(high, record_code, split_code)
        mixed = np.flatnonzero(low != high)
        if mixed.size:
            bad = str(records[mixed[0]])
            found = sorted(set(split[record_code == mixed[0]].tolist()))
            raise DataError(f"{source}: record {bad!r} has windows in splits {found}; "
                            "a record's windows must all be in one split")


def from_arrays(x, y, groups, order, split, seed, fs, class_names, source) -> Windows:
    """The body of `Windows.from_arrays` (see there)."""
    from hypertiny_keras.data.splits import assign_groups

    x = np.asarray(x)
    if x.ndim < 2:
        raise DataError(f"{source}: x must be (N, ...) with at least one axis per window, got shape {x.shape}")
    n = len(x)
    arrays = {"y": np.asarray(y), "groups": np.asarray(groups)}
    if order is not None:
        arrays["order"] = np.asarray(order)
    if not isinstance(split, tuple):
        arrays["split"] = np.asarray(split)
    wrong = {k: len(v) if v.ndim else 0 for k, v in arrays.items() if v.ndim != 1 or len(v) != n}
    if wrong:
        shown = ", ".join(f"{k} has {m}" for k, m in wrong.items())
        raise DataError(f"{source}: x has {n} windows but {shown}; give one value per window (1-D arrays)")
    if n == 0:
        raise DataError(f"{source}: no windows")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{source}: x must be numbers, got dtype {x.dtype}")
    finite = np.isfinite(x.reshape(n, -1)).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DataError(f"{source}: {bad.size} window(s) hold NaN or inf values (first at row {bad[0]}); "
                        "drop or repair them first")
    labels = arrays["y"]
    if labels.dtype.kind in "USO":
        names = tuple(class_names) if class_names is not None else tuple(sorted(set(labels.astype(str).tolist())))
        index = {name: i for i, name in enumerate(names)}
        missing = sorted(set(labels.astype(str).tolist()) - set(index))
        if missing:
            raise DataError(f"{source}: labels {missing} are not in class_names {names}")
        labels = np.array([index[v] for v in labels.astype(str)], np.int64)
    else:
        numeric = np.issubdtype(labels.dtype, np.number)
        if not numeric or not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
            raise DataError(f"{source}: labels must be integers (or strings), got {labels.dtype} values "
                            f"such as {labels[:3].tolist()}")
        labels = labels.astype(np.int64)
        if labels.min() < 0:
            raise DataError(f"{source}: labels must be >= 0, got {labels.min()}")
        names = tuple(class_names) if class_names is not None else tuple(str(i) for i in range(labels.max() + 1))
    group = arrays["groups"].astype(str)
    if "split" in arrays:
        split_names = arrays["split"].astype(str)
    else:
        fractions = tuple(float(f) for f in split)
        if len(fractions) != 3 or min(fractions) <= 0 or not np.isclose(sum(fractions), 1.0):
            raise DataError(f"{source}: split must be three positive train/val/test fractions summing to 1 "
                            f"or one split name per window, got {split}")
        try:
            assignment = assign_groups(group.tolist(), fractions, seed)
        except DataError as error:
            raise DataError(f"{source}: {error}") from None
        split_names = np.array([assignment[g] for g in group])
    if "order" in arrays:
        positions = arrays["order"].astype(np.int64)
    else:
        positions = np.zeros(n, np.int64)
        for g in np.unique(group):
            where = np.flatnonzero(group == g)
            positions[where] = np.arange(where.size)
    windows = Windows(
        x=x.astype(np.float32, copy=False), y=labels, record=group, patient=group, split=split_names,
        order=positions, class_names=names, fs=float("nan") if fs is None else float(fs),
        meta={"source": source, "dataset": source,
              "params": {"split": list(split) if isinstance(split, tuple) else "given",
                                                             "seed": seed}},
    )
    require_splits(windows.split, source)
    return windows


def clean_windows(x: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """Find windows that are unusable: any NaN/inf sample, or flat (std < ``FLAT_STD``).

    Args:
        x: ``(N, T, ...)`` windows.

    Returns:
        ``(keep, counts)``: boolean mask ``(N,)`` of usable windows and the number dropped for
        each reason (``{"nan": n1, "flat": n2}``); a window with NaN counts only as ``"nan"``.
    """
    flat_x = x.reshape(len(x), -1)
    bad = ~np.isfinite(flat_x).all(axis=1)
    flat = np.zeros(len(x), bool)
    flat[~bad] = flat_x[~bad].std(axis=1) < FLAT_STD
    return ~(bad | flat), {"nan": int(bad.sum()), "flat": int(flat.sum())}


def normalize_windows(x: np.ndarray, zscore: bool, clip: float | None) -> np.ndarray:
    """Per-window z-scoring (over all samples and channels of a window) then clipping.

    Args:
        x: ``(N, T, ...)`` float windows (already free of NaN and flat windows).
        zscore: subtract each window's mean and divide by its standard deviation.
        clip: clip to ``[-clip, clip]`` after z-scoring (in standard deviations, or in the
            signal's units when ``zscore`` is off); ``None`` keeps all values.

    Returns:
        float32 array of the same shape.
    """
    x = np.asarray(x, np.float32)
    if zscore:
        axes = tuple(range(1, x.ndim))
        x = (x - x.mean(axis=axes, keepdims=True)) / x.std(axis=axes, keepdims=True)
    if clip is not None:
        x = np.clip(x, -clip, clip)
    return x.astype(np.float32, copy=False)


def finish_windows(
    x: np.ndarray,
    y: np.ndarray,
    record: np.ndarray,
    patient: np.ndarray,
    split: np.ndarray,
    order: np.ndarray,
    class_names: tuple[str, ...],
    fs: float,
    meta: dict[str, Any],
    zscore: bool,
    clip: float | None,
) -> Windows:
    """Drop NaN / flat windows (counted in ``meta["dropped"]``), normalise, and check every split.

    Raises:
        DataError: when a split ends up with no windows.
    """
    keep, counts = clean_windows(x)
    meta = dict(meta)
    meta["dropped"] = {**meta.get("dropped", {}), **counts}
    windows = Windows(
        x=normalize_windows(x[keep], zscore, clip),
        y=np.asarray(y, np.int64)[keep],
        record=np.asarray(record, str)[keep],
        patient=np.asarray(patient, str)[keep],
        split=np.asarray(split, str)[keep],
        order=np.asarray(order, np.int64)[keep],
        class_names=tuple(class_names),
        fs=float(fs),
        meta=meta,
    )
    require_splits(windows.split, meta.get("source", "?"))
    return windows


def require_splits(split: np.ndarray, source: str) -> None:
    """Raise `DataError` naming ``source`` unless every one of ``SPLITS`` holds a window."""
    for name in SPLITS:
        require_split(split, name, source)


def require_split(split: np.ndarray, name: str, source: str) -> None:
    """Raise `DataError` naming ``source`` when no window belongs to split ``name``."""
    if not np.any(split == name):
        raise DataError(f"{source}: split {name!r} is empty")
