"""Running `.tflite` models in TFLM (the deployment reference) and in LiteRT.

TFLM here is the host build of the `tflite-micro` wheel (reference kernels,
64-bit): its arena figures are larger than on a 32-bit microcontroller.
"""
from __future__ import annotations

import atexit
import dataclasses
import os
import pathlib
import pickle
import select
import signal
import struct
import subprocess
import sys
import time

import numpy as np

#: Largest arena the search tries, in bytes.
MAX_ARENA_BYTES = 16 << 20
#: Longest one TFLM request may take before the worker is killed, in seconds.
TFLM_TIMEOUT_S = 600.0
_WORKER_SCRIPT = pathlib.Path(__file__).with_name("tflm_worker.py")


class TFLMError(RuntimeError):
    """TFLM could not run a file (it refused it, or its process died); the message names the file."""


class TFLMCrash(TFLMError):
    """The TFLM worker process died (e.g. a segfault) or hung while running a file."""


class TFLMWorker:
    """A child process that runs TFLM (see `_tflm_worker.py`), restarted after a crash.

    The host TFLM can segfault on a malformed file or a too-small arena;
    running it here keeps the caller alive and turns the crash into a
    `TFLMCrash` naming the file.
    """

    def __init__(self, timeout_s: float = TFLM_TIMEOUT_S):
        self.timeout_s = timeout_s
        self.process: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                [sys.executable, str(_WORKER_SCRIPT)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )
        return self.process

    def _receive(self, process: subprocess.Popen, nbytes: int) -> bytes:
        chunks, remaining, deadline = [], nbytes, time.monotonic() + self.timeout_s
        fd = process.stdout.fileno()
        while remaining:
            ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, remaining)
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def request(self, kind: str, model: bytes, name: str, *args):
        """Send one request; returns the worker's answer or raises `TFLMError` / `TFLMCrash`."""
        process = self._start()
        body = pickle.dumps((kind, model, *args), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            process.stdin.write(struct.pack("<Q", len(body)) + body)
            process.stdin.flush()
            (size,) = struct.unpack("<Q", self._receive(process, 8))
            status, value = pickle.loads(self._receive(process, size))
        except TimeoutError:
            self.close()
            raise TFLMCrash(f"TFLM did not finish running {name} within {self.timeout_s:.0f} s") from None
        except (BrokenPipeError, EOFError):
            code = process.wait()
            self.process = None
            cause = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
            raise TFLMCrash(f"TFLM crashed ({cause}) running {name}") from None
        if status != "ok":
            raise TFLMError(f"TFLM could not run {name}: {value}")
        return value

    def close(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


_WORKER: TFLMWorker | None = None


def tflm_worker() -> TFLMWorker:
    """The TFLM worker of this process (started on first use, closed at exit)."""
    global _WORKER
    if _WORKER is None:
        _WORKER = TFLMWorker()
        atexit.register(_WORKER.close)
    return _WORKER


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


def io_quantization(model: bytes, name: str | None = None) -> tuple[Quantization, Quantization]:
    """(input, output) quantization of the first input and output of `model`, read from the flatbuffer.

    `name` is what messages call the file (default: "the model (N bytes)").

    Raises:
        ValueError: if `model` is not a readable `.tflite` file.
    """
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    from hypertiny_keras.tflite.flatbuffer import read_model

    name = name or f"the model ({len(model):,} bytes)"
    flat = read_model(model, name)
    main = flat.subgraphs[0] if flat.subgraphs else None
    if main is None or main.inputs is None or not len(main.inputs) or main.outputs is None or not len(main.outputs):
        raise ValueError(f"{name}: no main subgraph with an input and an output")
    dtypes = {schema.TensorType.INT8: np.int8, schema.TensorType.UINT8: np.uint8,
              schema.TensorType.INT16: np.int16, schema.TensorType.FLOAT32: np.float32}

    def quantization(index: int) -> Quantization:
        if not 0 <= index < len(main.tensors):
            raise ValueError(f"{name}: input/output tensor {index} does not exist")
        tensor = main.tensors[index]
        if tensor.type not in dtypes:
            raise ValueError(f"{name}: input/output has an unsupported type (code {tensor.type})")
        q = tensor.quantization
        scales = [] if q is None or q.scale is None else list(q.scale)
        zero_points = [] if q is None or q.zeroPoint is None else list(q.zeroPoint)
        return Quantization(
            float(scales[0]) if scales else 0.0, int(zero_points[0]) if zero_points else 0, dtypes[tensor.type]
        )

    return quantization(int(main.inputs[0])), quantization(int(main.outputs[0]))


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


def _model_bytes(model: bytes | str | os.PathLike) -> tuple[bytes, str]:
    """`.tflite` bytes and a name for messages, from bytes or a path."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model), f"the model ({len(model):,} bytes)"
    path = pathlib.Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such .tflite file")
    return path.read_bytes(), str(path)


def run_tflm(
    model: bytes | str | os.PathLike, inputs: np.ndarray, arena_size: int | None = None, name: str | None = None
) -> RunResult:
    """Invoke `model` in TFLM once per row of `inputs` (already in the input dtype).

    TFLM runs in the worker process of `tflm_worker`: a crash of TFLM
    raises `TFLMError` naming the file instead of ending this process. The
    first invoke runs the model's init subgraph (CALL_ONCE), so its time
    includes weight synthesis.

    Args:
        model: `.tflite` bytes or a path.
        inputs: `(n, *input_shape[1:])` in the model's input dtype.
        arena_size: arena bytes; `None` finds the smallest that works.
        name: what errors call the model (default: its path, or "the model (N bytes)").
    """
    data, default_name = _model_bytes(model)
    name = name or default_name
    if arena_size is None:
        arena_size = tflm_arena_bytes(data, name=name)
    outputs, times = tflm_worker().request("run", data, name, np.ascontiguousarray(inputs), int(arena_size))
    rest = times[1:] or times or [0.0]
    return RunResult(outputs, times[0] if times else 0.0, float(np.median(rest)))


def invoke_ratio(
    model: bytes | str | os.PathLike, reference: bytes | str | os.PathLike, inputs: np.ndarray, rounds: int = 7
) -> dict[str, float]:
    """Host TFLM invoke time of `model` over `reference`, from interleaved rounds.

    Each round runs both files over `inputs` (the order alternating) and
    takes the ratio of their median invoke times: load and clock changes of
    the host then hit both alike. Still a host figure: on a Cortex-M4
    `hypertiny emulate` counts instructions instead.

    Returns:
        `median`, `min`, `max` of the per-round ratios, `rounds`, and
        `model_us`, `reference_us` (medians over the rounds, microseconds).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    arenas = {id(m): tflm_arena_bytes(m) for m in (model, reference)}
    ratios, times = [], {"model": [], "reference": []}
    for r in range(rounds):
        order = (("model", model), ("reference", reference))
        for label, m in order if r % 2 == 0 else order[::-1]:
            times[label].append(run_tflm(m, inputs, arenas[id(m)]).median_invoke_s)
        ratios.append(times["model"][-1] / times["reference"][-1])
    return {"median": float(np.median(ratios)), "min": float(min(ratios)), "max": float(max(ratios)),
            "rounds": rounds, "model_us": float(np.median(times["model"]) * 1e6),
            "reference_us": float(np.median(times["reference"]) * 1e6)}


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


def tflm_arena_bytes(model: bytes | str | os.PathLike, granularity: int = 16, name: str | None = None) -> int:
    """Smallest TFLM arena (bytes, a multiple of `granularity`) that allocates and invokes `model`.

    Bisection between TFLM's own recorded allocation total (a lower bound)
    and the first doubling of it that runs, each size tried in the TFLM
    worker (a crash there counts as "too small"; the worker is restarted).
    A 64-bit host figure: a 32-bit MCU needs less.

    Raises:
        TFLMError: if the model does not run in `MAX_ARENA_BYTES`.
    """
    data, default_name = _model_bytes(model)
    name = name or default_name
    worker = tflm_worker()
    total = worker.request("allocation_total", data, name, MAX_ARENA_BYTES)

    def runs(size: int) -> bool:
        try:
            return worker.request("probe", data, name, size)
        except TFLMCrash:
            return False

    low = total // granularity * granularity
    if runs(low):
        return low
    high = 2 * low
    while not runs(high):
        low, high = high, 2 * high
        if high > MAX_ARENA_BYTES:
            raise TFLMError(f"TFLM could not run {name} with a {MAX_ARENA_BYTES:,}-byte arena")
    while high - low > granularity:
        middle = (low + high) // 2 // granularity * granularity
        low, high = (low, middle) if runs(middle) else (middle, high)
    return high


def predict(
    model: bytes | str | os.PathLike,
    x: np.ndarray,
    engine: str = "tflm",
    batch_size: int = 512,
    progress: bool = False,
) -> np.ndarray:
    """Float outputs of `model` for float inputs `x` `(n, ...)`, run in `"tflm"` or `"litert"`.

    Inputs are quantized and outputs dequantized with the model's own
    input/output quantization. TFLM runs `batch_size` windows per request to
    its worker process (the arena is found once), with a progress bar over
    the batches when `progress` is set.
    """
    from tqdm.auto import tqdm

    if engine not in ("tflm", "litert"):
        raise ValueError(f"engine must be one of ['litert', 'tflm'], got {engine!r}")
    data, name = _model_bytes(model)
    input_q, output_q = io_quantization(data, name)
    q = input_q.quantize(np.asarray(x))
    if engine == "litert":
        return output_q.dequantize(run_litert(data, q).outputs)
    arena = tflm_arena_bytes(data, name=name)
    step = max(1, int(batch_size))
    starts = range(0, len(q), step)
    bar = tqdm(starts, desc=f"TFLM {pathlib.Path(name).name}", unit="batch", disable=not progress or len(starts) < 2,
               leave=False)
    outputs = [run_tflm(data, q[i : i + step], arena_size=arena, name=name).outputs for i in bar]
    return output_q.dequantize(np.concatenate(outputs) if outputs else run_tflm(data, q, arena, name).outputs)
