"""Training checkpoints on disk, and model copies through `.keras` files.

A checkpoint directory holds the state after the last epoch with a finite loss:

- `model.keras`: the student with its raw weights (`keras.saving.load_model`
  reads it on its own);
- `state.npz`: the optimizer variables, the weight EMA, the best raw and
  best EMA weights and the feature projection, as arrays `"<group>.<i>"`;
- `state.json`: epochs completed, history, wall time, early-stopping state
  and the `TrainConfig`; written last, it is what makes a checkpoint exist.

Each file is replaced atomically (`fileio.atomic_write`); `state.npz` repeats
the epoch and is written first, so that a checkpoint torn between two epochs
(`state.npz` newer than `state.json`) is detected on reading.
"""
from __future__ import annotations

import io
import json
import os
import pathlib
import tempfile

import keras
import numpy as np

from hypertiny_keras.utils.fileio import atomic_write

MODEL_FILE, ARRAYS_FILE, STATE_FILE = "model.keras", "state.npz", "state.json"


def copy_model(model: keras.Model) -> keras.Model:
    """An independent copy of `model` (architecture and weights) through a `.keras` file.

    Unlike `keras.models.clone_model`, this keeps one generator shared by all
    `HyperPointwise` layers, as the original has.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        return keras.saving.load_model(path)


def write_checkpoint(directory: str | os.PathLike, state: dict, student: keras.Model, config: dict) -> None:
    """Write `state` (see `trainer`; `student` holds `state["arrays"]["student"]`) to `directory`."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    groups = {k: v for k, v in state["arrays"].items() if k != "student" and v is not None}
    buffer = io.BytesIO()
    np.savez(buffer, epoch=np.int64(state["epoch"]),
             **{f"{group}.{i}": a for group, arrays in groups.items() for i, a in enumerate(arrays)})
    atomic_write(directory / ARRAYS_FILE, buffer.getvalue())
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{MODEL_FILE}.", suffix=".keras")
    os.close(fd)
    try:
        student.save(tmp)
        os.replace(tmp, directory / MODEL_FILE)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    meta = {k: v for k, v in state.items() if k != "arrays"}
    meta.update(config=config, groups={group: len(arrays) for group, arrays in groups.items()})
    atomic_write(directory / STATE_FILE, json.dumps(meta, indent=1).encode())


def read_checkpoint(directory: str | os.PathLike) -> tuple[dict, dict] | None:
    """`(state, config)` of the checkpoint in `directory`, or `None` when there is none."""
    directory = pathlib.Path(directory)
    if not (directory / STATE_FILE).exists():
        return None
    meta = json.loads((directory / STATE_FILE).read_text())
    with np.load(directory / ARRAYS_FILE) as arrays:
        if int(arrays["epoch"]) != meta["epoch"]:
            raise ValueError(
                f"{directory}: {ARRAYS_FILE} is from epoch {int(arrays['epoch'])} but "
                f"{STATE_FILE} from epoch {meta['epoch']} (interrupted while writing?)")
        groups = {group: [arrays[f"{group}.{i}"] for i in range(n)]
                  for group, n in meta.pop("groups").items()}
    groups["student"] = keras.saving.load_model(directory / MODEL_FILE).get_weights()
    config = meta.pop("config")
    return {**meta, "arrays": groups}, config
