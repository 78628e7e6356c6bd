"""The emulated-board check (`tflm_app/emulator`, `hypertiny emulate`).

CI has neither the TFLM sources nor QEMU, so these tests check what can be
checked without them: the Makefile builds a kernel for every operator the
exporter can register, bad input gives one clear line, and the parser reads
logs the emulator really printed (tests/fixtures/emulator, recorded with
tflite-micro 90b983c2 and CMSIS-NN 99f736a6 on the sketches of the default
quickstart, seed 0, with the library's core: HypertinyConfig). With
`HYPERTINY_EMULATOR_SOURCES` set and the tools installed, the last test runs
the real thing.
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from hypertiny_keras.device import emulator, sources
from hypertiny_keras.device.arduino import RESOLVER_METHODS
from hypertiny_keras.device.emulator import EmulatorError, emulate, parse_log, summarize

MAKEFILE = sources.emulator_dir() / "Makefile"
LOGS = pathlib.Path(__file__).parents[1] / "fixtures" / "emulator"


def _make_list(name: str) -> list[str]:
    """Words of the Makefile variable `name` (a `:=` assignment over continued lines)."""
    text = MAKEFILE.read_text().replace("\\\n", " ")
    match = re.search(rf"^{name} := (.*)$", text, re.M)
    assert match, f"{name} not in {MAKEFILE}"
    return match.group(1).split()


def test_makefile_builds_a_kernel_for_every_registrable_operator():
    table = dict(entry.split("=") for entry in _make_list("KERNEL_TABLE"))
    assert set(table) == set(RESOLVER_METHODS), set(table) ^ set(RESOLVER_METHODS)
    # CMSIS-NN replaces kernels the table builds, never adds one it does not.
    assert set(_make_list("CMSIS_NN_KERNELS")) <= set(table.values())


def test_arduino_library_build_leaves_out_what_board_cc_replaces():
    left_out = " ".join(_make_list("LIB_NOT_TARGET"))
    for platform_file in ("debug_log.cpp", "micro_time.cpp", "system_setup.cpp"):  # board.cc has these hooks
        assert platform_file in left_out
    assert "$(L)/peripherals/%" in left_out  # the Arduino-only sources (Wire, Serial)
    assert "-DBOARD_DEBUG_LOG_STRING" in MAKEFILE.read_text()  # 2023 TFLM's DebugLog(const char*)
    assert "BOARD_DEBUG_LOG_STRING" in (sources.emulator_dir() / "board.cc").read_text()


def test_recorded_boot_log_parses_to_its_figures():
    result = parse_log((LOGS / "quickstart_boot_cmsis.log").read_text())
    assert result["done"] and result["failures"] == 0
    assert result["calibration"]["expected"] == 1_000_000
    assert abs(result["calibration"]["measured"] - 1_000_000) <= 40  # one tick of resolution
    tests = result["model"]["tests"]
    for mode in ("BOOT", "LAZY"):
        m = result["modes"][mode]
        assert m["setup"]["status"] == "ok" and m["vectors"] == {
            "passed": tests, "failed": 0, "failures": [], "max_lsb": 0, "class_differs": 0}
        assert m["setup"]["needed"] == m["setup"]["used"] + 16 <= m["setup"]["arena"]
        assert m["inference"]["steady_n"] == 3 * tests - 1
    boot, lazy = result["modes"]["BOOT"]["inference"], result["modes"]["LAZY"]["inference"]
    # BOOT synthesised in setup: its first classify is a steady one; LAZY's pays the synthesis.
    assert boot["first"] - boot["steady_median"] <= 80
    assert abs(lazy["first"] - (lazy["steady_median"] + lazy["synthesis"])) <= 0.01 * lazy["first"]
    # The per-operator profile accounts for the whole steady invoke and the synthesis.
    summary = summarize(result)
    assert 0.98 * boot["steady_median"] <= summary["profiled_ops_insns"] <= boot["steady_median"]
    call_once = [e for e in result["profile"]["first"] if e["op"] == "CALL_ONCE"]
    assert len(call_once) == 1 and abs(call_once[0]["insns"] - boot["synthesis"]) <= 0.01 * boot["synthesis"]
    inside = sum(e["insns"] for e in result["profile"]["first"] if e["depth"] == 1)
    assert 0.98 * call_once[0]["insns"] <= inside <= call_once[0]["insns"]
    assert {"FULLY_CONNECTED", "ASSIGN_VARIABLE"} <= {e["op"] for e in result["profile"]["first"] if e["depth"] == 1}
    assert summary["passed"] == summary["checked"] == 2 * tests


def test_recorded_frozen_log_has_no_synthesis_and_a_smaller_arena():
    frozen = parse_log((LOGS / "quickstart_frozen_cmsis.log").read_text())
    boot = parse_log((LOGS / "quickstart_boot_cmsis.log").read_text())
    assert frozen["modes"]["LAZY"]["inference"]["synthesis"] == 0
    assert "CALL_ONCE" not in frozen["ops"] and "READ_VARIABLE" in boot["ops"]
    assert frozen["modes"]["BOOT"]["setup"]["variables"] == 0
    assert frozen["modes"]["BOOT"]["setup"]["used"] < boot["modes"]["BOOT"]["setup"]["used"]
    # The core's READ_VARIABLE copies nothing (the filter is the kernel): at most two timer ticks (40
    # instructions each) per read, where TFLM's copied each 768 B kernel in about 700 instructions.
    ratio = boot["modes"]["BOOT"]["inference"]["steady_median"] / frozen["modes"]["BOOT"]["inference"]["steady_median"]
    assert 1.0 <= ratio <= 1.001
    assert boot["ops"].get("READ_VARIABLE", 0) <= 80 * boot["modes"]["BOOT"]["setup"]["variables"]


def test_recorded_patch_log_refuses_every_bad_patch_and_runs_the_patched_model():
    """quickstart_patch_cmsis.log: the default quickstart's boot file, test vectors of another synthetic wearer, a
    38-byte codes-only patch made by `personalize` + `codes_file` + `make_patch`, on the emulated board."""
    result = parse_log((LOGS / "quickstart_patch_cmsis.log").read_text())
    tests = result["model"]["tests"]
    assert result["done"] and result["failures"] == 0 and tests == 16
    cases = {c["case"]: c for c in result["patch"]}
    expected = {"tampered": "BAD_TAG", "cut": "BAD_TAG", "short": "TRUNCATED", "truncated": "TRUNCATED",
                "wrong_base": "WRONG_BASE", "out_of_bounds": "NOT_A_CODE_BUFFER", "valid": "OK",
                "replayed": "REPLAYED", "tampered_tag": "BAD_TAG", "valid_lazy": "OK"}
    assert {name: c["status"] for name, c in cases.items()} == expected
    for name, case in cases.items():
        assert emulator.patch_case_ok(case, tests), case
        # Before the valid patch the base keeps running (its own vectors); from it on, the patched model.
        patched = name in ("valid", "replayed", "tampered_tag", "valid_lazy")
        assert case["vectors"]["model"] == ("patched" if patched else "base") and case["patched"] == patched
        assert case["counter"] == (1 if patched else 0)
    # Re-synthesis: the valid patch in BOOT = an HMAC, a copy of the model and a setup that synthesises the kernels.
    boot = result["modes"]["BOOT"]
    valid = cases["valid"]
    assert valid["synthesis"] == boot["inference"]["synthesis"]
    assert valid["synthesis"] < valid["insns"] < boot["setup"]["insns"] + 100_000
    # The base is hashed once, at the first patch; later patches cost an HMAC only (no hash of the model).
    assert cases["tampered"]["insns"] > 50 * cases["cut"]["insns"]
    assert cases["wrong_base"]["insns"] < 2 * cases["cut"]["insns"]
    # LAZY: the first vector after the patch pays the synthesis.
    lazy_first = cases["valid_lazy"]["vectors"]["first"]
    assert abs(lazy_first - (boot["inference"]["steady_median"] + valid["synthesis"])) <= 0.01 * lazy_first
    summary = summarize(result)["patch"]
    assert summary["as_expected"] == summary["cases"] == 10 and summary["resynthesis_insns"] == valid["synthesis"]
    # A vector that differs after a case fails that case.
    broken = (LOGS / "quickstart_patch_cmsis.log").read_text().replace(
        "PATCH_VECTORS after=wrong_base model=base passed=16 failed=0", "PATCH_VECTORS after=wrong_base model=base "
        "passed=15 failed=1")
    assert summarize(parse_log(broken))["patch"]["as_expected"] == 9


def test_parse_log_reads_failures_and_refuses_other_text():
    log = (LOGS / "quickstart_boot_cmsis.log").read_text()
    broken = log.replace("n=3 pass=0 result=pass", "n=3 pass=0 result=FAIL", 1).replace("DONE failures=0", "")
    result = parse_log(broken)
    assert result["modes"]["BOOT"]["vectors"]["failed"] == 1 and not result["done"]
    assert summarize(result)["passed"] == summarize(result)["checked"] - 1
    # A failure with its scores: how far off, and whether the top class moved.
    off = re.sub(r"n=4 pass=0 result=pass insns=(\d+)",
                 r"n=4 pass=0 result=FAIL insns=\1 scores=5,-7 expected=-2,3", log)
    vectors = parse_log(off)["modes"]["BOOT"]["vectors"]
    assert vectors["failed"] == 1 and vectors["max_lsb"] == 10 and vectors["class_differs"] == 1
    with pytest.raises(EmulatorError, match="no line of the emulator harness"):
        parse_log("Segmentation fault\n")


def _sketch(tmp_path) -> pathlib.Path:
    sketch = tmp_path / "sketch"
    sketch.mkdir()
    for name in emulator.SKETCH_FILES:
        (sketch / name).write_text("")
    return sketch


def test_format_result_says_why_no_inference_ran():
    log = "\n".join([
        "CALIBRATION expected=1000000 measured=1000000",
        "MODEL bytes=38032 input=256 output=2 tests=16",
        "LOG hypertiny: AllocateTensors failed (arena 13392 bytes, 2 resource variables)",
        "LOG hypertiny: setup failed: allocate tensors",
        "SETUP mode=BOOT status=allocate tensors insns=14760 arena=13392 used=0 needed=0 variables=2",
        "LOG hypertiny: AllocateTensors failed (arena 13392 bytes, 2 resource variables)",
        "LOG hypertiny: setup failed: allocate tensors",
        "SETUP mode=LAZY status=allocate tensors insns=14360 arena=13392 used=0 needed=0 variables=2",
        "DONE failures=2",
    ])
    result = parse_log(log)
    result.update(summary=summarize(result), sketch="S", kernels="cmsis", opt="-O2", log=log)
    text = emulator.format_result(result)
    assert text.splitlines()[0] == "S (cmsis kernels, -O2): 0/32 test vectors match the TFLM Python wheel"
    assert "setup: BOOT allocate tensors, LAZY allocate tensors" in text
    assert text.count("AllocateTensors failed (arena 13392 bytes") == 1


def test_emulate_names_what_is_missing(tmp_path, monkeypatch):
    with pytest.raises(EmulatorError, match="no such folder"):
        emulate(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "model_data.cc").write_text("")
    with pytest.raises(EmulatorError, match=r"lacks model_data\.h.*hypertiny export --arduino"):
        emulate(tmp_path / "half")
    with pytest.raises(EmulatorError, match="kernels must be one of"):
        emulate(_sketch(tmp_path), kernels="fast")
    monkeypatch.delenv(emulator.SOURCES_ENV, raising=False)
    monkeypatch.setattr(emulator, "check_tools", lambda: None)
    with pytest.raises(EmulatorError, match="no sources"):
        emulate(tmp_path / "sketch")
    with pytest.raises(EmulatorError, match=r"TFLM_ROOT .*tflite-micro checkout"):
        emulate(tmp_path / "sketch", sources=tmp_path)


def test_emulate_refuses_what_is_not_an_arduino_library(tmp_path, monkeypatch):
    monkeypatch.setattr(emulator, "check_tools", lambda: None)
    sketch = _sketch(tmp_path)
    (tmp_path / "lib" / "src" / "tensorflow" / "lite" / "micro").mkdir(parents=True)
    with pytest.raises(EmulatorError, match=r"not an Arduino TFLM library \(src/third_party/flatbuffers/include"):
        emulate(sketch, arduino_library=tmp_path / "lib")
    with pytest.raises(EmulatorError, match="CMSIS-NN kernels only"):
        emulate(sketch, kernels="reference", arduino_library=tmp_path / "lib")


def test_emulate_names_missing_tools_and_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EmulatorError, match=r"arm-none-eabi-gcc.*apt-get install .*gcc-arm-none-eabi"):
        emulate(_sketch(tmp_path))


def test_cli_emulate_error_is_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "hypertiny_keras.cli.main", "emulate", str(tmp_path / "nowhere")],
        capture_output=True, text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "no such folder" in done.stderr


@pytest.mark.skipif(
    not os.environ.get(emulator.SOURCES_ENV) or shutil.which("qemu-system-arm") is None,
    reason=f"needs {emulator.SOURCES_ENV} and the Cortex-M tools (not in CI)",
)
def test_emulated_board_matches_the_python_wheel_and_sets_the_arena(tmp_path):
    import numpy as np

    from hypertiny_keras.cli.quickstart import run_quickstart
    from hypertiny_keras.device.arduino import MEASURED_ARENA_MARGIN, export_arduino
    from hypertiny_keras.tflite import patch as hp

    out = tmp_path / "qs"
    run_quickstart(str(out), epochs=1, beats=600)
    base = (out / "model_boot_int8.tflite").read_bytes()
    personalized, key = bytearray(base), bytes(range(40, 72))  # every code value redrawn: a patch of the base
    for offset, length in hp.code_buffers(base).values():
        personalized[offset:offset + length] = np.random.default_rng(3).integers(-127, 128, length, np.int8).tobytes()
    with np.load(out / "test_windows.npz") as saved:
        report = export_arduino(str(out / "model_boot_int8.tflite"), str(tmp_path / "sketch"),
                                windows=saved["windows"], emulator_sources=os.environ[emulator.SOURCES_ENV],
                                emulator_build=tmp_path / "build", library="tflite-micro", patch_key=key,
                                test_patch=hp.make_patch(base, bytes(personalized), key, counter=5))
    needed = report["arena_board_bytes"]
    assert needed < report["arena_measured_bytes"]  # 32-bit needs less than the 64-bit host
    assert needed <= report["arena_bytes"] < needed * (1 + MEASURED_ARENA_MARGIN) + 16
    assert "emulated Cortex-M4" in (tmp_path / "sketch" / "arena_config.h").read_text()
    result = emulate(tmp_path / "sketch", build_dir=tmp_path / "build")
    assert result["summary"]["passed"] == result["summary"]["checked"] > 0 and result["failures"] == 0
    assert result["summary"]["arena_compiled_bytes"] == report["arena_bytes"]
    assert result["summary"]["patch"]["as_expected"] == result["summary"]["patch"]["cases"] == 10
