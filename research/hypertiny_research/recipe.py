"""What every recipe shares: its absl flags and the call that runs the suite from them."""
from __future__ import annotations

import os
import sys
from collections.abc import Callable

import numpy as np
from absl import flags

from hypertiny_keras.data.windows import Windows
from hypertiny_keras.sweeps.runner import RunSettings
from hypertiny_research.hrv import hrv_features
from hypertiny_research.report import write_report
from hypertiny_research.suite import run_suite, subsample

FLAGS = flags.FLAGS
#: Window caps of `--quick` runs (CI): train, val, test.
QUICK_LIMITS = {"train": 1500, "val": 400, "test": 600}


def data_root() -> str:
    """`$HYPERTINY_DATA`, default `../shared/data` (relative to the project root)."""
    return os.environ.get("HYPERTINY_DATA", "../shared/data")


def define_flags(default_out: str, default_epochs: int = 10, default_smoothing: int = 5) -> None:
    """The flags of every recipe (dataset flags are defined by the recipe itself).

    `default_smoothing` is the recipe's median-smoothing length in windows: 5
    (the paper's protocol) for minute- and record-level tasks, 1 (none) for
    beat tasks, where smoothing a beat's score with its neighbours' erases
    isolated ectopic beats.
    """
    flags.DEFINE_list("models", ["hypertiny_pw", "stored_pw_twin"], "models of the suite to run")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "seeds")
    flags.DEFINE_integer("epochs", default_epochs, "training epochs")
    flags.DEFINE_integer("batch_size", 64, "batch size")
    flags.DEFINE_integer("max_train", 20000, "at most this many training windows (random)")
    flags.DEFINE_integer("max_eval", 20000, "at most this many validation and test windows each")
    flags.DEFINE_integer("bootstrap", 1000, "cluster-bootstrap resamples")
    flags.DEFINE_integer("smoothing", default_smoothing,
                         "median-smoothing length (odd, in windows) along each record; 1 = none")
    flags.DEFINE_bool("quick", False, "a small end-to-end run for CI: few windows, 1 epoch, 1 seed")
    flags.DEFINE_string("out", default_out, "results folder")
    flags.DEFINE_string("export_dir", None, "keep the exported .tflite files here")
    flags.DEFINE_integer("workers", None, "runs in parallel on this machine (a local Ray with N CPUs)")
    flags.DEFINE_string("ray_address", None, "run on this Ray cluster: auto, <head-ip>:6379 or ray://<head-ip>:10001")
    flags.DEFINE_bool("report_only", False, "train nothing: rewrite the README and plots from the JSON in --out")


def ecg_hrv_inputs(windows: Windows) -> np.ndarray:
    """HRVFeatNet inputs of ECG windows: `(N, 16)` features from the R peaks detected in each window."""
    return hrv_features(windows.x, windows.fs)


def run_from_flags(
    dataset: str,
    windows: Windows,
    notes: str = "",
    hrv_inputs: Callable[[Windows], np.ndarray] | None = None,
) -> None:
    """Cap the splits, run the suite over the seeds and print where the README went.

    `hrv_inputs(windows) -> (N, 16)` lets the suite run HRVFeatNet (see `suite.model_specs`).
    """
    quick = FLAGS.quick
    limits = QUICK_LIMITS if quick else {"train": FLAGS.max_train, "val": FLAGS.max_eval, "test": FLAGS.max_eval}
    windows = subsample(windows, limits, seed=0)
    settings = RunSettings(
        epochs=1 if quick else FLAGS.epochs,
        batch_size=FLAGS.batch_size,
        bootstrap=50 if quick else FLAGS.bootstrap,
        kernel=FLAGS.smoothing,
    )
    smoothing = ("" if len(windows.class_names) != 2  # binary tasks only (evaluate_binary)
                 else "; scores not smoothed (each window scored alone)" if FLAGS.smoothing == 1
                 else f"; scores median-smoothed over {FLAGS.smoothing} windows along each record")
    notes = f"Windows: {windows.x.shape[1:]} at {windows.fs:g} Hz; splits capped at {limits}{smoothing}. {notes}"
    if FLAGS.report_only:
        print(f"wrote {write_report(FLAGS.out, dataset, notes)}")
        return
    readme = run_suite(
        dataset,
        windows,
        FLAGS.models,
        [0] if quick else [int(s) for s in FLAGS.seeds],
        settings,
        FLAGS.out,
        command=" ".join(["python", *sys.argv]),
        notes=notes,
        export_dir=FLAGS.export_dir,
        hrv_inputs=hrv_inputs,
        workers=FLAGS.workers,
        address=FLAGS.ray_address,
    )
    print(f"wrote {readme}")
