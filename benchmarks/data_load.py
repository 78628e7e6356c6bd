"""Cold vs cached load time, peak memory and throughput of every real-data loader.

Writes ``benchmarks/results/data_load.json`` and ``benchmarks/results/data_load.md``.
Cold = empty cache directory (parse the original files, build windows, write the cache);
cached = second call with the same parameters (memory-mapped arrays), and "cached + read" also
touches every byte of ``x``. Peak memory is tracemalloc's peak of Python/numpy allocations.
"""
from __future__ import annotations

import json
import os
import pathlib
import sys
import tempfile
import time
import tracemalloc

from absl import app, flags

FLAGS = flags.DEFINE_string("data_root", "../shared/data", "root of the real datasets")
OUT = flags.DEFINE_string("out_dir", "benchmarks/results", "where data_load.json / .md go")

RUNS = {
    "mitbih (48 records, v_vs_rest, paper split)": ("mitbih", "mitdb", dict(split="paper")),
    "ptbxl (500-record subset)": ("ptbxl", "ptbxl", {}),
    "apnea_ecg (70 records, rr)": ("apnea_ecg", "apnea-ecg", dict(signal="rr")),
    "speech_commands (test set, 3,518 clips, mfcc)": (
        "speech_commands", "speech_commands/test_v0.02", {}),
}


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def peak_mib(fn) -> float:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main(argv):
    del argv
    from hypertiny_keras.data.summary import loaders

    table = loaders()
    root = pathlib.Path(FLAGS.value)
    rows = []
    for name, (dataset, sub, kwargs) in RUNS.items():
        load = lambda: table[dataset](root / sub, **kwargs)  # noqa: E731
        with tempfile.TemporaryDirectory(prefix="hypertiny-bench-") as cache:
            os.environ["HYPERTINY_CACHE"] = cache
            windows, cold = timed(load)
            windows, cached = timed(load)
            _, read = timed(lambda w=windows: float(w.x.sum()))
            n_windows, shape = len(windows), list(windows.x.shape[1:])
            cached_mb = peak_mib(load)
            del windows
        with tempfile.TemporaryDirectory(prefix="hypertiny-bench-") as cache:
            os.environ["HYPERTINY_CACHE"] = cache
            cold_mb = peak_mib(load)
        rows.append(dict(
            dataset=name, windows=n_windows, window_shape=shape,
            cold_s=round(cold, 3), cold_peak_mb=round(cold_mb, 1),
            cached_s=round(cached, 4), cached_peak_mb=round(cached_mb, 2),
            cached_plus_read_s=round(cached + read, 3),
            speedup_cached=round(cold / cached, 1),
            windows_per_s_cold=round(n_windows / cold),
            windows_per_s_cached_read=round(n_windows / (cached + read)),
        ))
        print(rows[-1], flush=True)
    out = pathlib.Path(OUT.value)
    out.mkdir(parents=True, exist_ok=True)
    command = "cd /work/main && " + " ".join(["python", *sys.argv]).replace(sys.executable, "python")
    (out / "data_load.json").write_text(json.dumps({"command": command, "rows": rows}, indent=2))
    cols = ["dataset", "windows", "window_shape", "cold_s", "cold_peak_mb", "cached_s", "cached_peak_mb",
            "cached_plus_read_s", "speedup_cached", "windows_per_s_cold", "windows_per_s_cached_read"]
    md = ["# Data loading benchmark", "",
          f"Produced by `{command}` ({os.cpu_count()} CPUs).", "",
          "cold = empty cache (parse files, build windows, write cache); cached = second load "
          "(memory-mapped); cached_plus_read also reads every byte of x. Peak memory: tracemalloc, MiB.", "",
          "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    (out / "data_load.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    app.run(main)
