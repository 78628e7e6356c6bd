"""Evaluation protocol: smoothing, threshold tuning, metrics, cluster-bootstrap intervals."""
