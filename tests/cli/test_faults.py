"""The CLI fault suite: every class of bad input, through the real `hypertiny` command in a subprocess.

Each fault must end with exit status 2, one line on stderr naming the file
(or option) at fault, and every file in the folder byte for byte unchanged
(no file added, none removed, links and FIFOs left as they were).
"""
import json
import os
import pathlib
import shutil
import stat
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from hypertiny_keras.tflite.flatbuffer import read_model, write_model

HYPERTINY = [sys.executable, "-m", "hypertiny_keras.cli.main"]


def _run(*args, cwd=None, env=None):
    return subprocess.run([*HYPERTINY, *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A quickstart run (1 epoch, 400 beats): model.keras, boot/frozen .tflite with reports, test windows."""
    out = tmp_path_factory.mktemp("made")
    result = _run("quickstart", "--out", out, "--epochs", 1, "--beats", 400)
    assert result.returncode == 0, result.stderr[-3000:]
    np.save(out / "x.npy", np.load(out / "test_windows.npz")["windows"])
    legacy = subprocess.run([sys.executable, "-c", "import keras, hypertiny_keras, sys; "
                             "keras.saving.load_model(sys.argv[1]).save(sys.argv[2])", out / "model.keras",
                             out / "legacy.h5"], capture_output=True, text=True, timeout=600)
    assert legacy.returncode == 0, legacy.stderr[-2000:]
    return out


def _snapshot(folder: pathlib.Path) -> dict:
    """Every entry under `folder`: its kind and, for a regular file, its bytes; for a link, its target."""
    found = {}
    for path in sorted(folder.rglob("*")):
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            found[path] = ("link", os.readlink(path))
        elif stat.S_ISREG(mode):
            found[path] = ("file", path.read_bytes())
        else:
            found[path] = ("dir" if stat.S_ISDIR(mode) else "special", None)
    return found


def _fault(folder: pathlib.Path, *args, names: str, env=None) -> str:
    """Run the CLI in `folder`; assert exit 2, one stderr line holding `names`, the folder unchanged."""
    before = _snapshot(folder)
    result = _run(*args, cwd=folder, env=env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1, result.stderr[-2000:]
    assert names in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert _snapshot(folder) == before, "the user's files changed"
    return lines[0]


def _copy(made, folder, *names):
    for name in names:
        shutil.copyfile(made / name, folder / name)


# -- data loss and wrong acceptance ------------------------------------------------------------------------------


def test_export_refuses_to_overwrite_its_inputs(made, tmp_path):
    """Item 1: --out the model itself, or the data (also as FILE.npz:NAME)."""
    _copy(made, tmp_path, "model.keras", "x.npy", "test_windows.npz")
    shutil.copyfile(tmp_path / "model.keras", tmp_path / "k.keras")
    line = _fault(tmp_path, "export", "k.keras", "--data", "x.npy", "--out", "k.keras", names="k.keras")
    assert "input" in line
    _fault(tmp_path, "export", "model.keras", "--data", "x.npy", "--out", "x.npy", names="x.npy")
    _fault(tmp_path, "export", "model.keras", "--data", "test_windows.npz:windows", "--out", "test_windows.npz",
           names="test_windows.npz")
    os.link(tmp_path / "x.npy", tmp_path / "hard.npy")  # the same file under another name
    _fault(tmp_path, "export", "model.keras", "--data", "x.npy", "--out", "hard.npy", names="hard.npy")


def test_export_refuses_links_fifos_and_foreign_reports(made, tmp_path):
    """Items 2 and 3: a symlink or FIFO at --out or at its .json; a user's .json where the report would go."""
    _copy(made, tmp_path, "model.keras", "x.npy")
    (tmp_path / "victim.bin").write_bytes(b"keep me")
    (tmp_path / "link.tflite").symlink_to("victim.bin")
    line = _fault(tmp_path, "export", "model.keras", "--data", "x.npy", "--out", "link.tflite", names="link.tflite")
    assert "symbolic link" in line
    os.mkfifo(tmp_path / "fifo.tflite")
    line = _fault(tmp_path, "export", "model.keras", "--data", "x.npy", "--out", "fifo.tflite", names="fifo.tflite")
    assert "not a regular file" in line
    os.mkfifo(tmp_path / "r.json")
    _fault(tmp_path, "export", "model.keras", "--data", "x.npy", "--out", "r.tflite", names="r.json")
    (tmp_path / "cfg.json").write_text('{"mine": 1}')
    line = _fault(tmp_path, "export", "model.keras", "--data", "x.npy", "--out", "cfg.tflite", names="cfg.json")
    assert "not written by hypertiny" in line


def test_export_refuses_degenerate_calibration_data(made, tmp_path):
    """Item 5: all-zero data up front; data scaled by 1e-30 fails verification (collapsed scale, top-1 floor)."""
    _copy(made, tmp_path, "model.keras")
    x = np.load(made / "x.npy")
    np.save(tmp_path / "zero.npy", np.zeros_like(x))
    line = _fault(tmp_path, "export", "model.keras", "--data", "zero.npy", "--out", "z.tflite", names="zero.npy")
    assert "one value" in line
    np.save(tmp_path / "tiny.npy", x * np.float32(1e-30))
    line = _fault(tmp_path, "export", "model.keras", "--data", "tiny.npy", "--out", "t.tflite", names="t.tflite")
    assert "scale collapsed" in line or "top-1" in line


def test_export_refuses_a_name_too_long_before_converting(made, tmp_path):
    """Item 8: a name over the file system's limit fails up front, naming it (not a temporary file)."""
    _copy(made, tmp_path, "model.keras", "x.npy")
    name = "n" * 300 + ".tflite"
    line = _fault(tmp_path, "export", "model.keras", "--data", "x.npy", "--out", name, names="n" * 50)
    assert "the name has" in line and ".tmp" not in line


def test_export_writes_a_240_character_name(made, tmp_path):
    """Item 8: a long (allowed) name is written; its temporary file's name does not outgrow the limit."""
    _copy(made, tmp_path, "model.keras", "x.npy")
    name = "n" * 235 + ".tflite"
    result = _run("export", "model.keras", "--data", "x.npy", "--out", name, "--synthesis", "frozen", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / name).stat().st_size > 0 and (tmp_path / ("n" * 235 + ".json")).is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_arduino_test_vectors_are_validated(made, tmp_path):
    """Item 6: labels that do not fit int16, NaN labels, NaN windows."""
    _copy(made, tmp_path, "model_boot_int8.tflite", "x.npy")
    x = np.load(tmp_path / "x.npy")
    np.save(tmp_path / "big.npy", np.full(len(x), 70000))
    line = _fault(tmp_path, "export", "model_boot_int8.tflite", "--arduino", "S", "--windows", "x.npy",
                  "--labels", "big.npy", names="big.npy")
    assert "70000" in line
    np.save(tmp_path / "nan.npy", np.full(len(x), np.nan))
    _fault(tmp_path, "export", "model_boot_int8.tflite", "--arduino", "S", "--windows", "x.npy",
           "--labels", "nan.npy", names="nan.npy")
    bad = x.copy()
    bad[0, 0] = np.nan
    np.save(tmp_path / "nanx.npy", bad)
    _fault(tmp_path, "export", "model_boot_int8.tflite", "--arduino", "S", "--windows", "nanx.npy", names="nanx.npy")


def test_arduino_keeps_an_edited_core_copy_and_foreign_headers(made, tmp_path):
    """Item 7: an edited hypertiny_app.cc in the sketch is refused, not deleted; so is a user's model_ops.h."""
    _copy(made, tmp_path, "model_boot_int8.tflite")
    sketch = tmp_path / "S"
    sketch.mkdir()
    (sketch / "hypertiny_app.cc").write_text("// my changes\n")
    _fault(tmp_path, "export", "model_boot_int8.tflite", "--arduino", "S", names="hypertiny_app.cc")
    (sketch / "hypertiny_app.cc").unlink()
    (sketch / "model_ops.h").write_text("// mine\n")
    _fault(tmp_path, "export", "model_boot_int8.tflite", "--arduino", "S", names="model_ops.h")


@pytest.mark.parametrize("option", [("--epochs", "0"), ("--epochs", "-1"), ("--beats", "0"), ("--beats", "7")])
def test_quickstart_arguments_validated_before_any_work(tmp_path, option):
    """Item 11: no training, no folder."""
    _fault(tmp_path, "quickstart", "--out", "q", *option, names=option[0])
    assert not (tmp_path / "q").exists()


def _mutate(made, folder, name, change) -> str:
    model = read_model((made / "model_frozen_int8.tflite").read_bytes())
    change(model)
    (folder / name).write_bytes(write_model(model))
    return name


def _first(model, has):
    return next(t for t in model.subgraphs[0].tensors if has(t))


def _quantized(t):
    return t.quantization is not None and t.quantization.scale is not None and len(t.quantization.scale)


def _constant(model):
    return lambda t: model.buffers[t.buffer].data is not None and len(model.buffers[t.buffer].data) > 4


MUTATIONS = {
    "negative_scale": lambda m: setattr(_first(m, _quantized).quantization, "scale", [-0.5]),
    "nan_scale": lambda m: setattr(_first(m, _quantized).quantization, "scale", [float("nan")]),
    "negative_dimension": lambda m: setattr(m.subgraphs[0].tensors[0], "shape", [1, -3, 1]),
    "300_dimensions": lambda m: setattr(_first(m, _constant(m)), "shape", [2] * 300),
    "short_buffer": lambda m: setattr(m.buffers[_first(m, _constant(m)).buffer], "data",
                                      np.zeros(3, np.uint8)),
    "unknown_options": lambda m: setattr(m.subgraphs[0].operators[0], "builtinOptionsType", 250),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_inspect_and_compress_refuse_invalid_files(made, tmp_path, mutation):
    """Item 4: scales, dimensions, buffer lengths and option types are checked; the file is reported invalid."""
    name = _mutate(made, tmp_path, f"{mutation}.tflite", MUTATIONS[mutation])
    line = _fault(tmp_path, "inspect", name, names=name)
    assert "not a valid TFLite flatbuffer" in line
    _fault(tmp_path, "compress", name, "--codec", "int4", "--out", "c.tflite", names=name)


# -- reports carry a checksum -------------------------------------------------------------------------------------


def test_compress_in_place_removes_the_stale_report_and_inspect_checks_it(made, tmp_path):
    """Item 4: a report is used only for the file it describes (size and SHA-256)."""
    _copy(made, tmp_path, "model_boot_int8.tflite", "model_boot_int8.json")
    report = json.loads((tmp_path / "model_boot_int8.json").read_text())
    import hashlib

    assert report["sha256"] == hashlib.sha256((tmp_path / "model_boot_int8.tflite").read_bytes()).hexdigest()
    shown = _run("inspect", "model_boot_int8.tflite", cwd=tmp_path)
    assert f"arena: {report['arena_bytes']:,} bytes from model_boot_int8.json" in shown.stdout, shown.stderr
    saved = (tmp_path / "model_boot_int8.json").read_bytes()
    result = _run("compress", "model_boot_int8.tflite", "--codec", "int4", "--out", "model_boot_int8.tflite",
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "model_boot_int8.json").exists() and "removed" in result.stdout
    (tmp_path / "model_boot_int8.json").write_bytes(saved)  # the stale report put back by hand
    shown = _run("inspect", "model_boot_int8.tflite", cwd=tmp_path)
    assert shown.returncode == 0 and "arena:" not in shown.stdout
    assert "does not describe model_boot_int8.tflite" in shown.stderr


@pytest.mark.parametrize("arena", [-5, 1e400, "12", 0, 2.5])
def test_inspect_ignores_a_report_arena_that_is_not_a_size(made, tmp_path, arena):
    _copy(made, tmp_path, "model_boot_int8.tflite")
    report = json.loads((made / "model_boot_int8.json").read_text())
    report["arena_bytes"] = arena
    (tmp_path / "model_boot_int8.json").write_text(json.dumps(report).replace("Infinity", "1e400"))
    shown = _run("inspect", "model_boot_int8.tflite", cwd=tmp_path)
    assert shown.returncode == 0 and "arena:" not in shown.stdout
    assert len(shown.stderr.strip().splitlines()) == 1 and "arena_bytes" in shown.stderr


# -- messages that say what is wrong -------------------------------------------------------------------------------


def test_bad_model_files_one_line_naming_them(made, tmp_path):
    _copy(made, tmp_path, "x.npy", "model_boot_int8.tflite")
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as z:
        z.writestr("readme.txt", "not a model")
    (tmp_path / "empty.keras").write_bytes(b"")
    (tmp_path / "random.keras").write_bytes(np.random.default_rng(0).bytes(3000))
    (tmp_path / "cut.keras").write_bytes((made / "model.keras").read_bytes()[:5000])
    for name in ("other.keras", "empty.keras", "random.keras", "cut.keras"):
        line = _fault(tmp_path, "export", name, "--data", "x.npy", "--out", "o.tflite", names=name)
        assert "File not found" not in line and "KeyError" not in line
    line = _fault(tmp_path, "export", "model_boot_int8.tflite", "--data", "x.npy", "--out", "o.tflite",
                  names="model_boot_int8.tflite")
    assert "--arduino" in line and "TFSMLayer" not in line
    _copy(made, tmp_path, "legacy.h5")
    line = _fault(tmp_path, "export", "legacy.h5", "--data", "x.npy", "--out", "o.tflite", names="legacy.h5")
    assert "does not keep the generator shared" in line


def test_bad_data_and_paths_one_line(made, tmp_path):
    _copy(made, tmp_path, "model.keras", "model_boot_int8.tflite")
    with zipfile.ZipFile(tmp_path / "z.npy", "w") as z:
        z.writestr("a.txt", "x")
    line = _fault(tmp_path, "export", "model.keras", "--data", "z.npy", "--out", "o.tflite", names="z.npy")
    assert "<U" not in line
    os.mkfifo(tmp_path / "p.npy")
    line = _fault(tmp_path, "export", "model.keras", "--data", "p.npy", "--out", "o.tflite", names="p.npy")
    assert "no such file" not in line
    line = _fault(tmp_path, "compress", "model_boot_int8.tflite", "--codec", "int4", "--out", "nodir/x.tflite",
                  names="nodir/x.tflite")
    assert ".tmp" not in line
    (tmp_path / "file").write_text("a file")
    _fault(tmp_path, "export", "model_boot_int8.tflite", "--arduino", "file", names="file")
    line = _fault(tmp_path, "inspect", "model_boot_int8.tflite", "--plot", ".", names="--plot .")
    _fault(tmp_path, "inspect", "model_boot_int8.tflite", "--plot", "plot.txt", names="plot.txt")
    _fault(tmp_path, "inspect", "model_boot_int8.tflite", "--arena", "-100", names="--arena")


def test_corrupt_file_for_arduino_one_line(made, tmp_path):
    """A cut or invalid file given to --arduino: one line naming it, no sketch folder."""
    (tmp_path / "cut.tflite").write_bytes((made / "model_boot_int8.tflite").read_bytes()[:3000])
    _fault(tmp_path, "export", "cut.tflite", "--arduino", "S", names="cut.tflite")
    name = _mutate(made, tmp_path, "scale.tflite", MUTATIONS["negative_scale"])
    line = _fault(tmp_path, "export", name, "--arduino", "S", names=name)
    assert "NoneType" not in line and not (tmp_path / "S").exists()


def _ptbxl_csvs(data_root, folder, edit):
    """PTB-XL's two CSV files (no records: every fault below is found while reading the CSV)."""
    out = folder / "ptbxl"
    out.mkdir()
    for name in ("ptbxl_database.csv", "scp_statements.csv"):
        shutil.copyfile(data_root / "ptbxl" / name, out / name)
    lines = (out / "ptbxl_database.csv").read_text().splitlines(True)
    (out / "ptbxl_database.csv").write_text("".join(edit(lines)))
    return out


def test_data_summary_ptbxl_csv_faults_name_file_and_row(data_root, tmp_path):
    """Item 10 through the CLI: scp_codes that is not a dict, a repeated ecg_id (each names file and line)."""
    def not_a_dict(lines):
        header, first = lines[0], lines[1]
        column = header.rstrip("\n").split(",").index("scp_codes")
        fields = first.split('"')  # scp_codes is the quoted field of the row
        assert "{" in fields[1] and column > 0
        return [header, first.replace('"' + fields[1] + '"', "123")] + lines[2:]

    folder = tmp_path / "a"
    folder.mkdir()
    _ptbxl_csvs(data_root, folder, not_a_dict)
    line = _fault(folder, "data", "summary", "--dataset", "ptbxl", "--data-dir", "ptbxl", "--no-cache",
                  names="ptbxl_database.csv:2")
    assert "not a dict" in line
    folder = tmp_path / "b"
    folder.mkdir()
    _ptbxl_csvs(data_root, folder, lambda lines: lines[:3] + lines[2:])
    _fault(folder, "data", "summary", "--dataset", "ptbxl", "--data-dir", "ptbxl", "--no-cache",
           names="ptbxl_database.csv:4: ecg_id 2 repeats")
