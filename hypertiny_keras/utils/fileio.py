"""Atomic file writes (a reader never sees a half-written file) and the one check of every output path."""
from __future__ import annotations

import hashlib
import os
import pathlib
import stat
import tempfile
from typing import Callable, Iterable

#: Characters of the target's name kept in its temporary file's name (the rest of a long name is cut).
_TEMP_NAME_CHARS = 40


def _temporary(path: pathlib.Path, data: bytes, mode: int | None = None) -> str:
    """`data` in full in a new temporary file beside `path` (permissions `mode`, default the umask's); its name."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:_TEMP_NAME_CHARS]}.", suffix=".tmp")
    if mode is None:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask  # mkstemp creates 0600; give the file the usual permissions
    os.fchmod(fd, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def sha256_of_file(path: str | os.PathLike) -> str:
    """The hex SHA-256 of the file at `path`, read in chunks (any size)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def atomic_write_all(files: list[tuple[str | os.PathLike, bytes]], mode: int | None = None) -> None:
    """Write each `(path, data)` so that all are replaced or none is.

    Every file is written in full to a temporary file beside its target
    first; only then are they renamed into place, in order. `mode`: their
    permissions (default 0o666 less the umask).
    """
    temporaries = []
    try:
        for path, data in files:
            temporaries.append(_temporary(pathlib.Path(path), data, mode))
        for (path, _), tmp in zip(files, temporaries):
            os.replace(tmp, path)
    finally:
        for tmp in temporaries:
            if os.path.exists(tmp):
                os.unlink(tmp)


def atomic_write(path: str | os.PathLike, data: bytes, mode: int | None = None) -> None:
    """Write `data` to `path` through a temporary file in the same directory and a rename.

    `mode`: the file's permissions (e.g. 0o600 for a secret key: never readable by others, not even
    for a moment); default 0o666 less the umask.
    """
    atomic_write_all([(path, data)], mode)


def _name_max(directory: pathlib.Path) -> int:
    try:
        return os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def check_output(
    path: str | os.PathLike,
    inputs: Iterable[str | os.PathLike] = (),
    replaceable: Callable[[pathlib.Path], bool] | None = None,
    what: str = "",
) -> pathlib.Path:
    """`path` as a `Path` once writing it (atomically, by a rename) is known to lose nothing of the user's.

    Every command that writes a file checks its target here first, before
    any work. Refused, with one line naming the path:

    - a directory, a symbolic link, or an existing target that is not a
      regular file (a FIFO, a device, a socket): a rename would replace the
      node itself, not write into it;
    - the same file as one of `inputs` (also through a link);
    - an existing file that `replaceable` (if given) says is not one this
      package wrote (e.g. a user's `.json` where a report would go);
    - an existing read-only file;
    - a name longer than the file system allows, or a parent that is not
      an existing, writable directory.

    Args:
        path: the file to write.
        inputs: the files the command reads (missing ones are skipped).
        replaceable: `f(path) -> bool` for an existing regular file: may it be replaced?
        what: how to name the path in messages (e.g. `"--out x.tflite"`; default the path).

    Raises:
        ValueError: one line naming the path and the problem.
    """
    path = pathlib.Path(path)
    name = what or str(path)
    limit = _name_max(path.parent if path.parent.is_dir() else pathlib.Path("."))
    if len(os.fsencode(path.name)) > limit:
        raise ValueError(f"cannot write {name}: the name has {len(os.fsencode(path.name))} bytes, "
                         f"more than the {limit} the file system allows")
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    except OSError as error:
        raise ValueError(f"cannot write {name}: {error.strerror or error}") from None
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            raise ValueError(f"cannot write {name}: it is a directory; give the file to write")
        if stat.S_ISLNK(info.st_mode):
            raise ValueError(f"cannot write {name}: it is a symbolic link (to {os.readlink(path)}); "
                             "give the real path (nothing is written through links)")
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"cannot write {name}: it exists and is not a regular file (a FIFO, device or socket)")
        for source in inputs:
            try:
                same = os.path.samefile(path, source)
            except OSError:
                same = False
            if same:
                raise ValueError(f"cannot write {name}: it is the input {source}; write to another file")
        if not os.access(path, os.W_OK):
            raise ValueError(f"cannot write {name}: the file is read-only")
        if replaceable is not None and not replaceable(path):
            raise ValueError(f"cannot write {name}: a file of that name exists and was not written by hypertiny; "
                             "move it or choose another name")
    parent = path.parent
    if not parent.is_dir():
        raise ValueError(f"cannot write {name}: {parent} is not a writable directory (it does not exist)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {name}: {parent} is not a writable directory (no write permission)")
    return path
