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

    def __len__(self) -> int:
        return int(self.y.shape[0])

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
    for name in SPLITS:
        require_split(windows.split, name, meta.get("source", "?"))
    return windows


def require_split(split: np.ndarray, name: str, source: str) -> None:
    """Raise `DataError` naming ``source`` when no window belongs to split ``name``."""
    if not np.any(split == name):
        raise DataError(f"{source}: split {name!r} is empty")
