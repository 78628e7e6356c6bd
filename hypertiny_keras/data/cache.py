"""Disk cache of loaded `Windows`, keyed by every parameter that changes the output.

Layout: ``<root>/<dataset>-<sha256[:20]>/`` holding one ``.npy`` file per array and ``meta.json``.
The root is ``$HYPERTINY_CACHE`` (when set and not empty) or ``~/.cache/hypertiny``; a root that
is a file or not writable is not used (one warning line; the data load without the cache). An
entry is written into a temporary directory next to it, ``.<entry>.<host>.<pid>.<random>``, and
renamed into place with `os.replace`, so a crash or a failed load never leaves a partial entry.
A temporary directory left behind by a killed writer (its pid is dead on this host, or it is
older than ``STALE_SECONDS``) is removed the next time any entry is read or written, and an
entry that cannot be read back (a file missing, cut short, or changed: each array's shape,
dtype and SHA-256 are in ``meta.json``; shape and dtype are checked on every read, the SHA-256
whenever a file's size or mtime is not the one recorded) is removed and rebuilt. Cached arrays
are opened as read-only memory maps, so a cached load costs milliseconds regardless of size.
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import secrets
import shutil
import socket
import sys
import tempfile
import time
from typing import Any, Callable, Iterable

import numpy as np

from hypertiny_keras.data.windows import ARRAY_FIELDS, Windows
from hypertiny_keras.utils.fileio import sha256_of_file

CACHE_FORMAT = 2  # bump when the on-disk layout or any loader's output changes meaning
STALE_SECONDS = 3 * 3600  # a temporary directory older than this is abandoned (writes take seconds)
HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())[:64] or "host"
# ".<dataset>-<key>.<host>.<pid>.<random>", and ".<dataset>-<key>.<random>" from older versions.
_TEMP_NAME = re.compile(r"^\.[A-Za-z0-9_]+-[0-9a-f]{20}\.(?:(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.)?[^.]+$")


def cache_root() -> pathlib.Path:
    """``$HYPERTINY_CACHE`` if set and not empty, else ``~/.cache/hypertiny``."""
    return pathlib.Path(os.environ.get("HYPERTINY_CACHE") or pathlib.Path.home() / ".cache" / "hypertiny")


_WARNED: set[str] = set()


def describe_cache() -> str:
    """One line: where the cache is and how much it holds (bytes and entries), for commands that use it."""
    root = cache_root()
    sizes = [f.stat().st_size for f in root.glob("*/*") if f.is_file()] if root.is_dir() else []
    entries = len([d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]) if root.is_dir() else 0
    return (f"data cache: {root} holds {sum(sizes) / 1e6:,.1f} MB in {entries} entries "
            "(HYPERTINY_CACHE moves it; --no-cache skips it)")


def usable_cache_root() -> pathlib.Path | None:
    """`cache_root()` if it is (or can be made) a writable directory, else ``None`` after one warning line.

    Checked before any loading, so that a root that is a file, cannot be
    created or is not writable costs no failed load: the data load without
    the cache, and stderr says why (once per root and process).
    """
    root = cache_root()
    try:
        if root.exists() and not root.is_dir():
            raise NotADirectoryError(f"{root} is a file, not a directory")
        root.mkdir(parents=True, exist_ok=True)
        if not os.access(root, os.W_OK | os.X_OK):
            raise PermissionError(f"{root} is not writable")
    except OSError as error:
        if str(root) not in _WARNED:
            _WARNED.add(str(root))
            reason = error.strerror and f"{error.filename or root}: {error.strerror}" or str(error)
            print(f"hypertiny: warning: cannot use the data cache ({reason}; set HYPERTINY_CACHE to a writable "
                  "folder): loading without it", file=sys.stderr)
        return None
    return root


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

    Abandoned temporary directories under the cache root are swept first
    (`sweep_stale_temporaries`); an entry that cannot be read back (a file missing, cut short or
    of a different length than the others) counts as a miss: it is removed and rebuilt.

    Args:
        dataset: short dataset name, the first part of the entry name.
        params: every parameter that changes the output (JSON-serialisable).
        inputs: the files read by ``build``; their size and mtime are part of the key.
        build: computes the windows; if it raises, nothing is written.
        use_cache: ``False`` always builds and never reads or writes the cache.
    """
    root = usable_cache_root() if use_cache else None
    if root is None:
        return build()
    entry = root / cache_key(dataset, params, inputs)
    sweep_stale_temporaries(root)
    if entry.exists():
        windows = _read(entry)
        if windows is not None:
            return windows
        _discard(entry)  # incomplete or corrupt: rebuild it
    windows = build()
    _write_atomic(entry, windows)
    return windows


def sweep_stale_temporaries(root: pathlib.Path, max_age: float = STALE_SECONDS) -> list[pathlib.Path]:
    """Remove temporary directories abandoned by killed cache writers under ``root``.

    A temporary directory is stale when its writer's pid (in its name) is not running on this
    host, or when it was last modified more than ``max_age`` seconds ago (writers on other hosts
    sharing the cache, pid reuse, names without a pid). Errors are ignored: another process may
    be sweeping the same directory.

    Returns:
        The directories removed.
    """
    removed = []
    try:
        children = list(os.scandir(root))
    except OSError:
        return removed
    now = time.time()
    for child in children:
        match = _TEMP_NAME.match(child.name)
        if not match or not child.is_dir(follow_symlinks=False):
            continue
        try:
            age = now - child.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        dead = match["host"] == HOST and not _pid_alive(int(match["pid"]))
        if dead or age > max_age:
            shutil.rmtree(child.path, ignore_errors=True)
            removed.append(pathlib.Path(child.path))
    return removed


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (``True`` when it cannot be told)."""
    if pid == os.getpid() or os.name == "nt":  # on Windows os.kill would terminate the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists under another user
        return True
    return True


def _temp_prefix(entry: pathlib.Path) -> str:
    return f".{entry.name}.{HOST}.{os.getpid()}."


def _file_record(path: pathlib.Path, array: np.ndarray) -> dict:
    """What `meta.json` records of one array file: shape, dtype, SHA-256, and size and mtime (ns)."""
    info = path.stat()
    return {"shape": list(array.shape), "dtype": str(array.dtype), "sha256": sha256_of_file(path),
            "bytes": info.st_size, "mtime_ns": info.st_mtime_ns}


def _unchanged(path: pathlib.Path, array: np.ndarray, stored: dict) -> bool:
    """Whether the array file is the one `stored` (`_file_record`) describes.

    Shape and dtype are always compared; the SHA-256 is recomputed only when
    the file's size or mtime differ from the recorded ones (a file rewritten
    since), so that an unchanged entry still loads in milliseconds.
    """
    if list(array.shape) != stored["shape"] or str(array.dtype) != stored["dtype"]:
        return False
    info = path.stat()
    if info.st_size == stored["bytes"] and info.st_mtime_ns == stored["mtime_ns"]:
        return True
    return sha256_of_file(path) == stored["sha256"]


def _read(entry: pathlib.Path) -> Windows | None:
    """The entry's `Windows`, or ``None`` if a file is missing, cut short, changed or inconsistent (`_unchanged`)."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        arrays = {f: np.load(entry / f"{f}.npy", mmap_mode="r") for f in ARRAY_FIELDS}
        if len({len(a) for a in arrays.values()}) != 1:
            return None
        for f, array in arrays.items():
            if not _unchanged(entry / f"{f}.npy", array, meta["arrays"][f]):
                return None
        return Windows(
            **arrays, class_names=tuple(meta["class_names"]), fs=meta["fs"], meta=meta["meta"]
        )
    except (OSError, ValueError, KeyError, TypeError, EOFError):
        return None


def _discard(entry: pathlib.Path) -> None:
    """Remove an entry: first renamed to a temporary name (swept if this process dies mid-way)."""
    trash = entry.with_name(f"{_temp_prefix(entry)}discard_{secrets.token_hex(4)}")
    try:
        os.replace(entry, trash)
    except OSError:
        return  # already gone (another process discarded or replaced it)
    shutil.rmtree(trash, ignore_errors=True)


def _write_atomic(entry: pathlib.Path, windows: Windows) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=_temp_prefix(entry), dir=entry.parent))
    try:
        arrays = {}
        for f in ARRAY_FIELDS:
            array = np.asarray(getattr(windows, f))
            np.save(tmp / f"{f}.npy", array, allow_pickle=False)
            arrays[f] = _file_record(tmp / f"{f}.npy", array)
        meta = {"class_names": list(windows.class_names), "fs": windows.fs, "meta": windows.meta, "arrays": arrays}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        os.replace(tmp, entry)
    except OSError:
        if not (entry / "meta.json").is_file():  # a concurrent writer did not win the race either
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
