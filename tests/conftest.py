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
