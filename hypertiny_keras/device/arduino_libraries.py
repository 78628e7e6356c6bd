"""The TFLM Arduino libraries a sketch of `hypertiny export --arduino` can be built with.

(And `tflite-micro`: no Arduino library, the user's own TFLM build.)

Each library ships a snapshot of TFLM (with flatbuffers, gemmlowp, ruy,
CMSIS-NN and CMSIS core) and a top-level header whose `#include` makes the
Arduino IDE / arduino-cli add the library to the build: its library discovery
runs the preprocessor over the sketch and follows plain `#include` lines only
(an `__has_include` test never triggers it), so the exporter writes the chosen
library's header into `tflm_library.h`, which the sketch includes.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ArduinoLibrary:
    """A TFLM Arduino library: the header that pulls it in and how users install it."""

    name: str
    header: str
    install: str
    snapshot: str
    #: Its TFLM reads one scale per output channel of a FULLY_CONNECTED weight
    #: (tflite-micro #2673, 2024-09); before, the first scale serves every channel.
    per_channel_fully_connected: bool = False
    #: Its TFLM has the DECODE operator (custom code TFLM_DECODE) that runs
    #: files with look-up-table weights of `tflite_micro.compression` (2025).
    decode: bool = False


#: Libraries by the name `--library` takes. Snapshots: read off the libraries'
#: sources (tflm_app/README.md, "Arduino libraries").
ARDUINO_LIBRARIES = {
    library.name: library
    for library in (
        ArduinoLibrary(
            "chirale",
            "Chirale_TensorFlowLite.h",
            'Library Manager: search "Chirale"; arduino-cli lib install Chirale_TensorFLowLite '
            "(its registered name, capital L; also the folder name under ~/Arduino/libraries)",
            "spaziochirale/Chirale_TensorFlowLite 46da2f9 (2024-07-05), a TFLM snapshot older than arduino-examples'",
        ),
        ArduinoLibrary(
            "arduino-examples",
            "TensorFlowLite.h",
            "git clone https://github.com/tensorflow/tflite-micro-arduino-examples "
            "~/Arduino/libraries/Arduino_TensorFlowLite (no longer synced since 2023)",
            "tensorflow/tflite-micro-arduino-examples 7948b85 (2023-12-22), TFLM synced 2023-02-27",
        ),
        ArduinoLibrary(
            "tflite-micro",
            "",
            "none: the sketch folder is built with your own tflite-micro checkout "
            "(tflm_app/emulator/Makefile, or another board's build)",
            "tensorflow/tflite-micro 2024-09 or newer (2025 or newer for DECODE)",
            per_channel_fully_connected=True,
            decode=True,
        ),
    )
}
DEFAULT_ARDUINO_LIBRARY = "chirale"

#: Arduino libraries besides TFLM and HyperTinyPW that an example sketch includes, by the sketch's name
#: (`sources.SKETCHES`): library name -> how to install it.
SKETCH_LIBRARIES = {
    "serial": {},
    "ble": {
        "ArduinoBLE": 'Library Manager: search "ArduinoBLE"; arduino-cli lib install ArduinoBLE '
        "(2.x; the Nano 33 BLE's radio through Mbed OS's Cordio stack)",
    },
}


def get(name: str) -> ArduinoLibrary:
    """The library called `name` (a key of `ARDUINO_LIBRARIES`).

    Raises:
        ValueError: no such library (the message lists the known ones).
    """
    if name not in ARDUINO_LIBRARIES:
        raise ValueError(f"unknown Arduino library {name!r}; known: {', '.join(sorted(ARDUINO_LIBRARIES))}")
    return ARDUINO_LIBRARIES[name]


def library_header(name: str) -> str:
    """Text of `tflm_library.h` for library `name`: the one `#include` that selects it."""
    library = get(name)
    return (
        f"// The TFLM this sketch is built with: {library.name} ({library.snapshot}).\n"
        f"// Install: {library.install}.\n"
        "// Re-export with `hypertiny export --arduino DIR MODEL --library NAME` to switch.\n"
        + (f"#include <{library.header}>\n" if library.header else "")
    )
