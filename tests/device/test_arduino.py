"""`export_arduino`, the HyperTinyPW library and the tflm_app sources: resolver, C array, test vectors,
includes, refusals, the library layout."""
import configparser
import inspect
import json
import math
import os
import pathlib
import re
import shutil
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from tflite_micro.python.tflite_micro.runtime import count_resource_variables
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from hypertiny_keras.device import sources
from hypertiny_keras.device.arduino import CORTEX_M_ARENA_FACTOR, RESOLVER_METHODS, export_arduino
from hypertiny_keras.device.arduino_libraries import ARDUINO_LIBRARIES, DEFAULT_ARDUINO_LIBRARY
from hypertiny_keras.device.runtime import io_quantization, run_tflm
from hypertiny_keras.export import export_tflite
from hypertiny_keras.layers import HyperPointwise, PointwiseGenerator
from hypertiny_keras.tflite.flatbuffer import builtin_code, op_names, read_model, write_model
from hypertiny_keras.tflite.inspect import inspect_tflite

TFLM_APP = sources.tflm_app()  # through importlib.resources, as an installed wheel finds it
CHECKOUT = pathlib.Path(__file__).resolve().parents[2] / "tflm_app"
GENERATED = {"model_data.h", "model_data.cc", "model_ops.h", "test_vectors.h", "arena_config.h", "tflm_library.h"}
STEPS, CHANNELS = 48, 1


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny trained model exported `boot` and `frozen`, each with its sketch."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, STEPS, CHANNELS)).astype("float32")
    y = (x[:, : STEPS // 2, 0].mean(1) > 0).astype("int32")
    inputs = keras.Input((STEPS, CHANNELS))
    h = keras.layers.Conv1D(8, 5, strides=2, activation="relu")(inputs)
    h = keras.layers.Conv1D(16, 1)(h)
    h = keras.layers.DepthwiseConv1D(3, activation="relu")(h)
    h = HyperPointwise(24, PointwiseGenerator(4, 16), activation="relu")(h)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(h))
    model = keras.Model(inputs, outputs)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    root = tmp_path_factory.mktemp("arduino")
    model.save(root / "model.keras")
    result = {"x": x, "y": y, "root": root, "keras": root / "model.keras"}
    for mode in ("boot", "frozen"):
        path = root / f"{mode}.tflite"
        export_tflite(model, x, path, synthesis=mode, verify_samples=16, dense_per_tensor=True)
        sketch = root / f"Sketch_{mode}"
        report = export_arduino(str(path), str(sketch), x[:5], y[:5])
        result[mode] = {"path": path, "data": path.read_bytes(), "sketch": sketch, "report": report}
    return result


def _array(text: str, name: str) -> np.ndarray:
    """Integer values of the C array `name` in `text` (decimal or hex)."""
    match = re.search(rf"\b{name}\[[^=]*=\s*\{{(.*?)\}};", text, re.S)
    assert match, f"{name} not found"
    return np.array([int(v, 0) for v in re.findall(r"-?0x[0-9a-f]+|-?\d+", match.group(1))])


def _define(text: str, name: str) -> int:
    return int(re.search(rf"#define {name} (\d+)", text).group(1))


@pytest.mark.parametrize("mode", ["boot", "frozen"])
def test_resolver_registers_exactly_the_models_ops(exported, mode):
    entry = exported[mode]
    text = (entry["sketch"] / "model_ops.h").read_text()
    by_method = {method: op for op, method in RESOLVER_METHODS.items()}
    # Plain registrations only (the 2023 TFLM of the Arduino libraries takes no
    # arguments); the core's resolver swaps in its own CALL_ONCE, READ_VARIABLE and ASSIGN_VARIABLE kernels.
    calls = re.findall(r"resolver\.(Add\w+)\(([^)]*)\)", text)
    assert calls and all(arg == "" for _, arg in calls)
    methods = [m for m, _ in calls]
    registered = [by_method[m] for m in methods]
    per_subgraph = op_names(read_model(entry["data"]))
    in_model = {name for names in per_subgraph for name in names}
    assert sorted(registered) == sorted(in_model)
    assert _define(text, "HYPERTINY_OP_COUNT") == len(methods) == len(in_model)
    variables = _define(text, "HYPERTINY_RESOURCE_VARIABLES")
    assert variables == count_resource_variables(entry["data"]) == inspect_tflite(entry["data"])["resource_variables"]
    if mode == "boot":
        # The init subgraph's ops are registered too; main alone would miss them.
        assert len(per_subgraph) == 2 and {"FULLY_CONNECTED", "ASSIGN_VARIABLE"} <= set(registered)
        assert "ASSIGN_VARIABLE" not in per_subgraph[0] and variables == 1
    else:
        assert len(per_subgraph) == 1 and variables == 0
    assert entry["report"]["ops"] == sorted(in_model)


def test_unregistrable_op_is_refused_and_nothing_written(exported, tmp_path):
    model = read_model(exported["frozen"]["data"])
    mean = next(op for op in model.subgraphs[0].operators if builtin_code(model, op) == schema.BuiltinOperator.MEAN)
    code = model.operatorCodes[mean.opcodeIndex]
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.LSH_PROJECTION
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(write_model(model))
    sketch = tmp_path / "Sketch"
    with pytest.raises(ValueError, match=r"cannot register.*LSH_PROJECTION \(subgraph 0\)"):
        export_arduino(str(bad), str(sketch), exported["x"][:2])
    assert not sketch.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tflite"]  # no staging folder left


def test_over_budget_is_refused_and_existing_sketch_untouched(exported, tmp_path):
    sketch = tmp_path / "Sketch"
    shutil.copytree(exported["frozen"]["sketch"], sketch)
    before = {p.name: p.read_bytes() for p in sketch.iterdir()}
    with pytest.raises(ValueError, match=r"exceeds the board's 262144 bytes of RAM"):
        export_arduino(str(exported["boot"]["path"]), str(sketch), arena_margin=100.0)
    with pytest.raises(ValueError, match=r"windows must have shape \(n, 48, 1\)"):
        export_arduino(str(exported["boot"]["path"]), str(sketch), exported["x"][:, :10])
    assert {p.name: p.read_bytes() for p in sketch.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Sketch"]


@pytest.mark.parametrize("mode", ["boot", "frozen"])
def test_model_array_parses_back_aligned_and_const(exported, mode):
    entry = exported[mode]
    source = (entry["sketch"] / "model_data.cc").read_text()
    header = (entry["sketch"] / "model_data.h").read_text()
    assert "alignas(16) const unsigned char g_model[] = {" in source
    assert "alignas(16) extern const unsigned char g_model[];" in header
    assert bytes(_array(source, "g_model").astype(np.uint8)) == entry["data"]
    assert int(re.search(r"g_model_len = (\d+);", source).group(1)) == len(entry["data"])


@pytest.mark.skipif(shutil.which("g++") is None or shutil.which("nm") is None, reason="needs g++ and nm")
def test_model_array_compiles_to_aligned_read_only_data(exported, tmp_path):
    """The compiler's view: same bytes, 16-byte aligned, in a read-only section."""
    sketch = exported["boot"]["sketch"]
    (tmp_path / "dump.cc").write_text(
        '#include <cstdint>\n#include <cstdio>\n#include "model_data.h"\n'
        "int main() {\n  if (reinterpret_cast<uintptr_t>(g_model) % 16 != 0) return 2;\n"
        "  return fwrite(g_model, 1, g_model_len, stdout) == g_model_len ? 0 : 3;\n}\n"
    )
    exe = tmp_path / "dump"
    subprocess.run(
        ["g++", "-std=c++17", "-fno-exceptions", "-fno-rtti", "-Wall", "-Werror", f"-I{sketch}",
         str(tmp_path / "dump.cc"), str(sketch / "model_data.cc"), "-o", str(exe)],
        check=True,
    )
    assert subprocess.run([str(exe)], capture_output=True, check=True).stdout == exported["boot"]["data"]
    symbols = subprocess.run(["nm", str(exe)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^[0-9a-f]+ R g_model$", symbols, re.M), "g_model is not in read-only data"


@pytest.mark.parametrize("mode", ["boot", "frozen"])
def test_vectors_equal_a_fresh_tflm_run(exported, mode):
    entry = exported[mode]
    text = (entry["sketch"] / "test_vectors.h").read_text()
    input_q, output_q = io_quantization(entry["data"])
    windows = input_q.quantize(exported["x"][:5])
    assert (_array(text, "kHypertinyTestWindows") == windows.ravel()).all()
    fresh = run_tflm(entry["data"], windows).outputs
    expected = _array(text, "kHypertinyTestExpected").reshape(fresh.shape)
    assert (expected == fresh).all()
    assert (_array(text, "kHypertinyTestLabels") == exported["y"][:5]).all()
    assert re.search(rf"kHypertinyOutputZeroPoint = {output_q.zero_point};", text)
    arena = (entry["sketch"] / "arena_config.h").read_text()
    assert "64-bit" in arena
    compiled, host = entry["report"]["arena_bytes"], entry["report"]["arena_measured_bytes"]
    assert _define(arena, "HYPERTINY_ARENA_BYTES") == compiled
    # The host figure corrected to 32 bits, plus the margin: never below the 64-bit figure itself.
    assert compiled == 16 * math.ceil(host * CORTEX_M_ARENA_FACTOR * 1.25 / 16) >= host
    assert entry["report"]["arena_board_bytes"] is None and "host" in entry["report"]["arena_note"]


def test_boot_and_lazy_give_identical_outputs(exported):
    """BOOT: one invoke on a zero window, then the windows; LAZY: the windows directly."""
    data = exported["boot"]["data"]
    input_q, _ = io_quantization(data)
    windows = input_q.quantize(exported["x"][:8])
    zero = input_q.quantize(np.zeros((1, *windows.shape[1:]), np.float32))
    boot = run_tflm(data, np.concatenate([zero, windows])).outputs[1:]
    lazy = run_tflm(data, windows).outputs
    assert (boot == lazy).all()


def test_sources_include_only_allowed_headers(exported):
    allowed = {
        line.strip()
        for line in (TFLM_APP / "allowed_includes.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    sketch = exported["boot"]["sketch"]
    files = sorted(TFLM_APP.glob("src/*")) + sorted(TFLM_APP.glob("examples/*/*.ino"))
    files += [sketch / name for name in exported["boot"]["report"]["files"]]
    assert len(files) >= 4 + 7
    found = {}
    for path in files:
        for header in re.findall(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', path.read_text(), re.M):
            found.setdefault(header, path.name)
    assert "tensorflow/lite/micro/micro_interpreter.h" in found
    assert {h: f for h, f in found.items() if h not in allowed} == {}
    generated_headers = {n for n in exported["boot"]["report"]["files"] if n.endswith(".h")}
    assert generated_headers <= allowed


def test_sketch_uses_the_library_and_keeps_an_edited_ino(exported, tmp_path):
    """The sketch: generated headers + the library example's .ino; the core stays in the library."""
    made = exported["boot"]["sketch"]
    assert sorted(p.name for p in made.iterdir()) == sorted(GENERATED | {f"{made.name}.ino"})
    assert exported["boot"]["report"]["files"] == sorted(GENERATED | {f"{made.name}.ino"})
    ino_text = (made / f"{made.name}.ino").read_text()
    assert ino_text == sources.example_sketch().read_text()
    assert "#include <HyperTinyPW.h>" in ino_text and "hypertiny arduino-library --out" in ino_text
    requires = exported["boot"]["report"]["requires"]
    assert "hypertiny arduino-library --out ~/Arduino/libraries/HyperTinyPW" in requires["HyperTinyPW"]
    assert "Chirale" in requires["Chirale_TensorFlowLite"]
    sketch = tmp_path / "Copy"
    shutil.copytree(made, sketch)
    (sketch / f"{made.name}.ino").rename(sketch / "Copy.ino")
    (sketch / "hypertiny_app.cc").write_text("// an edited copy of the core\n")
    ino = sketch / "Copy.ino"
    ino.write_text("// edited\n")
    before = {p.name: p.read_bytes() for p in sketch.iterdir()}
    with pytest.raises(ValueError, match="hypertiny_app.cc differs from the HyperTinyPW library"):
        export_arduino(str(exported["boot"]["path"]), str(sketch))  # a user's edit is never deleted
    assert {p.name: p.read_bytes() for p in sketch.iterdir()} == before
    for name in ("hypertiny_app.h", "hypertiny_app.cc"):  # an older export's unchanged copy of the core
        shutil.copyfile(sources.core_dir() / name, sketch / name)
    report = export_arduino(str(exported["boot"]["path"]), str(sketch))
    assert ino.read_text() == "// edited\n" and "Copy.ino" not in report["files"]
    assert "kHypertinyTestCount = 0;" in (sketch / "test_vectors.h").read_text()
    assert report["removed"] == ["hypertiny_app.h", "hypertiny_app.cc"]
    assert len(report["warnings"]) == 1 and "delete it and export again" in report["warnings"][0]
    assert exported["boot"]["report"]["warnings"] == []
    assert sorted(p.name for p in sketch.iterdir()) == sorted(GENERATED | {"Copy.ino"})


def test_library_layout_in_the_package_and_the_checkout():
    """tflm_app is an Arduino library (1.5 format) with a PlatformIO manifest, shipped inside the package."""
    assert TFLM_APP.resolve() == CHECKOUT.resolve()
    for name in sources.LIBRARY_FILES + sources.EMULATOR_FILES:
        assert (TFLM_APP / name).is_file(), name
    properties = _properties(TFLM_APP / "library.properties")
    assert properties["name"] == "HyperTinyPW" == json.loads((TFLM_APP / "library.json").read_text())["name"]
    manifest = json.loads((TFLM_APP / "library.json").read_text())
    assert properties["version"] == sources.library_version() == manifest["version"]
    assert properties["category"] == "Data Processing" and properties["includes"] == "HyperTinyPW.h"
    assert {"sentence", "paragraph", "author", "maintainer", "url", "architectures", "depends"} <= set(properties)
    assert properties["depends"] == "Chirale_TensorFLowLite"  # the Library Manager's (registered) name
    package = configparser.ConfigParser()
    package.read(CHECKOUT.parent / "setup.cfg")
    assert properties["version"] == package["metadata"]["version"]  # the library's version follows the package's
    # The core knows no model: none of the sketch's generated headers is included by src/.
    for path in (TFLM_APP / "src").iterdir():
        included = set(re.findall(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', path.read_text(), re.M))
        assert not included & GENERATED, path.name
    assert not (TFLM_APP / "arduino").exists()  # the sketch moved to examples/


def _properties(path: pathlib.Path) -> dict[str, str]:
    """An Arduino library.properties file (key=value lines) as a dict."""
    parser = configparser.ConfigParser(interpolation=None, delimiters=("=",))
    parser.optionxform = str
    parser.read_string("[library]\n" + path.read_text())
    return dict(parser["library"])


def test_cli_arduino_library_writes_the_folder_and_the_zip(tmp_path):
    out, archive = tmp_path / "libraries" / "HyperTinyPW", tmp_path / "HyperTinyPW.zip"
    done = subprocess.run(
        [sys.executable, "-m", "hypertiny_keras.cli.main", "arduino-library", "--out", str(out), "--zip", str(archive)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout and "Add .ZIP Library" in done.stdout
    written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert written == sorted(sources.LIBRARY_FILES)
    assert {"library.properties", "library.json", "src/hypertiny_app.cc",
            "examples/HyperTinyPW/HyperTinyPW.ino"} <= set(written)
    assert _properties(out / "library.properties")["name"] == "HyperTinyPW"
    assert json.loads((out / "library.json").read_text())["examples"] == [
        "examples/HyperTinyPW/HyperTinyPW.ino", "examples/HyperTinyPW_BLE/HyperTinyPW_BLE.ino"]
    for folder in sources.SKETCHES.values():
        example = (out / "examples" / folder / f"{folder}.ino").read_text()
        # Without generated headers the example stops with a message saying how to make them.
        assert '__has_include("model_data.h")' in example and "#error" in example
        assert "hypertiny export --arduino" in example
    for name in sources.LIBRARY_FILES:
        assert (out / name).read_bytes() == (TFLM_APP / name).read_bytes()
    with zipfile.ZipFile(archive) as zipped:
        assert sorted(zipped.namelist()) == sorted(f"HyperTinyPW/{name}" for name in sources.LIBRARY_FILES)
    nothing = subprocess.run([sys.executable, "-m", "hypertiny_keras.cli.main", "arduino-library"],
                             capture_output=True, text=True, timeout=120)
    assert nothing.returncode == 2 and "needs --out DIR" in nothing.stderr


def test_cli_export_arduino_with_defaults_takes_a_default_quickstart_boot_file(exported, tmp_path):
    """`hypertiny quickstart` then `hypertiny export --arduino` with no extra flag: the default library accepts it."""
    from hypertiny_keras.cli.quickstart import run_quickstart

    per_tensor = inspect.signature(run_quickstart).parameters["dense_per_tensor"].default
    assert per_tensor is True
    path = tmp_path / "model_boot_int8.tflite"
    model = keras.saving.load_model(exported["keras"])
    export_tflite(model, exported["x"], path, synthesis="boot", verify_samples=8, dense_per_tensor=per_tensor)
    np.savez(tmp_path / "test_windows.npz", windows=exported["x"][:4], labels=exported["y"][:4])
    sketch = tmp_path / "HyperTinyPW"
    done = subprocess.run(
        [sys.executable, "-m", "hypertiny_keras.cli.main", "export", "--arduino", str(sketch), str(path),
         "--windows", str(tmp_path / "test_windows.npz")],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["library"] == DEFAULT_ARDUINO_LIBRARY and report["test_windows"] == 4
    assert "hypertiny arduino-library --out ~/Arduino/libraries/HyperTinyPW" in done.stderr
    assert (sketch / "HyperTinyPW.ino").is_file() and not (sketch / "hypertiny_app.cc").exists()


def test_library_selects_the_header_the_sketch_includes(exported, tmp_path):
    sketch = exported["boot"]["sketch"]
    assert exported["boot"]["report"]["library"] == DEFAULT_ARDUINO_LIBRARY == "chirale"
    assert '#include "tflm_library.h"' in (sketch / f"{sketch.name}.ino").read_text()
    assert "#include <Chirale_TensorFlowLite.h>" in (sketch / "tflm_library.h").read_text()
    other = tmp_path / "Other"
    report = export_arduino(str(exported["boot"]["path"]), str(other), library="arduino-examples")
    assert report["library"] == "arduino-examples" and "tflm_library.h" in report["files"]
    text = (other / "tflm_library.h").read_text()
    assert "#include <TensorFlowLite.h>" in text and "Chirale" not in text
    with pytest.raises(ValueError, match="unknown Arduino library 'mbed'.*arduino-examples, chirale"):
        export_arduino(str(exported["boot"]["path"]), str(tmp_path / "Never"), library="mbed")
    assert not (tmp_path / "Never").exists()
    allowed = (TFLM_APP / "allowed_includes.txt").read_text().split()
    assert all(library.header in allowed for library in ARDUINO_LIBRARIES.values() if library.header)


def test_per_channel_classifier_is_refused_for_the_arduino_libraries(exported, tmp_path):
    """Their 2023 TFLM would use the first scale for every channel of a FULLY_CONNECTED weight."""
    path = tmp_path / "per_channel.tflite"
    model = keras.saving.load_model(exported["keras"])
    export_tflite(model, exported["x"], path, synthesis="frozen", verify_samples=8,
                  dense_per_tensor=False)  # the converter's per-channel scales (--dense-per-channel)
    for library in ("chirale", "arduino-examples"):
        refusal = rf"^{path}: the {library} library's TFLM .* per-channel ones in subgraph 0"
        with pytest.raises(ValueError, match=refusal):
            export_arduino(str(path), str(tmp_path / "Refused"), library=library)
    assert not (tmp_path / "Refused").exists()
    report = export_arduino(str(path), str(tmp_path / "Modern"), library="tflite-micro")
    assert "#include" not in (tmp_path / "Modern" / "tflm_library.h").read_text().split("#define")[-1]
    assert report["library"] == "tflite-micro"


def test_look_up_table_weights_register_decode_and_are_refused_without_it(exported, tmp_path):
    """A lut4 file (tflite_micro.compression) needs DECODE, a CUSTOM op the 2023 libraries lack."""
    from hypertiny_keras.tflite import weight_codecs

    model = keras.Sequential([keras.Input((STEPS, CHANNELS)), keras.layers.Conv1D(8, 5, activation="relu"),
                              keras.layers.Conv1D(64, 1, activation="relu"), keras.layers.Conv1D(64, 1),
                              keras.layers.GlobalAveragePooling1D(), keras.layers.Dense(3)])
    path = tmp_path / "wide.tflite"
    export_tflite(model, exported["x"], path, synthesis="frozen", verify_samples=8, dense_per_tensor=True)
    lut = tmp_path / "lut.tflite"
    lut.write_bytes(weight_codecs.lut4(path.read_bytes()))
    assert "TFLM_DECODE" in op_names(read_model(lut.read_bytes()))[0]
    with pytest.raises(ValueError, match=rf"^{lut}: the chirale library's TFLM .* no DECODE operator"):
        export_arduino(str(lut), str(tmp_path / "Refused"), library="chirale")
    assert not (tmp_path / "Refused").exists()
    export_arduino(str(lut), str(tmp_path / "Modern"), library="tflite-micro")
    ops = (tmp_path / "Modern" / "model_ops.h").read_text()
    assert "resolver.AddDecode()" in ops and "TFLM_DECODE" in ops


def test_missing_device_sources_give_one_clear_error(tmp_path, monkeypatch):
    """A wheel without its package data: one line naming what is missing and how to fix it."""
    (tmp_path / "tflm_app" / "src").mkdir(parents=True)
    (tmp_path / "tflm_app" / "library.properties").write_text("name=HyperTinyPW\n")
    monkeypatch.setattr(sources.importlib.resources, "files", lambda package: tmp_path)
    sources.tflm_app.cache_clear()
    try:
        with pytest.raises(sources.DeviceSourcesError, match=r"lacks library\.json, README\.md, .*reinstall") as error:
            sources.example_sketch()
        assert "\n" not in str(error.value)
    finally:
        monkeypatch.undo()
        sources.tflm_app.cache_clear()
    assert sources.tflm_app() == TFLM_APP


PATCH_CHECK = r"""
#include <cstdio>
#include <vector>
#include "hypertiny_patch.h"
#include "patch_config.h"

static std::vector<uint8_t> slurp(const char* path) {
  std::vector<uint8_t> data;
  FILE* f = fopen(path, "rb");
  for (int c; f && (c = fgetc(f)) != EOF;) data.push_back(static_cast<uint8_t>(c));
  if (f) fclose(f);
  return data;
}

int main(int argc, char** argv) {
  if (argc != 3) return 3;
  std::vector<uint8_t> model = slurp(argv[1]), patch = slurp(argv[2]);
  if (model.size() != HYPERTINY_PATCH_MODEL_BYTES) return 4;
  HypertinyPatchInfo info;
  HypertinyPatchStatus status = hypertiny_patch_check(patch.data(), patch.size(), model.data(), model.size(),
                                                      kHypertinyPatchKey, kHypertinyPatchKeyBytes, 0,
                                                      kHypertinyPatchTargets, kHypertinyPatchTargetCount, &info);
  printf("%s\n", hypertiny_patch_status_name(status));
  return 0;
}
"""


def test_patch_key_writes_a_patch_table_the_core_accepts(exported, tmp_path):
    """`patch_key`: patch_config.h holds the key and the base's code buffers; the core checks a real patch with it."""
    from hypertiny_keras.tflite.patch import code_buffers, make_patch

    boot, key = exported["boot"], bytes(range(100, 132))
    sketch = tmp_path / "Patched"
    report = export_arduino(str(boot["path"]), str(sketch), patch_key=key)
    header = (sketch / "patch_config.h").read_text()
    assert "patch_config.h" in report["files"] and _define(header, "HYPERTINY_PATCH_MODEL_BYTES") == len(boot["data"])
    assert bytes(_array(header, "kHypertinyPatchKey").astype(np.uint8)) == key
    targets = _array(header, "kHypertinyPatchTargets").reshape(-1, 3)
    assert {int(b): (int(o), int(n)) for b, o, n in targets} == code_buffers(boot["data"])
    assert report["budget"]["ram_used_bytes"] == report["arena_bytes"] + len(boot["data"])

    changed = bytearray(boot["data"])
    for offset, length in code_buffers(boot["data"]).values():
        changed[offset:offset + length] = bytes((b + 1) % 256 for b in changed[offset:offset + length])
    (tmp_path / "ok.bin").write_bytes(make_patch(boot["data"], bytes(changed), key, 1))
    (tmp_path / "other.bin").write_bytes(make_patch(boot["data"], bytes(changed), bytes(32), 1))
    (tmp_path / "check.cc").write_text(PATCH_CHECK)
    binary = tmp_path / "check"
    subprocess.run(["g++", "-std=c++11", "-Wall", "-Werror", "-I", str(TFLM_APP / "src"), "-I", str(sketch),
                    str(tmp_path / "check.cc"), str(TFLM_APP / "src" / "hypertiny_patch.cc"), "-o", str(binary)],
                   check=True, capture_output=True, timeout=300)
    for patch, status in (("ok.bin", "OK"), ("other.bin", "BAD_TAG")):
        run = subprocess.run([str(binary), str(boot["path"]), str(tmp_path / patch)], capture_output=True, text=True)
        assert run.returncode == 0 and run.stdout.strip() == status, (patch, run.stdout, run.stderr)

    # Without a key the table of the earlier export goes (its offsets describe this model only).
    again = export_arduino(str(boot["path"]), str(sketch))
    assert "patch_config.h" in again["removed"] and not (sketch / "patch_config.h").exists()
    with pytest.raises(ValueError, match="no code tensors"):
        export_arduino(str(exported["frozen"]["path"]), str(tmp_path / "Frozen"), patch_key=key)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        export_arduino(str(boot["path"]), str(tmp_path / "Short"), patch_key=b"short")
    assert not (tmp_path / "Frozen").exists() and not (tmp_path / "Short").exists()


def test_test_patch_writes_the_patched_models_outputs_for_the_emulator(exported, tmp_path):
    """`test_patch`: patch_test.h holds the patch and the TFLM wheel's outputs of the patched file (what the
    emulator harness compares the board with); a patch the key did not sign, or no key or windows, writes nothing."""
    from hypertiny_keras.device.runtime import io_quantization, run_tflm
    from hypertiny_keras.tflite.patch import PatchError, apply_patch, code_buffers, make_patch

    boot, key = exported["boot"], bytes(range(100, 132))
    changed = bytearray(boot["data"])
    for offset, length in code_buffers(boot["data"]).values():
        changed[offset:offset + length] = np.random.default_rng(0).integers(-127, 128, length, np.int8).tobytes()
    patch = make_patch(boot["data"], bytes(changed), key, 7)
    sketch = tmp_path / "Tried"
    report = export_arduino(str(boot["path"]), str(sketch), exported["x"][:5], patch_key=key, test_patch=patch)
    header = (sketch / "patch_test.h").read_text()
    assert "patch_test.h" in report["files"]
    assert bytes(_array(header, "kPatchTestPatch").astype(np.uint8)) == patch
    assert int(re.search(r"kPatchTestCounter = (\d+)", header).group(1)) == 7
    windows = io_quantization(boot["data"])[0].quantize(exported["x"][:5])
    want = run_tflm(apply_patch(boot["data"], patch, key), windows).outputs
    got = _array(header, "kPatchTestExpected").reshape(want.shape)
    assert np.array_equal(got, want)
    assert not np.array_equal(got, _array((sketch / "test_vectors.h").read_text(), "kHypertinyTestExpected")
                              .reshape(want.shape))  # the codes changed what the model says
    for kwargs, message in (({"patch_key": bytes(32), "test_patch": patch}, "tag"),
                            ({"patch_key": key, "test_patch": patch[:-1]}, "tag"),
                            ({"test_patch": patch}, "needs patch_key"),
                            ({"windows": None, "patch_key": key, "test_patch": patch}, "needs test windows")):
        target = tmp_path / f"Bad{len(message)}{len(kwargs)}"
        with pytest.raises((PatchError, ValueError), match=message):
            export_arduino(str(boot["path"]), str(target), **{"windows": exported["x"][:5], **kwargs})
        assert not target.exists()
    # Without test_patch, the earlier export's patch_test.h goes with it.
    again = export_arduino(str(boot["path"]), str(sketch), exported["x"][:5], patch_key=key)
    assert "patch_test.h" in again["removed"] and not (sketch / "patch_test.h").exists()


def test_ble_sketch_is_the_ble_example_and_requires_arduinoble(exported, tmp_path):
    """`sketch="ble"`: the .ino is the BLE example (patches through the same core calls); ArduinoBLE is required."""
    boot = exported["boot"]
    sketch = tmp_path / "Radio"
    report = export_arduino(str(boot["path"]), str(sketch), patch_key=bytes(range(32)), sketch="ble")
    ino = (sketch / "Radio.ino").read_text()
    assert ino == sources.example_sketch("ble").read_text()
    assert ino == (CHECKOUT / "examples" / "HyperTinyPW_BLE" / "HyperTinyPW_BLE.ino").read_text()
    for call in ("#include <ArduinoBLE.h>", "#include <HyperTinyPW.h>", '#include "tflm_library.h"',
                 "hypertiny_setup(", "hypertiny_classify(", "hypertiny_apply_patch(g_slots", "HypertinyPatchSlots",
                 '__has_include("patch_config.h")', "#error"):
        assert call in ino, call
    assert sorted(p.name for p in sketch.iterdir()) == sorted(GENERATED | {"patch_config.h", "Radio.ino"})
    assert report["sketch"] == "ble" and exported["boot"]["report"]["sketch"] == "serial"
    assert set(report["requires"]) == {"HyperTinyPW", "Chirale_TensorFlowLite", "ArduinoBLE"}
    assert "arduino-cli lib install ArduinoBLE" in report["requires"]["ArduinoBLE"]
    assert "ArduinoBLE" not in exported["boot"]["report"]["requires"]
    assert "<ArduinoBLE.h>" not in sources.example_sketch().read_text()

    # A re-export as the Serial sketch keeps the (BLE) .ino and says so.
    again = export_arduino(str(boot["path"]), str(sketch), sketch="serial")
    assert (sketch / "Radio.ino").read_text() == ino and "Radio.ino" not in again["files"]
    assert len(again["warnings"]) == 1 and "not the 'serial' sketch" in again["warnings"][0]
    with pytest.raises(ValueError, match="^unknown sketch 'wifi'; known: ble, serial$"):
        export_arduino(str(boot["path"]), str(tmp_path / "Wifi"), sketch="wifi")
    assert not (tmp_path / "Wifi").exists()


def test_cli_export_ble_sketch_with_a_patch_key(exported, tmp_path):
    """`--sketch ble --patch-key-file`: the BLE .ino, patch_config.h, and ArduinoBLE among the libraries to install."""
    key = tmp_path / "device.key"
    key.write_bytes(bytes(range(7, 39)))
    command = [sys.executable, "-m", "hypertiny_keras.cli.main", "export", str(exported["boot"]["path"]),
               "--arduino", str(tmp_path / "Radio"), "--patch-key-file", str(key)]
    done = subprocess.run(command + ["--sketch", "ble"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["sketch"] == "ble" and "  ArduinoBLE: Library Manager" in done.stderr
    assert "<ArduinoBLE.h>" in (tmp_path / "Radio" / "Radio.ino").read_text()
    header = (tmp_path / "Radio" / "patch_config.h").read_text()
    assert bytes(_array(header, "kHypertinyPatchKey").astype(np.uint8)) == key.read_bytes()
    wrong = subprocess.run(command + ["--sketch", "wifi"], capture_output=True, text=True, timeout=300)
    assert wrong.returncode == 2 and "invalid choice: 'wifi'" in wrong.stderr


def test_readme_documents_the_ble_service_of_the_sketch():
    """tflm_app/README.md's BLE table names the UUIDs the sketch defines, and the sketch the README's."""
    readme = (TFLM_APP / "README.md").read_text()
    ino = sources.example_sketch("ble").read_text()
    base = re.search(r'#define HYPERTINY_UUID\(n\) "a5e1000" #n "(-[0-9a-f-]+)"', ino).group(1)
    in_sketch = {int(n) for n in re.findall(r"HYPERTINY_UUID\((\d)\)", ino)}
    in_readme = {int(n) for n in re.findall(rf"a5e1000(\d){base}", readme)}
    assert in_sketch == in_readme == {1, 2, 3, 4, 5, 6}


@pytest.mark.skipif(
    not os.environ.get("HYPERTINY_ARDUINO_SOURCES") or shutil.which("arm-none-eabi-g++") is None,
    reason="needs HYPERTINY_ARDUINO_SOURCES (ArduinoCore-mbed, ArduinoCore-API, ArduinoBLE, Chirale_TensorFlowLite "
    "checkouts) and arm-none-eabi-g++ (not in CI)",
)
def test_serial_and_ble_examples_compile_for_the_nano_33_ble(exported, tmp_path):
    """benchmarks/arduino_compile.py: both sketches compile (and link) with the mbed_nano core's flags, no warnings."""
    log = tmp_path / "compile.log"
    done = subprocess.run(
        [sys.executable, str(CHECKOUT.parent / "benchmarks" / "arduino_compile.py"), "--model",
         str(exported["boot"]["path"]), "--build", os.environ.get("HYPERTINY_ARDUINO_BUILD", str(tmp_path / "build")),
         "--out", "", "--log", str(log)],
        capture_output=True, text=True, timeout=3600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    text = log.read_text()
    for name in ("HyperTinyPW_serial", "HyperTinyPW_ble"):
        assert re.search(rf"^{name}: compiled, \d+ files .*, 0 warnings", text, re.M), text
        assert re.search(rf"^{name}: link \w+ .*: flash \d+ B, RAM \d+ B", text, re.M), text
    assert "ArduinoBLE" in re.search(r"^HyperTinyPW_ble: compiled.*$", text, re.M).group(0)


def test_recorded_compile_log_names_its_sources_and_matches_the_readme():
    """tests/fixtures/arduino/compile_nano33ble.log (benchmarks/arduino_compile.py): both sketches compiled with no
    warning of ours, the source commits are named, and tflm_app/README.md's size table is the log's."""
    log = (CHECKOUT.parent / "tests" / "fixtures" / "arduino" / "compile_nano33ble.log").read_text()
    commits = dict(re.findall(r"^source (\S+): ([0-9a-f]{40}) \(", log, re.M))
    assert set(commits) == {"ArduinoCore-mbed", "ArduinoCore-API", "ArduinoBLE", "Chirale_TensorFlowLite"}
    readme = (TFLM_APP / "README.md").read_text()
    sizes = {}
    for name, label in (("serial", "Serial, `HyperTinyPW.ino`"), ("ble", "BLE, `HyperTinyPW_BLE.ino`")):
        compiled = re.search(rf"^HyperTinyPW_{name}: compiled, (\d+) files .*, (\d+) warnings", log, re.M)
        files, warnings = compiled.groups()
        flash, ram = re.search(rf"^HyperTinyPW_{name}: link .*: flash (\d+) B, RAM (\d+) B", log, re.M).groups()
        assert warnings == "0"
        row = [int(v.replace(",", "")) for v in re.search(rf"^\| {re.escape(label)} \| (.*) \|$", readme, re.M)
               .group(1).split(" | ")]
        assert row == [int(files), int(flash), int(ram)], name
        sizes[name] = (int(flash), int(ram))
    extra_flash, extra_ram = (sizes["ble"][i] - sizes["serial"][i] for i in (0, 1))
    assert f"{extra_flash:,} B more flash" in readme and f"{extra_ram:,} B more static RAM" in readme
