"""Hand-made input features for the feature-based baselines."""
from hypertiny_keras.features.hrv import (
    FEATURE_NAMES,
    MIN_BEATS,
    NUM_FEATURES,
    detect_r_peaks,
    hrv_features,
    hrv_features_from_rr,
)

__all__ = ["FEATURE_NAMES", "MIN_BEATS", "NUM_FEATURES", "detect_r_peaks", "hrv_features", "hrv_features_from_rr"]
