"""The `hypertiny` command end to end: quickstart, inspect, export."""
import json
import subprocess
import sys

import numpy as np
import pytest

HYPERTINY = [sys.executable, "-m", "hypertiny_keras.cli"]


def _run(*args, check=True):
    result = subprocess.run([*HYPERTINY, *map(str, args)], capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(result.stderr[-3000:])
    return result


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart")
    result = _run("quickstart", "--out", out, "--epochs", 3, "--beats", 2500)
    return out, result.stdout


def test_quickstart_writes_models_and_report(quickstart):
    out, stdout = quickstart
    for name in ("model_frozen_int8.tflite", "model_boot_int8.tflite", "report.json"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "report.json").read_text())
    assert report["accuracy"]["keras_float"] >= 0.85
    assert report["accuracy"]["tflm_int8_boot"] == report["accuracy"]["tflm_int8_frozen"]
    assert report["test_set_checks"]["boot_tflm_vs_litert_max_steps"] <= 1
    assert report["exports"]["boot"]["file_bytes"] == (out / "model_boot_int8.tflite").stat().st_size
    assert "== .tflite bytes by role ==" in stdout and "TFLM == LiteRT" in stdout


def test_inspect_json_and_text(quickstart):
    out, _ = quickstart
    info = json.loads(_run("inspect", out / "model_boot_int8.tflite", "--json").stdout)
    assert info["has_init_subgraph"] and info["subgraphs"][1]["role"] == "init"
    assert info["subgraphs"][0]["operators"][0] == "CALL_ONCE"
    text = _run("inspect", out / "model_frozen_int8.tflite").stdout
    assert "init subgraph: no" in text and "flatbuffer_overhead" in text


def test_export_from_keras_file(quickstart, tmp_path):
    out, _ = quickstart
    windows = np.load(out / "test_windows.npz")["windows"]
    np.save(tmp_path / "x.npy", windows)
    result = _run("export", out / "model.keras", "--data", tmp_path / "x.npy", "--out", tmp_path / "m.tflite")
    assert (tmp_path / "m.tflite").read_bytes() and (tmp_path / "m.json").exists()
    assert "boot" in result.stdout


def test_errors_are_one_line_and_exit_2(tmp_path):
    result = _run("inspect", tmp_path / "missing.tflite", check=False)
    assert result.returncode == 2 and "error" in result.stderr
    (tmp_path / "junk.tflite").write_bytes(b"not a model at all")
    result = _run("inspect", tmp_path / "junk.tflite", check=False)
    assert result.returncode == 2 and "TFL3" in result.stderr
