"""The `hypertiny` command end to end: quickstart, inspect, export; its start-up, errors and output."""
import json
import os
import pathlib
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

from hypertiny_keras.cli import main as cli
from hypertiny_keras.utils import quiet

HYPERTINY = [sys.executable, "-m", "hypertiny_keras.cli.main"]
#: What TensorFlow, Keras and the converter print when not silenced.
NOISE = ("Saved artifact at", "TensorSpec(", "fully_quantize", "Statistics for quantized", "I0000", "W0000", "absl")


def _run(*args, check=True):
    result = subprocess.run([*HYPERTINY, *map(str, args)], capture_output=True, text=True, timeout=600)
    if check and result.returncode != 0:
        raise AssertionError(result.stderr[-3000:])
    return result


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart")
    result = _run("quickstart", "--out", out, "--epochs", 3, "--beats", 2500, "--personalize")
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


def test_quickstart_personalize_writes_a_patch_the_cli_applies(quickstart, tmp_path):
    """--personalize: a codes-only patch of the boot file, its own key (owner-only), and the patched file."""
    out, stdout = quickstart
    personal = json.loads((out / "report.json").read_text())["personalize"]
    patch = (out / "wearer.patch").read_bytes()
    assert personal["patch_bytes"] == len(patch) <= 51 and sum(personal["byte_split"].values()) == len(patch)
    assert (out / "device.key").stat().st_mode & 0o077 == 0 and len((out / "device.key").read_bytes()) == 32
    assert f"patch {len(patch)} bytes" in stdout
    _run("patch", "apply", out / "model_boot_int8.tflite", out / "wearer.patch", "--key-file", out / "device.key",
         "--out", tmp_path / "applied.tflite")
    assert (tmp_path / "applied.tflite").read_bytes() == (out / "model_wearer_int8.tflite").read_bytes()
    assert (out / "model_wearer_int8.tflite").read_bytes() != (out / "model_boot_int8.tflite").read_bytes()
    accuracy = personal["tflm_int8_accuracy"]
    assert 0 <= accuracy["global"] <= 1 and 0 <= accuracy["personalized"] <= 1


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


def test_export_prints_only_the_report_per_channel_from_npz(quickstart, tmp_path):
    """`--data` takes the quickstart's .npz (windows + labels); per-channel like the API; no converter noise."""
    out, _ = quickstart
    result = _run("export", out / "model.keras", "--data", out / "test_windows.npz", "--out", tmp_path / "m.tflite")
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["per_channel"] is True
    lines = (result.stdout + result.stderr).splitlines()
    assert result.stderr == "" and lines[0].startswith(f"{tmp_path / 'm.tflite'}: {report['file_bytes']:,} bytes")
    assert len(lines) <= 8 and not [line for line in lines if any(mark in line for mark in NOISE)], lines
    per_tensor = _run(
        "export", out / "model.keras", "--data", f"{out / 'test_windows.npz'}:windows", "--out", tmp_path / "t.tflite",
        "--per-tensor",
    )
    assert json.loads((tmp_path / "t.json").read_text())["per_channel"] is False and per_tensor.stderr == ""


def test_start_up_imports_neither_tensorflow_nor_keras():
    """`hypertiny --help` and argument errors answer without importing TensorFlow (8-24 s before)."""
    script = pathlib.Path(sys.executable).with_name("hypertiny")  # the console script, as installed
    command = [str(script)] if script.exists() else HYPERTINY
    for args, status in ((["--help"], 0), (["export", "--help"], 0), (["export"], 2), (["inspect"], 2),
                         (["arduino-library"], 2)):
        start = time.perf_counter()
        result = subprocess.run(
            [*command, *args], capture_output=True, text=True, timeout=120,
            env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
        )
        elapsed = time.perf_counter() - start
        imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
        assert result.returncode == status, result.stderr[-2000:]
        assert "hypertiny_keras" in imported
        assert result.stdout.startswith("usage: hypertiny") if status == 0 else (
            result.stderr.splitlines()[-1].startswith("hypertiny") and "error" in result.stderr.splitlines()[-1]
        )
        assert not {name for name in imported if name.split(".")[0] in ("tensorflow", "keras")}, args
        assert elapsed < 3, f"hypertiny {' '.join(args)} took {elapsed:.1f} s"
    code = ("import sys, hypertiny_keras.cli.main as c; c.parser(); "
            "print(sorted({'tensorflow', 'keras'} & set(sys.modules)))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "[]"


def test_package_is_lazy_with_todays_names():
    import hypertiny_keras as ht
    import hypertiny_keras.transforms.freezing  # noqa: F401  (a submodule import leaves ht.freeze the function)

    assert ht.__all__ == [
        "ByteTable", "ExportError", "ExportOptions", "ExportReport", "ExportVerificationError", "HyperPointwise",
        "HyperizeReport", "Hyperized", "PointwiseGenerator", "ROLES", "byte_table", "codes_file", "export_tflite",
        "format_inspection", "freeze",
        "generated_kernels", "generated_layers", "hyperize", "hypertiny_pw", "inspect_tflite", "packed_bytes",
        "pareto", "personalize", "personalize_many", "plot_pareto", "run_tasks", "stored_pw_twin",
        "data", "device", "evaluation", "execution", "export", "kernel_generators", "losses", "models", "sweeps",
        "tflite", "training",
    ]
    assert set(ht.__all__) <= set(dir(ht)) and ht.__version__ == "0.1.0"
    assert callable(ht.freeze) and ht.freeze.__module__ == "hypertiny_keras.transforms.freezing"
    assert callable(ht.pareto) and ht.pareto.__module__ == "hypertiny_keras.sweeps.pareto_front"
    assert callable(ht.hyperize) and ht.hyperize.__module__ == "hypertiny_keras.transforms.hyperizing"
    assert ht.data.make_beats and ht.export_tflite.__name__ == "export_tflite" and ht.HyperPointwise.__name__
    with pytest.raises(AttributeError):
        ht.no_such_name  # noqa: B018


SAVE = """
import sys, numpy as np, keras, hypertiny_keras as ht
g = ht.PointwiseGenerator(4, 8)
inputs = keras.Input((16, 2))
x = ht.HyperPointwise(6, g, activation="relu")(keras.layers.Conv1D(4, 1)(inputs))
model = keras.Model(inputs, ht.HyperPointwise(3, g)(x))
model.save(sys.argv[1])
np.save(sys.argv[2], model.predict(np.linspace(-1, 1, 32, dtype="float32").reshape(1, 16, 2), verbose=0))
"""
LOAD = """
import sys, numpy as np
import hypertiny_keras
{then}
import keras
model = keras.saving.load_model(sys.argv[1])
y = model.predict(np.linspace(-1, 1, 32, dtype="float32").reshape(1, 16, 2), verbose=0)
print(type(model.layers[-1]).__name__, np.array_equal(y, np.load(sys.argv[2])))
"""


def test_keras_load_model_after_only_importing_the_package(tmp_path):
    """The lazy package still registers its layers before `keras.saving.load_model` (Keras, or TensorFlow first)."""
    paths = [str(tmp_path / "m.keras"), str(tmp_path / "y.npy")]
    subprocess.run([sys.executable, "-c", SAVE, *paths], check=True, capture_output=True, timeout=300)
    for then in ("", "import tensorflow"):
        result = subprocess.run(
            [sys.executable, "-c", LOAD.format(then=then), *paths], capture_output=True, text=True, timeout=300
        )
        assert result.stdout.split() == ["HyperPointwise", "True"], result.stderr[-2000:]


def test_parser_defaults_match_the_api():
    args = cli.parser().parse_args(["export", "m.keras"])
    assert args.per_channel is True and args.synthesis == "boot" and args.io == "int8" and not args.verbose
    assert cli.parser().parse_args(["export", "m.keras", "--per-tensor"]).per_channel is False
    assert cli.parser().parse_args(["-v", "inspect", "f"]).verbose
    assert cli.parser().parse_args(["inspect", "-v", "f"]).verbose


def test_load_array_npy_npz_and_names(tmp_path):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "x.npy", x)
    np.savez(tmp_path / "one.npz", anything=x)
    np.savez(tmp_path / "two.npz", windows=x, labels=np.arange(3))
    np.savez(tmp_path / "other.npz", a=x, b=x)
    for spec in ("x.npy", "one.npz", "two.npz", "two.npz:windows", "other.npz:b"):
        assert np.array_equal(cli.load_array(str(tmp_path / spec)), x), spec
    assert np.array_equal(cli.load_array(str(tmp_path / "two.npz:labels")), np.arange(3))
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not a zip")
    (tmp_path / "x.csv").write_text("1,2")
    for spec, match in (
        ("other.npz", "holds arrays a, b; name one"),
        ("two.npz:nope", "no array 'nope'"),
        ("broken.npz", "cannot read it"),
        ("x.csv", "expected a .npy file"),
        ("", "is a directory"),
    ):
        with pytest.raises(ValueError, match=match) as error:
            cli.load_array(str(tmp_path / spec) if spec else str(tmp_path))
        assert "\n" not in str(error.value)
    with pytest.raises(FileNotFoundError, match="--data .*missing.npy: no such file"):
        cli.load_array(str(tmp_path / "missing.npy"))


def _one_line_error(result, *expected):
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "error" in lines[0] and "Traceback" not in result.stderr, result.stderr[-2000:]
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def test_errors_are_one_line_and_exit_2(tmp_path):
    _one_line_error(_run("inspect", tmp_path / "missing.tflite", check=False), "no such file")
    (tmp_path / "junk.tflite").write_bytes(b"not a model at all")
    _one_line_error(_run("inspect", tmp_path / "junk.tflite", check=False), "TFL3")


def test_inspect_bad_files_one_line(tmp_path):
    """Truncated, random bytes after TFL3, or a directory: one line, never a traceback."""
    valid = bytes(4) + b"TFL3" + bytes(range(256)) * 8
    (tmp_path / "random.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + np.random.default_rng(0).bytes(3000))
    (tmp_path / "truncated.tflite").write_bytes(valid[:40])
    for name in ("random.tflite", "truncated.tflite"):
        _one_line_error(_run("inspect", tmp_path / name, check=False), name, "not a valid TFLite flatbuffer")
    _one_line_error(_run("inspect", tmp_path, check=False), "is a directory")


def test_export_usage_errors_one_line(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"")
    np.save(tmp_path / "x.npy", np.zeros((2, 4), np.float32))
    np.savez(tmp_path / "two.npz", a=np.zeros(2), b=np.zeros(2))
    cases = (
        (["--data", tmp_path / "x.npy", "--out", tmp_path], "is a directory"),
        (["--data", tmp_path / "two.npz", "--out", tmp_path / "o.tflite"], "name one as"),
        (["--out", tmp_path / "o.tflite"], "needs --data"),
        (["--data", tmp_path / "x.npy", "--out", tmp_path / "o.tflite", "--bogus"], "unrecognized arguments"),
    )
    for extra, expected in cases:
        start = time.perf_counter()
        _one_line_error(_run("export", tmp_path / "m.keras", *extra, check=False), expected)
        assert time.perf_counter() - start < 10  # refused before TensorFlow is imported
    (tmp_path / "junk.tflite").write_bytes(b"\x00" * 4 + b"TFL3" + b"\xff" * 64)
    _one_line_error(
        _run("export", "--arduino", tmp_path / "sketch", tmp_path / "junk.tflite", check=False),
        "junk.tflite: not a valid TFLite flatbuffer",
    )
    assert not (tmp_path / "sketch").exists()


def test_any_exception_is_one_line_and_v_shows_the_traceback(monkeypatch, capsys):
    def broken(args):
        raise KeyError("deep inside\nsomething")

    monkeypatch.setattr(cli, "_inspect", broken)
    for argv, traceback_shown in ((["inspect", "f"], False), (["inspect", "-v", "f"], True)):
        with pytest.raises(SystemExit) as exit_:
            cli.run(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and ("Traceback" in err) is traceback_shown
        assert err.splitlines()[-1] == "hypertiny inspect: error: KeyError: 'deep inside\\nsomething'"
    assert quiet.VERBOSE_ENV not in os.environ  # -v is undone after the run


def test_silenced_swallows_noise_and_keeps_error_lines(capfd, monkeypatch):
    monkeypatch.delenv(quiet.VERBOSE_ENV, raising=False)
    with quiet.silenced():
        print("Saved artifact at '/tmp/x'.")
        os.write(2, b"W0000 00:00:1.2 123 tf_tfl_flatbuffer_helpers.cc:364] Ignored output_format.\n")
        warnings.warn("Statistics for quantized inputs were expected")
    assert capfd.readouterr() == ("", "")
    with pytest.raises(ValueError) as error, quiet.silenced():
        os.write(2, b"I0000 noise\nE0000 00:00:1.2 123 convert.cc:1] loc(x): error: 'tfl.conv' op is broken\nW0 x\n")
        raise ValueError("conversion failed")
    assert str(error.value) == "conversion failed (loc(x): error: 'tfl.conv' op is broken)"
    assert capfd.readouterr() == ("", "")
    monkeypatch.setenv(quiet.VERBOSE_ENV, "1")
    with quiet.silenced():
        print("shown")
    assert capfd.readouterr().out == "shown\n"


def test_compress_writes_a_smaller_file_that_tflm_runs(quickstart, tmp_path):
    from hypertiny_keras.device.runtime import predict

    out, _ = quickstart
    source = out / "model_frozen_int8.tflite"
    result = _run("compress", source, "--codec", "int4", "--out", tmp_path / "m4.tflite")
    coded = (tmp_path / "m4.tflite").read_bytes()
    assert 0 < len(coded) < source.stat().st_size and "int4 weights" in result.stdout
    windows = np.load(out / "test_windows.npz")["windows"][:32]
    assert predict(coded, windows).shape == predict(source.read_bytes(), windows).shape
    _one_line_error(_run("compress", source, "--codec", "lut4", "--out", tmp_path / "l.tflite", check=False),
                    "would not save bytes")  # the quickstart's 16-wide filters are too small for tables
    assert not (tmp_path / "l.tflite").exists()
    _one_line_error(_run("compress", tmp_path / "none.tflite", "--codec", "int4", "--out", tmp_path / "x.tflite",
                         check=False), "none.tflite")


def test_patch_make_inspect_apply_and_refusals(quickstart, tmp_path):
    from hypertiny_keras.tflite.patch import code_buffers

    out, _ = quickstart
    base_path = out / "model_boot_int8.tflite"
    base = base_path.read_bytes()
    changed = bytearray(base)
    for offset, length in code_buffers(base).values():
        changed[offset:offset + length] = bytes((b + 3) % 256 for b in base[offset:offset + length])
    mine, key = tmp_path / "mine.tflite", tmp_path / "device.key"
    mine.write_bytes(bytes(changed))
    key.write_bytes(bytes(range(32)))
    made = _run("patch", "make", base_path, mine, "--key-file", key, "--counter", 7, "--out", tmp_path / "p.bin")
    patch = (tmp_path / "p.bin").read_bytes()
    assert made.stdout.startswith(f"{tmp_path / 'p.bin'}: {len(patch)} bytes") and len(patch) <= 51
    shown = json.loads(_run("patch", "inspect", tmp_path / "p.bin", "--key-file", key, "--json").stdout)
    assert shown["authenticated"] and shown["counter"] == 7 and shown["bytes"] == len(patch)
    _run("patch", "apply", base_path, tmp_path / "p.bin", "--key-file", key, "--out", tmp_path / "applied.tflite")
    assert (tmp_path / "applied.tflite").read_bytes() == bytes(changed)
    (tmp_path / "bad.bin").write_bytes(patch[:-1] + bytes([patch[-1] ^ 1]))
    for args, message in (
        (("apply", base_path, tmp_path / "bad.bin"), "tag does not match"),
        (("apply", base_path, tmp_path / "p.bin", "--last-counter", 7), "replayed"),
        (("apply", mine, tmp_path / "p.bin"), "another base file"),
    ):
        target = tmp_path / "never.tflite"
        _one_line_error(_run("patch", *args, "--key-file", key, "--out", target, check=False), message)
        assert not target.exists()
