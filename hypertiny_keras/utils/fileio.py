"""Atomic file writes: a reader never sees a half-written file."""
from __future__ import annotations

import os
import pathlib
import tempfile


def _temporary(path: pathlib.Path, data: bytes) -> str:
    """`data` in full in a new temporary file beside `path`; returns its name."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def atomic_write_all(files: list[tuple[str | os.PathLike, bytes]]) -> None:
    """Write each `(path, data)` so that all are replaced or none is.

    Every file is written in full to a temporary file beside its target
    first; only then are they renamed into place, in order.
    """
    temporaries = []
    try:
        for path, data in files:
            temporaries.append(_temporary(pathlib.Path(path), data))
        for (path, _), tmp in zip(files, temporaries):
            os.replace(tmp, path)
    finally:
        for tmp in temporaries:
            if os.path.exists(tmp):
                os.unlink(tmp)


def atomic_write(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same directory and a rename."""
    atomic_write_all([(path, data)])
