"""Speech Commands recipe: 12-class keyword spotting on MFCC 101 x 40 (frames x coefficients).

The backbone is the 1-D separable CNN over time with the 40 MFCC coefficients as channels.
On the official test-set folder alone (as in ../shared/data) the split is speaker-disjoint.

    .venv/bin/python recipes/speech_commands.py --flagfile=recipes/flags/speech_commands.flags
    .venv/bin/python recipes/speech_commands.py --quick --out=/tmp/kws_quick
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags  # noqa: E402

from hypertiny_keras.data import load_speech_commands  # noqa: E402
from hypertiny_research.paper import note  # noqa: E402
from hypertiny_research.recipe import FLAGS, data_root, define_flags, run_from_flags  # noqa: E402

define_flags("benchmarks/results/speech_commands", default_epochs=30)
flags.DEFINE_string("data_dir", None, "Speech Commands folder (default $HYPERTINY_DATA/speech_commands/test_v0.02)")
flags.DEFINE_string("noise_dir", None, "_background_noise_ folder (silence clips)")


def main(argv):
    del argv
    root = os.path.join(data_root(), "speech_commands")
    windows = load_speech_commands(
        FLAGS.data_dir or os.path.join(root, "test_v0.02"),
        features="mfcc",
        noise_dir=FLAGS.noise_dir or os.path.join(root, "_background_noise_"),
        max_clips_per_class=60 if FLAGS.quick else None,
        zscore=True,
    )
    run_from_flags("Speech Commands (12 classes, MFCC 101 x 40)", windows, notes=note("speech_commands"))


if __name__ == "__main__":
    app.run(main)
