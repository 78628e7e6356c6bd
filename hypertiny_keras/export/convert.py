"""Full-integer conversion of a Keras model with the TFLite converter."""
from __future__ import annotations

import keras
import numpy as np

from hypertiny_keras.quiet import silenced

#: Samples of the representative data used for calibration.
CALIBRATION_SAMPLES = 200


def check_representative_data(model: keras.Model, data) -> np.ndarray:
    """Validate calibration data: float, finite, shaped `(n, *model.input_shape[1:])`."""
    data = np.asarray(data)
    if not np.issubdtype(data.dtype, np.floating):
        raise ValueError(
            f"representative_data must be float (the model's float inputs), got dtype {data.dtype}"
        )
    expected = tuple(model.inputs[0].shape[1:])
    if data.ndim != len(expected) + 1 or tuple(data.shape[1:]) != expected or len(data) == 0:
        raise ValueError(
            f"representative_data must have shape (n, {', '.join(map(str, expected))}) "
            f"with n >= 1, got {data.shape}"
        )
    if not np.isfinite(data).all():
        raise ValueError("representative_data contains NaN or infinite values")
    return data.astype(np.float32)


def convert_int8(model: keras.Model, representative_data: np.ndarray, io_dtype: str = "int8") -> bytes:
    """Convert `model` to a full-integer int8 `.tflite` (bytes).

    Args:
        model: a Keras model with stored weights (e.g. the result of `freeze`).
        representative_data: float calibration inputs `(n, *input_shape[1:])`.
        io_dtype: `"int8"` for int8 inputs and outputs, `"float32"` to keep
            float I/O (QUANTIZE / DEQUANTIZE at the edges).

    What TensorFlow and the converter print is silenced (`quiet.silenced`).
    """
    with silenced():  # the converter prints ~40 lines; HYPERTINY_VERBOSE=1 shows them
        import tensorflow as tf

        if io_dtype not in ("int8", "float32"):
            raise ValueError(f"io_dtype must be 'int8' or 'float32', got {io_dtype!r}")
        data = check_representative_data(model, representative_data)[:CALIBRATION_SAMPLES]

        def samples():
            for i in range(len(data)):
                yield [data[i : i + 1]]

        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8 if io_dtype == "int8" else tf.float32
        converter.inference_output_type = tf.int8 if io_dtype == "int8" else tf.float32
        return bytes(converter.convert())
