"""Running `.tflite` models in TFLM (the deployment reference) and in LiteRT.

TFLM here is the host build of the `tflite-micro` wheel (reference kernels,
64-bit): its arena figures are larger than on a 32-bit microcontroller.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import tempfile
import time

import numpy as np

#: Largest arena the search tries, in bytes.
MAX_ARENA_BYTES = 16 << 20


@dataclasses.dataclass(frozen=True)
class Quantization:
    """Scale and zero point of a model input or output, with its numpy dtype."""

    scale: float
    zero_point: int
    dtype: type

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Float values -> the tensor's dtype (unchanged for float tensors)."""
        if self.dtype == np.float32 or self.scale == 0:
            return np.asarray(x, self.dtype)
        info = np.iinfo(self.dtype)
        q = np.round(np.asarray(x, np.float64) / self.scale) + self.zero_point
        return np.clip(q, info.min, info.max).astype(self.dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Tensor values -> float32 (unchanged for float tensors)."""
        if self.dtype == np.float32 or self.scale == 0:
            return np.asarray(q, np.float32)
        return ((np.asarray(q, np.float64) - self.zero_point) * self.scale).astype(np.float32)


@dataclasses.dataclass
class RunResult:
    """Raw outputs (model output dtype, shape `(n, ...)`) and invoke times in seconds."""

    outputs: np.ndarray
    first_invoke_s: float
    median_invoke_s: float


def _details_quantization(details: dict) -> Quantization:
    params = details.get("quantization_parameters", {})
    scales = params.get("scales", [])
    zero_points = params.get("zero_points", [])
    scale = float(scales[0]) if len(scales) else 0.0
    zero_point = int(zero_points[0]) if len(zero_points) else 0
    return Quantization(scale, zero_point, np.dtype(details["dtype"]).type)


def _litert_interpreter(model: bytes, **kwargs):
    """A LiteRT interpreter with its builtin kernels and no default delegate.

    XNNPACK, the CPU delegate LiteRT applies by default, requantizes some
    operators its own way; a microcontroller never runs it, so it is left out.
    Falls back to `tflite_runtime`, then to `tf.lite`, when `ai-edge-litert`
    is not installed.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter, OpResolverType
        except ImportError:
            import tensorflow as tf

            Interpreter, OpResolverType = tf.lite.Interpreter, tf.lite.experimental.OpResolverType
    return Interpreter(
        model_content=model,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        **kwargs,
    )


def _tflm_interpreter(model: bytes, arena_size: int):
    from tflite_micro.python.tflite_micro import runtime

    return runtime.Interpreter.from_bytes(model, arena_size=arena_size)


@contextlib.contextmanager
def _captured_stderr():
    """Capture what C++ code writes to file descriptor 2; yields a list that receives the text."""
    captured: list[str] = []
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.append(sink.read().decode(errors="replace"))


def io_quantization(model: bytes) -> tuple[Quantization, Quantization]:
    """(input, output) quantization of the first input and output of `model`."""
    interpreter = _litert_interpreter(model)
    return (
        _details_quantization(interpreter.get_input_details()[0]),
        _details_quantization(interpreter.get_output_details()[0]),
    )


def _timed_loop(inputs: np.ndarray, set_input, invoke, get_output) -> RunResult:
    outputs, times = [], []
    for i in range(len(inputs)):
        set_input(inputs[i : i + 1])
        start = time.perf_counter()
        invoke()
        times.append(time.perf_counter() - start)
        outputs.append(np.array(get_output()))
    rest = times[1:] or times
    return RunResult(np.concatenate(outputs), times[0], float(np.median(rest)))


def run_tflm(model: bytes, inputs: np.ndarray, arena_size: int | None = None) -> RunResult:
    """Invoke `model` in TFLM once per row of `inputs` (already in the input dtype).

    The first invoke runs the model's init subgraph (CALL_ONCE), so its time
    includes weight synthesis.
    """
    if arena_size is None:
        arena_size = tflm_arena_bytes(model)
    interpreter = _tflm_interpreter(model, arena_size)
    return _timed_loop(
        inputs,
        lambda x: interpreter.set_input(x, 0),
        interpreter.invoke,
        lambda: interpreter.get_output(0),
    )


def run_litert(model: bytes, inputs: np.ndarray) -> RunResult:
    """Invoke `model` in LiteRT (single thread) once per row of `inputs`."""
    interpreter = _litert_interpreter(model, num_threads=1)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]
    return _timed_loop(
        inputs,
        lambda x: interpreter.set_tensor(input_index, x),
        interpreter.invoke,
        lambda: interpreter.get_tensor(output_index),
    )


def _tflm_runs(model: bytes, arena_size: int, sample: np.ndarray) -> bool:
    try:
        with _captured_stderr():
            interpreter = _tflm_interpreter(model, arena_size)
            interpreter.set_input(sample, 0)
            interpreter.invoke()
        return True
    except RuntimeError:
        return False


def tflm_arena_bytes(model: bytes) -> int:
    """Smallest TFLM arena (bytes) that allocates and invokes `model` on this host.

    Read from TFLM's recording allocator after one invoke in a large arena,
    then confirmed by running in an arena of exactly that size (growing it in
    16-byte steps if needed). A 64-bit figure: a 32-bit MCU needs less.
    (Arenas far too small can crash the host interpreter, so no bisection
    from below.)

    Raises:
        RuntimeError: if the model does not run in `MAX_ARENA_BYTES`.
    """
    interpreter = _tflm_interpreter(model, MAX_ARENA_BYTES)
    details = interpreter.get_input_details(0)
    sample = np.zeros(details["shape"], details["dtype"])
    interpreter.set_input(sample, 0)
    interpreter.invoke()
    with _captured_stderr() as text:
        interpreter.print_allocations()
    found = re.search(r"Arena allocation total (\d+) bytes", "".join(text))
    if found is None:
        raise RuntimeError("TFLM did not report its arena use")
    size = int(found.group(1))
    while not _tflm_runs(model, size, sample):
        size += 16
        if size > MAX_ARENA_BYTES:
            raise RuntimeError(f"TFLM could not run the model with a {MAX_ARENA_BYTES}-byte arena")
    return size


def predict(model: bytes, x: np.ndarray, engine: str = "tflm") -> np.ndarray:
    """Float outputs of `model` for float inputs `x` `(n, ...)`, run in `"tflm"` or `"litert"`.

    Inputs are quantized and outputs dequantized with the model's own
    input/output quantization.
    """
    runners = {"tflm": run_tflm, "litert": run_litert}
    if engine not in runners:
        raise ValueError(f"engine must be one of {sorted(runners)}, got {engine!r}")
    input_q, output_q = io_quantization(model)
    return output_q.dequantize(runners[engine](model, input_q.quantize(x)).outputs)
