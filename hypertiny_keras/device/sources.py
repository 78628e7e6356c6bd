"""Where the device core is: `tflm_app`, the HyperTinyPW Arduino library, shipped inside the package.

The wheel carries it as package data of `hypertiny_keras.device` (in a source
checkout, `hypertiny_keras/device/tflm_app` links to the top-level
`tflm_app/`); it is found with `importlib.resources`, so it works the same
for a wheel, an editable install and a checkout:

    library.properties, library.json   the Arduino / PlatformIO library manifests
    src/                               the portable core (HyperTinyPW.h, hypertiny_app.h/.cc,
                                       hypertiny_patch.h/.cc: verifying and applying code patches,
                                       hypertiny_patch_store.h/.cc: keeping the last one in flash)
    examples/HyperTinyPW/HyperTinyPW.ino   the sketch `hypertiny export --arduino` copies (windows and
                                       patches over Serial; `SKETCHES["serial"]`)
    examples/HyperTinyPW_BLE/HyperTinyPW_BLE.ino   the same over Bluetooth LE with ArduinoBLE
                                       (`SKETCHES["ble"]`, `export --arduino --sketch ble`)
    emulator/                          the emulated Cortex-M4F harness (`hypertiny emulate`)
"""
from __future__ import annotations

import atexit
import contextlib
import functools
import importlib.resources
import pathlib

PACKAGE = "hypertiny_keras.device"
#: The library's name (library.properties `name`, the folder under ~/Arduino/libraries).
LIBRARY_NAME = "HyperTinyPW"
#: The library's example sketches by the name `export_arduino(sketch=...)` takes: example folder (= `.ino` name).
SKETCHES = {"serial": LIBRARY_NAME, "ble": f"{LIBRARY_NAME}_BLE"}
DEFAULT_SKETCH = "serial"
#: The `.ino` of each example, relative to the library folder.
EXAMPLE_SKETCHES = {
    name: pathlib.PurePosixPath("examples", folder, f"{folder}.ino") for name, folder in SKETCHES.items()
}
#: Files of the Arduino library (relative to `tflm_app`), as `hypertiny arduino-library` writes them.
LIBRARY_FILES = (
    "library.properties",
    "library.json",
    "README.md",
    "src/HyperTinyPW.h",
    "src/hypertiny_app.h",
    "src/hypertiny_app.cc",
    "src/hypertiny_patch.h",
    "src/hypertiny_patch.cc",
    "src/hypertiny_patch_store.h",
    "src/hypertiny_patch_store.cc",
    *(str(path) for path in EXAMPLE_SKETCHES.values()),
)
#: Files of the emulator harness (relative to `tflm_app`).
EMULATOR_FILES = ("emulator/Makefile", "emulator/emulate.cc", "emulator/board.cc", "emulator/board.h",
                  "emulator/mps2_an386.ld")

_kept = contextlib.ExitStack()  # a folder extracted by as_file lives as long as the process
atexit.register(_kept.close)


class DeviceSourcesError(FileNotFoundError):
    """The device core is missing from the installed package (one line saying what and how to fix it)."""


@functools.lru_cache(maxsize=None)
def tflm_app() -> pathlib.Path:
    """The `tflm_app` folder of the installed package, with every file of `LIBRARY_FILES` and `EMULATOR_FILES`.

    Raises:
        DeviceSourcesError: the folder or one of its files is missing (a
            wheel built without the package data, or a checkout whose
            `hypertiny_keras/device/tflm_app` link is broken).
    """
    resource = importlib.resources.files(PACKAGE) / "tflm_app"
    try:
        root = resource if isinstance(resource, pathlib.Path) else _kept.enter_context(
            importlib.resources.as_file(resource))
    except Exception as error:  # noqa: BLE001 (as_file of a folder inside a zip needs Python 3.12)
        raise DeviceSourcesError(f"hypertiny_keras: cannot read the device sources at {resource}: {error}") from error
    root = pathlib.Path(root)
    missing = [name for name in LIBRARY_FILES + EMULATOR_FILES if not (root / name).is_file()]
    if missing:
        raise DeviceSourcesError(
            f"hypertiny_keras: the device sources (the HyperTinyPW library, tflm_app) are missing from the "
            f"installed package: {root} lacks {', '.join(missing)}; reinstall hypertiny-keras "
            "(pip install --force-reinstall hypertiny-keras, or pip install -e . in a checkout)"
        )
    return root


def core_dir() -> pathlib.Path:
    """The library's `src/` folder: the portable core."""
    return tflm_app() / "src"


def emulator_dir() -> pathlib.Path:
    """The emulator harness: Makefile, emulate.cc, board.cc/.h, linker script."""
    return tflm_app() / "emulator"


def example_sketch(name: str = DEFAULT_SKETCH) -> pathlib.Path:
    """The `.ino` of the library's example `name` (a key of `SKETCHES`), the sketch `hypertiny export --arduino` copies.

    Raises:
        ValueError: no such example (the message lists the known ones).
        DeviceSourcesError: the package lacks its device sources.
    """
    if name not in SKETCHES:
        raise ValueError(f"unknown sketch {name!r}; known: {', '.join(sorted(SKETCHES))}")
    return tflm_app() / EXAMPLE_SKETCHES[name]


def library_version() -> str:
    """`version` of library.properties."""
    for line in (tflm_app() / "library.properties").read_text().splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "version":
            return value.strip()
    raise DeviceSourcesError(f"{tflm_app() / 'library.properties'} has no version")
