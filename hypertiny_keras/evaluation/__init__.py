"""Evaluation protocol: smoothing, threshold tuning, metrics, cluster-bootstrap intervals.

And `evaluate` of a Keras model or an int8 `.tflite` file (run in TFLM) on `Windows`.
"""
from hypertiny_keras.evaluation.bootstrap import (
    cluster_bootstrap_ci,
    cluster_bootstrap_samples,
    percentile_interval,
)
from hypertiny_keras.evaluation.evaluate import (
    evaluate,
    evaluate_logits,
    model_outputs,
    positive_probability,
    score_inputs,
)
from hypertiny_keras.evaluation.metrics import (
    binary_metrics,
    confusion_matrix,
    macro_f1,
    multiclass_metrics,
    per_class_scores,
    roc_auc,
    softmax,
)
from hypertiny_keras.evaluation.protocol import evaluate_binary, evaluate_multiclass, format_table
from hypertiny_keras.evaluation.smoothing import median_smooth
from hypertiny_keras.evaluation.threshold import THRESHOLD_GRID, tune_threshold

__all__ = [
    "THRESHOLD_GRID",
    "binary_metrics",
    "cluster_bootstrap_ci",
    "cluster_bootstrap_samples",
    "confusion_matrix",
    "evaluate",
    "evaluate_binary",
    "evaluate_logits",
    "evaluate_multiclass",
    "format_table",
    "macro_f1",
    "median_smooth",
    "model_outputs",
    "multiclass_metrics",
    "per_class_scores",
    "percentile_interval",
    "positive_probability",
    "roc_auc",
    "score_inputs",
    "softmax",
    "tune_threshold",
]
