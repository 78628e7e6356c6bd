"""The execution layer: failures recorded, dead workers retried a bounded number of times, interrupted runs resumed."""
import json
import math
import os
import sys

import pytest

from hypertiny_keras.execution import Journal, run_tasks

CALLS: list[str] = []


def square_or_fail(offset: float, key: str, x: float) -> float:
    """`(x + offset)^2`; a ValueError for x < 0 (the deterministic failure of a task)."""
    CALLS.append(key)
    if x < 0:
        raise ValueError(f"{key}: negative input {x}")
    return (x + offset) ** 2


def interrupt_at(stop: str, key: str) -> str:
    """Returns `key`, or raises KeyboardInterrupt (the user's Ctrl-C) when `key` is `stop`."""
    if key == stop:
        raise KeyboardInterrupt
    CALLS.append(key)
    return key


def die_or_echo(log: str, key: str) -> str:
    """Appends this process's pid to `log`; the task `die` kills its own worker every time (SIGKILL)."""
    with open(log, "a") as f:
        f.write(f"{key} {os.getpid()}\n")
    if key == "die":
        os.kill(os.getpid(), 9)
    return key


def test_a_failing_task_is_recorded_and_the_others_complete(tmp_path):
    CALLS.clear()
    journal = Journal(tmp_path / "run.jsonl", {"offset": 1})
    tasks = {"a": ("a", 1.0), "b": ("b", -1.0), "c": ("c", 2.0)}
    out = run_tasks(square_or_fail, tasks, (1.0,), journal=journal, progress=False)
    assert list(out) == ["a", "b", "c"] and CALLS == ["a", "b", "c"]
    assert out["a"] == {"status": "done", "result": 4.0} and out["c"]["result"] == 9.0
    assert out["b"]["status"] == "failed" and out["b"]["error"] == "ValueError: b: negative input -1.0"
    lines = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert lines[0] == {"journal": 1, "fingerprint": {"offset": 1}}
    assert [(e["key"], e["status"]) for e in lines[1:]] == [("a", "done"), ("b", "failed"), ("c", "done")]
    # A re-run computes only what did not finish with a result: the failed task.
    CALLS.clear()
    again = run_tasks(square_or_fail, tasks, (1.0,), journal=Journal(tmp_path / "run.jsonl", {"offset": 1}),
                      progress=False)
    assert CALLS == ["b"] and again["a"] == out["a"] and again["c"] == out["c"]
    assert again["b"]["error"] == out["b"]["error"]


def test_an_interrupted_run_rerun_computes_only_the_rest(tmp_path):
    path = tmp_path / "run.jsonl"
    tasks = {k: (k,) for k in "abcde"}
    CALLS.clear()
    with pytest.raises(KeyboardInterrupt):
        run_tasks(interrupt_at, tasks, ("c",), journal=Journal(path, "v1"), progress=False)
    assert CALLS == ["a", "b"]
    with open(path, "a") as f:  # a line cut off by a kill in the middle of a write
        f.write('{"key": "c", "sta')
    CALLS.clear()
    out = run_tasks(interrupt_at, tasks, ("never",), journal=Journal(path, "v1"), progress=False)
    assert CALLS == ["c", "d", "e"] and [e["result"] for e in out.values()] == list("abcde")
    assert len(path.read_text().splitlines()) == 1 + 5
    with pytest.raises(ValueError, match="written for other settings"):
        Journal(path, "v2")


def test_bad_scales_are_refused():
    with pytest.raises(ValueError, match="not both"):
        run_tasks(math.sqrt, {"a": (1.0,)}, workers=2, address="auto")
    with pytest.raises(ValueError, match="workers must be >= 1"):
        run_tasks(math.sqrt, {"a": (1.0,)}, workers=0)


def test_on_ray_a_dying_worker_is_retried_a_bounded_number_of_times_and_recorded(ray_cluster, tmp_path):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers cannot import a test module
    log = tmp_path / "attempts.log"
    tasks = {"die": ("die",), "a": ("a",), "b": ("b",)}
    out = run_tasks(die_or_echo, tasks, (str(log),), address=ray_cluster.address, retries=2, progress=False)
    assert out["a"] == {"status": "done", "result": "a"} and out["b"] == {"status": "done", "result": "b"}
    assert out["die"]["status"] == "failed" and out["die"]["attempts"] == 3
    assert "WorkerCrashedError" in out["die"]["error"], out["die"]
    attempts = [line.split() for line in log.read_text().splitlines()]
    dead = [pid for key, pid in attempts if key == "die"]
    assert len(dead) == 3 and len(set(dead)) == 3  # three attempts, each in a new worker process
    assert sorted(key for key, _ in attempts if key != "die") == ["a", "b"]


def test_the_sequential_path_never_imports_ray():
    import subprocess

    code = ("import math, sys; import hypertiny_keras as ht; "
            "out = ht.run_tasks(math.sqrt, {'a': (4.0,)}, progress=False); "
            "assert out == {'a': {'status': 'done', 'result': 2.0}}, out; assert 'ray' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
