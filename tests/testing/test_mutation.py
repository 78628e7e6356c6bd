"""Mutated `.tflite` files: every reader answers with one line, and nothing takes the process down.

320 mutants (seeded) of a small exported boot model: bit flips, truncations,
random bytes after the 8-byte header, zeroed ranges. Each goes through
`inspect_tflite`, `hypertiny inspect` (in-process, and a dozen as a real
process), `export_arduino` and `runtime.predict` (TFLM runs in its worker
process, so a segfault or a hang there is a `TFLMCrash`).
"""
import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from hypertiny_keras import export_tflite, hypertiny_pw
from hypertiny_keras.cli import main as cli
from hypertiny_keras.data.synthetic import make_beats
from hypertiny_keras.device import runtime
from hypertiny_keras.device.boards import format_inspection
from hypertiny_keras.testing.mutation import KINDS, READERS, check_mutant, mutate
from hypertiny_keras.tflite.flatbuffer import read_model
from hypertiny_keras.tflite.inspect import inspect_tflite

LENGTH = 64
SEED = 20260324
MUTANTS_PER_KIND = 80
#: Longest one TFLM request may take here, in seconds (a mutant can make TFLM loop forever).
TFLM_TIMEOUT_S = 10.0
#: `hypertiny inspect` runs as a real process for this many mutants of each kind.
SUBPROCESS_PER_KIND = 3


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """A small trained HyperTinyPW model exported `boot` (init subgraph, CALL_ONCE, resource variables)."""
    x, y = make_beats(300, length=LENGTH, seed=5)
    keras.utils.set_random_seed(0)
    model = hypertiny_pw((LENGTH, 1), 2, widths=(8, 12), stem_filters=8, code_dim=4, hidden_dim=8)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=64, epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("original") / "boot.tflite"
    export_tflite(model, x[:64], path, synthesis="boot", verify_samples=8)
    return path.read_bytes(), x[:2]


@pytest.fixture(scope="module")
def mutants(original, tmp_path_factory):
    """(kind, path, bytes) of every mutant, each written to its own file."""
    data, _ = original
    rng = np.random.default_rng(SEED)
    root = tmp_path_factory.mktemp("mutants")
    found = []
    for index in range(MUTANTS_PER_KIND * len(KINDS)):
        kind = KINDS[index % len(KINDS)]
        mutant = mutate(data, kind, rng)
        path = root / f"{index:03d}_{kind}.tflite"
        path.write_bytes(mutant)
        found.append((kind, path, mutant))
    assert len({m for _, _, m in found}) > 0.95 * len(found)
    return found


@pytest.fixture
def short_tflm_timeout(monkeypatch):
    monkeypatch.setattr(runtime.tflm_worker(), "timeout_s", TFLM_TIMEOUT_S)


def _one_line(error: BaseException) -> str:
    message = str(error)
    assert message and "\n" not in message, repr(message)
    return message


def test_mutants_are_seeded(original):
    data, _ = original
    first = [mutate(data, kind, np.random.default_rng(SEED)) for kind in KINDS]
    assert first == [mutate(data, kind, np.random.default_rng(SEED)) for kind in KINDS]


def test_inspect_tflite_reads_or_refuses_in_one_line(mutants):
    outcomes = {kind: {"read": 0, "refused": 0} for kind in KINDS}
    for kind, path, data in mutants:
        try:
            info = inspect_tflite(data, str(path))
        except ValueError as error:
            assert f"{path}: not a valid TFLite flatbuffer (" in _one_line(error)
            with pytest.raises(ValueError, match="not a valid TFLite flatbuffer"):
                read_model(data)
            outcomes[kind]["refused"] += 1
            continue
        json.dumps(info)
        assert format_inspection(info) and info["file_bytes"] == len(data)
        outcomes[kind]["read"] += 1
    assert all(counts["refused"] for counts in outcomes.values()), outcomes
    assert outcomes["flip"]["read"] and outcomes["zero"]["read"], outcomes  # some mutants stay readable


def test_hypertiny_inspect_in_process(mutants, capsys):
    for kind, path, _ in mutants:
        argv = ["inspect", str(path), *(["--json"] if kind == "zero" else [])]
        try:
            cli.run(argv)
            status = 0
        except SystemExit as exit_:
            status = exit_.code
        out, err = capsys.readouterr()
        if status == 0:
            assert out and not err, (path, err)
            continue
        assert status == 2 and not out, (path, status)
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"hypertiny inspect: error: {path}: not a valid"), (path, err)


def test_hypertiny_inspect_as_a_process(mutants):
    """A dozen mutants (some readable, most not) through the console command: exit 0 or 2, one line."""
    chosen = []
    for kind in KINDS:
        of_kind = [(path, data) for k, path, data in mutants if k == kind]
        readable = []
        for path, data in of_kind:
            try:
                inspect_tflite(data)
                readable.append(path)
            except ValueError:
                pass
        refused = [path for path, _ in of_kind if path not in readable]
        chosen += (readable[:1] + refused)[:SUBPROCESS_PER_KIND]
    for path in chosen:
        result = subprocess.run(
            [sys.executable, "-m", "hypertiny_keras.cli.main", "inspect", str(path)],
            capture_output=True, text=True, timeout=300,
        )
        assert result.returncode in (0, 2), (path, result.returncode, result.stderr[-2000:])
        if result.returncode == 0:
            assert result.stdout.startswith("file: ") and result.stderr == "", path
        else:
            assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr
            assert "not a valid TFLite flatbuffer" in result.stderr


def test_export_arduino_and_predict_survive_every_mutant(original, mutants, tmp_path, short_tflm_timeout):
    _, x = original
    counts = {reader: {} for reader in READERS}
    for _, path, _ in mutants:
        for reader, outcome in check_mutant(path, x, tmp_path / f"Sketch_{path.stem}").items():
            assert not outcome.startswith("broken"), (path, reader, outcome)
            counts[reader][outcome] = counts[reader].get(outcome, 0) + 1
    for reader_counts in counts.values():
        assert reader_counts.get("ValueError") and sum(reader_counts.values()) == len(mutants), counts
    # The worker came back after every crash: the original still runs.
    assert runtime.predict(original[0], x).shape == (2, 2)


def test_predict_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 4 + b"TFL3" + b"\x00" * 8)
    with pytest.raises(ValueError, match=f"^{bad}: not a valid TFLite flatbuffer"):
        runtime.predict(bad, np.zeros((1, LENGTH, 1), np.float32))


def test_cli_export_arduino_refuses_mutants_in_one_line(mutants, tmp_path, capsys, short_tflm_timeout):
    refused = []
    for _, path, data in mutants:
        try:
            inspect_tflite(data)
        except ValueError:
            refused.append(path)
    refused = refused[::10][:20]
    for path in refused:
        with pytest.raises(SystemExit) as exit_:
            cli.run(["export", "--arduino", str(tmp_path / "Sketch"), str(path)])
        err = capsys.readouterr().err.splitlines()
        assert exit_.value.code == 2 and len(err) == 1 and err[0].startswith("hypertiny export: error: "), err
    assert not (tmp_path / "Sketch").exists()
