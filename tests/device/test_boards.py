"""The file report a TinyML engineer reads: per-operator table, MACs, flash/RAM splits against a board."""
import json
import subprocess
import sys

import keras
import numpy as np
import pytest

import hypertiny_keras as ht
from hypertiny_keras.device.boards import BOARDS, flash_split, format_inspection, get_board, ram_split
from hypertiny_keras.device.runtime import TFLMError, io_quantization, run_tflm, tflm_arena_bytes
from hypertiny_keras.models import ds_cnn
from hypertiny_keras.tflite.inspect import inspect_tflite

X = np.random.default_rng(0).normal(size=(48, 49, 10)).astype("float32")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A briefly trained DS-CNN (so BatchNorm folds into non-zero biases), hyperized, exported boot."""
    keras.utils.set_random_seed(0)
    stored = ds_cnn((49, 10), 4, width=12, blocks=3, generated=False)
    stored.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    stored.fit(X, np.arange(len(X)) % 4, epochs=2, verbose=0)
    model, _ = ht.hyperize(stored)
    out = tmp_path_factory.mktemp("report")
    return model, ht.export_tflite(model, X, out / "boot.tflite"), out / "boot.tflite"


def _keras_macs(model):
    """MACs of the model's convolutions and dense layers from their Keras shapes."""
    total = 0
    for layer in model.layers:
        out = int(np.prod(layer.output.shape[1:]))
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            total += out * int(np.prod(layer.kernel_size))
        elif isinstance(layer, (keras.layers.Conv2D, ht.HyperPointwise)):
            k = int(np.prod(layer.kernel_size)) if hasattr(layer, "kernel_size") else 1
            total += out * k * int(layer.input.shape[-1])
        elif isinstance(layer, keras.layers.Dense):
            total += out * int(layer.input.shape[-1])
    return total


def test_per_operator_table_and_macs(exported):
    model, report, path = exported
    info = inspect_tflite(path.read_bytes())
    assert info["macs"]["steady"] == _keras_macs(model) == report.macs["steady"]
    # Synthesis: per generated layer, g (d_z x d_h) and the head (d_h x C_out C_in).
    g = model.get_layer("pw2").generator
    assert info["macs"]["synthesis"] == 2 * (g.code_dim * g.hidden_dim + g.hidden_dim * 12 * 12)
    overhead = info["bytes_by_role"]["flatbuffer_overhead"]
    assert sum(row["bytes"] for row in info["layers"]) + overhead == len(path.read_bytes())
    convs = [row for row in info["layers"] if row["operator"] == "DEPTHWISE_CONV_2D"]
    assert len(convs) == 3 and all(row["parameters"] >= 3 * 3 * 12 for row in convs)


def test_flash_split_ram_split_and_board_shares(exported):
    _, report, path = exported
    info = inspect_tflite(path.read_bytes())
    assert sum(flash_split(info).values()) == report.file_bytes
    text = format_inspection(info, "nano33ble", report.arena_bytes)
    board = get_board("nano33ble")
    assert board.flash_bytes == 1 << 20 and board.ram_bytes == 256 << 10
    share = 100 * report.file_bytes / board.flash_bytes
    assert f"flash: {report.file_bytes:,} bytes ({share:.2f}% of nano33ble)" in text
    assert f"RAM: {report.arena_bytes:,} bytes" in text and "generated kernels" in text
    assert "AVERAGE_POOL_2D" in text and "MACs:" in text
    assert "% of board" in report.format("nano33ble")
    with pytest.raises(ValueError, match="unknown board 'uno'; known: "):
        get_board("uno")
    assert set(BOARDS) >= {"nano33ble"}
    png = report.plot(path.with_suffix(".png"))
    assert png.stat().st_size > 10_000


def test_ram_counts_the_generated_kernels_once(exported, tmp_path):
    """A boot file's reported RAM is the smallest arena the host TFLM runs it in: its kernels are inside it.

    TFLM takes each resource variable's buffer from the interpreter's arena,
    so adding the kernels to the arena again would report RAM in which a
    smaller arena (report - 16 B) still runs; here it must not.
    """
    _, report, path = exported
    data = path.read_bytes()
    info = inspect_tflite(data)
    generated = info["generated_weight_ram_bytes"]
    assert generated > 0
    ram = sum(ram_split(info, report.arena_bytes).values())
    assert ram == report.arena_bytes == tflm_arena_bytes(data)
    assert f"RAM: {ram:,} bytes" in report.format()
    x = io_quantization(data)[0].quantize(X[:2])
    run_tflm(data, x, arena_size=ram)
    with pytest.raises(TFLMError):
        run_tflm(data, x, arena_size=ram - 16)
    # The kernels occupy the arena: the boot file needs at least its frozen twin's arena plus them.
    frozen = ht.export_tflite(exported[0], X, tmp_path / "frozen.tflite", synthesis="frozen")
    assert report.arena_bytes >= frozen.arena_bytes + generated


def test_byte_table_biases_match_the_file(exported):
    """BatchNorm folds into int32 biases: byte_table counts them as the file holds them, nothing as 'other'."""
    model, report, _ = exported
    table = ht.byte_table(model, bits=(8,))
    assert table.by_role["biases"][8] == report.bytes_by_role["biases"]
    assert table.by_role["other"][8] == 0
    for role in ("codes", "generator", "heads", "pointwise", "conv", "depthwise", "classifier"):
        assert table.by_role[role][8] == report.bytes_by_role[role], role


def test_cli_inspect_board_and_plot(exported, tmp_path):
    _, report, path = exported
    png = tmp_path / "bars.png"
    inspect = [sys.executable, "-m", "hypertiny_keras.cli.main", "inspect", str(path)]
    run = subprocess.run([*inspect, "--board", "nano33ble", "--plot", str(png)], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    assert f"arena: {report.arena_bytes:,} bytes from boot.json" in run.stdout and png.stat().st_size > 10_000
    bad = subprocess.run([*inspect, "--board", "uno"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "unknown board 'uno'" in bad.stderr
    as_json = json.loads(subprocess.run([*inspect, "--json"], capture_output=True, text=True, timeout=120).stdout)
    assert as_json["macs"]["steady"] == report.macs["steady"]


def test_plot_budget_leaves_the_users_backend_and_figures_alone(exported, tmp_path):
    """A notebook's backend is never switched, nor its pyplot figures touched."""
    _, _, path = exported
    code = (
        "import sys, matplotlib; matplotlib.use('svg'); import matplotlib.pyplot as plt; plt.figure()\n"
        "from hypertiny_keras.device.boards import plot_budget\n"
        "from hypertiny_keras.tflite.inspect import inspect_tflite\n"
        "plot_budget(inspect_tflite(open(sys.argv[1], 'rb').read()), sys.argv[2], arena_bytes=12000)\n"
        "print(matplotlib.get_backend(), plt.get_fignums())"
    )
    png = tmp_path / "budget.png"
    run = subprocess.run([sys.executable, "-c", code, str(path), str(png)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["svg", "[1]"] and png.read_bytes()[:4] == b"\x89PNG"
