"""`emulate`: a sketch folder on an emulated Cortex-M4F (QEMU mps2-an386).

Builds a folder made by `hypertiny export --arduino` with `arm-none-eabi-gcc`
against the user's checkouts of TensorFlow Lite Micro and its dependencies
(`tflm_app/emulator/Makefile`, with the HyperTinyPW library's core from
`tflm_app/src`, both shipped in the package: `sources`; nothing is
downloaded), runs it under
`qemu-system-arm -icount shift=0` and reads what the board printed
(`tflm_app/emulator/emulate.cc`): every test vector's pass/fail against the
TFLM Python wheel's outputs, instructions of setup, first and steady-state
inference and of the synthesis alone, per-operator instructions, the arena
used on a 32-bit target, and the ELF's text/data/bss.

Instructions are guest instructions, deterministic from run to run; one
timer tick is 40 of them, the resolution. They are not Cortex-M4 cycles
(QEMU models no pipeline or wait states).

Sources: a folder (`sources`, or `HYPERTINY_EMULATOR_SOURCES`) holding
`tflite-micro flatbuffers gemmlowp ruy CMSIS-NN CMSIS_6` checkouts.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

from hypertiny_keras.device import sources as device_sources

#: Checkouts a `sources` folder holds: Makefile variable -> folder name.
SOURCE_DIRS = {
    "TFLM_ROOT": "tflite-micro",
    "FLATBUFFERS_ROOT": "flatbuffers",
    "GEMMLOWP_ROOT": "gemmlowp",
    "RUY_ROOT": "ruy",
    "CMSIS_NN_ROOT": "CMSIS-NN",
    "CMSIS_ROOT": "CMSIS_6",
}
#: Environment variable naming the default `sources` folder.
SOURCES_ENV = "HYPERTINY_EMULATOR_SOURCES"
#: Tools the emulator needs, and the Debian packages that ship them.
TOOLS = {"make": "make", "arm-none-eabi-gcc": "gcc-arm-none-eabi", "arm-none-eabi-size": "binutils-arm-none-eabi",
         "qemu-system-arm": "qemu-system-arm"}
KERNEL_SETS = ("cmsis", "reference")
#: `core_defs` building the core with TFLM's own READ_VARIABLE / ASSIGN_VARIABLE: a boot file as a stock
#: TFLM runs it (each kernel in a resource buffer, copied into a planned filter at every inference).
STOCK_VARIABLES = "-DHYPERTINY_STOCK_VARIABLES=1"
#: Files of a sketch folder the emulator builds (the core comes from the library: `sources.core_dir()`).
SKETCH_FILES = ("model_data.cc", "model_data.h", "model_ops.h", "arena_config.h", "test_vectors.h")

_FIELD = re.compile(r"(\w+)=(.*?)(?= \w+=|$)")  # a value may hold spaces ("status=allocate tensors")


class EmulatorError(RuntimeError):
    """The emulator could not build or run a sketch (one line saying why)."""


def check_tools() -> None:
    """Raises `EmulatorError` naming every missing tool and the packages to install."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        packages = " ".join(sorted({TOOLS[t] for t in missing} | {"libnewlib-arm-none-eabi"} - {"make"}))
        raise EmulatorError(f"emulate: {', '.join(missing)} not found; on Debian: apt-get install {packages}")


def tool_versions() -> dict[str, str]:
    """First line of `--version` of the cross compiler and of QEMU (`"missing"` for an absent tool)."""
    versions = {}
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm"):
        try:
            printed = subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=30).stdout
        except OSError:
            printed = ""
        versions[tool] = printed.strip().splitlines()[0] if printed.strip() else "missing"
    return versions


def source_roots(sources: str | os.PathLike | None = None, **roots: str) -> dict[str, str]:
    """Makefile variables of the sources: each `*_ROOT` from `roots`, else `sources/<folder>`.

    Raises:
        EmulatorError: no `sources` (nor `HYPERTINY_EMULATOR_SOURCES`) for a
            root not given, or a checkout missing.
    """
    sources = sources or os.environ.get(SOURCES_ENV)
    resolved = {}
    for variable, folder in SOURCE_DIRS.items():
        given = roots.get(variable.lower()) or roots.get(variable)
        if given is None and sources is None:
            raise EmulatorError(
                f"emulate: no sources: give a folder with {' '.join(SOURCE_DIRS.values())} "
                f"(--sources or {SOURCES_ENV}); see tflm_app/README.md"
            )
        path = pathlib.Path(given if given is not None else pathlib.Path(sources) / folder)
        if not path.is_dir():
            raise EmulatorError(f"emulate: {variable} {path}: no such folder ({folder} checkout)")
        resolved[variable] = str(path.resolve())
    if not (pathlib.Path(resolved["TFLM_ROOT"]) / "tensorflow" / "lite" / "micro").is_dir():
        raise EmulatorError(f"emulate: {resolved['TFLM_ROOT']} is not a tflite-micro checkout")
    return resolved


def arduino_library_root(library: str | os.PathLike) -> dict[str, str]:
    """Makefile variables for building against an Arduino TFLM library folder.

    The folder is what the Arduino IDE installs (e.g. `~/Arduino/libraries/
    Chirale_TensorFLowLite`, the Library Manager's folder name):
    `src/tensorflow/lite/micro` and the third-party checkouts in `src/third_party`.

    Raises:
        EmulatorError: the folder is not such a library.
    """
    path = pathlib.Path(library).resolve()
    for part in ("src/tensorflow/lite/micro", "src/third_party/flatbuffers/include", "src/third_party/cmsis_nn/Source"):
        if not (path / part).is_dir():
            raise EmulatorError(f"emulate: {path} is not an Arduino TFLM library ({part} not found)")
    return {"ARDUINO_LIBRARY": str(path)}


def _check_sketch(sketch: pathlib.Path) -> None:
    if not sketch.is_dir():
        raise EmulatorError(f"emulate: {sketch}: no such folder")
    missing = [name for name in SKETCH_FILES if not (sketch / name).is_file()]
    if missing:
        raise EmulatorError(
            f"emulate: {sketch} lacks {', '.join(missing)}; "
            f"make it with hypertiny export --arduino {sketch} MODEL.tflite"
        )


def parse_log(text: str) -> dict:
    """What the board printed (`emulate.cc`), as a JSON-ready dict.

    Returns:
        `calibration` (expected, measured instructions), `model` (bytes,
        input, output, tests), `modes` {`BOOT`, `LAZY`: `setup` (status,
        insns, arena, used, needed, variables), `vectors` (passed, failed,
        failures: the failing lines, max_lsb: the largest score difference
        of a failing run in int8 steps, class_differs: failing vectors whose
        argmax differs), `inference` (first, synthesis,
        steady_median, steady_min, steady_max, steady_n: instructions)},
        `profile` {`first`, `steady`: [{op, depth, insns}]} and `ops`
        (steady-state instructions summed by operator), `logs` (lines the
        core logged), `failures` and `done` (the run reached its end).
        With a patch test (`patch_test.h`), also `patch`: one dict per case
        in order (case, mode, status, expected, setup, patched, counter,
        insns: the apply, synthesis; `vectors`: model, passed, failed, first;
        `failures`: the failing vector lines).

    Raises:
        EmulatorError: the text has no line of the harness (not an emulator log).
    """
    result: dict = {"modes": {}, "profile": {"first": [], "steady": []}, "logs": [], "done": False}
    seen = False
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        fields = dict(_FIELD.findall(rest))
        numbers = {k: int(v) for k, v in fields.items() if re.fullmatch(r"-?\d+", v)}
        if kind == "CALIBRATION":
            result["calibration"] = numbers
        elif kind == "MODEL":
            result["model"] = numbers
        elif kind == "SETUP":
            empty = {"passed": 0, "failed": 0, "failures": [], "max_lsb": 0, "class_differs": 0}
            mode = result["modes"].setdefault(fields["mode"], {"vectors": empty})
            mode["setup"] = {**numbers, "status": fields["status"]}
        elif kind == "VECTOR":
            vectors = result["modes"][fields["mode"]]["vectors"]
            ok = fields["result"] == "pass"
            if fields.get("pass") == "0":
                vectors["passed" if ok else "failed"] += 1
            if not ok:
                vectors["failures"].append(rest)
            if not ok and "scores" in fields and "expected" in fields:
                got, want = ([int(v) for v in fields[k].split(",")] for k in ("scores", "expected"))
                vectors["max_lsb"] = max(vectors["max_lsb"], max(abs(a - b) for a, b in zip(got, want)))
                if fields.get("pass") == "0":
                    vectors["class_differs"] += got.index(max(got)) != want.index(max(want))
        elif kind == "INFERENCE":
            result["modes"][fields["mode"]]["inference"] = numbers
        elif kind == "EVENT":
            phase = "first" if numbers["invoke"] == 1 else "steady"
            result["profile"][phase].append({"op": fields["op"], "depth": numbers["depth"], "insns": numbers["insns"]})
        elif kind == "PATCH":
            case = {**numbers, **{k: fields[k] for k in ("case", "mode", "status", "expected", "setup")}}
            result.setdefault("patch", []).append({**case, "vectors": None, "failures": []})
        elif kind == "PATCH_VECTOR":
            result["patch"][-1]["failures"].append(rest)
        elif kind == "PATCH_VECTORS":
            result["patch"][-1]["vectors"] = {**numbers, "model": fields["model"]}
        elif kind == "LOG":
            result["logs"].append(rest)
        elif kind == "DONE":
            result["failures"] = numbers["failures"]
            result["done"] = True
        else:
            continue
        seen = True
    if not seen:
        raise EmulatorError("emulate: the output has no line of the emulator harness: " + " ".join(text.split())[:200])
    ops: dict[str, int] = {}
    for event in result["profile"]["steady"]:
        if event["depth"] == 0:
            ops[event["op"]] = ops.get(event["op"], 0) + event["insns"]
    result["ops"] = dict(sorted(ops.items(), key=lambda item: -item[1]))
    return result


def elf_sizes(elf: str | os.PathLike) -> dict[str, int]:
    """`text`, `data`, `bss` bytes of an ELF (`arm-none-eabi-size`): flash = text + data, RAM = data + bss."""
    out = subprocess.run(["arm-none-eabi-size", str(elf)], capture_output=True, text=True, check=True).stdout
    text, data, bss = (int(v) for v in out.splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def summarize(result: dict) -> dict:
    """The headline figures of a `parse_log` result: passes, steady-state, synthesis, arena (instructions, bytes)."""
    boot, lazy = result["modes"].get("BOOT", {}), result["modes"].get("LAZY", {})
    tests = result.get("model", {}).get("tests", 0)
    summary = {
        "tests": tests,
        "passed": sum(m["vectors"]["passed"] for m in result["modes"].values()),
        "max_score_lsb": max((m["vectors"]["max_lsb"] for m in result["modes"].values()), default=0),
        "class_differs": sum(m["vectors"]["class_differs"] for m in result["modes"].values()),
        "checked": tests * len(result["modes"]),
        "steady_insns": boot.get("inference", {}).get("steady_median"),
        "first_lazy_insns": lazy.get("inference", {}).get("first"),
        "synthesis_insns": boot.get("inference", {}).get("synthesis"),
        "setup_boot_insns": boot.get("setup", {}).get("insns"),
        "arena_used_bytes": boot.get("setup", {}).get("used"),
        "arena_needed_bytes": boot.get("setup", {}).get("needed"),
        "arena_compiled_bytes": boot.get("setup", {}).get("arena"),
    }
    steady = [e["insns"] for e in result["profile"]["steady"] if e["depth"] == 0]
    summary["profiled_ops_insns"] = sum(steady) if steady else None
    if "patch" in result:
        cases = result["patch"]
        valid = next((c for c in cases if c["case"] == "valid"), {})
        summary["patch"] = {
            "cases": len(cases),
            "as_expected": sum(patch_case_ok(c, tests) for c in cases),
            "refused": sorted({c["status"] for c in cases if c["status"] != "OK"}),
            "apply_insns": valid.get("insns"),
            "resynthesis_insns": valid.get("synthesis"),
        }
    return summary


def patch_case_ok(case: dict, tests: int) -> bool:
    """One case of the patch test: the status expected, the model set up, and every test vector passed after it."""
    vectors = case["vectors"] or {}
    return (case["status"] == case["expected"] and case["setup"] == "ok" and vectors.get("passed") == tests
            and vectors.get("failed") == 0)


def _folder_tag(flags: str) -> str:
    """Compiler flags as part of a build folder's name (`-O2 -DX=1` -> `O2_X=1`)."""
    return flags.replace(" ", "").replace("-D", "_").replace("-", "")


def emulate(
    sketch_dir: str | os.PathLike,
    sources: str | os.PathLike | None = None,
    kernels: str = "cmsis",
    build_dir: str | os.PathLike | None = None,
    jobs: int | None = None,
    opt: str = "-O2",
    extra_defs: str = "",
    core_defs: str = "",
    timeout: int = 600,
    arduino_library: str | os.PathLike | None = None,
    **roots: str,
) -> dict:
    """Build `sketch_dir` for QEMU mps2-an386, run it, and return what it measured.

    Args:
        sketch_dir: a folder made by `hypertiny export --arduino`.
        sources: folder of the checkouts (`SOURCE_DIRS`); default
            `$HYPERTINY_EMULATOR_SOURCES`. Single checkouts may be given as
            keyword arguments instead (`tflm_root=...`, `cmsis_nn_root=...`).
        kernels: `cmsis` (TFLM's CMSIS-NN kernels) or `reference`.
        build_dir: where objects go; the TFLM/CMSIS-NN library is kept in
            `build_dir/lib-<kernels>` and reused. Default: a temporary folder.
        jobs: parallel compile jobs (default: CPU count).
        opt, extra_defs: compiler optimisation and extra `-D` flags (e.g.
            `-Os`, `-DTF_LITE_STRIP_ERROR_STRINGS`: then no per-op profile).
        core_defs: `-D` flags for the core and the harness only (the
            TFLM library is shared), e.g. `STOCK_VARIABLES`.
        timeout: seconds QEMU may run.
        arduino_library: build against this Arduino TFLM library folder
            (`arduino_library_root`; its own TFLM snapshot, CMSIS-NN kernels
            only) instead of `sources`.

    Returns:
        `parse_log`'s dict plus `summary` (`summarize`), `sizes` (text, data,
        bss bytes of the ELF), `kernels`, `opt`, `sources` (the roots) and
        `log` (the board's output).

    Raises:
        EmulatorError: a tool, a source checkout or a sketch file is missing,
            the build failed (its last lines), or QEMU failed or timed out.
    """
    if kernels not in KERNEL_SETS:
        raise EmulatorError(f"emulate: kernels must be one of {', '.join(KERNEL_SETS)}, not {kernels!r}")
    sketch = pathlib.Path(sketch_dir).resolve()
    _check_sketch(sketch)
    check_tools()
    if arduino_library is not None:
        if kernels != "cmsis":
            raise EmulatorError("emulate: an Arduino library ships CMSIS-NN kernels only: kernels must be cmsis")
        resolved = arduino_library_root(arduino_library)
    else:
        resolved = source_roots(sources, **roots)
    with tempfile.TemporaryDirectory(prefix="hypertiny-emulate-") as scratch:
        root = pathlib.Path(build_dir).resolve() if build_dir else pathlib.Path(scratch)
        tag = _folder_tag(f"{kernels}{opt}{extra_defs}")
        if arduino_library is not None:
            library = pathlib.Path(resolved["ARDUINO_LIBRARY"])
            tag += f"-{library.name}-{hashlib.sha1(str(library).encode()).hexdigest()[:8]}"
        build = root / f"{sketch.name}-{tag}{_folder_tag(core_defs)}"
        variables = {**resolved, "SKETCH": str(sketch), "KERNELS": kernels, "OPT": opt, "EXTRA_DEFS": extra_defs,
                     "CORE_DEFS": core_defs, "BUILD": str(build), "LIBDIR": str(root / f"lib-{tag}"),
                     "QEMU_TIMEOUT": str(timeout)}
        # The sketch's own objects are always rebuilt (seconds): a kept build folder may hold
        # those of another folder of the same name, with dependency files naming it.
        shutil.rmtree(build, ignore_errors=True)
        makefile = device_sources.emulator_dir() / "Makefile"
        variables["CORE"] = str(device_sources.core_dir())
        command = ["make", "-s", "-f", str(makefile), f"-j{jobs or os.cpu_count() or 1}"]
        command += [f"{k}={v}" for k, v in variables.items()]
        built = subprocess.run(command + ["all"], capture_output=True, text=True)
        if built.returncode != 0:
            tail = " | ".join((built.stdout + built.stderr).strip().splitlines()[-6:])
            raise EmulatorError(f"emulate: the build failed: {tail}")
        try:
            ran = subprocess.run(command + ["run"], capture_output=True, text=True, timeout=timeout + 60)
        except subprocess.TimeoutExpired:
            raise EmulatorError(f"emulate: QEMU did not finish in {timeout} s") from None
        log = (build / "emulator.log").read_text() if (build / "emulator.log").is_file() else ran.stdout
        result = parse_log(log)
        if not result["done"]:
            raise EmulatorError(f"emulate: the board stopped early (exit {ran.returncode}): {log.strip()[-300:]}")
        result["sizes"] = elf_sizes(build / "emulate.elf")
    result.update(summary=summarize(result), kernels=kernels, opt=opt, extra_defs=extra_defs, core_defs=core_defs,
                  sources=resolved, sketch=str(sketch), log=log)
    return result


def format_result(result: dict) -> str:
    """A few lines a person reads: passes, instructions, arena, sizes, the costliest operators."""
    s = result["summary"]
    header = (f"{result['sketch']} ({result['kernels']} kernels, {result['opt']}): "
              f"{s['passed']}/{s['checked']} test vectors match the TFLM Python wheel")
    if s["steady_insns"] is None:  # setup failed: say how, with the board's own lines
        status = ", ".join(f"{mode} {m.get('setup', {}).get('status')}" for mode, m in result["modes"].items())
        return "\n".join([header, f"no inference ran; setup: {status}", *dict.fromkeys(result["logs"])])
    if s["passed"] != s["checked"]:
        header += (f" (others off by at most {s['max_score_lsb']} int8 steps; "
                   f"{s['class_differs']} with another top class)")
    lines = [
        header,
        f"steady-state inference: {s['steady_insns']:,} instructions"
        + (f"; synthesis: {s['synthesis_insns']:,} ({s['synthesis_insns'] / s['steady_insns']:.3f} inference)"
           if s["synthesis_insns"] else ""),
        f"arena (32-bit): {s['arena_used_bytes']:,} B used, {s['arena_needed_bytes']:,} B needed, "
        f"{s['arena_compiled_bytes']:,} B compiled in",
        "ELF: text {text:,} B, data {data:,} B, bss {bss:,} B".format(**result["sizes"]),
    ]
    if "patch" in s:
        p = s["patch"]
        lines.append(f"patches: {p['as_expected']}/{p['cases']} cases as expected "
                     f"(refused: {', '.join(p['refused'])}); "
                     f"the valid one applied in {p['apply_insns']:,} instructions, "
                     f"re-synthesis {p['resynthesis_insns']:,}")
    total = sum(result["ops"].values())
    for op, insns in list(result["ops"].items())[:6]:
        lines.append(f"  {op:<20} {insns:>12,} instructions  {100 * insns / total:5.1f}%")
    return "\n".join(lines)


def steady_ratio(boot: dict, frozen: dict) -> float:
    """Steady-state instructions of a boot file over its frozen twin's."""
    return boot["summary"]["steady_insns"] / frozen["summary"]["steady_insns"]

