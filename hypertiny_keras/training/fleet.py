"""`personalize_many`: one code patch per subject of a fleet, every subject one task (in-process or on Ray).

Per subject (`personalize_subject`, one `execution.run_tasks` task): the base
model's codes are tuned on the subject's windows (`personalize(trainable=
"codes")`), written into the base boot file (`codes_file`), and both files are
scored in TFLM on the subject's test windows. The task returns only the tuned
code bytes; the patch is made and authenticated where `personalize_many` runs
(`tflite.patch.make_patch`), so the HMAC key never leaves this process.

    import hypertiny_keras as ht
    subjects = [ht.training.fleet.Subject("rec208", x_adapt, y_adapt, x_test, y_test), ...]
    fleet = ht.personalize_many(model, base_file, subjects, key, counter=1, out_dir="patches", workers=2)
"""
from __future__ import annotations

import base64
import dataclasses
import json
import os
import pathlib
from collections.abc import Sequence
from typing import TextIO

import numpy as np


@dataclasses.dataclass(frozen=True)
class Subject:
    """One wearer of the fleet.

    Attributes:
        name: the subject's name (its patch is `<name>.patch`): letters, digits, `._-`.
        x: adaptation windows `(n, *input_shape)`, in time order (the last quarter is held out
            for early stopping).
        y: their integer labels `(n,)`.
        test_x: windows scored before and after `(m, *input_shape)`; None: `x`.
        test_y: their labels `(m,)`; None: `y`.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    test_x: np.ndarray | None = None
    test_y: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class FleetSettings:
    """How every subject is personalized (`personalize`'s arguments, codes only)."""

    steps: int = 150
    learning_rate: float = 1e-2
    patience: int = 30
    held_out_fraction: float = 0.25
    seed: int = 0


_MODELS: dict[str, object] = {}  # the base model of this process, by digest (one load per worker, not per task)


def _load_model(model_bytes: bytes):
    import tempfile

    import keras

    from hypertiny_keras.execution import digest

    name = digest(np.frombuffer(model_bytes, np.uint8))
    if name not in _MODELS:
        with tempfile.TemporaryDirectory() as tmp:
            path = pathlib.Path(tmp) / "base.keras"
            path.write_bytes(model_bytes)
            _MODELS.clear()
            _MODELS[name] = keras.saving.load_model(path)
    return _MODELS[name]


def _scores(file: bytes, x: np.ndarray, y: np.ndarray, classes: int) -> dict[str, float]:
    from hypertiny_keras.device.runtime import predict
    from hypertiny_keras.evaluation.metrics import multiclass_metrics

    metrics = multiclass_metrics(y, predict(file, x).argmax(axis=1), classes)
    return {k: metrics[k] for k in ("accuracy", "balanced_accuracy", "macro_f1")}


def personalize_subject(model_bytes: bytes, base_file: bytes, rehearsal, settings: FleetSettings, name: str,
                        x: np.ndarray, y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray) -> dict:
    """One task of `personalize_many`: the subject's tuned code bytes and its TFLM metrics before and after.

    Returns `{"subject", "codes": {buffer index: base64 bytes}, "values", "steps", "best_step",
    "before", "after"}` (the metrics: accuracy, balanced accuracy, macro-F1 of the argmax on the
    test windows, the base file before, the code-patched file after).
    """
    from hypertiny_keras.tflite.patch import code_buffers
    from hypertiny_keras.training.personalize import codes_file, personalize

    model = _load_model(model_bytes)
    result = personalize(model, x, y, trainable="codes", rehearsal=rehearsal, steps=settings.steps,
                         learning_rate=settings.learning_rate, patience=settings.patience,
                         held_out_fraction=settings.held_out_fraction, seed=settings.seed)
    file = codes_file(base_file, result)
    classes = int(model.outputs[0].shape[-1])
    spans = code_buffers(base_file)
    return {
        "subject": name,
        "codes": {str(i): base64.b64encode(file[o:o + n]).decode() for i, (o, n) in spans.items()},
        "values": result.values,
        "steps": result.steps,
        "best_step": result.best_step,
        "before": _scores(base_file, test_x, test_y, classes),
        "after": _scores(file, test_x, test_y, classes),
    }


def personalize_many(
    base_model,
    base_file: bytes,
    subjects: Sequence[Subject],
    key: bytes,
    counter: int = 1,
    out_dir: str | os.PathLike | None = None,
    rehearsal: tuple | None = None,
    settings: FleetSettings = FleetSettings(),
    workers: int | None = None,
    address: str | None = None,
    journal: str | os.PathLike | None = None,
    retries: int = 2,
    progress: bool | TextIO = True,
) -> dict:
    """One authenticated code patch per subject, each subject one task; a per-fleet summary.

    Args:
        base_model: the functional Keras model every device runs (codes-reading
            generated layers: dense, factorized, lowrank_shared, kronecker_shared heads).
        base_file: its boot `.tflite` (`export_tflite(base_model, ..., synthesis="boot")`).
        subjects: the fleet (unique names).
        key: the HMAC key of the patches (16 bytes or more); it stays in this process.
        counter: the patches' counter (above any counter the devices applied).
        out_dir: where `<subject>.patch` and `fleet.json` are written (None: nothing written).
        rehearsal: `(x_r, y_r)` training windows mixed into every subject's steps, or None.
        settings: `FleetSettings`.
        workers, address, retries: where the tasks run (`execution.run_tasks`).
        journal: a `.jsonl` file of finished subjects; a re-run computes only the others.
        progress: one progress bar over the subjects.

    Returns:
        JSON-ready `{"base_bytes", "counter", "settings", "subjects": [row], "summary"}`: a row per
        subject (`patch_bytes`, `before` / `after` TFLM metrics, `steps`, `best_step`, or
        `error`), the summary's counts, patch bytes and mean metrics before and after.

    Raises:
        ValueError: repeated or unsafe subject names, a base file without code tensors, a bad key.
    """
    import tempfile

    from hypertiny_keras.execution import Journal, digest, run_tasks
    from hypertiny_keras.tflite.patch import code_buffers, make_patch
    from hypertiny_keras.utils.fileio import atomic_write

    names = [s.name for s in subjects]
    if len(set(names)) != len(names):
        raise ValueError("subject names must be unique")
    bad = [n for n in names if not n or n.startswith(".") or not all(c.isalnum() or c in "._-" for c in n)]
    if bad:
        raise ValueError(f"subject names may hold letters, digits and ._- only (not leading .): {bad[:5]}")
    spans = code_buffers(base_file)  # refuses a file without code tensors
    probe = bytearray(base_file)
    probe[next(iter(spans.values()))[0]] ^= 1
    make_patch(base_file, bytes(probe), key, counter)  # refuses a bad key or counter before any work
    with tempfile.TemporaryDirectory() as tmp:
        base_model.save(pathlib.Path(tmp) / "base.keras")
        model_bytes = (pathlib.Path(tmp) / "base.keras").read_bytes()
    tasks = {s.name: (s.name, s.x, s.y, s.x if s.test_x is None else s.test_x, s.y if s.test_y is None else s.test_y)
             for s in subjects}
    if journal is not None:
        weights = [np.asarray(w) for w in base_model.get_weights()]
        journal = Journal(journal, {"fleet": dataclasses.asdict(settings), "base": digest(
            np.frombuffer(base_file, np.uint8), *weights, *(rehearsal or ()),
            *[a for s in subjects for a in (s.x, s.y, s.test_x, s.test_y) if a is not None])})
    outcomes = run_tasks(personalize_subject, tasks, (model_bytes, base_file, rehearsal, settings), workers=workers,
                         address=address, journal=journal, retries=retries, progress=progress, desc="subjects")
    rows, patches = [], {}
    for name in names:
        outcome = outcomes[name]
        if outcome["status"] != "done":
            rows.append({"subject": name, "error": outcome["error"]})
            continue
        result = outcome["result"]
        file = bytearray(base_file)
        for index, encoded in result["codes"].items():
            offset, length = spans[int(index)]
            file[offset:offset + length] = base64.b64decode(encoded)
        patches[name] = make_patch(base_file, bytes(file), key, counter) if bytes(file) != base_file else b""
        rows.append({"subject": name, "patch_bytes": len(patches[name]),
                     **{k: result[k] for k in ("values", "steps", "best_step", "before", "after")}})
    fleet = {"base_bytes": len(base_file), "counter": counter, "settings": dataclasses.asdict(settings),
             "subjects": rows, "summary": _summary(rows)}
    if out_dir is not None:
        out = pathlib.Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for name, patch in patches.items():
            if patch:
                atomic_write(out / f"{name}.patch", patch)
        atomic_write(out / "fleet.json", (json.dumps(fleet, indent=2) + "\n").encode())
    return fleet


def _summary(rows: list[dict]) -> dict:
    done = [r for r in rows if "error" not in r]
    out = {"subjects": len(rows), "personalized": len(done), "failed": len(rows) - len(done),
           "unchanged": sum(1 for r in done if r["patch_bytes"] == 0)}
    if done:
        sizes = [r["patch_bytes"] for r in done]
        out["patch_bytes"] = {"max": max(sizes), "mean": float(np.mean(sizes)), "total": int(sum(sizes))}
        for metric in done[0]["before"]:
            before = np.array([r["before"][metric] for r in done])
            after = np.array([r["after"][metric] for r in done])
            out[metric] = {"before": float(before.mean()), "after": float(after.mean()),
                           "improved": int((after > before).sum()), "worse": int((after < before).sum())}
    return out


def subjects_from_npz(path: str | os.PathLike) -> list[Subject]:
    """The fleet in a `.npz`: `x` `(N, ...)`, `y` `(N,)`, `subject` `(N,)` names, optional `test` `(N,)` bools.

    Each subject's windows keep the file's order; with `test`, the windows marked
    True are its test windows and the others its adaptation windows.

    Raises:
        ValueError: one line naming the file and what is wrong with it.
    """
    path = pathlib.Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"{path}: not a readable .npz file ({error})") from None
    missing = [k for k in ("x", "y", "subject") if k not in arrays]
    if missing:
        raise ValueError(f"{path}: missing arrays {missing} (needs x, y, subject; optional test)")
    x, y, subject = arrays["x"], arrays["y"], arrays["subject"].astype(str)
    test = arrays.get("test")
    n = len(x)
    if y.shape != (n,) or subject.shape != (n,) or (test is not None and test.shape != (n,)):
        raise ValueError(f"{path}: y, subject (and test) must have shape ({n},) like x's first axis")
    if test is not None and test.dtype != bool:
        raise ValueError(f"{path}: test must be a boolean array")
    subjects = []
    for name in dict.fromkeys(subject.tolist()):
        rows = subject == name
        adapt = rows & ~test if test is not None else rows
        scored = rows & test if test is not None else None
        if not adapt.any() or (scored is not None and not scored.any()):
            raise ValueError(f"{path}: subject {name!r} has no {'adaptation' if not adapt.any() else 'test'} windows")
        subjects.append(Subject(name, x[adapt], y[adapt], None if scored is None else x[scored],
                                None if scored is None else y[scored]))
    return subjects


def personalize_fleet_files(
    model_path: str | os.PathLike,
    base_path: str | os.PathLike,
    subjects_path: str | os.PathLike,
    key: bytes,
    counter: int,
    out_dir: str | os.PathLike,
    settings: FleetSettings = FleetSettings(),
    workers: int | None = None,
    address: str | None = None,
    progress: bool | TextIO = True,
) -> dict:
    """`personalize_many` from files (what `hypertiny patch fleet` runs): a `.keras` model, its boot
    `.tflite`, the fleet's `.npz` (`subjects_from_npz`); patches and `fleet.json` go to `out_dir`, and
    `out_dir/fleet.runs.jsonl` journals the finished subjects (the same command re-run computes only the rest).

    Raises:
        ValueError: one line naming the file at fault.
    """
    import keras

    out = pathlib.Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    subjects = subjects_from_npz(subjects_path)
    try:
        model = keras.saving.load_model(model_path)
    except Exception as error:  # noqa: BLE001 (any unreadable model is one line)
        raise ValueError(f"{model_path}: not a Keras model file ({type(error).__name__}: {error})") from None
    return personalize_many(model, pathlib.Path(base_path).read_bytes(), subjects, key, counter, out_dir=out,
                            settings=settings, workers=workers, address=address, journal=out / "fleet.runs.jsonl",
                            progress=progress)
