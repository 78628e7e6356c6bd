"""The TFLM worker process: runs `.tflite` files in the `tflite-micro` wheel, away from the caller.

The host TFLM can crash (segfault) on a malformed file or a too-small
arena. `hypertiny_keras.device.runtime` therefore runs TFLM only here, in a child
process started as a plain script (it imports numpy and tflite_micro, not
TensorFlow or this package), and turns a dead worker into an error that
names the file.

Protocol, on the worker's stdin and a private copy of its stdout: each
message is a 8-byte little-endian length and a pickle. Requests are tuples
`(kind, model_bytes, *args)`; each answer is `("ok", value)` or
`("error", one_line_message)`. What TFLM itself prints goes to a scratch
file whose last line is appended to error messages.
"""
from __future__ import annotations

import os
import pickle
import re
import struct
import sys
import tempfile
import time


def _read(stream):
    head = stream.read(8)
    if len(head) < 8:
        return None
    (size,) = struct.unpack("<Q", head)
    return pickle.loads(stream.read(size))


def _write(stream, message) -> None:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(body)) + body)
    stream.flush()


def _interpreter(model: bytes, arena_size: int):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(model, arena_size=int(arena_size))


def _zeros_invoke(interpreter) -> None:
    import numpy as np

    details = interpreter.get_input_details(0)
    interpreter.set_input(np.zeros(details["shape"], details["dtype"]), 0)
    interpreter.invoke()


def _run(model: bytes, inputs, arena_size: int):
    """Invoke once per row of `inputs`: (outputs `(n, ...)`, invoke times in seconds)."""
    import numpy as np

    interpreter = _interpreter(model, arena_size)
    outputs, times = [], []
    for i in range(len(inputs)):
        interpreter.set_input(inputs[i : i + 1], 0)
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
        outputs.append(np.array(interpreter.get_output(0)))
    if not outputs:
        details = interpreter.get_output_details(0)
        return np.zeros((0, *details["shape"][1:]), details["dtype"]), []
    return np.concatenate(outputs), times


def _probe(model: bytes, arena_size: int) -> bool:
    """Whether `model` allocates and invokes (zero input) in an arena of `arena_size` bytes."""
    try:
        _zeros_invoke(_interpreter(model, arena_size))
    except RuntimeError:
        return False
    return True


def _log_since(log: int, start: int) -> str:
    """What was written to the log file descriptor `log` after offset `start`."""
    size = os.fstat(log).st_size
    return os.pread(log, max(size - start, 0), start).decode(errors="replace")


def _allocation_total(model: bytes, arena_size: int, log: int) -> int:
    """TFLM's recorded arena allocation total (bytes) after one invoke in a large arena."""
    interpreter = _interpreter(model, arena_size)
    _zeros_invoke(interpreter)
    start = os.fstat(log).st_size
    interpreter.print_allocations()
    sys.stderr.flush()
    found = re.search(r"Arena allocation total (\d+) bytes", _log_since(log, start))
    if found is None:
        raise RuntimeError("TFLM did not report its arena use")
    return int(found.group(1))


def main() -> None:
    requests = os.fdopen(os.dup(0), "rb")
    answers = os.fdopen(os.dup(1), "wb")
    log = tempfile.TemporaryFile(prefix="hypertiny-tflm-")  # unlinked: nothing is left if TFLM crashes
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(log.fileno(), 1)  # TFLM's own prints must not reach the protocol stream
    os.dup2(log.fileno(), 2)
    while True:
        request = _read(requests)
        if request is None:
            return
        kind, model, *args = request
        start = os.fstat(log.fileno()).st_size
        try:
            if kind == "run":
                value = _run(model, *args)
            elif kind == "probe":
                value = _probe(model, *args)
            elif kind == "allocation_total":
                value = _allocation_total(model, *args, log.fileno())
            else:
                raise ValueError(f"unknown request {kind!r}")
            _write(answers, ("ok", value))
        except Exception as error:  # noqa: BLE001 (reported to the caller, one line)
            text = " ".join(str(error).split()) or type(error).__name__
            lines = [line.strip() for line in _log_since(log.fileno(), start).splitlines() if line.strip()]
            detail = lines[-1] if lines else ""
            _write(answers, ("error", f"{text}: {detail}" if detail and detail not in text else text))


if __name__ == "__main__":
    main()
