"""The `hypertiny` command: quickstart, export, inspect, data summary."""
from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _quickstart(args) -> None:
    from hypertiny_keras.quickstart import run_quickstart

    run_quickstart(args.out, seed=args.seed, epochs=args.epochs, beats=args.beats)


def _export(args) -> None:
    import numpy as np

    if args.arduino:
        from hypertiny_keras.export.arduino import export_arduino

        windows = labels = None
        if args.windows and args.windows.endswith(".npz"):  # e.g. the quickstart's test_windows.npz
            with np.load(args.windows) as saved:
                windows, labels = saved["windows"], saved.get("labels")
        elif args.windows:
            windows = np.load(args.windows)
        if args.labels:
            labels = np.load(args.labels)
        result = export_arduino(args.model, args.arduino, windows=windows, labels=labels)
        print(json.dumps(result, indent=2))
        return
    import keras

    import hypertiny_keras  # noqa: F401  (registers the layers for loading)
    from hypertiny_keras.export import export_tflite

    if not args.data or not args.out:
        raise SystemExit("hypertiny export MODEL.keras needs --data X.npy and --out FILE.tflite")
    model = keras.saving.load_model(args.model)
    report = export_tflite(
        model,
        np.load(args.data),
        args.out,
        synthesis=args.synthesis,
        io_dtype=args.io,
        per_channel=args.per_channel,
        keep_metadata=args.keep_metadata,
    )
    print(report)


def _inspect(args) -> None:
    from hypertiny_keras.export import format_inspection, inspect_tflite

    with open(args.file, "rb") as f:
        info = inspect_tflite(f.read())
    print(json.dumps(info, indent=2) if args.json else format_inspection(info))


def _data_summary(args) -> None:
    from hypertiny_keras.data import summary_cli

    summary_cli(args.dataset, args.data_dir, json_path=args.json)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hypertiny", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quickstart", help="train, export and verify the quickstart model (offline)")
    q.add_argument("--out", default="out/quickstart", help="output directory")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--epochs", type=int, default=8)
    q.add_argument("--beats", type=int, default=6000, help="synthetic windows (80/10/10 split)")
    q.set_defaults(run=_quickstart)

    e = sub.add_parser("export", help="export a .keras model to int8 .tflite, or a .tflite to an Arduino sketch")
    e.add_argument("model", help="MODEL.keras (or MODEL.tflite with --arduino)")
    e.add_argument("--data", help="representative float inputs, .npy of shape (n, *input_shape)")
    e.add_argument("--out", help="output .tflite path (the report goes beside it as .json)")
    e.add_argument("--synthesis", choices=("boot", "frozen"), default="boot")
    e.add_argument("--io", choices=("int8", "float32"), default="int8", help="input/output type")
    e.add_argument("--per-channel", action="store_true", help="per-channel scales for generated filters")
    e.add_argument("--keep-metadata", action="store_true", help="keep names, signatures and metadata")
    e.add_argument("--arduino", metavar="DIR", help="write an Arduino sketch folder for MODEL.tflite")
    e.add_argument("--windows", help="float test windows for the sketch: .npy, or .npz with 'windows' (and 'labels')")
    e.add_argument("--labels", help="labels .npy of the test windows")
    e.set_defaults(run=_export)

    i = sub.add_parser("inspect", help="subgraphs, operators and bytes by role of a .tflite")
    i.add_argument("file")
    i.add_argument("--json", action="store_true")
    i.set_defaults(run=_inspect)

    d = sub.add_parser("data", help="datasets")
    dsub = d.add_subparsers(dest="data_command", required=True)
    s = dsub.add_parser("summary", help="windows, classes and records per split")
    s.add_argument("--dataset", required=True, choices=("mitbih", "ptbxl", "apnea_ecg", "speech_commands"))
    s.add_argument("--data-dir", required=True)
    s.add_argument("--json", help="also write the summary to this JSON file")
    s.set_defaults(run=_data_summary)
    return p


def run(argv: list[str] | None = None) -> None:
    """Entry point of the `hypertiny` console script."""
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except (ValueError, FileNotFoundError, RuntimeError) as error:
        print(f"hypertiny {args.command}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from error


if __name__ == "__main__":
    run()
