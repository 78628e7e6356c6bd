"""The `.tflite` file: read/write (`flatbuffer`), what it holds (`inspect`, `roles`), codecs, code patches.

Below both the export pipeline and the device side; imports neither Keras
nor TensorFlow, nor anything of `export` or `device`.
"""
