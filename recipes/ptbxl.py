"""PTB-XL recipe: lead II at 100 Hz, NORM vs any diagnostic statement, strat_fold 1-8 / 9 / 10.

    .venv/bin/python recipes/ptbxl.py --flagfile=recipes/flags/ptbxl.flags
    .venv/bin/python recipes/ptbxl.py --quick --out=/tmp/ptbxl_quick
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from hypertiny_keras.data import load_ptbxl  # noqa: E402
from hypertiny_keras.experiments.recipe import FLAGS, data_root, define_flags, run_from_flags  # noqa: E402

define_flags("benchmarks/results/ptbxl", default_epochs=30)
flags.DEFINE_string("data_dir", None, "PTB-XL directory (default $HYPERTINY_DATA/ptbxl)")

PAPER = (
    "Paper (Shaalan 2026, test, full PTB-XL, folds 8/1/1; references, not outputs): HyperTinyPW macro-F1 .629, "
    "AUC .876 at 225.5 kB; RegularCNN .629/.881; ResNet1D .623/.877; TinySepCNN .617/.868; TinyVAE .594/.807; "
    "HRVFeat .534/.717. Here: the 500-record subset in ../shared/data (488 records with a diagnostic "
    "statement; test = fold 10, 64 records), so intervals are wide and the comparison is indicative only."
)


def main(argv):
    del argv
    windows = load_ptbxl(FLAGS.data_dir or os.path.join(data_root(), "ptbxl"))
    run_from_flags("PTB-XL (lead II, NORM vs diagnostic)", windows, notes=PAPER)


if __name__ == "__main__":
    app.run(main)
