"""`run_tasks`: one call, three scales: in-process, this machine's cores, or a Ray cluster.

Each task is `function(*shared, *args)` for one `(key, args)`: a training
point, a fuzzed architecture, a subject. The function must be importable by
name where it runs (a module-level function of an installed package) and
return a JSON-ready value; it pins its own seeds (the result must not depend
on where it ran).

- `workers=None, address=None` (the default): in this process, one task after
  another; Ray is not imported.
- `workers=N`: a local Ray started on 127.0.0.1 with N CPUs for the call and
  stopped after it (no dashboard, no usage report, worker logs kept out of the
  terminal).
- `address="auto"`, `"<head-ip>:6379"` or `"ray://<head-ip>:10001"`: an existing
  cluster (`ray start --head` on the head node, `ray start --address=<head-ip>:6379`
  on the others). If this process is already connected (`ray.init()` called by
  the caller), that connection is used and left open.

On Ray, every task is one Ray task asking for `cpus` CPUs (and `gpus` GPUs,
`memory` bytes); the `shared` values (e.g. the dataset) are put in Ray's
object store once and read by every task from it (zero-copy for numpy arrays
on the same node; each other node receives one copy), so they must fit in the
object store (by default 30 % of each node's RAM). A task whose worker dies
(killed, out of memory) is re-run up to `retries` times by Ray; an exception
raised by the function is deterministic and is not retried. A task that still
fails is recorded as failed with its error, and the others complete.
"""
from __future__ import annotations

import contextlib
import json
import os
import traceback
from collections.abc import Callable, Iterator, Mapping
from typing import TextIO

from hypertiny_keras.execution.journal import Journal


def run_one(function: Callable, shared: tuple, args: tuple) -> dict:
    """One task where it runs: `{"status": "done", "result"}` or `{"status": "failed", "error", "traceback"}`.

    The result is passed through JSON here, so that it is the same value
    whether it comes back from this process, a Ray worker or a journal.
    """
    try:
        return {"status": "done", "result": json.loads(json.dumps(function(*shared, *args)))}
    except Exception as error:  # noqa: BLE001 (a failing task is recorded; the others go on)
        return {"status": "failed", "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc(limit=-8)}


def check_placement(workers: int | None, address: str | None) -> None:
    """Refuse a placement `run_tasks` cannot take: `workers` < 1, or both `workers` and `address`.

    Callers that load data first (a sweep's command line) call it before the load.

    Raises:
        ValueError: one line naming the problem.
    """
    if workers is not None and address is not None:
        raise ValueError("give workers (a local Ray on this machine) or address (a cluster), not both")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")


def run_tasks(
    function: Callable,
    tasks: Mapping[str, tuple],
    shared: tuple = (),
    *,
    workers: int | None = None,
    address: str | None = None,
    journal: Journal | None = None,
    retries: int = 2,
    cpus: float = 1.0,
    gpus: float | None = None,
    memory: int | None = None,
    progress: bool | TextIO = True,
    desc: str = "tasks",
) -> dict[str, dict]:
    """Run `function(*shared, *args)` for every `(key, args)` of `tasks`; return `{key: entry}` in `tasks`' order.

    Args:
        function: a module-level function returning a JSON-ready value.
        tasks: task key (unique, stable across runs: it names the result in the
            journal) -> the task's own arguments.
        shared: arguments every task receives first (sent once to a cluster).
        workers: run on a local Ray with this many CPUs (None: in this process).
        address: run on this Ray cluster (`"auto"`, `"host:port"`, `"ray://host:port"`).
        journal: where each finished task is written as it arrives; tasks it holds
            as done are not run again (failed ones are).
        retries: re-runs of a task whose Ray worker died.
        cpus: CPUs each Ray task asks for.
        gpus: GPUs each Ray task asks for; None: none on a cluster without GPUs,
            else an equal share of the cluster's GPUs per `cpus` (at most 1).
        memory: bytes of RAM each Ray task asks for (None: no reservation).
        progress: one progress bar over the tasks (on stderr, or on this stream).
        desc: the progress bar's label (and the Ray task's name).

    Returns:
        `{key: {"status": "done", "result"}}` or `{key: {"status": "failed", "error", ...}}`.

    Raises:
        ValueError: `workers` < 1, both `workers` and `address`, or negative `retries`.
        ImportError: Ray is needed (`pip install hypertiny-keras[ray]`) and missing.
    """
    from tqdm import tqdm

    check_placement(workers, address)
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    done = journal.done() if journal is not None else {}
    entries: dict[str, dict] = {k: {"status": "done", "result": done[k]["result"]} for k in tasks if k in done}
    pending = {k: tuple(args) for k, args in tasks.items() if k not in done}
    bar = tqdm(total=len(tasks), initial=len(entries), desc=desc, unit="task", disable=not progress,
               file=None if isinstance(progress, bool) else progress)

    def finish(key: str, entry: dict) -> None:
        entries[key] = entry
        if journal is not None:
            journal.record(key, {k: v for k, v in entry.items() if k != "traceback"})
        bar.update()
        if entry["status"] == "failed":
            bar.write(f"{desc}: {key} failed: {entry['error']}")

    with bar:
        if pending and workers is None and address is None:
            for key, args in pending.items():
                finish(key, run_one(function, tuple(shared), args))
        elif pending:
            _run_on_ray(function, pending, tuple(shared), workers, address, retries, cpus, gpus, memory, desc,
                        finish)
    return {k: entries[k] for k in tasks}


def _run_on_ray(function, pending, shared, workers, address, retries, cpus, gpus, memory, desc, finish) -> None:
    with ray_session(workers, address) as ray:
        if gpus is None:
            resources = ray.cluster_resources()
            gpus = min(1.0, resources.get("GPU", 0) / max(resources.get("CPU", 1), 1) * cpus)
        remote = ray.remote(run_one).options(name=desc, num_cpus=cpus, num_gpus=gpus or 0, memory=memory,
                                             max_retries=retries, retry_exceptions=False)
        shared_refs = ray.put(shared)
        refs = {remote.remote(function, shared_refs, args): key for key, args in pending.items()}
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                key = refs.pop(ready[0])
                try:
                    entry = ray.get(ready[0])
                except ray.exceptions.RayError as error:  # the worker died on every attempt, or Ray gave up
                    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
                    entry = {"status": "failed", "error": f"{type(error).__name__}: {lines[0] if lines else ''}",
                             "attempts": retries + 1}
                finish(key, entry)
        finally:
            for ref in refs:  # interrupted: nothing of this call keeps running on the cluster
                ray.cancel(ref, force=True)


@contextlib.contextmanager
def ray_session(workers: int | None, address: str | None) -> Iterator:
    """Ray, connected: a local Ray on 127.0.0.1 with `workers` CPUs, or the cluster at `address`.

    A Ray started here (or a connection opened here) is shut down on leaving;
    a connection the caller opened before is used and kept.
    """
    try:
        import ray
    except ImportError:
        raise ImportError("workers= and address= run on Ray: pip install 'hypertiny-keras[ray]'") from None
    if ray.is_initialized():
        yield ray
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report leaves the machine
    quiet = {"log_to_driver": False, "logging_level": "ERROR", "configure_logging": True}
    if address is not None:
        ray.init(address=address, **quiet)
    else:
        ray.init(num_cpus=workers, include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)
    try:
        yield ray
    finally:
        ray.shutdown()
