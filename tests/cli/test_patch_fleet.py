"""`hypertiny patch fleet`: one patch per subject of an .npz fleet, a summary line, refusals in one line."""
import json
import subprocess
import sys

import numpy as np

from hypertiny_keras.data.synthetic import make_beats
from hypertiny_keras.tflite import patch as hp

HYPERTINY = [sys.executable, "-m", "hypertiny_keras.cli.main"]


def _run(*args):
    return subprocess.run([*HYPERTINY, *map(str, args)], capture_output=True, text=True, timeout=600)


def test_patch_fleet_writes_a_patch_per_subject_and_refuses_a_bad_fleet_file(codes_base, tmp_path):
    folder = codes_base[3]
    xs, ys = make_beats(120, seed=3)
    np.savez(tmp_path / "fleet.npz", x=-xs, y=ys, subject=np.repeat(["ann", "bob"], 60),
             test=np.tile(np.arange(60) >= 40, 2))
    (tmp_path / "device.key").write_bytes(bytes(range(32)))
    common = ("--key-file", tmp_path / "device.key", "--counter", 3, "--steps", 10)
    done = _run("patch", "fleet", folder / "model.keras", folder / "base.tflite", tmp_path / "fleet.npz",
                *common, "--out", tmp_path / "out")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith(f"{tmp_path / 'out'}: 2 of 2 subjects patched (0 failed)"), done.stdout
    fleet = json.loads((tmp_path / "out" / "fleet.json").read_text())
    base = (folder / "base.tflite").read_bytes()
    for row in fleet["subjects"]:
        patch = (tmp_path / "out" / f"{row['subject']}.patch").read_bytes()
        assert len(patch) == row["patch_bytes"] and len(hp.apply_patch(base, patch, bytes(range(32)))) == len(base)
    np.savez(tmp_path / "bad.npz", x=xs, y=ys)
    refused = _run("patch", "fleet", folder / "model.keras", folder / "base.tflite", tmp_path / "bad.npz",
                   *common, "--out", tmp_path / "never")
    lines = refused.stderr.splitlines()
    assert refused.returncode == 2 and len(lines) == 1 and "bad.npz: missing arrays ['subject']" in lines[0], lines
    assert not (tmp_path / "never").exists()
