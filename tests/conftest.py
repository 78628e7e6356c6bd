"""Shared fixtures: where the real data lives, and a private cache per test session."""
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_root() -> pathlib.Path:
    """Root of the real datasets (`HYPERTINY_DATA`, default `../shared/data`).

    Fails (never skips) under `CI=true` when the data is missing.
    """
    root = pathlib.Path(os.environ.get("HYPERTINY_DATA", ROOT.parent / "shared" / "data"))
    if not root.is_dir():
        msg = f"real data not found at {root} (set HYPERTINY_DATA)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return root


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Keep the loaders' disk cache out of the user's home during tests."""
    os.environ["HYPERTINY_CACHE"] = str(tmp_path_factory.mktemp("hypertiny-cache"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class RayCluster:
    """A Ray head started by the tests on 127.0.0.1 (2 CPUs, no dashboard), in a process group of its own."""

    def __init__(self, root: pathlib.Path):
        import socket
        import subprocess
        import sys

        with socket.socket() as s:  # a free loopback port for the GCS
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.address = f"127.0.0.1:{port}"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # workers import as tests do
        ray = pathlib.Path(sys.executable).with_name("ray")
        self.process = subprocess.Popen(
            [str(ray), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
             "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", str(root)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        self.group = self.process.pid  # every daemon it starts stays in this process group
        _, err = self.process.communicate(timeout=120)
        if self.process.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start failed: {err.decode()[-2000:]}")

    def processes(self) -> dict[int, str]:
        """`{pid: title}` of this cluster's processes: its process group and their descendants (Ray workers
        start sessions of their own)."""
        parents, titles = {}, {}
        for proc in pathlib.Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    stat = (proc / "stat").read_text()
                    titles[int(proc.name)] = (proc / "cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
                    fields = stat.rsplit(")", 1)[1].split()  # state, ppid, pgrp, ...
                    parents[int(proc.name)] = (int(fields[1]), int(fields[2]))
                except (OSError, ValueError, IndexError):
                    continue
        mine = {pid for pid, (_, group) in parents.items() if group == self.group}
        grown = True
        while grown:
            new = {pid for pid, (parent, _) in parents.items() if parent in mine} - mine
            mine |= new
            grown = bool(new)
        return {pid: titles[pid] for pid in mine}

    def task_processes(self, name: str) -> list[int]:
        """Pids of this cluster's workers running a task called `name` (Ray titles them `ray::<name>`)."""
        return [pid for pid, title in self.processes().items() if title.startswith(f"ray::{name}")]

    def stop(self) -> None:
        import signal
        import time

        members = self.processes()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in members:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(1)


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray cluster on 127.0.0.1 with 2 CPUs, started for the tests and stopped after them."""
    import secrets
    import shutil
    import tempfile

    # Token authentication (Ray's default) with a token of this session's own, given to the head and the driver.
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32), "RAY_USAGE_STATS_ENABLED": "0"}
    saved = {k: os.environ.get(k) for k in auth}
    os.environ.update(auth)
    root = pathlib.Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must stay < 108 B
    cluster = RayCluster(root)
    try:
        yield cluster
    finally:
        import ray

        ray.shutdown()
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


@pytest.fixture(scope="session")
def codes_base(tmp_path_factory):
    """A small dense-head HyperTinyPW trained 1 epoch on synthetic beats: `(model, x, y, folder)`, with the folder
    holding it as `model.keras` and its boot file `base.tflite` (personalization and fleet tests)."""
    import keras

    from hypertiny_keras import export_tflite, hypertiny_pw
    from hypertiny_keras.data.synthetic import make_beats

    keras.utils.set_random_seed(0)
    x, y = make_beats(300, seed=0)
    model = hypertiny_pw(x.shape[1:], 2, widths=(8, 12, 12), code_dim=4, hidden_dim=8)
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=1, verbose=0)
    folder = tmp_path_factory.mktemp("codes_base")
    model.save(folder / "model.keras")
    export_tflite(model, x[:64], folder / "base.tflite", synthesis="boot")
    return model, x, y, folder
