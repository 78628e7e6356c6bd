"""Test harnesses the tests and benchmarks share (as Keras ships `keras.src.testing`).

`fuzzing`: random separable architectures exported and checked (boot ==
frozen in TFLM); `mutation`: corrupted `.tflite` files fed to every reader.
"""
