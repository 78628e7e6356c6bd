"""Pareto fronts of real `.tflite` bytes against accuracy over widths x pointwise parameterizations.

Runs `hypertiny_keras.pareto` on a real dataset and writes
`benchmarks/results/pareto/<dataset>.{json,png,md}`.

    .venv/bin/python benchmarks/pareto.py --dataset mitbih
    .venv/bin/python benchmarks/pareto.py --dataset speech_commands --widths 16,32,64 --epochs 10
    .venv/bin/python benchmarks/pareto.py --dataset mitbih --workers 2             # every core (a local Ray)
    .venv/bin/python benchmarks/pareto.py --dataset mitbih --ray-address auto      # a running Ray cluster

Every finished run is written to `<out>/<name>.runs.jsonl` as it arrives: the
same command re-run after an interruption computes only the runs it lacks
(`--fresh` starts over).
    .venv/bin/python benchmarks/pareto.py --report benchmarks/results/pareto/mitbih.json   # re-render only

Datasets (from `$HYPERTINY_DATA`, default `../shared/data`):
- `mitbih`: MIT-BIH Arrhythmia, AAMI V vs rest, de Chazal inter-patient split (DS1 -> train/val by
  patient, DS2 -> test), 0.7 s beat-centred windows at 360 Hz, no score smoothing (it erases
  isolated V beats); metric macro-F1 with t* tuned on validation.
- `mitbih_aami5`: the same beats, AAMI 5 classes (N, S, V, F, Q); metric accuracy.
- `speech_commands`: Speech Commands v0.02 test-set folder, 12 classes, 40 MFCC x 101 frames; metric accuracy.
- `ptbxl`: PTB-XL lead II at 100 Hz (10 s), NORM vs diagnostic, strat_fold splits; the 500-record
  subset under `$HYPERTINY_DATA/ptbxl` (about 50 test records); metric macro-F1.
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

RESULTS = pathlib.Path(__file__).resolve().parent / "results" / "pareto"
DATASETS = ("mitbih", "mitbih_aami5", "speech_commands", "ptbxl")


def dataset_windows(dataset: str, data_root: pathlib.Path):
    """The windows of `dataset` (one of `DATASETS`) under `data_root`, as the fronts use them."""
    from hypertiny_keras.data import load_mitbih, load_ptbxl, load_speech_commands

    if dataset == "ptbxl":
        return load_ptbxl(data_root / "ptbxl")
    if dataset.startswith("mitbih"):
        task = "aami5" if dataset == "mitbih_aami5" else "v_vs_rest"
        return load_mitbih(data_root / "mitdb", task=task, split="dechazal", window_seconds=0.7)
    root = data_root / "speech_commands"
    return load_speech_commands(root / "test_v0.02", features="mfcc", noise_dir=root / "_background_noise_",
                                zscore=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=DATASETS)
    parser.add_argument("--report", metavar="JSON", help="re-render a written front's .md and .png from its .json "
                        "(RAM re-counted from the recorded arena figures: pareto_front.recount_ram); runs nothing")
    parser.add_argument("--widths", default="16,32,64", help="comma-separated block widths")
    parser.add_argument("--variants", default="stored,lowrank_stored,lowrank,kronecker",
                        help="comma-separated names of hypertiny_keras.sweeps.pareto_front.VARIANTS")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--depth", type=int, default=4, help="pointwise layers of the backbone")
    parser.add_argument("--rank", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--max-train", type=int, default=8000, help="random training windows kept")
    parser.add_argument("--max-eval", type=int, default=4000, help="random validation and test windows kept, each")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--name", default=None, help="base name of the written files (default: the dataset)")
    parser.add_argument("--merge", action="store_true",
                        help="replace only the points of this grid (variants x widths) in the existing <name>.json "
                             "(pareto_front.merge)")
    parser.add_argument("--workers", type=int, default=None,
                        help="runs in parallel on this machine (a local Ray with N CPUs; default: one after another)")
    parser.add_argument("--ray-address", default=None,
                        help="run on this Ray cluster: auto, <head-ip>:6379 or ray://<head-ip>:10001")
    parser.add_argument("--fresh", action="store_true", help="ignore (and replace) the journal of finished runs")
    args = parser.parse_args()
    if args.report:
        _report(pathlib.Path(args.report))
        return
    if args.dataset is None:
        parser.error("--dataset is required (or --report JSON)")
    from hypertiny_keras.execution import check_placement

    try:
        check_placement(args.workers, args.ray_address)  # before minutes of loading; run_tasks checks it again
    except ValueError as error:
        parser.error(f"--workers / --ray-address: {error}")

    with quiet.silenced():
        from hypertiny_keras.sweeps.pareto_front import ParetoSettings, merge, pareto
        from hypertiny_research.suite import subsample

    out = pathlib.Path(args.out)
    name = args.name or args.dataset
    previous = None
    if args.merge:
        if not (out / f"{name}.json").is_file():
            parser.error(f"--merge: {out / (name + '.json')} does not exist")
        previous = json.loads((out / f"{name}.json").read_text())
    data_root = pathlib.Path(os.environ.get("HYPERTINY_DATA", "../shared/data"))
    windows = subsample(dataset_windows(args.dataset, data_root),
                        {"train": args.max_train, "val": args.max_eval, "test": args.max_eval}, seed=0)
    settings = ParetoSettings(depth=args.depth, rank=args.rank, epochs=args.epochs)
    journal = out / f"{name}.runs.jsonl"
    if args.fresh:
        journal.unlink(missing_ok=True)
    start = time.time()
    bar = os.fdopen(os.dup(2), "w")  # the real stderr: the progress bar stays visible while the rest is silenced
    with quiet.silenced():
        result = pareto(
            windows,
            widths=[int(w) for w in args.widths.split(",")],
            variants=args.variants.split(","),
            seeds=[int(s) for s in args.seeds.split(",")],
            settings=settings,
            progress=bar,
            workers=args.workers,
            address=args.ray_address,
            journal=journal,
        )
    minutes = (time.time() - start) / 60
    command = "HYPERTINY_DATA=../shared/data .venv/bin/python benchmarks/pareto.py " + " ".join(sys.argv[1:])
    result.update(dataset=args.dataset, command=command, minutes=minutes,
                  windows={s: int((windows.split == s).sum()) for s in ("train", "val", "test")},
                  class_names=list(windows.class_names))
    if previous is not None:
        commands = previous.get("commands", [previous["command"]]) + [command]
        result = merge(previous, result)
        result.update(commands=commands, command=" && ".join(commands), minutes=previous["minutes"] + minutes)
    result["workers"] = args.workers
    _write(result, out, name)


def _report(path: pathlib.Path) -> None:
    """Re-write `path`'s .md and .png (and the .json's RAM figures) from the recorded points."""
    from hypertiny_keras.sweeps.pareto_front import recount_ram

    result = json.loads(path.read_text())
    if any(p.get("ram_bytes", 0) != p.get("arena_bytes", 0) for p in result["points"]):
        result = recount_ram(result)
        result["ram_note"] = ("RAM re-counted from the recorded arena figures (the first rendering added the "
                              "generated kernels to the arena, which already holds them).")
    _write(result, path.parent, path.stem)


def _write(result: dict, out: pathlib.Path, name: str) -> None:
    from hypertiny_keras.sweeps.pareto_front import markdown, plot_pareto
    from hypertiny_keras.utils.fileio import atomic_write

    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / f"{name}.json", (json.dumps(result, indent=2) + "\n").encode())
    title = f"{name}: {result['metric']} vs .tflite bytes ({len(result['seeds'])} seeds)"
    plot_pareto(result, out / f"{name}.png", title=title)
    text = markdown(result, title, result["command"])
    workers = result.get("workers")
    text += (f"\nWindows used: {result['windows']} ({', '.join(result['class_names'])}); "
             f"{result['minutes']:.0f} min on this 2-core machine"
             f"{f' with --workers {workers}' if workers else ''}.\n\n![front]({name}.png)\n")
    atomic_write(out / f"{name}.md", text.encode())
    print(f"wrote {out / (name + '.md')}")


if __name__ == "__main__":
    main()
