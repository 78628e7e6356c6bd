"""Byte-mutated `.tflite` files for checking the readers (the mutation test and `benchmarks/mutation.py`).

`mutate` makes one seeded mutant of a file's bytes; `check_mutant` passes
it through every reader a user meets (`inspect_tflite`, `runtime.predict`,
`export_arduino`) and classes what each did. The promise: a reader either
works or refuses with one line (a `ValueError` from the reader, or a
`TFLMError`/`TFLMCrash` when TFLM itself fails in its worker process), and
nothing half-written is left behind.
"""
from __future__ import annotations

import pathlib

import numpy as np

#: Mutation kinds: flip 1-3 bits, truncate, random bytes after the 8-byte header, zero a range.
KINDS = ("flip", "truncate", "random", "zero")
#: Readers `check_mutant` runs, in order.
READERS = ("inspect", "predict", "arduino")


def mutate(data: bytes, kind: str, rng: np.random.Generator) -> bytes:
    """One mutant of `data`: `flip` 1-3 bits, `truncate`, `random` bytes after the header, or `zero` 1-256 bytes."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    b = bytearray(data)
    if kind == "flip":
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(0, len(b)))] ^= 1 << int(rng.integers(0, 8))
    elif kind == "truncate":
        b = b[: int(rng.integers(0, len(b)))]
    elif kind == "random":
        b = b[:8] + bytearray(rng.bytes(int(rng.integers(0, len(b)))))
    else:
        start = int(rng.integers(0, len(b)))
        end = min(start + int(rng.integers(1, 257)), len(b))
        b[start:end] = bytes(end - start)
    return bytes(b)


def check_mutant(path: str | pathlib.Path, x: np.ndarray, sketch_dir: str | pathlib.Path) -> dict[str, str]:
    """What each reader did with the mutant at `path`.

    Args:
        path: the mutant `.tflite` file.
        x: float input windows `(n, *input_shape)` for `predict` and the sketch.
        sketch_dir: a folder that must not exist yet; `export_arduino` writes there.

    Returns:
        `{reader: outcome}` for each of `READERS`: `"ok"`, the class name of a
        one-line refusal (`"ValueError"`, `"TFLMError"`, `"TFLMCrash"`), or
        `"broken: <why>"` (any other exception, a message of several lines or
        none, an error that does not name the file, a partial sketch left).
    """
    from hypertiny_keras.device import runtime
    from hypertiny_keras.device.arduino import export_arduino
    from hypertiny_keras.device.boards import format_inspection
    from hypertiny_keras.tflite.inspect import inspect_tflite

    path, sketch_dir = pathlib.Path(path), pathlib.Path(sketch_dir)
    data = path.read_bytes()
    calls = {
        "inspect": lambda: format_inspection(inspect_tflite(data, str(path))),
        "predict": lambda: runtime.predict(path, x),
        # tflite-micro: no library-specific refusal, so each mutant meets every other check.
        "arduino": lambda: export_arduino(str(path), str(sketch_dir), windows=x, library="tflite-micro"),
    }
    outcomes = {}
    for reader in READERS:
        try:
            calls[reader]()
            outcome = "ok"
        except (ValueError, RuntimeError) as error:  # refused by a reader; TFLMError and TFLMCrash are RuntimeErrors
            message = str(error)
            if not message or "\n" in message:
                outcome = f"broken: {type(error).__name__} of {message.count(chr(10)) + 1} lines"
            elif reader != "arduino" and str(path) not in message:
                outcome = f"broken: the error does not name the file: {message[:120]}"
            else:
                outcome = type(error).__name__
        except Exception as error:  # noqa: BLE001 (anything else is a broken promise)
            outcome = f"broken: {type(error).__name__}: {str(error)[:120]}"
        if reader == "arduino" and outcome != "ok" and sketch_dir.exists() and any(sketch_dir.iterdir()):
            outcome = "broken: partial sketch left"
        outcomes[reader] = outcome
    return outcomes
