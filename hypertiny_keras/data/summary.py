"""Per-split summary of loaded `Windows` (printable, JSON-storable) and the CLI entry point."""
from __future__ import annotations

import json
from typing import Any, Callable

import numpy as np

from hypertiny_keras.data.windows import SPLITS, Windows
from hypertiny_keras.utils.fileio import atomic_write


def summarize(windows: Windows) -> dict[str, Any]:
    """Windows, class counts, positive rate, records and patients for each split and overall.

    The positive rate is the share of label 1 for binary tasks and ``None`` otherwise.
    """
    binary = len(windows.class_names) == 2

    def part(mask: np.ndarray) -> dict[str, Any]:
        y = windows.y[mask]
        counts = np.bincount(y, minlength=len(windows.class_names))
        return {
            "windows": int(mask.sum()),
            "class_counts": dict(zip(windows.class_names, counts.tolist())),
            "positive_rate": float(np.mean(y == 1)) if binary and y.size else None,
            "records": int(np.unique(windows.record[mask]).size),
            "patients": int(np.unique(windows.patient[mask]).size),
        }

    return {
        "dataset": windows.meta.get("dataset"),
        "source": windows.meta.get("source"),
        "window_shape": list(windows.x.shape[1:]),
        "fs_hz": windows.fs if np.isfinite(windows.fs) else None,
        "dropped": windows.meta.get("dropped", {}),
        "splits": {s: part(windows.split == s) for s in SPLITS},
        "total": part(np.ones(len(windows), bool)),
    }


def format_summary(summary: dict[str, Any]) -> str:
    """Plain-text table of a `summarize` result."""
    dataset, source = summary["dataset"] or summary["source"] or "windows", summary["source"]
    fs = summary["fs_hz"]
    rate = "" if fs is None or not np.isfinite(fs) else f" at {fs:g} Hz"
    dropped = f"; dropped: {summary['dropped']}" if summary["dropped"] else ""
    classes = len(summary["total"]["class_counts"])
    lines = [
        dataset if source in (None, dataset) else f"{dataset}  ({source})",
        f"window shape {tuple(summary['window_shape'])}{rate}; {classes} classes{dropped}",
        f"{'split':<6} {'windows':>8} {'records':>8} {'patients':>8} {'pos.rate':>8}  class counts",
    ]
    for name, s in [*summary["splits"].items(), ("total", summary["total"])]:
        lines.append(
            f"{name:<6} {s['windows']:>8} {s['records']:>8} {s['patients']:>8} "
            f"{'-' if s['positive_rate'] is None else format(s['positive_rate'], '.3f'):>8}  "
            f"{s['class_counts']}"
        )
    return "\n".join(lines)


def loaders() -> dict[str, Callable[..., Windows]]:
    """``{dataset name: loader}`` for every real dataset."""
    from hypertiny_keras.data.apnea_ecg import load_apnea_ecg
    from hypertiny_keras.data.mitbih import load_mitbih
    from hypertiny_keras.data.ptbxl import load_ptbxl
    from hypertiny_keras.data.speech_commands import load_speech_commands

    return {"mitbih": load_mitbih, "ptbxl": load_ptbxl, "apnea_ecg": load_apnea_ecg,
            "speech_commands": load_speech_commands}


def summary_cli(
    dataset: str,
    data_dir: str,
    json_path: str | None = None,
    print_fn: Callable[[str], Any] = print,
    **loader_kwargs: Any,
) -> dict[str, Any]:
    """Load ``dataset`` from ``data_dir``, print its summary and optionally store it as JSON.

    Backs ``hypertiny data summary --dataset mitbih --data-dir DIR [--json out.json]``.

    Args:
        dataset: one of ``loaders()`` (``mitbih``, ``ptbxl``, ``apnea_ecg``, ``speech_commands``).
        data_dir: the dataset's directory as distributed.
        json_path: where to write the summary as JSON (optional).
        print_fn: where the text table goes (``print`` by default).
        **loader_kwargs: passed to the loader (e.g. ``task``, ``split``, ``signal``).

    Returns:
        The summary dict (see `summarize`).
    """
    table = loaders()
    if dataset not in table:
        raise ValueError(f"unknown dataset {dataset!r}; choose from {sorted(table)}")
    summary = summarize(table[dataset](data_dir, **loader_kwargs))
    print_fn(format_summary(summary))
    if json_path is not None:
        atomic_write(json_path, json.dumps(summary, indent=2).encode())
    return summary
