"""Device figures on an emulated Cortex-M4F (QEMU mps2-an386): instructions, synthesis, arena, flash.

For the quickstart model and a MIT-BIH model (the recipe's `hypertiny_pw`,
widths 32/64/64/96, 0.7 s beats of six real records, 2 epochs: instruction
counts and bytes do not depend on how well it is trained), the boot and
frozen files are exported to sketches and run by `hypertiny emulate` with
TFLM's CMSIS-NN and reference kernels. The quickstart is also trained with
both global poolings (`pool="mean"` -> MEAN, `"average_pool"` ->
AVERAGE_POOL_2D) over `--seeds` seeds: TFLM int8 accuracy of each, and the
instructions of each on the board.

The quickstart files are exported with per-channel FULLY_CONNECTED weight
scales (`dense_per_tensor=False`, `hypertiny quickstart --dense-per-channel`),
as the recorded figures were; the quickstart's default is per-tensor now
(benchmarks/results/arduino_libraries.md has the per-tensor files on the
emulator: 2% fewer instructions on the libraries' 2023 TFLM).

Writes `benchmarks/results/device.{json,md,png}`. Needs the TFLM sources:

    .venv/bin/python benchmarks/device.py --sources DIR [--build DIR] [--seeds 5]
    .venv/bin/python benchmarks/device.py --report    # re-render device.md/.png from device.json only

DIR holds tflite-micro, flatbuffers, gemmlowp, ruy, CMSIS-NN and CMSIS_6
checkouts (tflm_app/README.md says which commits). Without them it says so
and writes nothing.
"""
from __future__ import annotations

import json
import os
import pathlib
import statistics
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
flags.DEFINE_string("sources", os.environ.get("HYPERTINY_EMULATOR_SOURCES"), "folder of the TFLM/CMSIS checkouts")
flags.DEFINE_string("build", None, "emulator build folder, kept (default: temporary)")
flags.DEFINE_integer("seeds", 5, "quickstart seeds per pooling")
flags.DEFINE_string("out", str(RESULTS), "results folder")
flags.DEFINE_bool("report", False, "re-write device.md and device.png from the recorded device.json; runs nothing")
FLAGS = flags.FLAGS
KERNELS = ("cmsis", "reference")


def _command() -> str:
    return ".venv/bin/python benchmarks/device.py --sources DIR" + (
        f" --seeds {FLAGS.seeds}" if FLAGS.seeds != 5 else ""
    )


def _mitbih_files(out: pathlib.Path) -> dict[str, pathlib.Path]:
    """Boot and frozen files of the MIT-BIH `hypertiny_pw` model, and its test windows."""
    import keras
    import numpy as np

    from hypertiny_keras.data import load_mitbih
    from hypertiny_keras.export import export_tflite
    from hypertiny_research.recipe import data_root
    from hypertiny_research.suite import model_specs

    records = ["106", "119", "208", "200", "214", "233"]
    windows = load_mitbih(os.path.join(data_root(), "mitdb"), task="v_vs_rest", split="dechazal",
                          window_seconds=0.7, records=records)
    x, y, train = windows.x, windows.y, windows.split == "train"
    keras.utils.set_random_seed(0)
    model = model_specs()["hypertiny_pw"].build(tuple(x.shape[1:]), len(windows.class_names))
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[train], y[train], batch_size=128, epochs=2, verbose=0)
    files = {}
    for mode in ("frozen", "boot"):
        files[mode] = out / f"mitbih_{mode}_int8.tflite"
        export_tflite(model, x[train][:300], files[mode], synthesis=mode)
    np.savez(out / "mitbih_windows.npz", windows=x[~train][:16], labels=y[~train][:16])
    files["windows"] = out / "mitbih_windows.npz"
    return files


def _emulate_pair(name: str, files: dict, build: pathlib.Path, work: pathlib.Path) -> dict:
    """Sketches of `files["boot"]`/`["frozen"]`, each run with both kernel sets."""
    import numpy as np

    from hypertiny_keras.device.arduino import export_arduino
    from hypertiny_keras.device.emulator import STOCK_VARIABLES, emulate

    with np.load(files["windows"]) as saved:
        test_windows, labels = saved["windows"], saved["labels"]
    entry = {}
    for mode in ("frozen", "boot"):
        sketch = work / f"{name}_{mode}"
        exported = export_arduino(str(files[mode]), str(sketch), windows=test_windows, labels=labels,
                                  library="tflite-micro")  # built against --sources, not an Arduino library
        entry[mode] = {"file_bytes": exported["model_bytes"], "host_arena_bytes": exported["arena_measured_bytes"],
                       "generated_weight_ram_bytes": exported["generated_weight_ram_bytes"]}
        for kernels in KERNELS:
            result = emulate(sketch, FLAGS.sources, kernels=kernels, build_dir=build)
            entry[mode][kernels] = {k: result[k] for k in ("summary", "sizes", "ops")}
            entry[mode][kernels]["profile_first"] = result["profile"]["first"]
            print(f"{name} {mode} {kernels}: {result['summary']['passed']}/{result['summary']['checked']} pass, "
                  f"steady {result['summary']['steady_insns']:,}", flush=True)
    # The boot file as a stock TFLM runs it: TFLM's own READ_VARIABLE / ASSIGN_VARIABLE in the core.
    result = emulate(work / f"{name}_boot", FLAGS.sources, kernels="cmsis", build_dir=build, core_defs=STOCK_VARIABLES)
    entry["boot"]["stock_variables"] = {k: result[k] for k in ("summary", "sizes")}
    print(f"{name} boot, TFLM's variable kernels: {result['summary']['passed']}/{result['summary']['checked']} "
          f"pass, arena {result['summary']['arena_needed_bytes']:,} B", flush=True)
    return entry


def _pooling(build: pathlib.Path, work: pathlib.Path) -> dict:
    """Quickstart with MEAN vs AVERAGE_POOL_2D pooling: int8 accuracy over seeds, instructions of seed 0."""
    from hypertiny_keras.cli.quickstart import run_quickstart

    rows = {}
    for pool in ("mean", "average_pool"):
        runs = []
        for seed in range(FLAGS.seeds):
            out = work / f"quickstart_{pool}_{seed}"
            report = run_quickstart(str(out), seed=seed, verbose=0, pool=pool, dense_per_tensor=False)
            runs.append({"seed": seed, **report["accuracy"],
                         "boot_bytes": report["exports"]["boot"]["file_bytes"],
                         "frozen_bytes": report["exports"]["frozen"]["file_bytes"]})
            if seed == 0:
                files = {m: out / f"model_{m}_int8.tflite" for m in ("boot", "frozen")}
                files["windows"] = out / "test_windows.npz"
                rows.setdefault("figures", {})[pool] = _emulate_pair(f"quickstart_{pool}", files, build, work)
        rows[pool] = runs
    return rows


def _mean_sd(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def _tools_note(result: dict) -> str:
    """` Tools: ...` from a result's recorded tool versions (empty for results recorded before them)."""
    tools = result.get("tools")
    return f" Tools: {'; '.join(tools.values())}." if tools else ""


def _markdown(result: dict) -> str:
    lines = [
        "# Device figures: an emulated Cortex-M4F (QEMU mps2-an386)",
        "",
        f"Command: `{result['command']}`. Instructions are QEMU guest instructions (`-icount shift=0`, "
        "resolution 40), deterministic, not Cortex-M4 cycles. Arena: `hypertiny_arena_needed_bytes()` "
        "on the 32-bit board (used + 16); host: the tflite-micro wheel's 64-bit figure. The arena is the "
        "model's RAM: TFLM allocates the generated kernels (resource variables) inside it, so they are a part of "
        "it, not an addition. Above limit: a boot file's 32-bit arena minus its frozen twin's minus its "
        "generated kernels (the kernels must live somewhere; anything more is overhead). Flash: text + data "
        "of the whole ELF (TFLM, kernels, the model, the test vectors, the harness; no Mbed OS). "
        "Boot files run with the core's READ_VARIABLE / ASSIGN_VARIABLE (tflm_app/src: each kernel held once, "
        "written in place by the generator, read without a copy); stock TFLM: the same file and core with TFLM's "
        "own READ_VARIABLE / ASSIGN_VARIABLE (`-DHYPERTINY_STOCK_VARIABLES=1`, CMSIS-NN): a resource buffer per "
        "kernel plus a planned copy at every inference. "
        f"Sources: {result['sources_note']}.{_tools_note(result)}",
        "",
        "| model | file | B | kernels | tests | steady insns | boot/frozen | synthesis insns (x inference) "
        "| BOOT setup insns | arena 32-bit / host B | of which generated kernels B | above limit B "
        "| stock TFLM: tests, arena B | flash B | program RAM (data+bss) B |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, pair in result["models"].items():
        for kernels in KERNELS:
            frozen_steady = pair["frozen"][kernels]["summary"]["steady_insns"]
            frozen_arena = pair["frozen"][kernels]["summary"]["arena_needed_bytes"]
            for mode in ("frozen", "boot"):
                e = pair[mode]
                s, z = e[kernels]["summary"], e[kernels]["sizes"]
                synthesis = (f"{s['synthesis_insns']:,} ({s['synthesis_insns'] / s['steady_insns']:.3f})"
                             if s["synthesis_insns"] else "-")
                generated = e["generated_weight_ram_bytes"]
                above = f"{s['arena_needed_bytes'] - frozen_arena - generated:+,}" if mode == "boot" else "-"
                stock = e.get("stock_variables", {}).get("summary") if kernels == "cmsis" else None
                stock = (f"{stock['passed']}/{stock['checked']}, {stock['arena_needed_bytes']:,}"
                         if stock else "-")
                lines.append(
                    f"| {name} | {mode} | {e['file_bytes']:,} | {kernels} | {s['passed']}/{s['checked']} | "
                    f"{s['steady_insns']:,} | {s['steady_insns'] / frozen_steady:.4f} | {synthesis} | "
                    f"{s['setup_boot_insns']:,} | {s['arena_needed_bytes']:,} / {e['host_arena_bytes']:,} | "
                    f"{generated:,} | {above} | {stock} | {z['text'] + z['data']:,} | {z['data'] + z['bss']:,} |"
                )
    lines += ["", "Steady-state instructions by operator (CMSIS-NN kernels, boot files):", "",
              "| model | " + " | ".join(["operator", "instructions", "share"]) + " |", "|---|---|---:|---:|"]
    for name, pair in result["models"].items():
        ops = pair["boot"]["cmsis"]["ops"]
        total = sum(ops.values())
        lines += [f"| {name} | {op} | {v:,} | {100 * v / total:.1f}% |" for op, v in ops.items()]
    pooling = result["pooling"]
    lines += [
        "",
        f"## Global pooling: MEAN vs AVERAGE_POOL_2D (quickstart, {len(pooling['mean'])} seeds)",
        "",
        "`pool=\"average_pool\"` (AveragePooling1D over the whole sequence + Flatten) lowers to AVERAGE_POOL_2D, "
        "which has a CMSIS-NN kernel; TFLM requires its int8 output at the input's scale, where MEAN picks a "
        "finer output scale of its own, so the files are not bit-identical: compare the accuracies.",
        "",
        "| pool | TFLM int8 accuracy, boot (mean ± sd) | Keras float | boot B | frozen B | steady insns CMSIS-NN "
        "(boot, seed 0) | reference |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for pool in ("mean", "average_pool"):
        runs, figures = pooling[pool], pooling["figures"][pool]["boot"]
        lines.append(
            f"| {pool} | {_mean_sd([r['tflm_int8_boot'] for r in runs])} | "
            f"{_mean_sd([r['keras_float'] for r in runs])} | "
            f"{runs[0]['boot_bytes']:,} | {runs[0]['frozen_bytes']:,} | "
            f"{figures['cmsis']['summary']['steady_insns']:,} | {figures['reference']['summary']['steady_insns']:,} |"
        )
    lines += ["", "![steady-state instructions by operator](device.png)", ""]
    return "\n".join(lines)


def _plot(result: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = []
    for name, pair in result["models"].items():
        for mode in ("frozen", "boot"):
            bars.append((f"{name}\n{mode}", pair[mode]["cmsis"]["ops"]))
    for pool in ("mean", "average_pool"):
        bars.append((f"quickstart\n{pool} (boot)", result["pooling"]["figures"][pool]["boot"]["cmsis"]["ops"]))
    ops = sorted({op for _, o in bars for op in o}, key=lambda op: -max(o.get(op, 0) for _, o in bars))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    bottoms = [0.0] * len(bars)
    for op in ops:
        values = [o.get(op, 0) / 1e6 for _, o in bars]
        ax.bar(range(len(bars)), values, bottom=bottoms, label=op)
        bottoms = [b + v for b, v in zip(bottoms, values)]
    ax.set_xticks(range(len(bars)), [label for label, _ in bars], fontsize=7)
    ax.set_ylabel("steady-state instructions (millions), CMSIS-NN")
    ax.set_title("Emulated Cortex-M4F: one inference by operator")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv) -> None:
    del argv
    from hypertiny_keras.cli.quickstart import run_quickstart
    from hypertiny_keras.device.emulator import EmulatorError, check_tools, source_roots, tool_versions
    from hypertiny_keras.utils.fileio import atomic_write

    out = pathlib.Path(FLAGS.out)
    if FLAGS.report:
        result = json.loads((out / "device.json").read_text())
        atomic_write(out / "device.md", _markdown(result).encode())
        _plot(result, out / "device.png")
        print(f"wrote {out / 'device.md'}")
        return
    try:
        check_tools()
        roots = source_roots(FLAGS.sources)
    except EmulatorError as error:
        print(f"benchmarks/device.py: not run: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    with tempfile.TemporaryDirectory(prefix="hypertiny-device-") as scratch:
        work = pathlib.Path(scratch)
        build = pathlib.Path(FLAGS.build) if FLAGS.build else work / "build"
        run_quickstart(str(work / "quickstart"), verbose=0, dense_per_tensor=False)
        quick = {m: work / "quickstart" / f"model_{m}_int8.tflite" for m in ("boot", "frozen")}
        quick["windows"] = work / "quickstart" / "test_windows.npz"
        result = {
            "command": _command(),
            "sources": roots,
            "sources_note": "tflite-micro 90b983c2, CMSIS-NN 99f736a6 and the other pins of tflm_app/README.md "
                            "when run as committed (the script cannot tell a checkout's commit)",
            "tools": tool_versions(),
            "models": {"quickstart": _emulate_pair("quickstart", quick, build, work)},
        }
        result["models"]["mitbih_hypertiny_pw"] = _emulate_pair("mitbih", _mitbih_files(work), build, work)
        result["pooling"] = _pooling(build, work)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "device.json", (json.dumps(result, indent=2) + "\n").encode())
    atomic_write(out / "device.md", _markdown(result).encode())
    _plot(result, out / "device.png")
    print(f"wrote {out / 'device.md'}")


if __name__ == "__main__":
    app.run(main)
