"""MIT-BIH Arrhythmia recipe: AAMI V-vs-rest beats, HyperTinyPW and the model suite.

    .venv/bin/python recipes/mitbih.py --flagfile=recipes/flags/mitbih_dechazal.flags
    .venv/bin/python recipes/mitbih.py --quick --out=/tmp/mitbih_quick
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from hypertiny_keras.data import load_mitbih  # noqa: E402
from hypertiny_keras.experiments import RunSettings  # noqa: E402
from hypertiny_keras.experiments.suite import run_suite, subsample  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", os.environ.get("HYPERTINY_DATA", "../shared/data") + "/mitdb", "mitdb directory")
flags.DEFINE_enum("split", "dechazal", ["dechazal", "paper"], "inter-patient de Chazal or record-wise 80/10/10")
flags.DEFINE_enum("task", "v_vs_rest", ["v_vs_rest", "abnormal_vs_normal"], "binary AAMI task")
flags.DEFINE_float("window_seconds", 5.0, "window length centred on each beat, s")
flags.DEFINE_float("fs", 360.0, "sampling rate of the windows, Hz (resampled when not 360)")
flags.DEFINE_list("models", ["hypertiny_pw", "stored_pw_twin"], "models of the suite to run")
flags.DEFINE_list("seeds", ["0", "1", "2"], "seeds")
flags.DEFINE_integer("epochs", 10, "training epochs")
flags.DEFINE_integer("max_train", 20000, "at most this many training windows (random, per seed 0)")
flags.DEFINE_integer("max_eval", 20000, "at most this many val and test windows each")
flags.DEFINE_integer("bootstrap", 1000, "cluster-bootstrap resamples")
flags.DEFINE_bool("quick", False, "a small end-to-end run for CI (3 DS1 + 3 DS2 records, 0.7 s windows, 1 epoch, 1 seed)")
flags.DEFINE_string("out", "benchmarks/results/mitbih", "results folder")

QUICK_RECORDS = ["106", "119", "208", "200", "214", "233"]  # DS1: 106 119 208, DS2: 200 214 233 (many V beats)


def main(argv):
    del argv
    quick = FLAGS.quick
    windows = load_mitbih(
        FLAGS.data_dir,
        task=FLAGS.task,
        split=FLAGS.split,
        window_seconds=FLAGS.window_seconds if not quick else 0.7,
        fs=FLAGS.fs,
        records=QUICK_RECORDS if quick else None,
    )
    limits = {"train": 1500, "val": 400, "test": 600} if quick else {
        "train": FLAGS.max_train, "val": FLAGS.max_eval, "test": FLAGS.max_eval}
    windows = subsample(windows, limits, seed=0)
    settings = RunSettings(epochs=1 if quick else FLAGS.epochs, bootstrap=50 if quick else FLAGS.bootstrap)
    readme = run_suite(
        f"MIT-BIH ({FLAGS.split}, {FLAGS.task})",
        windows,
        FLAGS.models,
        [0] if quick else [int(s) for s in FLAGS.seeds],
        settings,
        FLAGS.out,
        command=" ".join(["python", "recipes/mitbih.py", *sys.argv[1:]]),
        notes=f"Windows: {windows.x.shape[1]} samples at {windows.fs:g} Hz; "
        f"train/val/test capped at {limits}.",
    )
    print(f"wrote {readme}")


if __name__ == "__main__":
    app.run(main)
