"""The recipe suite on the execution layer: the same runs on a Ray cluster, and a re-run computes nothing."""
import json
import os
import sys

from hypertiny_keras.sweeps.runner import RunSettings
from hypertiny_research.suite import run_suite

sys.path.insert(0, os.path.dirname(__file__))
from test_suite import rr_windows  # noqa: E402

SETTINGS = RunSettings(epochs=1, bootstrap=10, patience=None)
TIMINGS = ("train_seconds", "wall_seconds")


def _runs(folder) -> list[dict]:
    content = json.loads((folder / "stored_pw_twin.json").read_text())
    return [{k: v for k, v in run.items() if k not in TIMINGS} for run in content["runs"]]


def test_the_suite_on_a_cluster_equals_the_sequential_suite_and_a_rerun_computes_nothing(ray_cluster, tmp_path):
    windows = rr_windows()
    run_suite("rr", windows, ["stored_pw_twin"], [0], SETTINGS, tmp_path / "seq", "cmd")
    journal = (tmp_path / "seq" / "suite.runs.jsonl").read_text()
    assert len(journal.splitlines()) == 1 + 1
    run_suite("rr", windows, ["stored_pw_twin"], [0], SETTINGS, tmp_path / "seq", "cmd")
    assert (tmp_path / "seq" / "suite.runs.jsonl").read_text() == journal  # nothing run again
    run_suite("rr", windows, ["stored_pw_twin"], [0], SETTINGS, tmp_path / "ray", "cmd",
              address=ray_cluster.address)
    assert _runs(tmp_path / "ray") == _runs(tmp_path / "seq") and len(_runs(tmp_path / "seq")) == 1
