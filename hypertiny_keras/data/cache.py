"""Disk cache of loaded `Windows`, keyed by every parameter that changes the output.

Layout: ``<root>/<dataset>-<sha256[:20]>/`` holding one ``.npy`` file per array and ``meta.json``.
The root is ``$HYPERTINY_CACHE`` or ``~/.cache/hypertiny``. An entry is written into a temporary
directory next to it and renamed into place with `os.replace`, so a crash or a failed load never
leaves a partial entry. Cached arrays are opened as read-only memory maps, so a cached load costs
milliseconds regardless of size; pages are read from disk when first touched.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import tempfile
from typing import Any, Callable, Iterable

import numpy as np

from hypertiny_keras.data.windows import ARRAY_FIELDS, Windows

CACHE_FORMAT = 1  # bump when the on-disk layout or any loader's output changes meaning


def cache_root() -> pathlib.Path:
    """``$HYPERTINY_CACHE`` if set, else ``~/.cache/hypertiny``."""
    return pathlib.Path(os.environ.get("HYPERTINY_CACHE", pathlib.Path.home() / ".cache" / "hypertiny"))


def cache_key(dataset: str, params: dict[str, Any], inputs: Iterable[pathlib.Path]) -> str:
    """Hash of the dataset name, its parameters and the path, size and mtime of every input file."""
    files = []
    for path in sorted(pathlib.Path(p) for p in inputs):
        stat = path.stat()
        files.append((os.path.abspath(path), stat.st_size, stat.st_mtime_ns))
    blob = json.dumps(
        {"format": CACHE_FORMAT, "dataset": dataset, "params": params, "files": files},
        sort_keys=True,
        default=str,
    )
    return f"{dataset}-{hashlib.sha256(blob.encode()).hexdigest()[:20]}"


def cached_windows(
    dataset: str,
    params: dict[str, Any],
    inputs: Iterable[pathlib.Path],
    build: Callable[[], Windows],
    use_cache: bool = True,
) -> Windows:
    """Return the cached `Windows` for these parameters and inputs, building and storing on a miss.

    Args:
        dataset: short dataset name, the first part of the entry name.
        params: every parameter that changes the output (JSON-serialisable).
        inputs: the files read by ``build``; their size and mtime are part of the key.
        build: computes the windows; if it raises, nothing is written.
        use_cache: ``False`` always builds and never reads or writes the cache.
    """
    if not use_cache:
        return build()
    entry = cache_root() / cache_key(dataset, params, inputs)
    if (entry / "meta.json").is_file():
        return _read(entry)
    windows = build()
    _write_atomic(entry, windows)
    return windows


def _read(entry: pathlib.Path) -> Windows:
    meta = json.loads((entry / "meta.json").read_text())
    arrays = {f: np.load(entry / f"{f}.npy", mmap_mode="r") for f in ARRAY_FIELDS}
    return Windows(
        **arrays, class_names=tuple(meta["class_names"]), fs=meta["fs"], meta=meta["meta"]
    )


def _write_atomic(entry: pathlib.Path, windows: Windows) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        for f in ARRAY_FIELDS:
            np.save(tmp / f"{f}.npy", np.asarray(getattr(windows, f)), allow_pickle=False)
        meta = {"class_names": list(windows.class_names), "fs": windows.fs, "meta": windows.meta}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        os.replace(tmp, entry)
    except OSError:
        if not (entry / "meta.json").is_file():  # a concurrent writer did not win the race either
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
