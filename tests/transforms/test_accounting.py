"""Packed-byte accounting (Eq. 4 / Eq. 6) by hand, and against a real .tflite."""
import math

import keras
import numpy as np
import pytest

from hypertiny_keras import HyperPointwise, PointwiseGenerator, byte_table, export_tflite, packed_bytes


def _tiny(head="dense"):
    keras.utils.set_random_seed(0)
    generator = PointwiseGenerator(3, 5, rank=2 if head == "factorized" else None)
    inputs = keras.Input((16, 1))
    x = keras.layers.Conv1D(4, 3, padding="same", name="stem")(inputs)            # 12 + 4 bias
    x = keras.layers.DepthwiseConv1D(3, padding="same", name="dw")(x)             # 12 + 4 bias
    x = keras.layers.Conv1D(6, 1, name="pw1")(x)                                  # 24 + 6 bias
    x = HyperPointwise(7, generator, head=head, name="pw2")(x)                    # code 3, head, 7 bias
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(2, name="fc")(x))                # 14 + 2 bias


def test_packed_bytes_is_ceil_of_bits():
    assert packed_bytes(7, 6) == 6 and packed_bytes(7, 4) == 4 and packed_bytes(7, 8) == 7
    assert packed_bytes(0, 4) == 0 and packed_bytes(1, 1) == 1
    with pytest.raises(ValueError):
        packed_bytes(3, 0)


@pytest.mark.parametrize("head", ["dense", "factorized"])
def test_hand_computed_table(head):
    table = byte_table(_tiny(head), bits=(4, 6, 8))
    rows = 5 if head == "dense" else 2  # d_h or rank
    for b in (4, 6, 8):
        def c(n):
            return math.ceil(n * b / 8)

        expected = {
            "codes": c(3),
            "generator": c(3 * 5) + 4 * 5 + (c(5 * 2) if head == "factorized" else 0),
            "heads": c(rows * 42),
            "pointwise": c(24),
            "conv": c(12),
            "depthwise": c(12),
            "classifier": c(14),
            "biases": 4 * (4 + 4 + 6 + 7 + 2),
            "other": 0,
        }
        assert {role: row[b] for role, row in table.by_role.items()} == expected
        assert table.total[b] == sum(expected.values())
        twin = table.total[b] - expected["codes"] - expected["generator"] - expected["heads"] + c(42)
        assert table.stored_twin[b] == twin
        assert table.saved[b] == twin - table.total[b] < 0  # a per-layer head stores more than its kernel
    assert "stored twin" in str(table) and table.to_dict()["total"]["8"] == table.total[8]


def test_accounting_matches_the_tflite_bytes(tmp_path):
    model = _tiny("factorized")
    x = np.random.default_rng(0).normal(size=(64, 16, 1)).astype("float32")
    model.compile("adam", "mse")
    model.fit(x, np.random.default_rng(1).normal(size=(64, 2)), epochs=3, verbose=0)  # non-zero, distinct biases
    table = byte_table(model, bits=(8,))
    boot = export_tflite(model, x, tmp_path / "boot.tflite")
    frozen = export_tflite(model, x, tmp_path / "frozen.tflite", synthesis="frozen")
    for role in ("codes", "generator", "heads", "pointwise", "conv", "depthwise", "classifier", "biases"):
        assert boot.bytes_by_role[role] == table.by_role[role][8], role
    assert frozen.bytes_by_role["pointwise"] == table.by_role["pointwise"][8] + 7 * 6
    assert boot.packed_bytes["total"]["8"] == table.total[8]


@pytest.mark.parametrize("head", ["lowrank_shared", "kronecker_shared"])
def test_shared_banks_are_counted_once_in_the_table_and_the_file(tmp_path, head):
    keras.utils.set_random_seed(0)
    generator = PointwiseGenerator(3, 2, activation="linear")
    kernel_generator = {"class_name": head, "config": {"rank": 2}}
    inputs = keras.Input((16, 1))
    x = keras.layers.Conv1D(6, 3, padding="same", name="stem")(inputs)
    for i in (2, 3, 4):  # three 6 x 6 layers: one bank (2 x 6 x 2 values) and one right factor (6 x 2)
        x = HyperPointwise(6, generator, head=kernel_generator, activation="relu", name=f"pw{i}")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="fc")(keras.layers.GlobalAveragePooling1D()(x)))
    x = np.random.default_rng(0).normal(size=(64, 16, 1)).astype("float32")
    model.compile("adam", "mse")
    model.fit(x, np.random.default_rng(1).normal(size=(64, 2)), epochs=3, verbose=0)
    table = byte_table(model, bits=(8,))
    rows, cols = (6, 6) if head == "lowrank_shared" else (2 * 2, 3 * 3)  # kronecker: 6 = 2 x 3 on both sides
    assert table.by_role["codes"][8] == 3 * 3
    assert table.by_role["generator"][8] == 3 * 2 + 4 * 2 + 2 * rows * 2
    assert table.by_role["heads"][8] == cols * 2
    assert table.stored_twin[8] == table.total[8] - 3 * 3 - (3 * 2 + 4 * 2 + 2 * rows * 2) - cols * 2 + 3 * 36
    boot = export_tflite(model, x, tmp_path / "boot.tflite")
    for role in ("codes", "generator", "heads", "conv", "classifier", "biases"):
        assert boot.bytes_by_role[role] == table.by_role[role][8], role
