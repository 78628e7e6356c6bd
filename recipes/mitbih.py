"""MIT-BIH Arrhythmia recipe: AAMI V-vs-rest (or abnormal-vs-normal) beats.

    .venv/bin/python recipes/mitbih.py --flagfile=recipes/flags/mitbih_dechazal.flags
    .venv/bin/python recipes/mitbih.py --quick --out=/tmp/mitbih_quick
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from hypertiny_keras.data import load_mitbih  # noqa: E402
from hypertiny_research.paper import note  # noqa: E402
from hypertiny_research.recipe import (  # noqa: E402
    FLAGS,
    data_root,
    define_flags,
    ecg_hrv_inputs,
    run_from_flags,
)

# Beat task: no score smoothing by default (5-window median smoothing erases isolated V beats:
# the same 0.7 s beats score about .57 macro-F1 with it and .86 without).
define_flags("benchmarks/results/mitbih", default_smoothing=1)
flags.DEFINE_string("data_dir", None, "mitdb directory (default $HYPERTINY_DATA/mitdb)")
flags.DEFINE_enum("split", "dechazal", ["dechazal", "paper"], "inter-patient de Chazal, or record-wise 80/10/10")
flags.DEFINE_enum("task", "v_vs_rest", ["v_vs_rest", "abnormal_vs_normal"], "binary AAMI task")
flags.DEFINE_float("window_seconds", 5.0, "window centred on each beat, s (0.7 for a beat-sized window)")
flags.DEFINE_float("fs", 360.0, "sampling rate of the windows, Hz (resampled when not 360)")

QUICK_RECORDS = ["106", "119", "208", "200", "214", "233"]  # DS1: 106 119 208, DS2: 200 214 233 (many V beats)


def main(argv):
    del argv
    windows = load_mitbih(
        FLAGS.data_dir or os.path.join(data_root(), "mitdb"),
        task=FLAGS.task,
        split=FLAGS.split,
        window_seconds=0.7 if FLAGS.quick else FLAGS.window_seconds,
        fs=FLAGS.fs,
        records=QUICK_RECORDS if FLAGS.quick else None,
    )
    run_from_flags(f"MIT-BIH ({FLAGS.split}, {FLAGS.task})", windows, notes=note("mitbih"), hrv_inputs=ecg_hrv_inputs)


if __name__ == "__main__":
    app.run(main)
