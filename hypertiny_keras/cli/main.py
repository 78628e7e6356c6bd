"""The `hypertiny` command: quickstart, export, arduino-library, compress, inspect, emulate, patch, data summary.

Errors are one line on stderr and exit status 2; `-v` adds the traceback and
lets TensorFlow's and the converter's own output through.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import sys
import traceback

from hypertiny_keras.device.arduino_libraries import ARDUINO_LIBRARIES, DEFAULT_ARDUINO_LIBRARY
from hypertiny_keras.device.sources import DEFAULT_SKETCH, SKETCHES
from hypertiny_keras.utils import quiet

#: Longest error message printed without `-v`, in characters.
MAX_ERROR_CHARS = 600
#: Fewest `--beats` the quickstart takes (its test split must fill `test_windows.npz`'s 16 windows).
MIN_QUICKSTART_BEATS = 200
#: Files the quickstart writes into its folder.
QUICKSTART_FILES = ("model.keras", "test_windows.npz", "report.json", "model_frozen_int8.tflite",
                    "model_frozen_int8.json", "model_boot_int8.tflite", "model_boot_int8.json")
#: Array names `--data file.npz` takes when the file holds several arrays, in order.
DATA_NAMES = ("x", "windows")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def _existing_file(path: str, option: str = "") -> pathlib.Path:
    """`path` as a `Path`; one-line `FileNotFoundError` / `ValueError` (naming `option`) if missing or a directory."""
    file, what = pathlib.Path(path), f"{option} {path}" if option else path
    if file.is_dir():
        raise ValueError(f"{what} is a directory, not a file")
    if not file.exists():
        raise FileNotFoundError(f"{what}: no such file")
    if not file.is_file():
        raise ValueError(f"{what} is not a regular file (a FIFO, device or socket); give a file")
    return file


def _positive(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {value}")
    return value


def _array_spec(spec: str) -> tuple[str, str | None]:
    """`FILE.npz:NAME` -> `(FILE.npz, NAME)`; any other spec -> `(spec, None)`."""
    head, sep, tail = spec.rpartition(":")
    return (head, tail) if sep and head.lower().endswith(".npz") else (spec, None)


def load_array(spec: str, option: str = "--data", names: tuple[str, ...] = DATA_NAMES):
    """The array named by a command-line `spec`: `FILE.npy`, `FILE.npz` or `FILE.npz:NAME`.

    `FILE.npz` alone takes its only array, else the first of `names` it
    holds. Pickled (object) arrays are refused.

    Raises:
        ValueError: one line naming `option` and the file, for an unknown
            suffix, an unreadable file, or an `.npz` without the array asked for.
        FileNotFoundError: the file is missing.
    """
    import numpy as np

    path, key = _array_spec(spec)
    file = _existing_file(path, option)
    suffix = file.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise ValueError(f"{option} {spec}: expected a .npy file, or a .npz file (FILE.npz or FILE.npz:NAME)")
    try:
        if suffix == ".npy":
            array = np.load(file, allow_pickle=False)
            if not isinstance(array, np.ndarray):  # np.load opens a zip whatever its name
                array.close()
                raise ValueError(f"{option} {spec}: not a .npy array (a zip archive: a .npz named .npy?)")
            return array
        with np.load(file, allow_pickle=False) as saved:
            available = list(saved.files)
            if key is None:
                found = [name for name in names if name in available]
                if len(available) == 1:
                    key = available[0]
                elif found:
                    key = found[0]
                else:
                    raise ValueError(
                        f"{option} {spec}: the file holds arrays {', '.join(available) or '(none)'}; "
                        f"name one as {path}:NAME"
                    )
            if key not in available:
                raise ValueError(f"{option} {spec}: no array {key!r} (the file holds {', '.join(available) or 'none'})")
            return saved[key]
    except ValueError as error:
        if str(error).startswith(option):
            raise
        raise ValueError(f"{option} {spec}: cannot read it ({' '.join(str(error).split())})") from error
    except Exception as error:  # noqa: BLE001 (a corrupt .npy/.npz fails in zipfile, pickle or numpy)
        raise ValueError(f"{option} {spec}: cannot read it ({type(error).__name__}: {error})") from error


def _quickstart(args) -> None:
    from hypertiny_keras.utils.fileio import check_output

    if args.beats < MIN_QUICKSTART_BEATS:
        raise ValueError(f"--beats {args.beats}: the quickstart needs at least {MIN_QUICKSTART_BEATS} windows "
                         f"(80/10/10 split, {MIN_QUICKSTART_BEATS // 10} test windows or more)")
    out = pathlib.Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {args.out} is a file; give the folder to write the quickstart into")
    if out.is_dir():
        for name in QUICKSTART_FILES:
            check_output(out / name)
    with quiet.silenced():  # TensorFlow's import lines
        from hypertiny_keras.cli.quickstart import run_quickstart

    run_quickstart(args.out, seed=args.seed, epochs=args.epochs, beats=args.beats,
                   dense_per_tensor=args.dense_per_tensor, personalize_wearer=args.personalize)


def _export_arduino(args) -> None:
    model = _existing_file(args.model)
    windows = labels = None
    if args.windows:
        windows = load_array(args.windows, "--windows", ("windows", "x"))
        if not args.labels and args.windows.lower().endswith(".npz"):  # e.g. the quickstart's test_windows.npz
            import numpy as np

            with np.load(args.windows, allow_pickle=False) as saved:
                has_labels = "labels" in saved.files and len(saved.files) > 1
            if has_labels:
                labels = load_array(f"{args.windows}:labels", "--windows")
    if args.labels:
        labels = load_array(args.labels, "--labels", ("labels", "y"))
    sketch = pathlib.Path(args.arduino)
    if sketch.exists() and not sketch.is_dir():
        raise ValueError(f"--arduino {args.arduino} is a file; give the sketch folder to write (created if missing)")
    with quiet.silenced():  # TensorFlow's import lines
        from hypertiny_keras.device.arduino import check_test_vectors, export_arduino

    windows, labels = check_test_vectors(windows, labels, f"--windows {args.windows}",
                                         f"--labels {args.labels or args.windows}")

    result = export_arduino(str(model), args.arduino, windows=windows, labels=labels,
                            emulator_sources=args.emulator_sources, emulator_build=args.emulator_build,
                            library=args.library, sketch=args.sketch,
                            patch_key=_key(args.patch_key_file, "--patch-key-file") if args.patch_key_file else None,
                            test_patch=_existing_file(args.test_patch, "--test-patch").read_bytes()
                            if args.test_patch else None)
    print(json.dumps(result, indent=2))
    # What a person needs next; stdout stays the JSON report.
    lines = [f"hypertiny export: wrote the sketch {result['sketch_dir']}; "
             "to build it, install these Arduino libraries:"]
    lines += [f"  {name}: {how}" for name, how in result["requires"].items()]
    lines += [f"  warning: {warning}" for warning in result["warnings"]]
    if result["removed"]:
        lines.append(f"  (removed {', '.join(result['removed'])}: an earlier export's copy of the library's core)")
    print("\n".join(lines), file=sys.stderr)


def _arduino_library(args) -> None:
    from hypertiny_keras.device.arduino import write_arduino_library

    if not args.out and not args.zip:
        raise ValueError("hypertiny arduino-library needs --out DIR (e.g. ~/Arduino/libraries/HyperTinyPW) "
                         "or --zip FILE.zip")
    if args.zip:
        from hypertiny_keras.utils.fileio import check_output

        check_output(pathlib.Path(args.zip).expanduser(), what=f"--zip {args.zip}")
    result = write_arduino_library(args.out, args.zip)
    for where in (result["out_dir"], result["zip"]):
        if where:
            print(f"wrote the {result['name']} {result['version']} Arduino library: {where}")
    if result["zip"]:
        print("  Arduino IDE: Sketch > Include Library > Add .ZIP Library, choose the .zip")
    print("  then: hypertiny export --arduino SKETCH MODEL.tflite --windows W.npz writes a sketch that uses it "
          "(also needs a TFLM library: Chirale_TensorFLowLite by default)")


def _emulate(args) -> None:
    from hypertiny_keras.device.emulator import emulate, format_result
    from hypertiny_keras.utils.fileio import check_output

    if args.json:
        check_output(args.json, what=f"--json {args.json}")
    result = emulate(args.sketch, sources=args.sources, kernels=args.kernels, build_dir=args.build, jobs=args.jobs,
                     arduino_library=args.arduino_library)
    if args.json:
        from hypertiny_keras.utils.fileio import atomic_write

        atomic_write(args.json, (json.dumps(result, indent=2) + "\n").encode())  # checked before the run
    print(format_result(result))
    if result["summary"]["passed"] != result["summary"]["checked"] or result["failures"]:
        s = result["summary"]
        raise RuntimeError(
            f"{result['failures']} test vector runs differ from the TFLM Python wheel (by at most "
            f"{s['max_score_lsb']} int8 steps; {s['class_differs']} vectors with another top class; see the log)"
        )


def _export(args) -> None:
    if args.arduino:
        _export_arduino(args)
        return
    if not args.data or not args.out:
        raise ValueError("hypertiny export MODEL.keras needs --data X.npy and --out FILE.tflite")
    model_path = _existing_file(args.model)
    from hypertiny_keras.export.write import check_paths

    out, _ = check_paths(args.out, (model_path, _array_spec(args.data)[0]))
    if model_path.suffix.lower() == ".tflite":
        raise ValueError(f"{args.model} is already a .tflite: give the .keras model to export, or add "
                         "--arduino DIR to write a sketch for this file")
    data = load_array(args.data)
    with quiet.silenced():  # TensorFlow's import, Keras' loading and the converter print dozens of lines
        import hypertiny_keras.layers  # noqa: F401  (registers the layers for loading)
        from hypertiny_keras.export import ExportError, export_tflite

        model = _load_keras(model_path)
        try:
            report = export_tflite(
                model,
                data,
                out,
                synthesis=args.synthesis,
                io_dtype=args.io,
                per_channel=args.per_channel,
                keep_metadata=args.keep_metadata,
                diet=args.diet,
                dense_per_tensor=args.dense_per_tensor,
                init_weight_bits=args.init_weight_bits,
            )
        except ExportError as error:  # name the file the data came from
            if not str(error).startswith("representative_data "):
                raise
            raise ExportError(f"--data {args.data}: {str(error).removeprefix('representative_data ')}") from None
    print(report)


def _load_keras(path: pathlib.Path):
    """The Keras model saved at `path`; one line naming the file when it is not one."""
    import zipfile

    import keras

    if path.suffix.lower() == ".keras":
        if not zipfile.is_zipfile(path):
            raise ValueError(f"{path}: not a .keras file (it is a zip archive; this file is empty, cut short or "
                             "something else)")
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except (zipfile.BadZipFile, OSError) as error:
            raise ValueError(f"{path}: not a readable .keras file ({error})") from None
        if "config.json" not in names:
            raise ValueError(f"{path}: not a .keras file (a zip archive without config.json: "
                             f"{', '.join(sorted(names)[:5]) or 'empty'})")
    try:
        model = keras.saving.load_model(path)
    except Exception as error:  # noqa: BLE001 (Keras, h5py and zipfile fail in many ways on a bad file)
        raise ValueError(f"{path}: cannot load it as a Keras model ({error_line(error)})") from None
    if path.suffix.lower() in (".h5", ".hdf5"):
        from hypertiny_keras.layers import generated_layers

        copies = {id(layer.generator) for layer in generated_layers(model) if layer.kernel_generator.uses_generator}
        if len(copies) > 1:
            raise ValueError(f"{path}: a legacy HDF5 file does not keep the generator shared between layers "
                             f"({len(copies)} copies after loading); save the model as .keras "
                             "(model.save('model.keras')) and export that")
    return model


def _compress(args) -> None:
    data = _existing_file(args.file).read_bytes()
    from hypertiny_keras.export.report import is_report, report_file
    from hypertiny_keras.tflite import weight_codecs
    from hypertiny_keras.tflite.flatbuffer import read_model
    from hypertiny_keras.utils.fileio import atomic_write, check_output

    out = check_output(args.out, what=f"--out {args.out}")  # in place (--out FILE) is allowed
    read_model(data, args.file)  # one line for a file that is not a .tflite
    try:
        coded = weight_codecs.get(args.codec)(data)
    except (ValueError, IndexError, KeyError, TypeError) as error:  # a file read_model accepts but the codec cannot
        raise ValueError(f"{args.file}: cannot compress it ({error_line(error)})") from None
    atomic_write(out, coded)
    print(f"{args.file}: {len(data):,} B -> {out}: {len(coded):,} B with {args.codec} weights "
          f"({len(data) - len(coded):,} B less); lossy: score it again (hypertiny_keras.evaluation.evaluate)")
    stale = report_file(out)
    if is_report(stale):  # it describes the file that was at `out` before (its arena, sizes, checksum)
        stale.unlink()
        print(f"removed {stale}: the export report of the file {out} replaced")


def _inspect(args) -> None:
    data = _existing_file(args.file).read_bytes()
    from hypertiny_keras.device.boards import format_inspection, get_board, plot_budget
    from hypertiny_keras.tflite.inspect import inspect_tflite  # no Keras, no TensorFlow

    if args.board is not None:
        get_board(args.board)  # an unknown name fails before any work
    plot = None
    if args.plot:
        from hypertiny_keras.utils.fileio import check_output

        plot = check_output(args.plot, (args.file,), what=f"--plot {args.plot}")
        if plot.suffix.lower() != ".png":
            raise ValueError(f"--plot {args.plot}: give a .png file to write")
    info = inspect_tflite(data, args.file)
    arena, source = args.arena, "--arena"
    if arena is None:  # the export's report beside the file holds the measured arena, if it describes this file
        from hypertiny_keras.export.report import report_file, report_for

        report, why = report_for(args.file, data)
        if report is not None:
            arena, source = report["arena_bytes"], f"{report_file(args.file).name} (host TFLM, 64-bit)"
        elif why:
            print(f"hypertiny inspect: {why}", file=sys.stderr)
    print(json.dumps(info, indent=2) if args.json else format_inspection(info, args.board, arena))
    if arena is not None and not args.json:
        print(f"arena: {arena:,} bytes from {source}")
    if plot is not None:
        print(f"wrote {plot_budget(info, plot, args.board or 'nano33ble', arena)}")


def _data_summary(args) -> None:
    if args.json:
        from hypertiny_keras.utils.fileio import check_output

        check_output(args.json, what=f"--json {args.json}")
    with quiet.silenced():  # TensorFlow's import lines
        from hypertiny_keras.data import summary_cli
        from hypertiny_keras.data.cache import describe_cache

    summary_cli(args.dataset, args.data_dir, json_path=args.json, use_cache=args.cache)
    if args.cache:
        print(describe_cache(), file=sys.stderr)


def parser() -> argparse.ArgumentParser:
    """The argument parser of `hypertiny` (imports neither TensorFlow nor Keras)."""
    p = _Parser(prog="hypertiny", description=__doc__)
    _add_verbose(p, False)
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quickstart", help="train, export and verify the quickstart model (offline)")
    q.add_argument("--out", default="out/quickstart", help="output directory")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--epochs", type=_positive, default=8, help="training epochs (>= 1)")
    q.add_argument("--beats", type=_positive, default=6000,
                   help=f"synthetic windows (80/10/10 split; >= {MIN_QUICKSTART_BEATS})")
    q.add_argument("--personalize", action="store_true",
                   help="also adapt the boot file's codes to a new synthetic wearer and write the patch "
                        "(wearer.patch, its key device.key)")
    _add_dense_scales(q)
    q.set_defaults(run=_quickstart)

    e = sub.add_parser("export", help="export a .keras model to int8 .tflite, or a .tflite to an Arduino sketch")
    e.add_argument("model", help="MODEL.keras (or MODEL.tflite with --arduino)")
    e.add_argument(
        "--data",
        help="representative float inputs (n, *input_shape): X.npy, X.npz (its only array, or 'x' / 'windows') "
        "or X.npz:NAME",
    )
    e.add_argument("--out", help="output .tflite path (the report goes beside it as .json)")
    e.add_argument("--synthesis", choices=("boot", "frozen"), default="boot")
    e.add_argument("--io", choices=("int8", "float32"), default="int8", help="input/output type")
    scales = e.add_mutually_exclusive_group()
    scales.add_argument(
        "--per-channel", dest="per_channel", action="store_true", default=True,
        help="per-channel scales for generated filters (the default, as in export_tflite)",
    )
    scales.add_argument(
        "--per-tensor", dest="per_channel", action="store_false", help="one scale per generated filter"
    )
    e.add_argument("--keep-metadata", action="store_true", help="keep names, signatures and metadata")
    e.add_argument(
        "--no-diet", dest="diet", action="store_false",
        help="skip the flatbuffer diet (identity reshapes, unread quantization and options, duplicate constants)",
    )
    _add_dense_scales(e)
    e.add_argument(
        "--init-weight-bits", type=int, choices=(8, 4), default=8,
        help="boot: bits of the init subgraph's FULLY_CONNECTED weights (4: packed int4, half their bytes; "
        "heads still exact)",
    )
    e.add_argument("--arduino", metavar="DIR", help="write an Arduino sketch folder for MODEL.tflite")
    e.add_argument(
        "--windows",
        help="float test windows for the sketch: .npy, .npz with 'windows' (and 'labels'), or X.npz:NAME",
    )
    e.add_argument("--labels", help="labels of the test windows: .npy, .npz or X.npz:NAME")
    e.add_argument(
        "--emulator-sources", metavar="DIR",
        help="with --arduino: run the sketch on an emulated Cortex-M4 first (hypertiny emulate) and size its arena "
        "from the 32-bit figure; DIR holds the tflite-micro, CMSIS-NN, ... checkouts",
    )
    e.add_argument("--emulator-build", metavar="DIR", help="build folder kept for --emulator-sources (reused)")
    e.add_argument(
        "--library", choices=sorted(ARDUINO_LIBRARIES), default=DEFAULT_ARDUINO_LIBRARY,
        help="with --arduino: the TFLM Arduino library the sketch includes (tflm_library.h)",
    )
    e.add_argument(
        "--sketch", choices=sorted(SKETCHES), default=DEFAULT_SKETCH,
        help="with --arduino: the example the .ino is copied from: serial (windows and patches over Serial) or ble "
        "(a Bluetooth LE service; needs the ArduinoBLE library)",
    )
    e.add_argument("--patch-key-file", metavar="FILE",
                   help="with --arduino: this device's HMAC key (16 bytes or more): the sketch applies code patches "
                        "(patch_config.h holds the key: keep the folder private)")
    e.add_argument("--test-patch", metavar="PATCH",
                   help="with --arduino and --patch-key-file: a patch `hypertiny emulate` applies on the emulated "
                        "board, with bad ones made from it (patch_test.h)")
    e.set_defaults(run=_export)

    a = sub.add_parser("arduino-library", help="write the HyperTinyPW Arduino library (for the Arduino IDE)")
    a.add_argument("--out", metavar="DIR", help="the library folder, e.g. ~/Arduino/libraries/HyperTinyPW")
    a.add_argument("--zip", metavar="FILE", help="a .zip for Sketch > Include Library > Add .ZIP Library")
    a.set_defaults(run=_arduino_library)

    c = sub.add_parser("compress", help="re-write an int8 .tflite's weights as int4 or 4-bit look-up tables")
    c.add_argument("file", help="an int8 .tflite (frozen or boot) made by hypertiny export")
    c.add_argument("--codec", choices=("int4", "lut4"), required=True,
                   help="int4: packed int4 weights; lut4: 4-bit look-up tables run by DECODE (tflite-micro 2025+)")
    c.add_argument("--out", required=True, help="the .tflite to write")
    c.set_defaults(run=_compress)

    i = sub.add_parser("inspect", help="subgraphs, operators and bytes by role of a .tflite")
    i.add_argument("file")
    i.add_argument("--json", action="store_true")
    i.add_argument("--board", help="give each flash/RAM part as % of this board (e.g. nano33ble)")
    i.add_argument("--arena", type=_positive,
                   help="TFLM arena bytes (default: arena_bytes of the export report beside FILE if it describes FILE)")
    i.add_argument("--plot", metavar="PNG", help="write the flash/RAM bars as a PNG")
    i.set_defaults(run=_inspect)

    m = sub.add_parser("emulate", help="build an Arduino sketch folder for an emulated Cortex-M4F and run it (QEMU)")
    m.add_argument("sketch", help="a folder made by hypertiny export --arduino")
    m.add_argument(
        "--sources",
        help="folder with tflite-micro flatbuffers gemmlowp ruy CMSIS-NN CMSIS_6 checkouts "
        "(default: $HYPERTINY_EMULATOR_SOURCES)",
    )
    m.add_argument("--kernels", choices=("cmsis", "reference"), default="cmsis")
    m.add_argument(
        "--arduino-library", metavar="DIR",
        help="build against this installed Arduino TFLM library (e.g. ~/Arduino/libraries/Chirale_TensorFLowLite, "
        "the Library Manager's folder) instead of --sources; CMSIS-NN kernels only",
    )
    m.add_argument("--build", help="build folder, kept and reused (default: a temporary one)")
    m.add_argument("--jobs", type=int, help="parallel compile jobs (default: all CPUs)")
    m.add_argument("--json", metavar="FILE", help="write every figure (and the board's log) to FILE")
    m.set_defaults(run=_emulate)

    pa = sub.add_parser("patch", help="code patches: make, apply or inspect an authenticated patch of a boot file")
    psub = pa.add_subparsers(dest="patch_command", required=True)
    pm = psub.add_parser("make", help="the patch that turns BASE into PERSONALIZED (only code bytes may differ)")
    pm.add_argument("base", help="the base boot .tflite every device holds")
    pm.add_argument("personalized", help="the same file with only its code tensors changed")
    pm.add_argument("--key-file", required=True, help="the HMAC key: a file of 16 bytes or more")
    pm.add_argument("--counter", type=int, required=True, help="1..2^32-1, above any counter the device applied")
    pm.add_argument("--out", required=True, help="the patch file to write")
    pm.set_defaults(run=_patch_make)
    pp = psub.add_parser("apply", help="check a patch (tag, base, counter, records) and write the patched file")
    pp.add_argument("base")
    pp.add_argument("patch")
    pp.add_argument("--key-file", required=True)
    pp.add_argument("--last-counter", type=int, default=0, help="the largest counter already applied (default 0)")
    pp.add_argument("--out", required=True, help="the patched .tflite to write")
    pp.set_defaults(run=_patch_apply)
    pi = psub.add_parser("inspect", help="a patch's header, records and bytes (the tag checked with --key-file)")
    pi.add_argument("patch")
    pi.add_argument("--key-file")
    pi.add_argument("--json", action="store_true")
    pi.set_defaults(run=_patch_inspect)
    pf = psub.add_parser("fleet", help="one code patch per subject of a fleet (codes tuned, scored in TFLM)")
    pf.add_argument("model", help="the base Keras model (.keras) every device runs")
    pf.add_argument("base", help="its boot .tflite (the file every device holds)")
    pf.add_argument("subjects", help=".npz with x, y, subject (one name per window) and optionally test (bools)")
    pf.add_argument("--key-file", required=True, help="the HMAC key: a file of 16 bytes or more")
    pf.add_argument("--counter", type=int, required=True, help="1..2^32-1, above any counter the devices applied")
    pf.add_argument("--out", required=True, help="folder for <subject>.patch, fleet.json and the run's journal")
    pf.add_argument("--steps", type=int, default=150, help="most Adam steps per subject (default 150)")
    pf.add_argument("--workers", type=int, help="subjects in parallel on this machine (a local Ray with N CPUs)")
    pf.add_argument("--ray-address", help="run on this Ray cluster: auto, <head-ip>:6379 or ray://<head-ip>:10001")
    pf.set_defaults(run=_patch_fleet)

    d = sub.add_parser("data", help="datasets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    s = dsub.add_parser("summary", help="windows, classes and records per split")
    s.add_argument("--dataset", required=True, choices=("mitbih", "ptbxl", "apnea_ecg", "speech_commands"))
    s.add_argument("--data-dir", required=True)
    s.add_argument("--json", help="also write the summary to this JSON file")
    s.add_argument("--no-cache", dest="cache", action="store_false",
                   help="load without reading or writing the data cache ($HYPERTINY_CACHE, ~/.cache/hypertiny)")
    s.set_defaults(run=_data_summary)
    # -v also after the command; its default stays the main parser's
    for subparser in (q, e, a, c, i, m, pa, pm, pp, pi, pf, d, s):
        _add_verbose(subparser, argparse.SUPPRESS)
    return p


def _key(path: str, option: str = "--key-file") -> bytes:
    """The bytes of the HMAC key file `path` (one line naming `option` if it is missing)."""
    return _existing_file(path, option).read_bytes()


def _write_new(path: str, data: bytes, inputs: tuple[str, ...]) -> None:
    """Write `data` to `path` atomically; refuse a directory or a path that is one of the inputs."""
    from hypertiny_keras.utils.fileio import atomic_write, check_output

    atomic_write(check_output(path, inputs, what=f"--out {path}"), data)


def _patch_make(args) -> None:
    from hypertiny_keras.tflite.patch import describe_patch, make_patch

    base, personalized = _existing_file(args.base).read_bytes(), _existing_file(args.personalized).read_bytes()
    key = _key(args.key_file)
    patch = make_patch(base, personalized, key, args.counter)
    _write_new(args.out, patch, (args.base, args.personalized, args.key_file))
    split = describe_patch(patch, key)["byte_split"]
    print(f"{args.out}: {len(patch)} bytes (" + ", ".join(f"{k} {v}" for k, v in split.items()) + ")")


def _patch_apply(args) -> None:
    from hypertiny_keras.tflite.patch import apply_patch

    base = _existing_file(args.base).read_bytes()
    patched = apply_patch(base, _existing_file(args.patch).read_bytes(), _key(args.key_file), args.last_counter)
    _write_new(args.out, patched, (args.base, args.patch, args.key_file))
    print(f"{args.out}: {len(patched):,} bytes, the base with its code bytes patched")


def _patch_inspect(args) -> None:
    from hypertiny_keras.tflite.patch import describe_patch

    info = describe_patch(_existing_file(args.patch).read_bytes(), _key(args.key_file) if args.key_file else None)
    if args.json:
        print(json.dumps(info, indent=2))
        return
    tag = {True: "authenticated", None: "tag not checked (no --key-file)"}[info["authenticated"]]
    print(f"{args.patch}: {info['bytes']} bytes, counter {info['counter']}, base {info['base_id']}, {tag}")
    print("  bytes: " + ", ".join(f"{k} {v}" for k, v in info["byte_split"].items()))
    for record in info["records"]:
        print(f"  buffer {record['buffer']}: {record['bytes']} bytes, int8 {record['int8']}")


def _patch_fleet(args) -> None:
    files = [_existing_file(p) for p in (args.model, args.base, args.subjects)]
    bar = os.fdopen(os.dup(2), "w")  # the real stderr: the progress bar stays visible while the rest is silenced
    with bar, quiet.silenced():  # TensorFlow's import and Keras' loading
        from hypertiny_keras.training.fleet import FleetSettings, personalize_fleet_files

        fleet = personalize_fleet_files(*files, _key(args.key_file), args.counter, args.out,
                                        FleetSettings(steps=args.steps), workers=args.workers,
                                        address=args.ray_address, progress=bar)
    s = fleet["summary"]
    print(f"{args.out}: {s['personalized']} of {s['subjects']} subjects patched ({s['failed']} failed)"
          + (f", patches up to {s['patch_bytes']['max']} bytes; accuracy {s['accuracy']['before']:.3f} -> "
             f"{s['accuracy']['after']:.3f}" if s["personalized"] else ""))


def _add_dense_scales(p: argparse.ArgumentParser) -> None:
    """`--dense-per-tensor` (the default) / `--dense-per-channel`: scales of the FULLY_CONNECTED weights."""
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--dense-per-tensor", dest="dense_per_tensor", action="store_true", default=True,
        help="one scale per FULLY_CONNECTED weight tensor (the default): runs on every TFLM, including the "
        "2023 snapshots of the Arduino libraries",
    )
    group.add_argument(
        "--dense-per-channel", dest="dense_per_tensor", action="store_false",
        help="one scale per output channel (the converter's choice), for TFLM 2024-09 or newer only "
        "(export --arduino then needs --library tflite-micro)",
    )


def _add_verbose(p: argparse.ArgumentParser, default) -> None:
    p.add_argument(
        "-v", "--verbose", action="store_true", default=default,
        help="show tracebacks and what TensorFlow and the converter print",
    )


def error_line(error: BaseException) -> str:
    """`error` as one line: its message with whitespace collapsed, the type named unless it is self-explanatory."""
    message = " ".join(str(error).split())
    if not isinstance(error, (ValueError, OSError, RuntimeError)) or not message:
        message = f"{type(error).__name__}: {message}" if message else type(error).__name__
    if len(message) > MAX_ERROR_CHARS:
        message = message[: MAX_ERROR_CHARS - 30] + " ... (-v for the whole message)"
    return message


@contextlib.contextmanager
def _environment(verbose: bool):
    """`HYPERTINY_VERBOSE` and `TF_CPP_MIN_LOG_LEVEL` for one run, restored afterwards."""
    saved = {name: os.environ.get(name) for name in (quiet.VERBOSE_ENV, "TF_CPP_MIN_LOG_LEVEL")}
    if verbose:
        os.environ[quiet.VERBOSE_ENV] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run(argv: list[str] | None = None) -> None:
    """Entry point of the `hypertiny` console script.

    Every error ends the command with one line on stderr and exit status 2
    (`-v`: the traceback first).
    """
    args = parser().parse_args(argv)
    with _environment(args.verbose):
        try:
            args.run(args)
        except KeyboardInterrupt:
            print(f"hypertiny {args.command}: interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        except Exception as error:  # noqa: BLE001 (every error is reported the same way)
            if args.verbose:
                traceback.print_exc()
            print(f"hypertiny {args.command}: error: {error_line(error)}", file=sys.stderr)
            raise SystemExit(2) from None


if __name__ == "__main__":
    run()
