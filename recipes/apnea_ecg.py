"""Apnea-ECG recipe: per-minute apnea detection from RR intervals (or raw ECG when the .dat files exist).

    .venv/bin/python recipes/apnea_ecg.py --flagfile=recipes/flags/apnea_ecg_rr.flags
    .venv/bin/python recipes/apnea_ecg.py --quick --out=/tmp/apnea_quick
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from hypertiny_keras.data import Windows, load_apnea_ecg  # noqa: E402
from hypertiny_research.hrv import hrv_features_from_rr  # noqa: E402
from hypertiny_research.paper import note  # noqa: E402
from hypertiny_research.recipe import (  # noqa: E402
    FLAGS,
    data_root,
    define_flags,
    ecg_hrv_inputs,
    run_from_flags,
)

define_flags("benchmarks/results/apnea_ecg")
flags.DEFINE_string("data_dir", None, "apnea-ecg directory (default $HYPERTINY_DATA/apnea-ecg)")
flags.DEFINE_enum("signal", "rr", ["rr", "ecg"], "RR intervals from .qrs, or the raw 100 Hz ECG (.dat needed)")
flags.DEFINE_enum("split", "official", ["official", "record"], "a/b/c -> train/val, x -> test; or record-wise 80/10/10")
flags.DEFINE_integer("context_minutes", 2, "minutes of RR context on each side of the labelled minute")

QUICK_RECORDS = ["a01", "a02", "b01", "c01", "x01", "x02"]


def rr_hrv_inputs(raw: Windows):
    """HRVFeatNet inputs of (z-scored) RR windows, computed from the same windows in seconds.

    `raw` is the load with `zscore=False`; each window is found in it by (record, order).
    """
    row = {key: i for i, key in enumerate(zip(raw.record, raw.order))}

    def inputs(windows: Windows) -> np.ndarray:
        idx = [row[key] for key in zip(windows.record, windows.order)]
        return hrv_features_from_rr(raw.x[idx], raw.fs)

    return inputs


def main(argv):
    del argv

    def load(zscore: bool) -> Windows:
        return load_apnea_ecg(
            FLAGS.data_dir or os.path.join(data_root(), "apnea-ecg"),
            signal=FLAGS.signal,
            split=FLAGS.split,
            context_minutes=FLAGS.context_minutes,
            records=QUICK_RECORDS if FLAGS.quick else None,
            zscore=zscore,
        )

    hrv_inputs = ecg_hrv_inputs
    if FLAGS.signal == "rr" and "hrv_featnet" in FLAGS.models and not FLAGS.report_only:  # RR in seconds
        hrv_inputs = rr_hrv_inputs(load(zscore=False))
    run_from_flags(f"Apnea-ECG ({FLAGS.signal}, {FLAGS.split} split)", load(zscore=True), notes=note("apnea_ecg"),
                   hrv_inputs=hrv_inputs)


if __name__ == "__main__":
    app.run(main)
