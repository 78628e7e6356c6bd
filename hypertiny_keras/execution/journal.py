"""A journal of task results: one JSON line per finished task, appended as it arrives, read back to resume.

Layout (JSON Lines): the first line is the header `{"journal": 1, "fingerprint": ...}`
(what the results depend on besides the task keys: settings, a digest of the
data); every other line is one finished task, `{"key", "status": "done",
"result"}` or `{"key", "status": "failed", "error"}`. A later line for a key
replaces an earlier one. Each line is flushed and fsync'ed as it is written, so
a run killed at any moment leaves every finished task on disk (at most its
last, half-written line is lost; it is cut off on the next open).
"""
from __future__ import annotations

import hashlib
import json
import os
import pathlib

import numpy as np

FORMAT = 1


def digest(*values) -> str:
    """A short sha256 of arrays and JSON-ready values (e.g. a dataset's arrays), for a journal's fingerprint."""
    h = hashlib.sha256()
    for value in values:
        if isinstance(value, np.ndarray):
            h.update(f"{value.dtype.str}{value.shape}".encode())
            h.update(np.ascontiguousarray(value).tobytes() if value.dtype != object else repr(value.tolist()).encode())
        else:
            h.update(json.dumps(value, sort_keys=True).encode())
    return h.hexdigest()[:20]


class Journal:
    """The results of one run's tasks on disk, keyed by task key.

    Args:
        path: the `.jsonl` file (created with its folder when missing).
        fingerprint: JSON-ready description of everything the results depend on
            besides the keys; a journal written with another fingerprint is refused.

    Raises:
        ValueError: `path` is not a journal, or was written for another fingerprint.
    """

    def __init__(self, path: str | os.PathLike, fingerprint):
        self.path = pathlib.Path(path)
        self.fingerprint = json.loads(json.dumps(fingerprint))  # as it reads back (tuples -> lists)
        self.entries: dict[str, dict] = {}
        if self.path.exists() and self.path.stat().st_size:
            self._read()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._append({"journal": FORMAT, "fingerprint": self.fingerprint})

    def _read(self) -> None:
        data = self.path.read_bytes()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) < len(data):  # a line cut off by a kill: drop it before appending
            with open(self.path, "r+b") as f:
                f.truncate(len(complete))
        lines = complete.decode().splitlines()
        try:
            header = json.loads(lines[0]) if lines else {}
            entries = [json.loads(line) for line in lines[1:]]
        except json.JSONDecodeError as error:
            raise ValueError(f"{self.path}: not a task journal ({error})") from None
        if header.get("journal") != FORMAT:
            raise ValueError(f"{self.path}: not a task journal (no header line)")
        if header["fingerprint"] != self.fingerprint:
            raise ValueError(f"{self.path}: written for other settings or data; remove it or give another path")
        for entry in entries:
            self.entries[entry["key"]] = entry

    def _append(self, record: dict) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def done(self) -> dict[str, dict]:
        """`{key: entry}` of the tasks that finished with a result (failed ones are run again)."""
        return {k: e for k, e in self.entries.items() if e["status"] == "done"}

    def record(self, key: str, entry: dict) -> None:
        """Append one finished task: `entry` is `{"status": "done", "result"}` or `{"status": "failed", "error"}`."""
        entry = {"key": key, **entry}
        self._append(entry)
        self.entries[key] = json.loads(json.dumps(entry))
