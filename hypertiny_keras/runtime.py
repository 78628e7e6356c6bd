"""Running `.tflite` models in TFLM (the deployment reference) and in LiteRT.

TFLM here is the host build of the `tflite-micro` wheel (reference kernels,
64-bit): its arena figures are larger than on a 32-bit microcontroller.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import subprocess
import sys
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
    """A LiteRT interpreter running its reference kernels (`BUILTIN_REF`).

    LiteRT's optimized kernels and its default XNNPACK delegate requantize
    some operators their own way: on the converter's own output of a small
    plain CNN they were measured up to 2 output steps away from TFLM. The
    reference kernels are the arithmetic TFLM (and CMSIS-NN, bit-exactly)
    implements, so they check the file, not a desktop kernel's rounding.
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
        experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
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


_PROBE = """
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
model = open(sys.argv[1], "rb").read()
for line in sys.stdin:
    try:
        interpreter = runtime.Interpreter.from_bytes(model, arena_size=int(line))
        details = interpreter.get_input_details(0)
        interpreter.set_input(np.zeros(details["shape"], details["dtype"]), 0)
        interpreter.invoke()
        print("ok", flush=True)
    except RuntimeError:
        print("fail", flush=True)
"""


class _ArenaProbe:
    """Tries arena sizes in a separate process: the host TFLM can crash, not just fail, when short."""

    def __init__(self, model_path: str):
        self.model_path = model_path
        self.process = None

    def runs(self, arena_size: int) -> bool:
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _PROBE, self.model_path],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )
        try:
            self.process.stdin.write(f"{arena_size}\n")
            self.process.stdin.flush()
            answer = self.process.stdout.readline().strip()
        except BrokenPipeError:
            answer = ""
        return answer == "ok"  # "" when the probe crashed: too small

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


def tflm_arena_bytes(model: bytes, granularity: int = 16) -> int:
    """Smallest TFLM arena (bytes, a multiple of `granularity`) that allocates and invokes `model`.

    Bisection between TFLM's own recorded allocation total (a lower bound)
    and the first doubling of it that runs, each size tried in a probe
    process. A 64-bit host figure: a 32-bit MCU needs less.

    Raises:
        RuntimeError: if the model does not run in `MAX_ARENA_BYTES`.
    """
    interpreter = _tflm_interpreter(model, MAX_ARENA_BYTES)
    details = interpreter.get_input_details(0)
    interpreter.set_input(np.zeros(details["shape"], details["dtype"]), 0)
    interpreter.invoke()
    with _captured_stderr() as text:
        interpreter.print_allocations()
    found = re.search(r"Arena allocation total (\d+) bytes", "".join(text))
    if found is None:
        raise RuntimeError("TFLM did not report its arena use")
    low = int(found.group(1)) // granularity * granularity
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.tflite")
        with open(path, "wb") as f:
            f.write(model)
        probe = _ArenaProbe(path)
        try:
            if probe.runs(low):
                return low
            high = 2 * low
            while not probe.runs(high):
                low, high = high, 2 * high
                if high > MAX_ARENA_BYTES:
                    raise RuntimeError(f"TFLM could not run the model with a {MAX_ARENA_BYTES}-byte arena")
            while high - low > granularity:
                middle = (low + high) // 2 // granularity * granularity
                low, high = (low, middle) if probe.runs(middle) else (middle, high)
            return high
        finally:
            probe.close()


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
