"""`pareto` at three scales: the same points in this process and on a Ray cluster, through a killed worker and a resume.

The cluster is started by the tests on 127.0.0.1 with 2 CPUs (`ray_cluster` in conftest.py).
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

import hypertiny_keras as ht
from hypertiny_keras.sweeps.pareto_front import ParetoSettings

sys.path.insert(0, os.path.dirname(__file__))
from test_pareto import beat_windows  # noqa: E402

SETTINGS = ParetoSettings(depth=2, rank=2, epochs=1, patience=None, bootstrap=5)
GRID = {"widths": (8, 16), "variants": ("stored", "lowrank"), "seeds": (0,)}  # 4 runs


def timeless(result: dict) -> dict:
    """`result` without its timings (the only figures that may differ between runs)."""
    return {**result, "points": [{k: v for k, v in p.items() if k != "train_seconds"} for p in result["points"]]}


@pytest.fixture(scope="module")
def sequential() -> dict:
    return timeless(ht.pareto(beat_windows(), settings=SETTINGS, progress=False, **GRID))


def test_on_a_cluster_the_points_equal_the_sequential_run(ray_cluster, sequential):
    result = ht.pareto(beat_windows(), settings=SETTINGS, progress=False, address=ray_cluster.address, **GRID)
    assert len(result["points"]) == 4 and all("metric" in p for p in result["points"]), result["points"]
    assert json.dumps(timeless(result)) == json.dumps(sequential)


def test_a_worker_killed_mid_run_is_retried_and_no_point_is_lost_or_duplicated(ray_cluster, sequential):
    killed: list[int] = []
    finished = threading.Event()

    def kill_one_running_task() -> None:
        while not killed and not finished.is_set():
            for pid in ray_cluster.task_processes("pareto runs"):
                time.sleep(0.5)  # inside the task: the model is being built or trained
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            time.sleep(0.05)

    killer = threading.Thread(target=kill_one_running_task, daemon=True)
    killer.start()
    try:
        result = ht.pareto(beat_windows(), settings=SETTINGS, progress=False, address=ray_cluster.address, retries=2,
                           **GRID)
    finally:
        finished.set()
        killer.join()
    assert len(killed) == 1, "no task process was found to kill"
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)
    assert json.dumps(timeless(result)) == json.dumps(sequential)  # all 4 points, once each, as computed sequentially


INTERRUPTED = """
import sys
sys.path.insert(0, {tests!r})
import hypertiny_keras as ht
from test_pareto_ray import GRID, SETTINGS, beat_windows
ht.pareto(beat_windows(), settings=SETTINGS, progress=False, journal={journal!r}, **GRID)
"""


def test_an_interrupted_sweep_rerun_computes_only_the_rest(tmp_path, sequential):
    journal = tmp_path / "front.jsonl"
    script = INTERRUPTED.format(tests=os.path.dirname(__file__), journal=str(journal))
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            if journal.exists() and len(journal.read_text().splitlines()) >= 1 + 2:  # header + 2 runs
                break
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    before = journal.read_text().splitlines()
    assert 1 + 2 <= len(before) < 1 + 4, "the sweep was not interrupted after 2 of its 4 runs"
    result = ht.pareto(beat_windows(), settings=SETTINGS, progress=False, journal=journal, **GRID)
    after = journal.read_text().splitlines()
    assert after[:len(before)] == before and len(after) == 1 + 4  # only the missing runs were computed
    assert sorted(json.loads(line)["key"] for line in after[1:]) == sorted(
        f"{v} w{w} seed0" for v in GRID["variants"] for w in GRID["widths"])
    assert json.dumps(timeless(result)) == json.dumps(sequential)
    with pytest.raises(ValueError, match="written for other settings"):
        ht.pareto(beat_windows(), settings=ParetoSettings(depth=3, epochs=1), progress=False, journal=journal, **GRID)
