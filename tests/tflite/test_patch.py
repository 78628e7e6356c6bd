"""Code patches: make -> apply reproduces the personalized file byte for byte; every bad patch is refused."""
import hashlib
import hmac
import struct

import keras
import numpy as np
import pytest

from hypertiny_keras import export_tflite, hypertiny_pw
from hypertiny_keras.data.synthetic import make_beats
from hypertiny_keras.device.runtime import run_tflm
from hypertiny_keras.tflite import patch as hp

KEY = bytes(range(32))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(base boot file, the same file with every code value changed) of a small dense-head model."""
    keras.utils.set_random_seed(0)
    x, y = make_beats(200, seed=0)
    model = hypertiny_pw(x.shape[1:], 2, widths=(8, 12, 12), code_dim=4, hidden_dim=8)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path_factory.mktemp("patch") / "boot.tflite"
    export_tflite(model, x[:64], path, synthesis="boot")
    base = path.read_bytes()
    personalized = bytearray(base)
    for offset, length in hp.code_buffers(base).values():
        values = np.frombuffer(base[offset:offset + length], np.int8)
        changed = np.clip(values.astype(int) // 2 + 17, -127, 127).astype(np.int8)
        personalized[offset:offset + length] = changed.tobytes()
    return base, bytes(personalized), x[:16]


def _signed(body: bytes) -> bytes:
    return body + hmac.new(KEY, body, hashlib.sha256).digest()[:hp.TAG_BYTES]


def test_make_then_apply_reproduces_the_personalized_file(files):
    base, personalized, x = files
    codes = hp.code_buffers(base)
    patch = hp.make_patch(base, personalized, KEY, counter=1)
    assert len(patch) == hp.patch_size([length for _, length in codes.values()]) <= 51
    assert hp.apply_patch(base, patch, KEY) == personalized
    info = hp.describe_patch(patch, KEY)
    assert info["authenticated"] and info["counter"] == 1 and sum(info["byte_split"].values()) == len(patch)
    assert hp.describe_patch(patch)["authenticated"] is None
    # the personalized file is a different model that TFLM runs
    inputs = np.clip(np.round(x * 40), -128, 127).astype(np.int8)
    assert not np.array_equal(run_tflm(base, inputs).outputs, run_tflm(personalized, inputs).outputs)


def test_every_bad_patch_is_refused_in_one_line(files):
    base, personalized, _ = files
    patch = hp.make_patch(base, personalized, KEY, counter=5)
    other = bytearray(base)
    other[-1] ^= 1  # another base file: same codes, one byte elsewhere
    codes = hp.code_buffers(base)
    not_code = next(i for i in range(1, 1000) if i not in codes)
    header = struct.pack("<2sB8sIB", b"HP", 1, hp.base_id(base), 9, 1)
    cases = {
        "tag does not match": patch[:-1] + bytes([patch[-1] ^ 1]),
        "tag does not match ": patch[:20] + bytes([patch[20] ^ 0x40]) + patch[21:],
        "truncated": patch[:10],
        "tag does not match  ": patch[:-3],
        "another base file": None,
        "replayed patch": None,
        "not a code tensor": _signed(header + struct.pack("<HB", not_code, 4) + b"\x01\x02\x03\x04"),
        "holds": _signed(header + struct.pack("<HB", next(iter(codes)), 3) + b"\x01\x02\x03"),
        "do not fill it": _signed(header + struct.pack("<HB", next(iter(codes)), 4) + b"\x01\x02\x03\x04\x05"),
        "not a HyperTinyPW patch": b"XX" + patch[2:],
    }
    for expected, bad in cases.items():
        with pytest.raises(hp.PatchError, match=expected.strip()) as error:
            if expected == "another base file":
                hp.apply_patch(bytes(other), patch, KEY)
            elif expected == "replayed patch":
                hp.apply_patch(base, patch, KEY, last_counter=5)
            else:
                hp.apply_patch(base, bad, KEY)
        assert "\n" not in str(error.value)
    with pytest.raises(hp.PatchError, match="tag does not match"):
        hp.apply_patch(base, patch, bytes(32))
    with pytest.raises(hp.PatchError, match="at least 16 bytes"):
        hp.apply_patch(base, patch, b"short")


def test_make_refuses_changes_outside_the_codes_and_no_change(files):
    base, personalized, _ = files
    changed = bytearray(personalized)
    changed[len(changed) // 2] ^= 0xFF
    outside = any(o <= len(changed) // 2 < o + n for o, n in hp.code_buffers(base).values())
    if not outside:
        with pytest.raises(hp.PatchError, match="outside the code tensors"):
            hp.make_patch(base, bytes(changed), KEY, 1)
    with pytest.raises(hp.PatchError, match="nothing to patch"):
        hp.make_patch(base, base, KEY, 1)
    with pytest.raises(hp.PatchError, match="counter"):
        hp.make_patch(base, personalized, KEY, 0)
    with pytest.raises(hp.PatchError, match="bytes, the base"):
        hp.make_patch(base, personalized + b"\0", KEY, 1)
