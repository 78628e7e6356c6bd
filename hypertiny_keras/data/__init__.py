"""Dataset loaders: real PhysioNet / Speech Commands files and the embedded synthetic ECG set."""
