"""Shared by the native tests of the device core: building a harness with g++ as CI does, and a small `boot` model."""
import os
import pathlib
import shutil
import subprocess

import keras
import numpy as np
import pytest

from hypertiny_keras import export_tflite, hypertiny_pw
from hypertiny_keras.data.synthetic import make_beats
from hypertiny_keras.device import sources
from hypertiny_keras.tflite import patch as hp


@pytest.fixture(scope="session")
def build_native(tmp_path_factory):
    """build(harness, core_files, flags=()) -> binary: the harness (a .cc of tests/device) + the core's
    `core_files` (in tflm_app/src), compiled as CI would: C++11, every warning an error (+ `flags`). Fails
    under CI=true without g++, else skips."""
    compiler = shutil.which("g++")
    if compiler is None:
        if os.environ.get("CI") == "true":
            pytest.fail("g++ is needed to build the patch core (CI=true)")
        pytest.skip("g++ not found")

    def build(harness: pathlib.Path, core_files: tuple[str, ...], flags: tuple[str, ...] = ()) -> pathlib.Path:
        binary = tmp_path_factory.mktemp(harness.stem) / harness.stem
        core = sources.core_dir()
        done = subprocess.run(
            [compiler, "-std=c++11", "-Wall", "-Wextra", "-Werror", "-O1", *flags, f"-I{core}", str(harness),
             *(str(core / name) for name in core_files), "-o", str(binary)],
            capture_output=True, text=True, timeout=300,
        )
        assert done.returncode == 0, done.stderr
        return binary

    return build


@pytest.fixture(scope="module")
def boot(tmp_path_factory):
    """(base boot file, a personalized one: every code value redrawn) of a small untrained dense-head model."""
    keras.utils.set_random_seed(1)
    windows = make_beats(32, seed=1)[0]
    path = tmp_path_factory.mktemp("patch_core") / "boot.tflite"
    export_tflite(hypertiny_pw(windows.shape[1:], 2, widths=(8, 12, 16), code_dim=4, hidden_dim=8), windows, path,
                  synthesis="boot")
    base, rng = path.read_bytes(), np.random.default_rng(1)
    personalized = bytearray(base)
    for offset, length in hp.code_buffers(base).values():
        personalized[offset:offset + length] = rng.integers(-127, 128, length, dtype=np.int8).tobytes()
    return base, bytes(personalized)
