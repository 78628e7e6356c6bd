"""MIT-BIH Arrhythmia recipe: AAMI V-vs-rest (or abnormal-vs-normal) beats.

    .venv/bin/python recipes/mitbih.py --flagfile=recipes/flags/mitbih_dechazal.flags
    .venv/bin/python recipes/mitbih.py --quick --out=/tmp/mitbih_quick
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from hypertiny_keras.data import load_mitbih  # noqa: E402
from hypertiny_keras.experiments.recipe import FLAGS, data_root, define_flags, run_from_flags  # noqa: E402

define_flags("benchmarks/results/mitbih")
flags.DEFINE_string("data_dir", None, "mitdb directory (default $HYPERTINY_DATA/mitdb)")
flags.DEFINE_enum("split", "dechazal", ["dechazal", "paper"], "inter-patient de Chazal, or record-wise 80/10/10")
flags.DEFINE_enum("task", "v_vs_rest", ["v_vs_rest", "abnormal_vs_normal"], "binary AAMI task")
flags.DEFINE_float("window_seconds", 5.0, "window centred on each beat, s (0.7 for a beat-sized window)")
flags.DEFINE_float("fs", 360.0, "sampling rate of the windows, Hz (resampled when not 360)")

QUICK_RECORDS = ["106", "119", "208", "200", "214", "233"]  # DS1: 106 119 208, DS2: 200 214 233 (many V beats)

PAPER = (
    "Paper (Shaalan 2026; a reference, not an output): HyperTinyPW macro-F1 .567, AUC .962, accuracy .902 at "
    "225.3 kB on AAMI V-vs-rest with a patient-wise split. Here: the split named above (de Chazal DS1/DS2 is "
    "inter-patient and harder than a random patient split), windows centred on each beat."
)


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
    run_from_flags(f"MIT-BIH ({FLAGS.split}, {FLAGS.task})", windows, notes=PAPER)


if __name__ == "__main__":
    app.run(main)
