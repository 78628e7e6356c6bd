"""The device's patch core (tflm_app/src/hypertiny_patch.cc), built natively with g++: its SHA-256 and
HMAC equal hashlib's, a valid patch gives Python's `apply_patch` bytes exactly, and every refusal has its
status and writes nothing."""
import hashlib
import hmac
import pathlib
import struct
import subprocess

import numpy as np
import pytest

from hypertiny_keras.tflite import patch as hp

HARNESS = pathlib.Path(__file__).with_name("patch_harness.cc")
KEY = bytes(range(100, 132))


@pytest.fixture(scope="module")
def harness(build_native) -> pathlib.Path:
    """The harness + the core, compiled as CI would (C++11, every warning an error)."""
    return build_native(HARNESS, ("hypertiny_patch.cc",))


def _run(harness, *args) -> subprocess.CompletedProcess:
    return subprocess.run([str(harness), *map(str, args)], capture_output=True, text=True, timeout=60)


def _apply(harness, tmp_path, base, patch, key=KEY, last_counter=0, in_place=False):
    """(status line, patched bytes or None) from the harness; it checks itself that a refusal writes nothing."""
    files = {"model": base, "patch": patch, "key": key}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    targets = hp.code_buffers(base)
    (tmp_path / "targets.txt").write_text("".join(f"{i} {o} {n}\n" for i, (o, n) in targets.items()))
    out = tmp_path / "out.tflite"
    out.unlink(missing_ok=True)
    done = _run(harness, "apply", tmp_path / "model", tmp_path / "patch", tmp_path / "key", last_counter,
                tmp_path / "targets.txt", out, *(["inplace"] if in_place else []))
    lines = done.stdout.splitlines()
    assert done.returncode in (0, 3), done.stdout + done.stderr
    assert (done.returncode == 0) == (lines[0] == "OK") == out.exists(), done.stdout
    return lines, (out.read_bytes() if out.exists() else None)


def _signed(body: bytes, key: bytes = KEY) -> bytes:
    return body + hmac.new(key, body, hashlib.sha256).digest()[:hp.TAG_BYTES]


def test_sha256_and_hmac_equal_hashlib(harness, tmp_path):
    rng = np.random.default_rng(0)
    cases = [b"", b"abc", b"a" * 1000, rng.integers(0, 256, 100_003, dtype=np.uint8).tobytes()]
    cases += [bytes(i % 251 for i in range(k)) for k in (55, 56, 63, 64, 65, 119, 120, 128)]  # padding edges
    for i, data in enumerate(cases):
        path = tmp_path / f"data{i}"
        path.write_bytes(data)
        assert _run(harness, "sha256", path).stdout.strip() == hashlib.sha256(data).hexdigest(), len(data)
    for key in (KEY, bytes(64), bytes(range(200))):  # short, a block, longer than a block (hashed first)
        (tmp_path / "key").write_bytes(key)
        for data in (b"", b"abc", cases[3][:5000]):
            (tmp_path / "data").write_bytes(data)
            expected = hmac.new(key, data, hashlib.sha256).hexdigest()
            assert _run(harness, "hmac", tmp_path / "key", tmp_path / "data").stdout.strip() == expected


def test_valid_patch_gives_the_python_bytes(harness, boot, tmp_path):
    base, personalized = boot
    patch = hp.make_patch(base, personalized, KEY, counter=7)
    expected = hp.apply_patch(base, patch, KEY, last_counter=6)
    assert expected == personalized
    lines, patched = _apply(harness, tmp_path, base, patch, last_counter=6)
    assert lines[0] == "OK" and patched == expected
    codes = hp.code_buffers(base)
    assert len(codes) >= 2  # several records, at offsets in any order
    values = sum(n for _, n in codes.values())
    assert lines[1] == f"counter 7 records {len(codes)} bytes {values} base {hp.base_id(base).hex()}"
    # in place (slot A itself in RAM) gives the same bytes
    assert _apply(harness, tmp_path, base, patch, last_counter=6, in_place=True)[1] == expected
    # a patch rewriting one code buffer only: the others keep the base's bytes
    index, (offset, length) = next(iter(codes.items()))
    one = bytearray(base)
    one[offset:offset + length] = personalized[offset:offset + length]
    single = hp.make_patch(base, bytes(one), KEY, counter=8)
    assert _apply(harness, tmp_path, base, single)[1] == bytes(one) == hp.apply_patch(base, single, KEY)


def test_every_refusal_has_its_status_and_writes_nothing(harness, boot, tmp_path):
    base, personalized = boot
    patch = hp.make_patch(base, personalized, KEY, counter=5)
    codes = hp.code_buffers(base)
    first, (_, first_length) = next(iter(codes.items()))
    not_code = next(i for i in range(1, 1000) if i not in codes)
    other = bytearray(base)
    other[-1] ^= 1  # another base file: the same code buffers, one byte changed elsewhere
    assert not any(o <= len(base) - 1 < o + n for o, n in codes.values())

    def header(count=1, counter=9, version=1, magic=b"HP"):
        return struct.pack("<2sB8sIB", magic, version, hp.base_id(base), counter, count)

    def record(index, values):
        return struct.pack("<HB", index, len(values)) + values

    values = bytes(range(1, first_length + 1))
    cases = {
        "tampered tag": ("BAD_TAG", patch[:-1] + bytes([patch[-1] ^ 1]), {}),
        "tampered record byte": ("BAD_TAG", patch[:20] + bytes([patch[20] ^ 0x40]) + patch[21:], {}),
        "tampered counter": ("BAD_TAG", patch[:11] + bytes([patch[11] ^ 1]) + patch[12:], {}),
        "wrong key": ("BAD_TAG", patch, {"key": bytes(32)}),
        "cut short (tag no longer last)": ("BAD_TAG", patch[:-3], {}),
        "appended bytes (tag no longer last)": ("BAD_TAG", patch + b"\0", {}),
        "truncated below header + tag": ("TRUNCATED", patch[:10], {}),
        "truncated to 23 bytes": ("TRUNCATED", patch[:23], {}),
        "bad magic": ("BAD_MAGIC", b"XX" + patch[2:], {}),
        "bad version": ("BAD_VERSION", patch[:2] + b"\x02" + patch[3:], {}),
        "wrong base": ("WRONG_BASE", patch, {"base": bytes(other)}),
        "replayed (equal)": ("REPLAYED", patch, {"last_counter": 5}),
        "replayed (older)": ("REPLAYED", patch, {"last_counter": 6}),
        "not a code buffer": ("NOT_A_CODE_BUFFER", _signed(header() + record(not_code, values)), {}),
        "wrong length": ("BAD_LENGTH", _signed(header() + record(first, values[:-1])), {}),
        "zero length": ("BAD_LENGTH", _signed(header() + record(first, b"")), {}),
        "duplicate": ("DUPLICATE", _signed(header(2) + record(first, values) + record(first, values)), {}),
        "trailing (signed)": ("TRAILING", _signed(header() + record(first, values) + b"\x05"), {}),
        "record past the tag (signed)": ("TRUNCATED", _signed(header(2) + record(first, values)), {}),
        "no record (signed)": ("TRUNCATED", _signed(header(0)), {}),
        "short key": ("BAD_ARGUMENT", patch, {"key": KEY[:15]}),
    }
    for name, (status, bad, options) in cases.items():
        lines, written = _apply(harness, tmp_path, options.get("base", base), bad, key=options.get("key", KEY),
                                last_counter=options.get("last_counter", 0))
        assert (lines[0], written) == (status, None), name
        # Python refuses the same patches
        with pytest.raises(hp.PatchError):
            hp.apply_patch(options.get("base", base), bad, options.get("key", KEY), options.get("last_counter", 0))
    # the crafted record is accepted once its buffer and length are right: the refusals above are the targets'
    lines, written = _apply(harness, tmp_path, base, _signed(header() + record(first, values)))
    assert lines[0] == "OK" and written == hp.apply_patch(base, _signed(header() + record(first, values)), KEY)
