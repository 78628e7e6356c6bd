"""Dataset loaders: real PhysioNet / Speech Commands files and the embedded synthetic ECG set.

Every loader takes the dataset's directory as distributed and returns `Windows` (inputs, labels,
record / patient ids, split and time order), cached on disk by `cached_windows`.
"""
from hypertiny_keras.data.apnea_ecg import load_apnea_ecg, read_minute_labels
from hypertiny_keras.data.audio_frontend import augment, mfcc
from hypertiny_keras.data.cache import cache_root, cached_windows
from hypertiny_keras.data.errors import DataError
from hypertiny_keras.data.mitbih import AAMI_CLASSES, AAMI_MAP, aami_labels, load_mitbih, read_beats
from hypertiny_keras.data.ptbxl import load_ptbxl
from hypertiny_keras.data.speech_commands import (
    load_background_noise,
    load_speech_commands,
    training_map,
)
from hypertiny_keras.data.splits import assign_groups
from hypertiny_keras.data.summary import format_summary, summarize, summary_cli
from hypertiny_keras.data.synthetic import CLASS_NAMES as SYNTHETIC_CLASS_NAMES
from hypertiny_keras.data.synthetic import make_beats
from hypertiny_keras.data.windows import Windows, clean_windows, normalize_windows

__all__ = [
    "SYNTHETIC_CLASS_NAMES",
    "make_beats",
    "AAMI_CLASSES",
    "AAMI_MAP",
    "DataError",
    "Windows",
    "aami_labels",
    "assign_groups",
    "augment",
    "cache_root",
    "cached_windows",
    "clean_windows",
    "format_summary",
    "load_apnea_ecg",
    "load_background_noise",
    "load_mitbih",
    "load_ptbxl",
    "load_speech_commands",
    "mfcc",
    "normalize_windows",
    "read_beats",
    "read_minute_labels",
    "summarize",
    "summary_cli",
    "training_map",
]
