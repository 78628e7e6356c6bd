"""Where the bytes of a small `.tflite` that are not weights go, and what removing each part would save.

Runs the quickstart (its defaults, `hypertiny_keras.cli.quickstart.run_quickstart`)
and takes its frozen file after the flatbuffer diet. Each part is measured by
serializing the model without it (object API, same writer as the exporter):
the bytes saved are the part's full cost, including its offsets and tables.
Parts: every quantization table; only the per-channel filter zero points cut
to one value (TFLM reads one for weights, `micro_allocator.cc`: "zero point
arrays for weights can be reduced to a single value"; LiteRT refuses such a
file, which is checked here: TFLM outputs on the quickstart's test windows,
LiteRT's answer); operator tables; tensor shapes; constant data with its
16-byte alignment. Nothing here is written into an exported file.

    .venv/bin/python benchmarks/flatbuffer_overhead.py

Writes `benchmarks/results/flatbuffer_overhead.{json,md}`.
"""
from __future__ import annotations

import copy
import json
import os
import pathlib
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
TARGET_SHARE = 0.25  # the target: overhead <= 25% of the file


def _drop_quantization(model) -> None:
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.quantization = None


def _one_filter_zero_point(model) -> None:
    from hypertiny_keras.tflite.weight_codecs import filters

    for subgraph, index, _ in filters(model):
        q = model.subgraphs[subgraph].tensors[index].quantization
        if q is not None and q.zeroPoint is not None and len(q.zeroPoint) > 1:
            q.zeroPoint = [0]


def _drop_operators(model) -> None:
    for subgraph in model.subgraphs:
        subgraph.operators = []


def _drop_shapes(model) -> None:
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            tensor.shape = tensor.shapeSignature = None


def _drop_constant_data(model) -> None:
    for buffer in model.buffers:
        buffer.data = None


PARTS = {
    "quantization tables (all)": _drop_quantization,
    "filter zero points beyond the first (TFLM reads one; LiteRT refuses)": _one_filter_zero_point,
    "operator tables": _drop_operators,
    "tensor shapes": _drop_shapes,
    "constant data and its alignment": _drop_constant_data,
}


def measure(data: bytes) -> dict:
    """Bytes of `data` and what serializing it without each part of `PARTS` saves."""
    from hypertiny_keras.tflite.flatbuffer import read_model, write_model
    from hypertiny_keras.tflite.inspect import inspect_tflite

    model = read_model(data)
    base = len(write_model(model))
    saved = {}
    for name, remove in PARTS.items():
        changed = copy.deepcopy(model)
        remove(changed)
        saved[name] = base - len(write_model(changed))
    roles = inspect_tflite(data)["bytes_by_role"]
    tensors = sum(len(s.tensors or []) for s in model.subgraphs)
    operators = sum(len(s.operators or []) for s in model.subgraphs)
    return {"file_bytes": len(data), "rewritten_bytes": base, "overhead_bytes": roles["flatbuffer_overhead"],
            "weight_bytes": len(data) - roles["flatbuffer_overhead"], "tensors": tensors, "operators": operators,
            "buffers": len(model.buffers), "saved_without": saved}


def zero_point_check(data: bytes, windows) -> dict:
    """TFLM outputs of `data` with one zero point per filter (same bit for bit?) and whether LiteRT loads it."""
    import numpy as np

    from hypertiny_keras.device.runtime import predict, run_litert
    from hypertiny_keras.tflite.flatbuffer import read_model, write_model

    model = read_model(data)
    _one_filter_zero_point(model)
    cut = write_model(model)
    check = {"tflm_identical": bool(np.array_equal(predict(cut, windows), predict(data, windows))),
             "windows": int(len(windows))}
    try:
        run_litert(cut, np.zeros((1, *windows.shape[1:]), np.int8))
        check["litert"] = "loaded and ran"
    except Exception as error:  # noqa: BLE001 (LiteRT raises RuntimeError/ValueError)
        check["litert"] = " ".join(str(error).split())[:200]
    return check


def _markdown(result: dict) -> str:
    m = result["frozen"]
    overhead, size = m["overhead_bytes"], m["file_bytes"]
    zero_points = m["saved_without"]["filter zero points beyond the first (TFLM reads one; LiteRT refuses)"]
    floor = overhead - m["saved_without"]["quantization tables (all)"]
    lines = [
        "# Flatbuffer overhead of the quickstart frozen file",
        "",
        f"Command: `{result['command']}`",
        "",
        f"The quickstart's frozen file after the diet: {size:,} B, of which {m['weight_bytes']:,} B are constant "
        f"data (weights, biases, shape constants) and {overhead:,} B ({overhead / size:.1%}) structure "
        f"(`inspect_tflite` flatbuffer_overhead); {m['tensors']} tensors, {m['operators']} operators, "
        f"{m['buffers']} buffers. Each row: the bytes saved by serializing the model without that part.",
        "",
        "| part | bytes saved without it | share of the file |",
        "|---|---:|---:|",
    ]
    for name, value in m["saved_without"].items():
        lines.append(f"| {name} | {value:,} | {value / size:.1%} |")
    lines += [
        "",
        f"Even with no quantization table at all (which no int8 file can do without), {floor:,} B of structure "
        f"would remain: {floor / (size - overhead + floor):.1%} of such a file, above the "
        f"{TARGET_SHARE:.0%} target. Cutting the filter zero points to one value would save {zero_points:,} B "
        f"({zero_points / size:.1%}); on this file TFLM's outputs then stay "
        f"{'identical' if result['zero_point_check']['tflm_identical'] else 'NOT identical'} over "
        f"{result['zero_point_check']['windows']} test windows, and LiteRT says: "
        f"\"{result['zero_point_check']['litert']}\".",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    import numpy as np

    from hypertiny_keras.cli.quickstart import run_quickstart
    from hypertiny_keras.utils.fileio import atomic_write

    with tempfile.TemporaryDirectory(prefix="hypertiny-overhead-") as scratch:
        run_quickstart(scratch, verbose=0)
        data = (pathlib.Path(scratch) / "model_frozen_int8.tflite").read_bytes()
        with np.load(pathlib.Path(scratch) / "test_windows.npz") as saved:
            windows = saved["windows"][:64]
    result = {"command": ".venv/bin/python benchmarks/flatbuffer_overhead.py", "frozen": measure(data),
              "zero_point_check": zero_point_check(data, windows)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write(RESULTS / "flatbuffer_overhead.json", (json.dumps(result, indent=2) + "\n").encode())
    atomic_write(RESULTS / "flatbuffer_overhead.md", _markdown(result).encode())
    print(_markdown(result))


if __name__ == "__main__":
    main()
