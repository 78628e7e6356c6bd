"""Internal utilities: quiet logs for TensorFlow/absl, and atomic file writes."""
