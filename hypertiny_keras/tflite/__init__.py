"""The `.tflite` file: flatbuffer read/write (`flatbuffer`), what a file holds (`inspect`), weight codecs (`weight_codecs`).

Below both the export pipeline and the device side; imports neither Keras
nor TensorFlow, nor anything of `export` or `device`.
"""
