"""PTB-XL recipe: lead II at 100 Hz, NORM vs any diagnostic statement, strat_fold 1-8 / 9 / 10.

    .venv/bin/python recipes/ptbxl.py --flagfile=recipes/flags/ptbxl.flags
    .venv/bin/python recipes/ptbxl.py --quick --out=/tmp/ptbxl_quick
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from hypertiny_keras.data import load_ptbxl  # noqa: E402
from hypertiny_research.paper import note  # noqa: E402
from hypertiny_research.recipe import (  # noqa: E402
    FLAGS,
    data_root,
    define_flags,
    ecg_hrv_inputs,
    run_from_flags,
)

define_flags("benchmarks/results/ptbxl", default_epochs=30)
flags.DEFINE_string("data_dir", None, "PTB-XL directory (default $HYPERTINY_DATA/ptbxl)")


def main(argv):
    del argv
    windows = load_ptbxl(FLAGS.data_dir or os.path.join(data_root(), "ptbxl"))
    run_from_flags("PTB-XL (lead II, NORM vs diagnostic)", windows, notes=note("ptbxl"), hrv_inputs=ecg_hrv_inputs)


if __name__ == "__main__":
    app.run(main)
