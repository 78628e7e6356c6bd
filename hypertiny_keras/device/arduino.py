"""`export_arduino`: a `.tflite` file -> an Arduino sketch that uses the HyperTinyPW library;
`write_arduino_library`: the library itself (`tflm_app`, shipped in the package).

The sketch folder receives, side by side (Arduino compiles only the files of
the sketch folder and of its `src/` subfolder; `.cc` files need Arduino IDE
>= 2.2 or arduino-cli >= 0.34):

- generated: `model_data.h/.cc` (the model as a 16-byte aligned `const`
  array, kept in flash), `model_ops.h` (the op resolver of exactly the
  model's operators, across all subgraphs, and its resource-variable count),
  `test_vectors.h` (int8 test windows and the outputs the TFLM Python
  interpreter gives for them), `arena_config.h` (tensor arena size),
  `tflm_library.h` (the `#include` of the chosen TFLM Arduino library,
  `hypertiny_keras.device.arduino_libraries`);
- the sketch `<folder name>.ino`, copied from one of the library's examples
  (`sketch`: `serial`, windows and patches over Serial, or `ble`, over a
  Bluetooth LE service with ArduinoBLE; `sources.SKETCHES`), unless the folder
  already has one (never overwritten, so a user's edits survive a re-export).

The portable core (`hypertiny_app.h/.cc`) is not copied: the `.ino` includes
`<HyperTinyPW.h>`, so the IDE builds the installed HyperTinyPW library
(`hypertiny arduino-library --out ~/Arduino/libraries/HyperTinyPW`); the
generated headers stay in the sketch, and the `.ino` hands the model, the
arena and the op resolver to the core. A copy of the core left in the folder
by an earlier version of the export is removed (it would be linked twice).

The files are written all or none (`utils.fileio.atomic_write_all`).
"""
from __future__ import annotations

import math
import os
import pathlib
import tempfile
import zipfile

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from hypertiny_keras.device import sources
from hypertiny_keras.device.arduino_libraries import (
    DEFAULT_ARDUINO_LIBRARY,
    SKETCH_LIBRARIES,
    ArduinoLibrary,
    library_header,
)
from hypertiny_keras.device.arduino_libraries import get as get_library
from hypertiny_keras.device.boards import get_board
from hypertiny_keras.device.runtime import io_quantization, run_tflm, tflm_arena_bytes
from hypertiny_keras.tflite.flatbuffer import BUFFER_ALIGNMENT, TYPE_NAMES, builtin_code, op_names, read_model
from hypertiny_keras.tflite.inspect import inspect_tflite
from hypertiny_keras.utils.fileio import atomic_write_all, check_output

#: Operators the core can register: TFLite builtin name -> method of
#: `tflite::MicroMutableOpResolver` (all present in tflite-micro's
#: `micro_mutable_op_resolver.h` and in the Arduino_TensorFlowLite library).
RESOLVER_METHODS = {
    "ABS": "AddAbs",
    "ADD": "AddAdd",
    "ADD_N": "AddAddN",
    "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEQUANTIZE": "AddDequantize",
    "ELU": "AddElu",
    "EXPAND_DIMS": "AddExpandDims",
    "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather",
    "HARD_SWISH": "AddHardSwish",
    "LEAKY_RELU": "AddLeakyRelu",
    "LOGISTIC": "AddLogistic",
    "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean",
    "MINIMUM": "AddMinimum",
    "MUL": "AddMul",
    "PACK": "AddPack",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize",
    "READ_VARIABLE": "AddReadVariable",
    "REDUCE_MAX": "AddReduceMax",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "SHAPE": "AddShape",
    "SOFTMAX": "AddSoftmax",
    "SPLIT": "AddSplit",
    "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "SUM": "AddSum",
    "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose",
    "TFLM_DECODE": "AddDecode",
    "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle",
}

#: The board the sketch is for (`boards.BOARDS`: the Arduino Nano 33 BLE, nRF52840).
BOARD = "nano33ble"
#: Largest ratio of the arena a 32-bit Cortex-M4 needs (emulator, `hypertiny_arena_needed_bytes`)
#: to the 64-bit host figure of the tflite-micro wheel, over the eight files of
#: benchmarks/results/device.json (0.798-0.922 there, rounded up; the ratio grows with the share of
#: activations, which do not shrink, over pointer-holding structs, which do).
CORTEX_M_ARENA_FACTOR = 0.93
#: Margin over the arena measured on the emulated Cortex-M4 (the same TFLM commit needs 0;
#: other TFLM snapshots, e.g. an Arduino library's, may allocate a few structs differently).
MEASURED_ARENA_MARGIN = 0.05
#: Most test windows compiled into `test_vectors.h`.
MAX_TEST_WINDOWS = 16
#: Files of the library's core that earlier exports copied into the sketch (removed now: the library has them).
CORE_FILES = ("hypertiny_app.h", "hypertiny_app.cc")
#: How to install the HyperTinyPW library (the sketch's `.ino` and the export's output say it).
LIBRARY_INSTALL = (
    f"hypertiny arduino-library --out ~/Arduino/libraries/{sources.LIBRARY_NAME} "
    f"(or --zip {sources.LIBRARY_NAME}.zip, then Sketch > Include Library > Add .ZIP Library)"
)

_BANNER = "// Generated by hypertiny_keras.device.arduino from {source}. Do not edit.\n"


#: Range of a test label (`int16_t kHypertinyTestLabels`; -1: no label).
LABEL_RANGE = (-1, 32767)


def check_test_vectors(
    windows: np.ndarray | None, labels: np.ndarray | None, windows_name: str = "windows", labels_name: str = "labels"
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Test windows as float32 and labels as int64, refused unless they fit `test_vectors.h`.

    Windows must be finite numbers; labels whole numbers in `LABEL_RANGE`,
    one per window (`windows_name`/`labels_name` name them in messages).

    Raises:
        ValueError: one line naming the array and the problem.
    """
    if windows is not None:
        windows = np.asarray(windows)
        if not (np.issubdtype(windows.dtype, np.number) and not np.iscomplexobj(windows)):
            raise ValueError(f"{windows_name}: the windows must be numbers, got dtype {windows.dtype}")
        windows = windows.astype(np.float32)
        if not np.isfinite(windows).all():
            raise ValueError(f"{windows_name}: {int((~np.isfinite(windows)).sum())} NaN or infinite window values")
    if labels is not None:
        labels = np.asarray(labels)
        if windows is None or labels.shape != (len(windows),):
            raise ValueError(f"{labels_name}: labels must have shape (n,) matching the windows "
                             f"({None if windows is None else len(windows)}); got {labels.shape}")
        if labels.dtype == np.bool_ or not np.issubdtype(labels.dtype, np.number) or np.iscomplexobj(labels):
            raise ValueError(f"{labels_name}: labels must be whole numbers, got dtype {labels.dtype}")
        values = labels.astype(np.float64)
        low, high = LABEL_RANGE
        bad = ~(np.isfinite(values) & (values == np.round(values)) & (values >= low) & (values <= high))
        if bad.any():
            raise ValueError(f"{labels_name}: label {labels[np.argmax(bad)]!r} (row {int(np.argmax(bad))}) is not a "
                             f"whole number in {low}..{high}")
        labels = values.astype(np.int64)
    return windows, labels


def _is_generated(path: pathlib.Path) -> bool:
    """Whether the sketch file `path` was written by an export (it starts with the banner)."""
    with open(path, "rb") as f:
        return f.read(len(_BANNER)).startswith(_BANNER.split("{")[0].encode())


def _guard(name: str) -> str:
    return "HYPERTINY_" + name.upper().replace(".", "_") + "_"


def _header(name: str, source: str, body: str) -> str:
    """A header file: banner, include guard, `body`."""
    guard = _guard(name)
    return f"{_BANNER.format(source=source)}#ifndef {guard}\n#define {guard}\n\n{body}\n#endif  // {guard}\n"


def _c_values(values: np.ndarray, per_line: int = 12, fmt: str = "0x{:02x}") -> str:
    """Comma-separated C initialiser values, `per_line` a line, indented two spaces."""
    items = [fmt.format(int(v)) for v in values.ravel()]
    lines = (", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line))
    return ",\n".join("  " + line for line in lines)


def _patch_config(model_bytes: int, key: bytes, targets: dict[int, tuple[int, int]], source: str) -> str:
    """`patch_config.h`: the key and the table of code buffers the core checks patches against."""
    rows = ",\n".join(f"  {{{index}, {offset}, {length}}}" for index, (offset, length) in targets.items())
    body = (
        f"// Code patches of this base file (tflite.patch): the key is secret; keep this folder private.\n"
        f"#define HYPERTINY_PATCH_MODEL_BYTES {model_bytes}\n\n"
        f"static const uint8_t kHypertinyPatchKey[] = {{\n{_c_values(np.frombuffer(key, np.uint8))}\n}};\n"
        f"static const size_t kHypertinyPatchKeyBytes = {len(key)};\n\n"
        f"// {{buffer index, byte offset of its data in the model, bytes}} of every code buffer.\n"
        f"static const HypertinyPatchTarget kHypertinyPatchTargets[] = {{\n{rows}\n}};\n"
        f"static const size_t kHypertinyPatchTargetCount = {len(targets)};\n"
    )
    return _header("patch_config.h", source, body)


def _patch_test(patch: bytes, expected: np.ndarray, source: str) -> str:
    """`patch_test.h` (emulator only): a patch of the base and the int8 outputs of the patched file per test window."""
    from hypertiny_keras.tflite.patch import read_patch

    count, outputs = len(expected), int(np.prod(expected.shape[1:]))
    rows = ",\n".join("  {" + ", ".join(str(int(v)) for v in row.ravel()) + "}" for row in expected)
    body = (
        f"// A code patch of this base and what the patched model must output (the TFLM Python wheel's):\n"
        f"// the emulator harness applies it, and bad patches made from it, on the board.\n"
        f"static const uint8_t kPatchTestPatch[] = {{\n{_c_values(np.frombuffer(patch, np.uint8))}\n}};\n"
        f"static const size_t kPatchTestPatchBytes = {len(patch)};\n"
        f"static const uint32_t kPatchTestCounter = {read_patch(patch, None).counter};\n"
        f"static const int8_t kPatchTestExpected[{max(count, 1)}][{outputs}] = {{\n{rows}\n}};\n"
    )
    return _header("patch_test.h", source, body)


def model_ops(data: bytes) -> list[str]:
    """Sorted builtin operator names of every subgraph of `data` (main and init).

    Raises:
        ValueError: naming each operator the core cannot register (not in
            `RESOLVER_METHODS`) and the subgraphs that use it, or for bytes that
            are not a readable `.tflite` file.
    """
    return _supported_ops(read_model(data))


def _supported_ops(model: schema.ModelT) -> list[str]:
    """`model_ops` of a model already read."""
    per_subgraph = op_names(model)
    missing: dict[str, list[int]] = {}
    for index, names in enumerate(per_subgraph):
        for name in names:
            if name not in RESOLVER_METHODS and index not in missing.setdefault(name, []):
                missing[name].append(index)
    if missing:
        found = "; ".join(f"{name} (subgraph {', '.join(map(str, sg))})" for name, sg in sorted(missing.items()))
        raise ValueError(
            f"the tflm_app core cannot register these operators: {found}. Supported: "
            f"{', '.join(sorted(RESOLVER_METHODS))} (RESOLVER_METHODS in hypertiny_keras/device/arduino.py)"
        )
    return sorted({name for names in per_subgraph for name in names})


def _check_library(model: schema.ModelT, library: ArduinoLibrary, name: str) -> None:
    """Refuse what `library`'s TFLM would compute differently or lacks (one line, naming the file and the remedy)."""
    if not library.decode and any("TFLM_DECODE" in names for names in op_names(model)):
        raise ValueError(
            f"{name}: the {library.name} library's TFLM ({library.snapshot}) has no DECODE operator for the "
            "look-up-table weights of this file (tflite_micro.compression): export it without the lut4 codec, "
            "or choose library='tflite-micro'"
        )
    if library.per_channel_fully_connected:
        return
    per_channel = []
    for index, subgraph in enumerate(model.subgraphs):
        for op in subgraph.operators or []:
            if builtin_code(model, op) != schema.BuiltinOperator.FULLY_CONNECTED:
                continue
            quantization = subgraph.tensors[op.inputs[1]].quantization
            scales = 0 if quantization is None or quantization.scale is None else len(quantization.scale)
            if scales > 1:
                per_channel.append(f"subgraph {index} ({scales} scales)")
    if per_channel:
        raise ValueError(
            f"{name}: the {library.name} library's TFLM ({library.snapshot}) reads one scale per FULLY_CONNECTED "
            f"weight tensor and would use the first for every channel; this model has per-channel ones in "
            f"{', '.join(per_channel)}: export it with dense_per_tensor=True (the default of hypertiny "
            "export/quickstart; not --dense-per-channel), or choose library='tflite-micro' for a TFLM of "
            "2024-09 or newer"
        )


def _model_data(data: bytes, source: str) -> tuple[str, str]:
    header = _header(
        "model_data.h",
        source,
        "#include <cstddef>\n\n"
        f"// The model: {len(data)} bytes, {BUFFER_ALIGNMENT}-byte aligned (the flatbuffer's constant\n"
        "// buffers are aligned within the file), const so that it stays in flash.\n"
        f"alignas({BUFFER_ALIGNMENT}) extern const unsigned char g_model[];\n"
        "extern const size_t g_model_len;  // bytes\n",
    )
    values = _c_values(np.frombuffer(data, np.uint8))
    source_file = (
        f"{_BANNER.format(source=source)}#include \"model_data.h\"\n\n"
        f"alignas({BUFFER_ALIGNMENT}) const unsigned char g_model[] = {{\n{values}\n}};\n"
        f"const size_t g_model_len = {len(data)};\n"
    )
    return header, source_file


def _model_ops(ops: list[str], resource_variables: int, source: str) -> str:
    adds = "\n".join(
        f"  if (resolver.{RESOLVER_METHODS[op]}() != kTfLiteOk) return kTfLiteError;" for op in ops
    )
    return _header(
        "model_ops.h",
        source,
        '#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"\n\n'
        f"// Operators of all subgraphs (main and init): {' '.join(ops)}.\n"
        f"#define HYPERTINY_OP_COUNT {len(ops)}\n"
        "// Resource variables (one per generated layer; distinct VAR_HANDLE shared names).\n"
        f"#define HYPERTINY_RESOURCE_VARIABLES {resource_variables}\n\n"
        "using HypertinyOpResolver = tflite::MicroMutableOpResolver<HYPERTINY_OP_COUNT>;\n\n"
        "// Registers exactly the model's operators.\n"
        "inline TfLiteStatus hypertiny_register_ops(HypertinyOpResolver& resolver) {\n"
        f"{adds}\n  return kTfLiteOk;\n}}\n",
    )


def _test_vectors(windows: np.ndarray, expected: np.ndarray, labels: np.ndarray, output_q, source: str) -> str:
    count = len(windows)
    rows = max(count, 1)  # C++ has no zero-length arrays; row 0 is unused when count is 0
    input_bytes = int(np.prod(windows.shape[1:]))
    output_bytes = int(np.prod(expected.shape[1:]))
    windows = np.zeros((rows, input_bytes), np.int8) if count == 0 else windows.reshape(count, -1)
    expected = np.zeros((rows, output_bytes), np.int8) if count == 0 else expected.reshape(count, -1)
    labels = np.full(rows, -1) if count == 0 else labels

    def table(name: str, ctype: str, values: np.ndarray) -> str:
        inner = ",\n".join("  {\n" + _c_values(row, 16, "{:d}") + "\n  }" for row in values)
        return f"static const {ctype} {name}[{values.shape[0]}][{values.shape[1]}] = {{\n{inner}\n}};\n"

    return _header(
        "test_vectors.h",
        source,
        "#include <cstdint>\n\n"
        "// Test windows (int8, the model's input quantization) and the int8 outputs the\n"
        "// TFLM Python interpreter (tflite-micro wheel, reference kernels) gave for them.\n"
        f"static const int kHypertinyTestCount = {count};\n"
        f"static const int kHypertinyInputBytes = {input_bytes};\n"
        f"static const int kHypertinyOutputBytes = {output_bytes};\n"
        f"static const float kHypertinyOutputScale = {output_q.scale!r}f;\n"
        f"static const int kHypertinyOutputZeroPoint = {output_q.zero_point};\n\n"
        + table("kHypertinyTestWindows", "int8_t", windows)
        + "\n"
        + table("kHypertinyTestExpected", "int8_t", expected)
        + "\n// True label of each window (-1: none given).\n"
        + f"static const int16_t kHypertinyTestLabels[{rows}] = {{\n{_c_values(labels, 16, '{:d}')}\n}};\n",
    )


def _arena_config(arena: int, host: int, margin: float, source: str, board: int | None = None) -> str:
    if board is None:
        how = (
            f"// Tensor arena: {host} bytes measured as the smallest arena that runs the model in the\n"
            "// tflite-micro Python wheel, a 64-bit host build; a 32-bit Cortex-M needs less: times\n"
            f"// {CORTEX_M_ARENA_FACTOR} (the largest 32-bit/64-bit ratio measured on an emulated Cortex-M4),\n"
            f"// plus a margin of {100 * margin:g}%, rounded up to 16 bytes. `hypertiny export --arduino\n"
            "// --emulator-sources` measures the 32-bit figure instead.\n"
        )
    else:
        how = (
            f"// Tensor arena: {board} bytes needed on an emulated Cortex-M4 (QEMU mps2-an386, 32-bit,\n"
            f"// hypertiny_arena_needed_bytes()), plus a margin of {100 * margin:g}%, rounded up to 16 bytes\n"
            f"// (the 64-bit host build of TFLM needs {host}).\n"
        )
    return _header(
        "arena_config.h",
        source,
        how
        + f"#define HYPERTINY_ARENA_BYTES {arena}\n"
        + f"#define HYPERTINY_ARENA_MEASURED_BYTES {host if board is None else board}\n",
    )


def _round16(value: float) -> int:
    return int(math.ceil(value / 16) * 16)


def _io_tensors(model: schema.ModelT, source: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Shapes of the first input and output of subgraph 0 of `model` (read from `source`); both must be int8."""
    main = model.subgraphs[0]
    shapes = []
    for kind, indices in (("input", main.inputs), ("output", main.outputs)):
        if indices is None or not len(indices):
            raise ValueError(f"{source}: the main subgraph has no {kind} tensor")
        tensor = main.tensors[int(indices[0])]
        if TYPE_NAMES.get(tensor.type) != "INT8":
            raise ValueError(
                f"{source}: the tflm_app core needs int8 input and output; the model's {kind} is "
                f"{TYPE_NAMES.get(tensor.type)} (export with io_dtype='int8')"
            )
        if tensor.shape is None or not len(tensor.shape) or min(int(v) for v in tensor.shape) < 1:
            shape = None if tensor.shape is None else [int(v) for v in tensor.shape]
            raise ValueError(f"{source}: the model's {kind} has no fixed shape ({shape})")
        shapes.append(tuple(int(v) for v in tensor.shape))
    return shapes[0], shapes[1]


def export_arduino(
    model_path: str,
    sketch_dir: str,
    windows: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    arena_margin: float | None = None,
    emulator_sources: str | os.PathLike | None = None,
    emulator_build: str | os.PathLike | None = None,
    library: str = DEFAULT_ARDUINO_LIBRARY,
    patch_key: bytes | None = None,
    test_patch: bytes | None = None,
    sketch: str = sources.DEFAULT_SKETCH,
) -> dict:
    """Write the Arduino sketch of the `.tflite` file `model_path` into `sketch_dir`.

    Args:
        model_path: an int8-I/O `.tflite` file (`boot` or `frozen`).
        sketch_dir: the sketch folder (created if missing); Arduino wants the
            `.ino` named after it.
        windows: float model inputs `(n, *input_shape)` (input shape without
            the batch axis); the first `MAX_TEST_WINDOWS` become test
            vectors, quantized with the model's input quantization. `None`:
            no compiled-in windows (the sketch then only serves Serial).
        labels: true labels `(n,)` of `windows`, printed beside predictions.
        arena_margin: fraction added to the arena figure (default: 25% over
            the host figure x `CORTEX_M_ARENA_FACTOR`; `MEASURED_ARENA_MARGIN`
            over a figure measured on the emulator).
        emulator_sources: a folder of TFLM / CMSIS-NN checkouts
            (`emulator.SOURCE_DIRS`): the sketch is then built for and run on
            the emulated Cortex-M4 (`emulator.emulate`, a few minutes the first
            time) before it is written; its 32-bit arena sets
            `HYPERTINY_ARENA_BYTES`, and the sketch with that arena must pass
            every test vector there.
        emulator_build: build folder for the emulator (its TFLM library is
            reused across exports); default a temporary one.
        library: the TFLM Arduino library the sketch is built with
            (`arduino_libraries.ARDUINO_LIBRARIES`: `chirale`, the one the
            Library Manager installs, or `arduino-examples`).
        patch_key: the HMAC key (16 bytes or more) of this device's code patches
            (`tflite.patch`): writes `patch_config.h`, the key and the table of
            the base's code buffers, so that the sketch applies patches (`P <hex>`
            over Serial). The key is then in the sketch folder and in the
            device's flash: build per device (or per fleet), keep the folder
            private. A boot file with code tensors is needed. `None`: no
            patches (a `patch_config.h` of an earlier export is removed).
        test_patch: a code patch of this file made with `patch_key`, to try on
            the emulated board: writes `patch_test.h` (the patch and the int8
            outputs the TFLM Python wheel gives for the test windows on the
            patched file). `hypertiny emulate` then applies it, and bad
            patches made from it (tampered, truncated, wrong base, a record
            outside the code buffers, replayed), on the board and checks every
            test vector after each. Needs `patch_key` and `windows`; the
            `.ino` ignores the file.
        sketch: which example becomes the `.ino` (`sources.SKETCHES`):
            `serial` (windows and patches as Serial lines) or `ble` (a GATT
            service with ArduinoBLE: patch, status, window chunks, results;
            tflm_app/README.md "Patches over BLE"), which also needs the
            ArduinoBLE library (`requires`).

    Returns:
        A JSON-ready dict: `sketch_dir`, `files` (names written), `model_bytes`,
        `arena_bytes` (compiled-in), `arena_measured_bytes` (64-bit host
        figure), `arena_board_bytes` (32-bit figure from the emulator, or
        None), `arena_note` (which figure the arena comes from), `emulator`
        (the emulator's summary, or None), `ops`, `resource_variables`, `generated_weight_ram_bytes`,
        `test_windows`, `library`, `sketch`, `removed` (copies of the core an earlier
        export left in the folder, now deleted), `warnings` (a kept `.ino`
        that does not use the library's API), `requires` (the Arduino
        libraries the sketch needs and how to install them) and `budget`
        (`board`, `ram_bytes`, `flash_bytes` of the board, `flash_used_bytes`
        = model + test vectors, `ram_used_bytes` = arena). The budget counts
        neither Mbed OS nor the TFLM code.

    Raises:
        ValueError: an unknown `sketch` or `library`, an operator the core cannot register, non-int8 I/O,
            windows or labels of the wrong shape, NaN windows, labels that
            are not whole numbers in `LABEL_RANGE` (`check_test_vectors`), a
            sketch folder that is a file or holds a file of a generated name
            that no export wrote, or an edited copy of the core
            (`hypertiny_app.cc`) an earlier export left, a negative margin, or an
            arena over the board's RAM or model + test vectors over its flash.
            Also for a file that is not a readable `.tflite` (one line naming it).
            Nothing is written then.
        FileNotFoundError: `model_path` missing; `sources.DeviceSourcesError`
            if the package lacks its device sources.
        runtime.TFLMError: TFLM refused the file, or crashed or hung running
            it (`TFLMCrash`); in its worker process, so this one survives.
        emulator.EmulatorError: with `emulator_sources`, the emulator could
            not build or run the sketch, or a test vector differed there.
    """
    data = pathlib.Path(model_path).read_bytes()
    folder = pathlib.Path(sketch_dir)
    source = pathlib.Path(model_path).name
    if arena_margin is not None and arena_margin < 0:
        raise ValueError(f"arena_margin must be >= 0, got {arena_margin}")
    chosen = get_library(library)  # an unknown name fails before anything is read
    board_spec = get_board(BOARD)
    host_margin = 0.25 if arena_margin is None else arena_margin
    example = sources.example_sketch(sketch)  # one clear error for another name, or if the package lacks its sources
    model = read_model(data, str(model_path))
    ops = _supported_ops(model)
    _check_library(model, chosen, str(model_path))
    input_shape, output_shape = _io_tensors(model, str(model_path))
    input_q, output_q = io_quantization(data)

    windows, labels = check_test_vectors(windows, labels)
    if windows is None:
        windows_q = np.zeros((0, *input_shape[1:]), np.int8)
    else:
        if windows.shape[1:] != input_shape[1:]:
            expected_shape = ", ".join(map(str, input_shape[1:]))
            raise ValueError(f"windows must have shape (n, {expected_shape}); got {windows.shape}")
        windows_q = input_q.quantize(windows[:MAX_TEST_WINDOWS])
    count = len(windows_q)
    if labels is None:
        label_values = np.full(count, -1, np.int64)
    else:
        label_values = labels[:count]
    measured = tflm_arena_bytes(data, name=str(model_path))
    expected = (
        run_tflm(model_path, windows_q, measured).outputs if count else np.zeros((0, *output_shape[1:]), np.int8)
    )
    arena = _round16(measured * CORTEX_M_ARENA_FACTOR * (1 + host_margin))
    flash_used = len(data) + windows_q.nbytes + expected.nbytes
    if arena > board_spec.ram_bytes:
        raise ValueError(
            f"arena of {arena} bytes ({measured} measured on the host x {CORTEX_M_ARENA_FACTOR} + "
            f"{100 * host_margin:g}% margin) exceeds the board's {board_spec.ram_bytes} bytes of RAM "
            f"({board_spec.name})"
        )
    if flash_used > board_spec.flash_bytes:
        raise ValueError(
            f"model ({len(data)} bytes) + test vectors exceed the board's {board_spec.flash_bytes} bytes of flash "
            f"({board_spec.name})"
        )
    if test_patch is not None and patch_key is None:
        raise ValueError("test_patch needs patch_key: the key its tag was made with")
    info = inspect_tflite(data, str(model_path))
    model_h, model_cc = _model_data(data, source)
    if patch_key is not None:
        from hypertiny_keras.tflite.patch import MIN_KEY_BYTES, apply_patch, code_buffers

        if len(patch_key) < MIN_KEY_BYTES:
            raise ValueError(f"patch_key must be at least {MIN_KEY_BYTES} bytes, got {len(patch_key)}")
        targets = code_buffers(data, str(model_path))  # a PatchError (ValueError) when the file has no codes
        if test_patch is not None:
            if count == 0:
                raise ValueError("test_patch needs test windows: the emulator checks the patched model on them")
            patched = apply_patch(data, test_patch, patch_key)  # a PatchError names what is wrong with it
            patched_expected = run_tflm(patched, windows_q, measured).outputs
        if arena + len(data) > board_spec.ram_bytes:
            raise ValueError(f"arena ({arena} bytes) + the RAM copy a patch is applied to ({len(data)} bytes) exceed "
                             f"the board's {board_spec.ram_bytes} bytes of RAM ({board_spec.name})")
    files = {
        "model_data.h": model_h,
        "model_data.cc": model_cc,
        "model_ops.h": _model_ops(ops, info["resource_variables"], source),
        "test_vectors.h": _test_vectors(windows_q, expected, label_values, output_q, source),
        "arena_config.h": _arena_config(arena, measured, host_margin, source),
        "tflm_library.h": _header("tflm_library.h", source, library_header(library)),
    }
    if patch_key is not None:
        files["patch_config.h"] = _patch_config(len(data), patch_key, targets, source)
    if test_patch is not None:
        files["patch_test.h"] = _patch_test(test_patch, patched_expected, source)
    ino = f"{folder.resolve().name}.ino"
    warnings = []
    if not (folder / ino).exists():
        files[ino] = example.read_text()
    else:
        kept = (folder / ino).read_text(errors="replace")
        if "HypertinyConfig" not in kept:
            warnings.append(f"{ino} was kept but does not set up the core with a HypertinyConfig (an earlier "
                            "version's sketch?): it will not compile with the HyperTinyPW library; delete it and "
                            "export again")
        elif ("<ArduinoBLE.h>" in kept) != ("<ArduinoBLE.h>" in example.read_text()):
            warnings.append(f"{ino} was kept and is not the {sketch!r} sketch (ArduinoBLE: "
                            f"{'<ArduinoBLE.h>' in kept} there): delete it and export again to get the {sketch!r} one")
    board: dict = {}
    if emulator_sources is not None:
        margin = MEASURED_ARENA_MARGIN if arena_margin is None else arena_margin
        board = _measure_on_board(files, emulator_sources, emulator_build, measured, margin, source)
        files["arena_config.h"] = board["arena_config"]
        arena = board["arena"]
        note = f"{board['needed']} B needed on an emulated Cortex-M4 (32-bit) + {100 * margin:g}% margin"
    else:
        note = (f"{measured} B on the 64-bit host x {CORTEX_M_ARENA_FACTOR} (32-bit ratio measured on an emulated "
                f"Cortex-M4) + {100 * host_margin:g}% margin")
    _check_sketch(folder, files, str(model_path))
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_all([(folder / name, text.encode()) for name, text in sorted(files.items())])
    removed = []
    for name in CORE_FILES:  # an earlier export's copy of the core would be linked beside the library's
        if (folder / name).is_file():
            (folder / name).unlink()
            removed.append(name)
    for name in ("patch_config.h", "patch_test.h"):  # an earlier export's: its offsets describe another model
        stale = folder / name
        if name not in files and stale.is_file() and _is_generated(stale):
            stale.unlink()
            removed.append(name)
    requires = {
        sources.LIBRARY_NAME: LIBRARY_INSTALL,
        **({chosen.header.removesuffix(".h"): chosen.install} if chosen.header else {}),
        **SKETCH_LIBRARIES[sketch],
    }
    return {
        "sketch_dir": str(folder),
        "files": sorted(files),
        "removed": removed,
        "warnings": warnings,
        "model_bytes": len(data),
        "arena_bytes": arena,
        "arena_measured_bytes": measured,
        "arena_board_bytes": board.get("needed"),
        "arena_note": note,
        "emulator": board.get("summary"),
        "ops": ops,
        "resource_variables": info["resource_variables"],
        "generated_weight_ram_bytes": info["generated_weight_ram_bytes"],
        "test_windows": count,
        "library": library,
        "sketch": sketch,
        "requires": requires,
        "budget": {
            "board": board_spec.name,
            "ram_bytes": board_spec.ram_bytes,
            "flash_bytes": board_spec.flash_bytes,
            "ram_used_bytes": arena + (len(data) if patch_key is not None else 0),  # + slot B of patches
            "flash_used_bytes": flash_used,
            "note": "Mbed OS, the TFLM library and the sketch need flash and RAM of their own",
        },
    }


def _check_sketch(sketch: pathlib.Path, files: dict[str, str], model_path: str) -> None:
    """Refuse a sketch folder whose writing would lose a user's file.

    `sketch` must be a folder (or missing); each generated file may replace
    only an earlier export's (`utils.fileio.check_output`, the banner); a
    copy of the core an earlier export left is removed only while it equals
    the library's core (an edited copy is the user's: refused).
    """
    if sketch.exists() and not sketch.is_dir():
        raise ValueError(f"{sketch}: the sketch folder is a file; give a folder (created if missing)")
    if not sketch.exists():
        return
    for name in files:
        if name.endswith(".ino"):
            continue  # written only where there is none
        check_output(sketch / name, (model_path,), replaceable=_is_generated)
    for name in CORE_FILES:
        copy = sketch / name
        if copy.is_file() and copy.read_bytes() != (sources.core_dir() / name).read_bytes():
            raise ValueError(
                f"{copy} differs from the HyperTinyPW library's {name} (an edited copy an earlier export left): the "
                "sketch now builds the installed library, and both would be linked; move the file out of the folder "
                "(keep your changes in the library) and export again"
            )


def _measure_on_board(files: dict[str, str], sources_dir, build, host: int, margin: float, source: str) -> dict:
    """Run the sketch `files` on the emulator, size its arena from the 32-bit figure, run it again.

    The files are written to a temporary folder only (the sketch folder is
    untouched until everything passed). Returns `needed` (32-bit bytes),
    `arena` (compiled in), `arena_config` (the text of arena_config.h) and
    `summary` (of the second run).
    """
    from hypertiny_keras.device.emulator import EmulatorError, emulate, patch_case_ok

    with tempfile.TemporaryDirectory(prefix="hypertiny-board-") as scratch:
        staging = pathlib.Path(scratch) / "sketch"
        staging.mkdir()
        for name, text in files.items():
            (staging / name).write_text(text)
        build = build or pathlib.Path(scratch) / "build"
        needed = emulate(staging, sources_dir, build_dir=build)["summary"]["arena_needed_bytes"]
        arena = _round16(needed * (1 + margin))
        config = _arena_config(arena, host, margin, source, board=needed)
        (staging / "arena_config.h").write_text(config)
        final = emulate(staging, sources_dir, build_dir=build)
    summary = final["summary"]
    patch = summary.get("patch")
    if patch and patch["as_expected"] != patch["cases"]:
        wrong = [f"{c['case']} ({c['status']})" for c in final["patch"] if not patch_case_ok(c, summary["tests"])]
        raise EmulatorError(f"emulate: {len(wrong)} of {patch['cases']} patch cases went wrong on the emulated "
                            f"Cortex-M4: {', '.join(wrong)}; the sketch was not written")
    if summary["passed"] != summary["checked"] or final["failures"]:
        raise EmulatorError(
            f"emulate: {summary['checked'] - summary['passed']} of {summary['checked']} test vectors differ on the "
            "emulated Cortex-M4 from the TFLM Python wheel; the sketch was not written"
        )
    return {"needed": needed, "arena": arena, "arena_config": config, "summary": summary}


def write_arduino_library(out_dir: str | os.PathLike | None = None, zip_path: str | os.PathLike | None = None) -> dict:
    """Write the HyperTinyPW Arduino library (`tflm_app`, as shipped in the package) for the Arduino IDE.

    Args:
        out_dir: the library folder, e.g. `~/Arduino/libraries/HyperTinyPW`
            (created; the library's files in it are replaced, all or none;
            other files are left alone).
        zip_path: a `.zip` holding the folder `HyperTinyPW/`, for the IDE's
            Sketch > Include Library > Add .ZIP Library.

    Returns:
        `name`, `version`, `files` (relative paths), `out_dir`, `zip`.

    Raises:
        ValueError: neither `out_dir` nor `zip_path`, or `out_dir` is a file.
        sources.DeviceSourcesError: the package lacks its device sources.
    """
    if out_dir is None and zip_path is None:
        raise ValueError("write_arduino_library needs out_dir or zip_path")
    root = sources.tflm_app()
    contents = [(name, (root / name).read_bytes()) for name in sources.LIBRARY_FILES]
    if out_dir is not None:
        out = pathlib.Path(out_dir).expanduser()
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out_dir} is a file; give the library folder to write")
        for name, _ in contents:
            (out / name).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_all([(out / name, data) for name, data in contents])
    if zip_path is not None:
        target = pathlib.Path(zip_path).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.", delete=False) as handle:
            try:
                with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
                    for name, data in contents:
                        archive.writestr(f"{sources.LIBRARY_NAME}/{name}", data)
            except BaseException:
                os.unlink(handle.name)
                raise
        os.replace(handle.name, target)
    return {
        "name": sources.LIBRARY_NAME,
        "version": sources.library_version(),
        "files": [name for name, _ in contents],
        "out_dir": None if out_dir is None else str(pathlib.Path(out_dir).expanduser()),
        "zip": None if zip_path is None else str(pathlib.Path(zip_path).expanduser()),
    }
