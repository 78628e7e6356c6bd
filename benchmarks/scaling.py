"""Same call, two scales: a fixed `pareto` grid on MIT-BIH run sequentially and with `workers=N` (a local Ray).

Measures the wall time of each (the Ray run's includes starting and stopping
Ray and every worker's TensorFlow import) and checks that both give the same
points (timings aside). Writes `benchmarks/results/<name>.{json,md}` (default `scaling`).

    .venv/bin/python benchmarks/scaling.py                 # 2 variants x 2 widths x 4 seeds, workers=2

The machine's load average is recorded before and after each run: other jobs
on the machine share its cores and change the ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hypertiny_keras.utils import quiet  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
TARGET = 1.8


def _timeless(result: dict) -> list[dict]:
    return [{k: v for k, v in p.items() if k != "train_seconds"} for p in result["points"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="stored,lowrank")
    parser.add_argument("--widths", default="16,32")
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-train", type=int, default=4000)
    parser.add_argument("--max-eval", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--name", default="scaling", help="base name of the written files")
    args = parser.parse_args()
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    with quiet.silenced():
        from pareto import dataset_windows

        from hypertiny_keras.sweeps.pareto_front import ParetoSettings, pareto
        from hypertiny_research.suite import subsample
    data_root = pathlib.Path(os.environ.get("HYPERTINY_DATA", "../shared/data"))
    windows = subsample(dataset_windows("mitbih", data_root),
                        {"train": args.max_train, "val": args.max_eval, "test": args.max_eval}, seed=0)
    grid = {"variants": args.variants.split(","), "widths": [int(w) for w in args.widths.split(",")],
            "seeds": [int(s) for s in args.seeds.split(",")]}
    settings = ParetoSettings(epochs=args.epochs)
    bar = os.fdopen(os.dup(2), "w")
    runs = {}
    for label, workers in (("sequential", None), (f"workers={args.workers}", args.workers)):
        load_before = os.getloadavg()
        start = time.perf_counter()
        with quiet.silenced():
            result = pareto(windows, settings=settings, progress=bar, workers=workers, **grid)
        runs[label] = {"seconds": round(time.perf_counter() - start, 1), "load_before": load_before,
                       "load_after": os.getloadavg(), "result": result}
    sequential, parallel = runs.values()
    ratio = sequential["seconds"] / parallel["seconds"]
    identical = _timeless(sequential["result"]) == _timeless(parallel["result"])
    command = ".venv/bin/python benchmarks/scaling.py " + " ".join(sys.argv[1:])
    n_runs = len(sequential["result"]["points"])
    out = {
        "command": command, "grid": grid, "epochs": args.epochs, "windows": {
            s: int((windows.split == s).sum()) for s in ("train", "val", "test")},
        "cpus": os.cpu_count(), "runs": n_runs, "ratio": round(ratio, 3), "target": TARGET,
        "identical_points": identical,
        **{label: {k: v for k, v in run.items() if k != "result"} for label, run in runs.items()},
        "points": sequential["result"]["points"],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=2) + "\n")
    loads = "; ".join(f"{label}: {run['load_before'][0]:.1f} before, {run['load_after'][0]:.1f} after"
                      for label, run in runs.items())
    lines = [
        "# Same call, two scales: `pareto` sequential vs a local Ray",
        "",
        f"Command: `{command}`",
        "",
        f"Grid: MIT-BIH V vs rest (0.7 s beats, de Chazal; {out['windows']} windows), variants "
        f"{', '.join(grid['variants'])} x widths {grid['widths']} x seeds {grid['seeds']} = {n_runs} runs, "
        f"{args.epochs} epochs each; {os.cpu_count()} CPUs.",
        "",
        "| scale | wall time (s) |",
        "|---|---:|",
        *[f"| {label} | {run['seconds']:.1f} |" for label, run in runs.items()],
        "",
        f"Ratio sequential / workers={args.workers}: **{ratio:.2f}x** (target >= {TARGET}x: "
        f"{'met' if ratio >= TARGET else 'not met'}). The Ray run's time includes starting Ray and importing "
        "TensorFlow in every worker.",
        "",
        f"Points identical (every field but train_seconds): **{'yes' if identical else 'NO'}**.",
        "",
        f"Machine load average (1 min) around each run: {loads}. Other jobs on the machine share its cores: "
        "a load above the CPU count slows the parallel run more than the sequential one.",
    ]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
