"""Every pointwise parameterization of the Pareto grid on an emulated Cortex-M4F: synthesis, steady state, RAM, flash.

For one backbone (the separable 1-D CNN of `hypertiny_keras.pareto`, `--depth`
blocks of `--width`, rank `--rank`, on Speech Commands' MFCC input shape
101 frames x 40 coefficients, 12 classes), each variant of
`hypertiny_keras.sweeps.pareto_front.VARIANTS` named by `--variants` is built,
fitted for one epoch on random inputs (instruction counts and bytes do not
depend on how well a model is trained), exported as the Pareto grid deploys
it (boot file for generated variants, frozen for stored ones, the codec for
`+int4` / `+lut4`, `init_weight_bits=4` for `_w4`), written as a sketch with 8 test windows, and run by
`hypertiny emulate` with CMSIS-NN kernels. Reported per variant: file bytes,
steady-state instructions per inference and their ratio to the stored twin,
synthesis instructions (the init subgraph, once at boot), the 32-bit arena
(the RAM: TFLM allocates the generated kernels inside it), the generated
kernels' share of it, how far a boot file's arena lies above its limit (the
stored twin's arena + the kernels), flash and the test vectors that passed.

    .venv/bin/python benchmarks/device_variants.py --sources DIR [--build DIR]
    .venv/bin/python benchmarks/device_variants.py --report   # re-render the .md from the .json only

Writes `benchmarks/results/device_variants.{json,md}`. DIR holds the TFLM and
CMSIS checkouts of `tflm_app/README.md`; without them it says so and writes
nothing.
"""
from __future__ import annotations

import json
import os
import pathlib
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
DEFAULT_VARIANTS = ("stored,stored+int4,stored+lut4,lowrank_stored,lowrank_stored+int4,lowrank,kronecker,"
                    "kronecker_w4,kronecker+int4,lowrank_shared,kronecker_shared,dense,dense_w4,factorized,factorized_w4")
flags.DEFINE_string("sources", os.environ.get("HYPERTINY_EMULATOR_SOURCES"), "folder of the TFLM/CMSIS checkouts")
flags.DEFINE_string("build", None, "emulator build folder, kept (default: temporary)")
flags.DEFINE_string("variants", DEFAULT_VARIANTS, "comma-separated names of pareto_front.VARIANTS")
flags.DEFINE_integer("width", 64, "width of every block")
flags.DEFINE_integer("depth", 4, "pointwise layers (blocks)")
flags.DEFINE_integer("rank", 2, "r of lowrank, lowrank_stored and kronecker")
flags.DEFINE_string("out", str(RESULTS), "results folder")
flags.DEFINE_bool("report", False, "re-write device_variants.md from the recorded device_variants.json; runs nothing")
FLAGS = flags.FLAGS
INPUT_SHAPE, CLASSES = (101, 40), 12


def _command() -> str:
    parts = [".venv/bin/python benchmarks/device_variants.py --sources DIR"]
    for name in ("variants", "width", "depth", "rank"):
        value = getattr(FLAGS, name)
        if value != FLAGS[name].default:
            parts.append(f"--{name} {value}")
    return " ".join(parts)


def _file(variant: str, work: pathlib.Path, x, y) -> tuple[pathlib.Path, str]:
    """The deployed file of `variant` (its codec applied) and its mode."""
    import keras

    from hypertiny_keras.export import export_tflite
    from hypertiny_keras.layers import generated_layers
    from hypertiny_keras.sweeps.pareto_front import VARIANTS
    from hypertiny_keras.tflite import weight_codecs

    spec = VARIANTS[variant]
    keras.utils.set_random_seed(0)
    model = spec.build(INPUT_SHAPE, CLASSES, (FLAGS.width,) * FLAGS.depth, FLAGS.rank)
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    mode = "boot" if generated_layers(model) else "frozen"
    path = work / f"{variant.replace('+', '_')}_{mode}.tflite"
    export_tflite(model, x[:200], path, synthesis=mode, **(spec.export_options if mode == "boot" else {}))
    if spec.codec:
        path.write_bytes(weight_codecs.get(spec.codec)(path.read_bytes()))
    return path, mode


def _markdown(result: dict) -> str:
    rows = result["variants"]
    stored = rows.get("stored", {}).get("steady_insns")
    lines = [
        "# Pointwise parameterizations on an emulated Cortex-M4F (CMSIS-NN kernels)",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Backbone: the Pareto grid's separable 1-D CNN, {result['depth']} blocks of width {result['width']}, "
        f"r = {result['rank']}, input {result['input_shape'][0]} x {result['input_shape'][1]} (Speech Commands "
        "MFCC), 12 classes, weights from one epoch on random inputs (instructions and bytes do not depend on "
        "training). Instructions are QEMU guest instructions (`-icount`), deterministic, not cycles. Arena: "
        "bytes needed on the 32-bit board (used + 16); it is the file's RAM: TFLM allocates the generated kernels "
        "(resource variables) inside it, and they are not added again. Above limit: a boot file's arena minus "
        "the stored twin's arena minus its generated kernels (the kernels must live somewhere; anything more is "
        "overhead). Steady ratio: steady-state instructions over the stored twin's. Tests: the sketch's 8 "
        "windows, each run in the BOOT and LAZY modes, against the host TFLM's outputs (pass = bit for bit). "
        "Boot files run with the core's READ_VARIABLE / ASSIGN_VARIABLE (tflm_app/src: each kernel held once, "
        "written in place by the generator, read without a copy); stock TFLM: the same file and core with "
        "TFLM's own (`-DHYPERTINY_STOCK_VARIABLES=1`): a resource buffer per kernel and a planned copy at every "
        "inference."
        + (f" {result['ram_note']}" if result.get("ram_note") else "")
        + (f" Tools: {'; '.join(result['tools'].values())}." if result.get("tools") else ""),
        "",
        "| variant | file | B | tests | steady insns | / stored | synthesis insns | arena = RAM B "
        "| of which generated kernels B | above limit B | stock TFLM: tests, arena B, above limit B | flash B |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    stored_arena = rows.get("stored", {}).get("arena_needed_bytes")
    for name, r in rows.items():
        ratio = f"{r['steady_insns'] / stored:.3f}" if stored else ""
        synthesis = f"{r['synthesis_insns']:,}" if r["synthesis_insns"] else "-"
        generated = r["generated_weight_ram_bytes"]
        above = f"{r['arena_needed_bytes'] - stored_arena - generated:+,}" if generated and stored_arena else "-"
        stock = r.get("stock")
        stock = (f"{stock['passed']}/{stock['checked']}, {stock['arena_needed_bytes']:,}, "
                 f"{stock['arena_needed_bytes'] - stored_arena - generated:+,}" if stock and stored_arena else "-")
        lines.append(
            f"| {name} | {r['mode']} | {r['file_bytes']:,} | {r['passed']}/{r['checked']} | {r['steady_insns']:,} "
            f"| {ratio} | {synthesis} | {r['arena_needed_bytes']:,} | {generated:,} | {above} | {stock} "
            f"| {r['flash_bytes']:,} |"
        )
    lines += [
        "",
        "`+int4`: the deployed file with every FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D weight packed int4 "
        "(`tflite.weight_codecs.int4`); `+lut4`: 4-bit look-up tables run by DECODE before each consumer "
        "(`tflite.weight_codecs.lut4`), at every inference.",
    ]
    return "\n".join(lines) + "\n"


def main(argv) -> None:
    del argv
    import numpy as np

    from hypertiny_keras.device.arduino import export_arduino
    from hypertiny_keras.device.emulator import (
        STOCK_VARIABLES,
        EmulatorError,
        check_tools,
        emulate,
        source_roots,
        tool_versions,
    )
    from hypertiny_keras.sweeps.pareto_front import VARIANTS
    from hypertiny_keras.utils.fileio import atomic_write

    out = pathlib.Path(FLAGS.out)
    if FLAGS.report:
        result = json.loads((out / "device_variants.json").read_text())
        if "ram" not in result:  # written before RAM was defined as the arena alone
            result["ram_note"] = ("Re-rendered from the recorded figures: RAM is the arena (an earlier "
                          "rendering added the generated kernels to it a second time).")
        atomic_write(out / "device_variants.md", _markdown(result).encode())
        print(f"wrote {out / 'device_variants.md'}")
        return
    variants = FLAGS.variants.split(",")
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"benchmarks/device_variants.py: unknown variants {unknown}; choose from {sorted(VARIANTS)}")
    try:
        check_tools()
        roots = source_roots(FLAGS.sources)
    except EmulatorError as error:
        print(f"benchmarks/device_variants.py: not run: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, *INPUT_SHAPE)).astype(np.float32)
    y = rng.integers(0, CLASSES, size=512)
    result = {"command": _command(), "sources": roots, "width": FLAGS.width, "depth": FLAGS.depth,
              "rank": FLAGS.rank, "input_shape": list(INPUT_SHAPE), "ram": "arena", "tools": tool_versions(),
              "variants": {}}
    with tempfile.TemporaryDirectory(prefix="hypertiny-variants-") as scratch:
        work = pathlib.Path(scratch)
        build = pathlib.Path(FLAGS.build) if FLAGS.build else work / "build"
        for variant in variants:
            path, mode = _file(variant, work, x, y)
            sketch = work / f"sketch_{variant.replace('+', '_')}"
            exported = export_arduino(str(path), str(sketch), windows=x[:8], labels=y[:8], library="tflite-micro")
            run = emulate(sketch, FLAGS.sources, kernels="cmsis", build_dir=build)
            summary = run["summary"]
            result["variants"][variant] = {
                "mode": mode,
                "file_bytes": exported["model_bytes"],
                "passed": summary["passed"],
                "checked": summary["checked"],
                "steady_insns": summary["steady_insns"],
                "synthesis_insns": summary.get("synthesis_insns") or 0,
                "arena_needed_bytes": summary["arena_needed_bytes"],
                "generated_weight_ram_bytes": exported["generated_weight_ram_bytes"],
                "flash_bytes": run["sizes"]["text"] + run["sizes"]["data"],
                "ops": run["ops"],
            }
            if mode == "boot":  # the same file with TFLM's own READ_VARIABLE / ASSIGN_VARIABLE
                stock = emulate(sketch, FLAGS.sources, kernels="cmsis", build_dir=build,
                                core_defs=STOCK_VARIABLES)["summary"]
                result["variants"][variant]["stock"] = {
                    k: stock[k] for k in ("passed", "checked", "steady_insns", "arena_needed_bytes")}
            print(f"{variant}: {summary['passed']}/{summary['checked']} pass, steady {summary['steady_insns']:,}",
                  flush=True)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "device_variants.json", (json.dumps(result, indent=2) + "\n").encode())
    atomic_write(out / "device_variants.md", _markdown(result).encode())
    print(f"wrote {out / 'device_variants.md'}")


if __name__ == "__main__":
    app.run(main)
