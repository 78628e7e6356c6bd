"""The quickstart sketch built against each TFLM Arduino library's own sources, on the emulated Cortex-M4F.

Trains the quickstart twice (seed 0): with the converter's per-channel
classifier weights and with `dense_per_tensor=True`, exports boot and frozen
sketches of each, and runs them with `hypertiny emulate`: against today's
tflite-micro (`--sources`) and against each `--libraries` folder (an
installed Arduino library, e.g. ~/Arduino/libraries/Chirale_TensorFLowLite, the
Library Manager's folder).
Test vectors are the TFLM Python wheel's outputs, so a library whose TFLM
computes differently shows it here.

    .venv/bin/python benchmarks/arduino_libraries.py --sources DIR --libraries DIR1,DIR2 [--build DIR]

Writes `benchmarks/results/arduino_libraries.{json,md}`; without the sources
or libraries it says so and writes nothing.
"""
from __future__ import annotations

import itertools
import json
import os
import pathlib
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
flags.DEFINE_string("sources", os.environ.get("HYPERTINY_EMULATOR_SOURCES"), "folder of the TFLM/CMSIS checkouts")
flags.DEFINE_list("libraries", [], "installed TFLM Arduino library folders")
flags.DEFINE_string("build", None, "emulator build folder, kept (default: temporary)")
flags.DEFINE_string("out", str(RESULTS), "results folder")
FLAGS = flags.FLAGS
COMMAND = ".venv/bin/python benchmarks/arduino_libraries.py --sources DIR --libraries CHIRALE_DIR,ARDUINO_EXAMPLES_DIR"
CLASSIFIERS = {"per_channel": False, "per_tensor": True}  # name -> dense_per_tensor


def _failed_scores(result: dict) -> dict[str, str]:
    """The int8 scores of each failing BOOT run, by "window/pass": two files whose maps are equal printed
    the same scores on every run (a passing run printed the expected ones)."""
    scores = {}
    for line in result["modes"]["BOOT"]["vectors"]["failures"]:
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        scores[f"{fields['n']}/{fields['pass']}"] = fields["scores"]
    return scores


def _runs(build: pathlib.Path, work: pathlib.Path) -> list[dict]:
    import numpy as np

    from hypertiny_keras.cli.quickstart import run_quickstart
    from hypertiny_keras.device.arduino import export_arduino
    from hypertiny_keras.device.emulator import STOCK_VARIABLES, emulate

    targets = [("tflite-micro 90b983c2 (--sources)", {"sources": FLAGS.sources})]
    targets += [(pathlib.Path(d).name, {"arduino_library": d}) for d in FLAGS.libraries]
    rows = []
    for classifier, per_tensor in CLASSIFIERS.items():
        out = work / classifier
        run_quickstart(str(out), verbose=0, dense_per_tensor=per_tensor)
        with np.load(out / "test_windows.npz") as saved:
            windows, labels = saved["windows"], saved["labels"]
        for mode in ("boot", "frozen"):
            sketch = work / f"{classifier}_{mode}"
            exported = export_arduino(str(out / f"model_{mode}_int8.tflite"), str(sketch), windows=windows,
                                      labels=labels, library="tflite-micro")  # the emulator ignores the include
            # A boot file runs twice: with the core's READ_VARIABLE / ASSIGN_VARIABLE and with TFLM's (stock).
            variables = {"core": "", "TFLM": STOCK_VARIABLES} if mode == "boot" else {"-": ""}
            for (target, where), (kernels, defs) in itertools.product(targets, variables.items()):
                result = emulate(sketch, build_dir=build, core_defs=defs, **where)
                s = result["summary"]
                rows.append({"classifier": classifier, "mode": mode, "file_bytes": exported["model_bytes"],
                             "target": target, "variables": kernels, "elf_text_bytes": result["sizes"]["text"],
                             "failed_scores": _failed_scores(result), **s})
                print(f"{classifier} {mode} {target} {kernels}: {s['passed']}/{s['checked']}", flush=True)
    return rows


def _markdown(rows: list[dict]) -> str:
    lines = [
        "# The quickstart on each TFLM Arduino library (emulated Cortex-M4F, CMSIS-NN kernels)",
        "",
        f"Command: `{COMMAND}`. Quickstart seed 0, default settings; `per_tensor` = exported with "
        "`--dense-per-tensor`. Vectors: BOOT and LAZY runs of 16 windows each whose int8 scores equal the "
        "TFLM Python wheel's; off = the largest difference of the others, in int8 steps. Instructions are "
        "QEMU guest instructions (`hypertiny emulate`); arena = `hypertiny_arena_needed_bytes()` (32-bit). "
        "Variables: a boot file runs with the core's READ_VARIABLE / ASSIGN_VARIABLE (each kernel held once) "
        "and with TFLM's own (`-DHYPERTINY_STOCK_VARIABLES=1`: a stock TFLM's kernels, a resource buffer per "
        "kernel and a planned copy at every inference).",
        "",
        "| classifier | file | B | TFLM | variables | vectors | off | class changed | boot scores = frozen scores "
        "| steady insns | synthesis insns | arena needed B | ELF text B |",
        "|---|---|---:|---|---|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    frozen = {(r["classifier"], r["target"]): r["failed_scores"] for r in rows if r["mode"] == "frozen"}
    for r in rows:
        synthesis = f"{r['synthesis_insns']:,}" if r["synthesis_insns"] else "-"
        same = ""
        if r["mode"] == "boot":
            same = "yes" if r["failed_scores"] == frozen[(r["classifier"], r["target"])] else "no"
        lines.append(
            f"| {r['classifier']} | {r['mode']} | {r['file_bytes']:,} | {r['target']} | {r.get('variables', '-')} "
            f"| {r['passed']}/{r['checked']} "
            f"| {r['max_score_lsb']} | {r['class_differs']} | {same} | {r['steady_insns']:,} | {synthesis} "
            f"| {r['arena_needed_bytes']:,} | {r['elf_text_bytes']:,} |"
        )
    return "\n".join(lines) + "\n"


def main(argv) -> None:
    del argv
    if not FLAGS.sources or not FLAGS.libraries:
        print("arduino_libraries: give --sources (TFLM/CMSIS checkouts) and --libraries (Arduino library "
              "folders); nothing written", file=sys.stderr)
        sys.exit(2)
    from hypertiny_keras.utils.fileio import atomic_write_all

    with tempfile.TemporaryDirectory(prefix="hypertiny-arduino-libs-") as scratch:
        build = pathlib.Path(FLAGS.build) if FLAGS.build else pathlib.Path(scratch) / "build"
        rows = _runs(build, pathlib.Path(scratch))
    out = pathlib.Path(FLAGS.out)
    record = (json.dumps({"command": COMMAND, "rows": rows}, indent=2) + "\n").encode()
    markdown = _markdown(rows).encode()
    atomic_write_all([(out / "arduino_libraries.json", record), (out / "arduino_libraries.md", markdown)])
    print(f"wrote {out / 'arduino_libraries.md'}")


if __name__ == "__main__":
    app.run(main)
