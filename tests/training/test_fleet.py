"""personalize_many: one authenticated code patch per subject, a failing subject recorded, the same fleet on Ray."""
import json

import numpy as np
import pytest

from hypertiny_keras.data.synthetic import make_beats
from hypertiny_keras.device.runtime import predict
from hypertiny_keras.evaluation.metrics import multiclass_metrics
from hypertiny_keras.tflite import patch as hp
from hypertiny_keras.training.fleet import FleetSettings, Subject, personalize_many, subjects_from_npz

KEY = b"k" * 32
SETTINGS = FleetSettings(steps=20, patience=20)


@pytest.fixture(scope="module")
def fleet(codes_base):
    model, x, y, folder = codes_base
    subjects = []
    for i, sign in enumerate((-1.0, 1.0)):  # an inverted lead, and a wearer like the training set
        xs, ys = make_beats(160, seed=10 + i)
        subjects.append(Subject(f"s{i}", sign * xs[:120], ys[:120], sign * xs[120:], ys[120:]))
    subjects.append(Subject("bad", xs[:40, :-1], ys[:40]))  # windows one sample short: this subject fails
    return model, (folder / "base.tflite").read_bytes(), subjects, (x[:60], y[:60])


def test_every_subject_gets_a_patch_that_carries_what_was_scored(fleet, tmp_path):
    model, base, subjects, rehearsal = fleet
    result = personalize_many(model, base, subjects, KEY, counter=7, out_dir=tmp_path, rehearsal=rehearsal,
                              settings=SETTINGS, progress=False)
    rows = {r["subject"]: r for r in result["subjects"]}
    assert "windows must have shape" in rows["bad"]["error"] and not (tmp_path / "bad.patch").exists()
    assert result["summary"]["personalized"] == 2 and result["summary"]["failed"] == 1
    for subject in subjects[:2]:
        row = rows[subject.name]
        patch = (tmp_path / f"{subject.name}.patch").read_bytes()
        assert len(patch) == row["patch_bytes"] <= 51 and hp.read_patch(patch, KEY).counter == 7
        patched = hp.apply_patch(base, patch, KEY)
        for file, when in ((base, "before"), (patched, "after")):
            m = multiclass_metrics(subject.test_y, predict(file, subject.test_x).argmax(1), 2)
            assert row[when]["accuracy"] == m["accuracy"] and row[when]["macro_f1"] == m["macro_f1"]
    summary = result["summary"]
    assert summary["patch_bytes"]["total"] == rows["s0"]["patch_bytes"] + rows["s1"]["patch_bytes"]
    assert summary["accuracy"]["before"] == np.mean([rows[n]["before"]["accuracy"] for n in ("s0", "s1")])
    assert json.loads((tmp_path / "fleet.json").read_text()) == result


def test_the_fleet_on_a_cluster_equals_the_sequential_fleet(fleet, ray_cluster, tmp_path):
    model, base, subjects, rehearsal = fleet
    runs = [personalize_many(model, base, subjects[:2], KEY, out_dir=tmp_path / name, rehearsal=rehearsal,
                             settings=SETTINGS, progress=False, address=address)
            for name, address in (("seq", None), ("ray", ray_cluster.address))]
    assert json.dumps(runs[0]) == json.dumps(runs[1])
    for name in ("s0", "s1"):
        assert (tmp_path / "seq" / f"{name}.patch").read_bytes() == (tmp_path / "ray" / f"{name}.patch").read_bytes()


def test_subjects_from_npz_and_its_refusals(tmp_path):
    x = np.zeros((6, 4, 1), np.float32)
    path = tmp_path / "fleet.npz"
    np.savez(path, x=x, y=np.array([0, 1, 0, 1, 0, 1]), subject=np.array(list("aabbbb")),
             test=np.array([False, True, False, False, True, True]))
    a, b = subjects_from_npz(path)
    assert (a.name, len(a.x), len(a.test_x), b.name, len(b.x), len(b.test_x)) == ("a", 1, 1, "b", 2, 2)
    np.savez(path, x=x, y=np.zeros(6, int), subject=np.array(list("aabbbb")), test=np.array([True] * 2 + [False] * 4))
    with pytest.raises(ValueError, match="subject 'a' has no adaptation windows"):
        subjects_from_npz(path)
    np.savez(path, x=x, y=np.zeros(5, int), subject=np.array(list("aabbbb")))
    with pytest.raises(ValueError, match="must have shape"):
        subjects_from_npz(path)
    with pytest.raises(ValueError, match="unique"):
        personalize_many(None, b"", [Subject("a", x, x), Subject("a", x, x)], KEY)
