"""Compile the HyperTinyPW example sketches for the Arduino Nano 33 BLE as the Arduino IDE does, without the IDE.

Exports MODEL.tflite into one sketch folder per example (`export_arduino(sketch=...)`: `serial` and `ble`, with a
`patch_config.h`), then compiles each with arm-none-eabi-g++ and the flags of ArduinoCore-mbed's `platform.txt`
and `variants/ARDUINO_NANO33BLE/{cflags,cxxflags,defines,includes}.txt` (Cortex-M4, `-mfloat-abi=softfp`, `-Os`,
the Mbed OS defines and include paths): the `.ino` as C++ with `#include <Arduino.h>` prepended, the sketch's
`.cc` files, the HyperTinyPW library (this checkout's `tflm_app/src`), the TFLM Arduino library, ArduinoBLE (for
the BLE sketch), the Arduino core (`cores/arduino` and ArduinoCore-API's `api/`). The sketch and HyperTinyPW are
compiled with `-Wall -Wextra` (the IDE's "All" warnings), the rest with `-w` (its default).

Then it links, as `recipe.c.combine.pattern` does, when the core holds the precompiled Mbed OS
(`variants/ARDUINO_NANO33BLE/libs/libmbed.a`, present in the Boards Manager's copy of the core; git keeps it
out of some snapshots). Without it the link is partial: entry `main`, Mbed OS symbols left unresolved, so the
sizes count the sketch, HyperTinyPW, TFLM, ArduinoBLE and the Arduino core but not Mbed OS, its Cordio BLE
stack or USB serial (the `link` field says which).

    .venv/bin/python benchmarks/arduino_compile.py --sources DIR --model out/quickstart/model_boot_int8.tflite \\
        --windows out/quickstart/test_windows.npz [--build DIR] [--log FILE]

DIR (or $HYPERTINY_ARDUINO_SOURCES) holds the checkouts ArduinoCore-mbed, ArduinoCore-API, ArduinoBLE and
Chirale_TensorFlowLite (or give each: --core, --api, --ble, --tflm-library; an installed core from the Boards
Manager, ~/.arduino15/packages/arduino/hardware/mbed_nano/VERSION, has api/ inside and needs no --api).
Writes `benchmarks/results/arduino_compile.{json,md}` (sizes as the IDE reports them: flash = .text + .data +
.rodata, RAM = .data + .bss) and, with --log, a short log with the source commits. Exit status 2 with one
line when a checkout or tool is missing, 1 when a compile fails (the compiler's message is printed).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = pathlib.Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SOURCES_ENV = "HYPERTINY_ARDUINO_SOURCES"
#: Folder names under --sources.
CHECKOUTS = {"core": "ArduinoCore-mbed", "api": "ArduinoCore-API", "ble": "ArduinoBLE",
             "tflm": "Chirale_TensorFlowLite"}
VARIANT = "ARDUINO_NANO33BLE"
#: boards.txt of ArduinoCore-mbed, nano33ble.* (and platform.txt's -DARDUINO_ARCH_{build.arch}).
BOARD_DEFINES = ["-DARDUINO=10607", "-DARDUINO_ARDUINO_NANO33BLE", "-DARDUINO_ARCH_MBED_NANO", "-DARDUINO_ARCH_MBED",
                 "-DARDUINO_ARCH_NRF52840"]
BOARD_CPU = ["-mcpu=cortex-m4", "-mfloat-abi=softfp", "-mfpu=fpv4-sp-d16"]
LINK_LIBS = ["-lstdc++", "-lsupc++", "-lm", "-lc", "-lgcc", "-lnosys"]
MBED_ARCHIVES = ("libmbed.a", "libcc_310_core.a", "libcc_310_ext.a", "libcc_310_trng.a")
OWN_WARNINGS = ["-Wall", "-Wextra"]
#: Sections of the ELF the log lists (the linker script's .heap fills the rest of RAM: not a use).
SECTIONS = (".text", ".ARM.extab", ".ARM.exidx", ".data", ".bss", ".crash_data_ram", ".heap", ".stack")
#: A fixed 32-byte key: only the size of patch_config.h matters here.
COMPILE_KEY = hashlib.sha256(b"hypertiny arduino_compile").digest()
COMMAND = (".venv/bin/python benchmarks/arduino_compile.py --sources DIR --model out/quickstart/model_boot_int8.tflite "
           "--windows out/quickstart/test_windows.npz")


class SetupError(Exception):
    """A missing checkout or tool (one line)."""


def _checkouts(args) -> dict[str, pathlib.Path]:
    base = pathlib.Path(args.sources).expanduser() if args.sources else None
    found = {}
    for key, name in CHECKOUTS.items():
        given = getattr(args, key if key != "tflm" else "tflm_library")
        path = pathlib.Path(given).expanduser() if given else (base / name if base else None)
        if path is None:
            raise SetupError(f"no {name}: give --sources DIR (holding {', '.join(CHECKOUTS.values())}), "
                             f"${SOURCES_ENV} or --{key if key != 'tflm' else 'tflm-library'}")
        found[key] = path
    core = found["core"]
    needs = {
        "core": [core / "cores/arduino/Arduino.h", core / "variants" / VARIANT / "defines.txt"],
        "ble": [found["ble"] / "src/ArduinoBLE.h"],
        "tflm": [found["tflm"] / "src"],
    }
    if not (core / "cores/arduino/api/ArduinoAPI.h").is_file():
        needs["api"] = [found["api"] / "api/ArduinoAPI.h"]
    else:
        found["api"] = core / "cores/arduino"  # an installed core carries the API
    for key, paths in needs.items():
        for path in paths:
            if not path.exists():
                raise SetupError(f"{found[key]}: not a {CHECKOUTS[key]} checkout ({path} is missing)")
    for tool in ("arm-none-eabi-g++", "arm-none-eabi-size", "arm-none-eabi-nm"):
        if shutil.which(tool) is None:
            raise SetupError(f"{tool} not found: apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi")
    return found


def describe(path: pathlib.Path) -> str:
    """`<commit> (<date>)` of a git checkout, else the version in its library.properties / platform.txt."""
    done = subprocess.run(["git", "-C", str(path), "log", "-1", "--format=%H (%cs)"], capture_output=True, text=True)
    if done.returncode == 0 and done.stdout.strip():
        return done.stdout.strip()
    for name in ("library.properties", "platform.txt"):
        if (path / name).is_file():
            match = re.search(r"^version=(.*)$", (path / name).read_text(errors="replace"), re.M)
            if match:
                return f"version {match.group(1).strip()} (not a git checkout)"
    return "unknown (not a git checkout)"


def _flags(found: dict[str, pathlib.Path], build: pathlib.Path) -> dict[str, list[str]]:
    """Compiler flags of platform.txt's recipe.{c,cpp}.o.pattern for the Nano 33 BLE (response files as given)."""
    core = found["core"]
    variant = core / "variants" / VARIANT
    api_root = build / "api-root"  # "api/ArduinoAPI.h" from Arduino.h: ArduinoCore-API beside a git checkout
    if not (api_root / "api").exists():
        api_root.mkdir(parents=True, exist_ok=True)
        (api_root / "api").symlink_to((found["api"] / "api").resolve(), target_is_directory=True)
    api = api_root / "api"
    tail = BOARD_DEFINES + [f"-I{api / 'deprecated'}", f"-I{api / 'deprecated-avr-comp'}",
                            f"-I{core / 'cores/arduino'}", f"-I{variant}", f"-I{api_root}",
                            f"-iprefix{core / 'cores/arduino'}", f"@{variant / 'includes.txt'}"]
    return {kind: ["-g3", "-nostdlib", f"@{variant / 'defines.txt'}", f"@{variant / f'{kind}flags.txt'}", *BOARD_CPU,
                   "-MMD", *tail] for kind in ("c", "cxx")}


def _sources(folder: pathlib.Path, recursive: bool = True, skip: tuple[str, ...] = ()) -> list[pathlib.Path]:
    pattern = "**/*" if recursive else "*"
    return sorted(p for p in folder.glob(pattern) if p.suffix in (".c", ".cc", ".cpp") and p.is_file()
                  and not any(part in skip for part in p.relative_to(folder).parts))


def _compile(source: pathlib.Path, obj: pathlib.Path, flags: list[str], includes: list[str], warnings: list[str]):
    """Compile one file; returns (source, stderr text, ok). Skipped when the object is newer than the source,
    except for our own files (compiled with warnings on: every run reports theirs)."""
    if warnings == ["-w"] and obj.is_file() and obj.stat().st_mtime > source.stat().st_mtime:
        return source, "", True
    obj.parent.mkdir(parents=True, exist_ok=True)
    compiler = "arm-none-eabi-gcc" if source.suffix == ".c" else "arm-none-eabi-g++"
    command = [compiler, *flags, *warnings, *includes, str(source), "-o", str(obj)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0 and obj.exists():
        obj.unlink()
    return source, done.stderr, done.returncode == 0


def _compile_all(jobs: list[tuple], workers: int) -> tuple[list[str], list[str]]:
    """Runs `_compile` over jobs; returns (warnings of our files, errors)."""
    warnings, errors = [], []
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for (source, text, ok), job in zip(pool.map(lambda job: _compile(*job[:5]), jobs), jobs):
            if not ok:
                errors.append(f"{source}:\n{text}")
            elif job[5] and text.strip():
                warnings.append(text.strip())
    return warnings, errors


def _library_jobs(name: str, src: pathlib.Path, build: pathlib.Path, flags, includes, own=False, skip=()):
    warnings = OWN_WARNINGS if own else ["-w"]
    kind = lambda p: flags["c"] if p.suffix == ".c" else flags["cxx"]  # noqa: E731
    # Objects are kept per compiler flags (not per include list: a library's objects serve both sketches, as
    # ArduinoBLE's folder on the include path changes nothing in TFLM or the core).
    key = hashlib.sha256(" ".join(flags["cxx"]).encode()).hexdigest()[:12]
    return [(p, build / "obj" / key / name / (str(p.relative_to(src)) + ".o"), kind(p), includes, warnings, own)
            for p in _sources(src, skip=skip)]


def _size(elf: pathlib.Path) -> dict[str, int]:
    """Sections of `size -A` and the IDE's two figures (platform.txt's recipe.size.regex / .regex.data)."""
    text = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, check=True).stdout
    sections = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\.\S+)\s+(\d+)\s+\d+", text, re.M)}
    flash = sum(v for k, v in sections.items() if re.match(r"^(?:\.data|\.text|\.rodata)\S*?$", k))
    ram = sum(v for k, v in sections.items() if k in (".data", ".bss"))
    return {"flash_bytes": flash, "ram_bytes": ram, "sections": {k: v for k, v in sections.items() if k in SECTIONS}}


def build_sketch(sketch: pathlib.Path, found: dict, build: pathlib.Path, flags: dict, workers: int,
                 with_ble: bool) -> dict:
    """Compile (and link) one sketch folder; returns a dict of what was done and the sizes."""
    core, variant = found["core"], found["core"] / "variants" / VARIANT
    library = ROOT / "tflm_app"
    libraries = {"HyperTinyPW": library / "src", found["tflm"].name: found["tflm"] / "src"}
    if with_ble:
        libraries["ArduinoBLE"] = found["ble"] / "src"
    if any("#include <Wire.h>" in p.read_text(errors="replace") for p in (found["tflm"] / "src").rglob("*.h")):
        libraries["Wire"] = core / "libraries/Wire"  # the IDE's library discovery adds the core's Wire for it
    includes = [f"-I{src}" for src in libraries.values()]
    work = build / sketch.name
    copy = work / "sketch"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(sketch, copy)
    (ino,) = copy.glob("*.ino")
    cpp = copy / (ino.name + ".cpp")
    cpp.write_text(f'#include <Arduino.h>\n#line 1 "{ino.resolve()}"\n' + ino.read_text())
    jobs = [(source, work / "obj" / (source.name + ".o"), flags["c" if source.suffix == ".c" else "cxx"],
             includes, OWN_WARNINGS, True) for source in _sources(copy, recursive=False)]
    for name, src in libraries.items():
        jobs += _library_jobs(name, src, build, flags, includes, own=name == "HyperTinyPW")
    core_jobs = _library_jobs("core", core / "cores/arduino", build, flags, includes, skip=("mbed", "api"))
    core_jobs += _library_jobs("api", found["api"] / "api", build, flags, includes)
    core_jobs += _library_jobs("variant", variant, build, flags, includes, skip=("libs", "conf"))
    warnings, errors = _compile_all(jobs + core_jobs, workers)
    result = {"sketch": sketch.name, "files_compiled": len(jobs) + len(core_jobs), "warnings": warnings,
              "errors": errors, "libraries": list(libraries)}
    if errors:
        return result
    archive = work / "core.a"
    archive.unlink(missing_ok=True)
    subprocess.run(["arm-none-eabi-ar", "rcs", str(archive), *(str(job[1]) for job in core_jobs)], check=True)
    elf = work / f"{ino.name}.elf"
    mbed = [variant / "libs" / name for name in MBED_ARCHIVES]
    full = all(path.is_file() for path in mbed)
    command = ["arm-none-eabi-g++", "-Wl,--gc-sections", "-w", "-Wl,--as-needed",
               f"@{variant / 'ldflags.txt'}", f"-T{variant / 'linker_script.ld'}",
               f"-Wl,-Map,{work / 'sketch.map'}", "--specs=nosys.specs", "-o", str(elf),
               *(str(job[1]) for job in jobs), "-Wl,--whole-archive", str(archive)]
    if full:
        command += [str(path) for path in mbed]
    else:  # no Mbed OS: keep what main() reaches, leave Mbed OS's symbols undefined
        command += [str(path) for path in mbed if path.is_file() and path.name != "libmbed.a"]
        command += ["-Wl,-e,main", "-Wl,--unresolved-symbols=ignore-all"]
    command += ["-Wl,--no-whole-archive", "-Wl,--start-group", *LINK_LIBS, "-Wl,--end-group"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        result["errors"].append(f"link:\n{done.stderr[-4000:]}")
        return result
    result["link"] = "full (with libmbed.a)" if full else "partial (libmbed.a absent: no Mbed OS, Cordio or USB)"
    undefined = subprocess.run(["arm-none-eabi-nm", "-u", str(elf)], capture_output=True, text=True).stdout
    result["undefined_symbols"] = len(undefined.splitlines())  # Mbed OS's, left out of a partial link
    result.update(_size(elf))
    return result


def _markdown(report: dict) -> str:
    lines = [
        "# HyperTinyPW sketches compiled for the Arduino Nano 33 BLE",
        "",
        f"`{COMMAND}`",
        "",
        f"Model: `{report['model']}` ({report['model_bytes']:,} B, arena {report['arena_bytes']:,} B, slot B for "
        f"patches {report['model_bytes']:,} B). Compiler: {report['compiler']}.",
        "",
        "Sources:",
        "",
        *[f"- {name}: {text}" for name, text in report["sources"].items()],
        "",
        "| sketch | files | link | flash B (.text+.data+.rodata) | RAM B (.data+.bss) | warnings (ours) |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for row in report["sketches"]:
        lines.append(f"| {row['sketch']} | {row['files_compiled']} | {row.get('link', 'failed')} | "
                     f"{row.get('flash_bytes', 0):,} | {row.get('ram_bytes', 0):,} | {len(row['warnings'])} |")
    if len(report["sketches"]) == 2 and all("flash_bytes" in row for row in report["sketches"]):
        serial, ble = report["sketches"]
        lines += ["", f"BLE minus Serial: flash {ble['flash_bytes'] - serial['flash_bytes']:+,} B, "
                  f"RAM {ble['ram_bytes'] - serial['ram_bytes']:+,} B (static; ArduinoBLE also takes heap at run "
                  "time: each characteristic's value, and Mbed OS's Cordio stack its buffers)."]
    lines += ["", f"RAM includes the tensor arena ({report['arena_bytes']:,} B) and slot B ({report['model_bytes']:,} "
              "B). A partial link leaves Mbed OS's symbols undefined "
              f"({', '.join(str(row.get('undefined_symbols')) for row in report['sketches'])}): the figures are "
              "the sketch, HyperTinyPW, TFLM, ArduinoBLE and the Arduino core without Mbed OS, its Cordio BLE "
              "controller and USB serial."]
    return "\n".join(lines) + "\n"


def _log(report: dict) -> str:
    lines = [f"$ {COMMAND}", f"compiler: {report['compiler']}",
             *[f"source {name}: {text}" for name, text in report["sources"].items()],
             f"model: {report['model']} ({report['model_bytes']} B), arena {report['arena_bytes']} B"]
    for row in report["sketches"]:
        status = "FAILED" if row["errors"] else "compiled"
        lines.append(f"{row['sketch']}: {status}, {row['files_compiled']} files "
                     f"(libraries: {', '.join(row['libraries'])}), {len(row['warnings'])} warnings in the sketch "
                     "and HyperTinyPW")
        if "flash_bytes" in row:
            lines.append(f"{row['sketch']}: link {row['link']}: flash {row['flash_bytes']} B, RAM {row['ram_bytes']} B"
                         f" ({', '.join(f'{k} {v}' for k, v in row['sections'].items())}); "
                         f"{row['undefined_symbols']} symbols undefined")
        lines += [f"  {line}" for error in row["errors"] for line in error.splitlines()[:20]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sources", default=os.environ.get(SOURCES_ENV),
                        help=f"folder of {', '.join(CHECKOUTS.values())}")
    parser.add_argument("--core", help="ArduinoCore-mbed checkout (or an installed mbed_nano core)")
    parser.add_argument("--api", help="ArduinoCore-API checkout")
    parser.add_argument("--ble", help="ArduinoBLE checkout")
    parser.add_argument("--tflm-library", help="Chirale_TensorFlowLite (or Arduino_TensorFlowLite) checkout")
    parser.add_argument("--model", required=True, help="a boot .tflite file (with code tensors, for patch_config.h)")
    parser.add_argument("--windows", help="test windows (.npz with windows, as the quickstart writes)")
    parser.add_argument("--library", default="chirale", help="export_arduino's library (tflm_library.h)")
    parser.add_argument("--sketches", default="serial,ble", help="which examples (sources.SKETCHES)")
    parser.add_argument("--build", help="build folder, kept (objects of the libraries are reused)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default=str(RESULTS), help="results folder ('' to write none)")
    parser.add_argument("--log", help="write the short log here")
    args = parser.parse_args(argv)
    try:
        found = _checkouts(args)
    except SetupError as error:
        print(f"arduino_compile: {error}", file=sys.stderr)
        return 2
    import numpy as np

    from hypertiny_keras.device.arduino import export_arduino

    windows = None
    if args.windows:
        with np.load(args.windows) as saved:
            windows = saved["windows"]
    compiler = subprocess.run(["arm-none-eabi-g++", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    report = {"model": pathlib.Path(args.model).name, "compiler": compiler,
              "sources": {CHECKOUTS[key]: describe(path) for key, path in found.items()},
              "sketches": []}
    with tempfile.TemporaryDirectory(prefix="hypertiny-arduino-") as scratch:
        build = pathlib.Path(args.build or scratch).resolve()
        build.mkdir(parents=True, exist_ok=True)
        flags = _flags(found, build)
        for name in args.sketches.split(","):
            folder = build / "sketches" / f"HyperTinyPW_{name}"
            shutil.rmtree(folder, ignore_errors=True)  # export_arduino keeps an existing .ino: start afresh
            exported = export_arduino(args.model, str(folder), windows=windows, library=args.library,
                                      patch_key=COMPILE_KEY, sketch=name)
            report.update(model_bytes=exported["model_bytes"], arena_bytes=exported["arena_bytes"])
            row = build_sketch(folder, found, build, flags, args.jobs, with_ble="ArduinoBLE" in exported["requires"])
            report["sketches"].append(row)
            print(_log({**report, "sketches": [row]}).splitlines()[-1 if not row["errors"] else -2], file=sys.stderr)
    failed = any(row["errors"] for row in report["sketches"])
    for row in report["sketches"]:
        for error in row["errors"]:
            print(error, file=sys.stderr)
    if args.log:
        pathlib.Path(args.log).write_text(_log(report))
    if args.out and not failed:
        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "arduino_compile.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "arduino_compile.md").write_text(_markdown(report))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
