"""The device's patch store (tflm_app/src/hypertiny_patch_store.cc), built natively with g++ (and ASan/UBSan)
over a simulated NOR flash: after a power cut at any point of a save the device boots the previous patch or
the new one, never a mix; the counter survives resets; damaged, half-written and foreign records are ignored.
The model running after each boot is compared with Python's `apply_patch` bytes of the patch it claims."""
import hashlib
import math
import pathlib
import subprocess

import numpy as np
import pytest

from hypertiny_keras.tflite import patch as hp

HARNESS = pathlib.Path(__file__).with_name("patch_store_harness.cc")
KEY = bytes(range(7, 39))
HEADER = 8  # magic + length, before the write-unit padding
COMMIT = 4  # "HPOK", before the write-unit padding


@pytest.fixture(scope="module")
def harness(build_native, tmp_path_factory) -> pathlib.Path:
    """The harness + the store + the patch core, C++11, every warning an error, with ASan and UBSan (an
    out-of-bounds read of a page stops it)."""
    return build_native(HARNESS, ("hypertiny_patch_store.cc", "hypertiny_patch.cc"),
                        ("-fsanitize=address,undefined", "-fno-sanitize-recover=all"))


@pytest.fixture(scope="module")
def patches(boot):
    """{counter: patch} for counters 5, 7, 9, 11, each with other code values (distinct models)."""
    base, _ = boot
    made = {}
    for counter in (5, 7, 9, 11):
        rng = np.random.default_rng(counter)
        personalized = bytearray(base)
        for offset, length in hp.code_buffers(base).values():
            personalized[offset:offset + length] = rng.integers(-127, 128, length, dtype=np.int8).tobytes()
        made[counter] = hp.make_patch(base, bytes(personalized), KEY, counter=counter)
    return made


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _running(base: bytes, patch: bytes | None) -> str:
    """sha256 of the model that must run: Python's apply_patch of `patch`, or the base."""
    return _sha(base if patch is None else hp.apply_patch(base, patch, KEY, last_counter=0))


def _device(harness, tmp_path, base, script, files, page_bytes=4096, unit=4) -> list[str]:
    """Runs the harness's script (lines; `files` are written beside it by name) on a fresh, erased flash."""
    (tmp_path / "model").write_bytes(base)
    (tmp_path / "key").write_bytes(KEY)
    (tmp_path / "targets.txt").write_text(
        "".join(f"{i} {o} {n}\n" for i, (o, n) in hp.code_buffers(base).items()))
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    lines = [line if " " not in line else line.split(" ", 1)[0] + " " + " ".join(
        str(tmp_path / word) if word in files else word for word in line.split(" ")[1:]) for line in script]
    (tmp_path / "script").write_text("\n".join(lines) + "\n")
    done = subprocess.run([str(harness), str(page_bytes), str(unit), str(tmp_path / "model"), str(tmp_path / "key"),
                           str(tmp_path / "targets.txt"), str(tmp_path / "script")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr
    return done.stdout.splitlines()


def _boot(line: str) -> dict:
    """A boot line ("... <status> counter C last L pages P0 P1 model SHA") as a dict."""
    words = line.split()
    at = words.index("counter")
    return {"status": words[at - 1], "counter": int(words[at + 1]), "last": int(words[at + 3]),
            "pages": tuple(words[at + 5:at + 7]), "model": words[at + 8]}


def test_first_boot_alternating_saves_and_replay_after_reset(harness, boot, patches, tmp_path):
    base, _ = boot
    files = {f"p{c}": p for c, p in patches.items()}
    script = ["boot", "patch p5", "boot", "patch p7", "boot", "patch p9", "boot", "patch p11", "boot",
              "patch p9", "patch p11", "boot", "patch p5", "save p9", "save p11", "boot"]
    out = _device(harness, tmp_path, base, script, files)
    boots = [_boot(line) for line in out if line.startswith("boot")]
    patched = [line for line in out if line.startswith("patch")]
    assert patched == ["patch OK save OK"] * 4 + ["patch REPLAYED"] * 3
    # first boot: both pages erased, the base runs, counter 0
    assert boots[0] == {"status": "NOTHING", "counter": 0, "last": 0, "pages": ("ERASED", "ERASED"),
                        "model": _running(base, None)}
    # each save goes to the page that does not hold the record that runs: P0, P1, P0, P1
    expected_pages = [("VALID:5", "ERASED"), ("VALID:5", "VALID:7"), ("VALID:9", "VALID:7"), ("VALID:9", "VALID:11")]
    for got, counter, pages in zip(boots[1:5], (5, 7, 9, 11), expected_pages):
        assert got == {"status": "OK", "counter": counter, "last": counter, "pages": pages,
                       "model": _running(base, patches[counter])}
    # after a reset, older patches (and the same one) are refused: the counter came back from the flash
    assert boots[5]["counter"] == boots[5]["last"] == 11 and boots[5]["model"] == _running(base, patches[11])
    # the store itself refuses to keep a patch that is not newer than the one that runs (nothing written)
    assert [line for line in out if line.startswith("save")] == ["save NOT_NEWER"] * 2
    assert boots[6]["pages"] == ("VALID:9", "VALID:11")


@pytest.mark.parametrize("page_bytes, unit", [(4096, 4), (256, 8), (128, 1)])
def test_power_cut_at_every_point_of_a_save(harness, boot, patches, tmp_path, page_bytes, unit):
    """Three saves (onto erased flash; beside one record; over the older of two), each cut during the erase
    and after / during every unit write: the device boots the previous patch (or the base), never the new one
    half written, never a lower counter; uncut, the new one."""
    base, _ = boot
    files = {f"p{c}": p for c, p in patches.items()}
    out = _device(harness, tmp_path, base, ["cut p5", "patch p5", "cut p7", "patch p7", "cut p9"], files,
                  page_bytes, unit)
    sweeps = []  # [units, {cut name: boot}] per "cut" line of the script
    for line in out:
        words = line.split()
        if words[0] == "units":
            sweeps.append([int(words[1]), {}])
        elif words[0] == "cut":
            sweeps[-1][1][" ".join(words[1:words.index("counter") - 1])] = _boot(line)
    assert len(sweeps) == 3
    for (units, cuts), (previous, new) in zip(sweeps, [(None, 5), (5, 7), (7, 9)]):
        # every unit of the record was written once: header, patch, commit
        assert units == math.ceil(HEADER / unit) + math.ceil(len(patches[new]) / unit) + math.ceil(COMMIT / unit)
        assert len(cuts) == 4 + 2 * units + 1 and "during 0" in cuts and f"after {units - 1}" in cuts
        before = {"counter": previous or 0, "last": previous or 0, "model": _running(base, patches.get(previous))}
        for name, got in cuts.items():
            want = before if name != "none" else {
                "counter": new, "last": new, "model": _running(base, patches[new])}
            assert {k: got[k] for k in want} == want, (name, got)
        # the commit is written last: a cut while writing never leaves a committed record that fails its tag
        # (the tag, re-checked at boot, is the second line: writing the commit first passes the checks above)
        assert not [name for name, got in cuts.items() if not name.startswith("erase")
                    and any(page.startswith("REFUSED") for page in got["pages"])]
        # the sweep reached the states it is meant to: a page erased or garbled, and one uncommitted
        states = {page.split(":")[0] for got in cuts.values() for page in got["pages"]}
        assert {"UNCOMMITTED", "VALID"} <= states and states & {"ERASED", "BAD_RECORD"}


def test_damaged_records_are_refused_and_the_other_page_runs(harness, boot, patches, tmp_path):
    base, _ = boot
    files = {"p5": patches[5], "p7": patches[7]}
    length = len(patches[7])
    setup = ["patch p5", "patch p7"]  # P0: 5, P1: 7
    cases = {
        "a flipped patch bit": ([f"flip 1 {HEADER + 20} 4"], "REFUSED:BAD_TAG"),
        "a flipped tag bit": ([f"flip 1 {HEADER + length - 1} 128"], "REFUSED:BAD_TAG"),
        "a wrong length in bounds (the tag moves)": ([f"flip 1 4 {(length ^ (length + 1)) & 3 or 1}"],
                                                     "REFUSED:BAD_TAG"),
        "a length past the page": (["flip 1 7 128"], "BAD_RECORD"),
        "a length of 0": ([f"flip 1 4 {length & 0xFF}", f"flip 1 5 {length >> 8}"], "BAD_RECORD"),
        "a bad magic": (["flip 1 0 1"], "BAD_RECORD"),
        "a flipped commit bit": ([f"flip 1 {HEADER + math.ceil(length / 4) * 4} 2"], "UNCOMMITTED"),
    }
    for name, (damage, state) in cases.items():
        out = _device(harness, tmp_path, base, ["boot", *setup, "boot", *damage, "boot", "patch p7", "boot"], files)
        boots = [_boot(line) for line in out if line.startswith("boot")]
        assert boots[1]["pages"] == ("VALID:5", "VALID:7"), name
        # the damaged newer record is ignored, the older one runs, with its counter
        assert boots[2] == {"status": "OK", "counter": 5, "last": 5, "pages": ("VALID:5", state),
                            "model": _running(base, patches[5])}, name
        # the newer patch is then accepted again (counter 7 > 5) and saved over the damaged page
        assert out[-2] == "patch OK save OK", name
        assert boots[3]["pages"] == ("VALID:5", "VALID:7") and boots[3]["model"] == _running(base, patches[7]), name
    # both pages damaged: the base runs, counter 0
    out = _device(harness, tmp_path, base, ["boot", *setup, f"flip 0 {HEADER + 20} 4", f"flip 1 {HEADER + 20} 4",
                                            "boot"], files)
    assert _boot(out[-1]) == {"status": "NOTHING", "counter": 0, "last": 0,
                              "pages": ("REFUSED:BAD_TAG", "REFUSED:BAD_TAG"), "model": _running(base, None)}


def test_a_new_base_ignores_the_old_records(harness, boot, patches, tmp_path):
    """Another base flashed: the stored patches are WRONG_BASE, the new base runs with counter 0 (the old
    patches stay refused), and its own patches are stored and restored; the old base flashed back finds the one
    of its patches still stored."""
    base, _ = boot
    other = bytearray(base)
    other[-1] ^= 1  # another base file, same code buffers
    other = bytes(other)
    codes = hp.code_buffers(other)
    personalized = bytearray(other)
    for offset, length in codes.values():
        personalized[offset:offset + length] = bytes(length)
    for_other = hp.make_patch(other, bytes(personalized), KEY, counter=1)
    files = {"p5": patches[5], "p7": patches[7], "other": other, "q1": for_other, "original": base}
    out = _device(harness, tmp_path, base, ["boot", "patch p5", "patch p7", "base other", "boot", "patch p7",
                                            "patch q1", "boot", "base original", "boot"], files)
    boots = [_boot(line) for line in out if line.startswith("boot")]
    assert boots[1] == {"status": "NOTHING", "counter": 0, "last": 0,
                        "pages": ("REFUSED:WRONG_BASE", "REFUSED:WRONG_BASE"), "model": _sha(other)}
    assert [line for line in out if line.startswith("patch")][2:] == ["patch WRONG_BASE", "patch OK save OK"]
    # the new base's patch went to P1 (P0 kept), and runs after a reset
    assert boots[2] == {"status": "OK", "counter": 1, "last": 1, "pages": ("REFUSED:WRONG_BASE", "VALID:1"),
                        "model": _sha(hp.apply_patch(other, for_other, KEY))}
    assert boots[3] == {"status": "OK", "counter": 5, "last": 5, "pages": ("VALID:5", "REFUSED:WRONG_BASE"),
                        "model": _running(base, patches[5])}


def test_a_patch_longer_than_a_page_is_refused_at_save(harness, boot, patches, tmp_path):
    base, _ = boot
    length = len(patches[5])
    fits = HEADER + math.ceil(length / 4) * 4 + COMMIT  # the smallest page that holds it
    for page_bytes, saved in ((fits, "OK"), (fits - 4, "TOO_LONG")):
        out = _device(harness, tmp_path, base, ["boot", "patch p5", "boot"], {"p5": patches[5]}, page_bytes)
        assert out[1] == f"patch OK save {saved}"
        want = ("VALID:5", "ERASED") if saved == "OK" else ("ERASED", "ERASED")
        assert _boot(out[2])["pages"] == want
        assert _boot(out[2])["model"] == _running(base, patches[5] if saved == "OK" else None)
