"""The wheel is the product: built, installed into a scratch folder and used from outside the checkout.

The installed package must reach the device with no source checkout: a small
quickstart, `hypertiny export --arduino` with the default library and no extra
flag, and `hypertiny arduino-library`; the research harness stays out of it.
Dependencies come from the test environment (`pip install --no-deps`).
"""
import os
import pathlib
import subprocess
import sys
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: What a sketch folder and the Arduino library must hold for the Arduino IDE.
SKETCH_FILES = {"model_data.h", "model_data.cc", "model_ops.h", "test_vectors.h", "arena_config.h"}
LIBRARY_FILES = {"library.properties", "library.json", "src/hypertiny_app.h", "src/hypertiny_app.cc",
                 "examples/HyperTinyPW/HyperTinyPW.ino", "examples/HyperTinyPW_BLE/HyperTinyPW_BLE.ino"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out),
         str(ROOT)],
        check=True, capture_output=True, timeout=600,
    )
    (path,) = out.glob("hypertiny_keras-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> tuple[pathlib.Path, dict]:
    """(scratch folder, environment) with the wheel installed there and first on the import path."""
    scratch = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(scratch), str(wheel)],
        check=True, capture_output=True, timeout=600,
    )
    env = dict(os.environ, PYTHONPATH=str(scratch), TF_CPP_MIN_LOG_LEVEL="2")
    return scratch, env


def test_wheel_carries_the_device_side_and_none_of_the_research_harness(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    app = "hypertiny_keras/device/tflm_app/"
    for name in LIBRARY_FILES | {"emulator/Makefile", "emulator/emulate.cc", "README.md"}:
        assert app + name in names, name
    research = [n for n in names if any(part in n for part in ("hypertiny_research", "experiments", "baselines",
                                                                "ternary", "vae.py", "hrv.py", "recipe"))]
    assert not research, research
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "recipes/", "research/"))]


def _hypertiny(installed, *args, cwd) -> subprocess.CompletedProcess:
    scratch, env = installed
    code = "import sys; from hypertiny_keras.cli.main import run; sys.argv[0] = 'hypertiny'; sys.exit(run())"
    result = subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, (args, result.stderr[-3000:])
    return result


def test_installed_package_reaches_the_device_from_outside_the_checkout(installed, tmp_path):
    scratch, env = installed
    where = subprocess.run([sys.executable, "-c", "import hypertiny_keras; print(hypertiny_keras.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.strip()
    assert pathlib.Path(where).is_relative_to(scratch), where
    assert (scratch / "bin" / "hypertiny").is_file()

    _hypertiny(installed, "quickstart", "--out", "qs", "--beats", "600", "--epochs", "1", cwd=tmp_path)
    boot = tmp_path / "qs" / "model_boot_int8.tflite"
    assert boot.is_file() and (tmp_path / "qs" / "test_windows.npz").is_file()

    _hypertiny(installed, "export", "--arduino", "HyperTinyPW", boot, "--windows", tmp_path / "qs" / "test_windows.npz",
               cwd=tmp_path)
    sketch = tmp_path / "HyperTinyPW"
    assert SKETCH_FILES <= {p.name for p in sketch.iterdir()}
    assert (sketch / "HyperTinyPW.ino").is_file()
    done = _hypertiny(installed, "export", "--arduino", "Radio", boot, "--sketch", "ble", cwd=tmp_path)
    assert "#include <ArduinoBLE.h>" in (tmp_path / "Radio" / "Radio.ino").read_text() and "ArduinoBLE" in done.stderr

    _hypertiny(installed, "arduino-library", "--out", "libraries/HyperTinyPW", cwd=tmp_path)
    library = tmp_path / "libraries" / "HyperTinyPW"
    assert LIBRARY_FILES <= {p.relative_to(library).as_posix() for p in library.rglob("*") if p.is_file()}
    properties = dict(line.split("=", 1) for line in (library / "library.properties").read_text().splitlines()
                      if "=" in line and not line.startswith("#"))
    assert properties["name"] == "HyperTinyPW" and properties["version"]
