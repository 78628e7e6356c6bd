"""Stage 2 of the export, convert: the frozen Keras model through the TFLite converter (full int8)."""
from __future__ import annotations

import keras
import numpy as np

from hypertiny_keras.export.analyze import ExportPlan, check_representative_data
from hypertiny_keras.export.errors import ExportError
from hypertiny_keras.transforms.freezing import freeze
from hypertiny_keras.utils.quiet import silenced

#: Samples of the representative data used for calibration.
CALIBRATION_SAMPLES = 200


def convert_int8(
    model: keras.Model,
    representative_data: np.ndarray,
    io_dtype: str = "int8",
    batch: int | None = 1,
    dense_per_tensor: bool = True,
) -> bytes:
    """Convert `model` to a full-integer int8 `.tflite` (bytes).

    The model is traced at batch 1 (the device's): the converter then folds
    every shape, so a Conv1D lowers to one CONV_2D between neighbours with no
    EXPAND_DIMS / RESHAPE copies, and Flatten / Reshape become one RESHAPE
    (at a dynamic batch it writes SHAPE -> STRIDED_SLICE -> PACK chains).
    The quickstart's frozen file before the diet: 13,056 -> 11,280 bytes
    (`benchmarks/results/quickstart.json`, before and after commit 3e4bbbc).

    Args:
        model: a Keras model with stored weights (e.g. the result of `freeze`).
        representative_data: float calibration inputs `(n, *input_shape[1:])`.
        io_dtype: `"int8"` for int8 inputs and outputs, `"float32"` to keep
            float I/O (QUANTIZE / DEQUANTIZE at the edges).
        batch: the traced batch size; `None` converts the Keras model as it is
            (dynamic batch, `TFLiteConverter.from_keras_model`).
        dense_per_tensor: one scale per FULLY_CONNECTED weight tensor
            (default) instead of one per output channel. TFLM reads
            per-channel FULLY_CONNECTED weights only since 2024-09
            (tflite-micro #2673); older snapshots, such as both Arduino
            libraries', use the first scale for every channel.

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

        # Traced at batch 1, the device's batch: reshapes (Flatten, Reshape) get constant shapes
        # instead of SHAPE -> STRIDED_SLICE -> PACK chains computing the batch at run time.
        if batch is None:
            converter = tf.lite.TFLiteConverter.from_keras_model(model)
        else:
            spec = tf.TensorSpec((int(batch), *data.shape[1:]), tf.float32)
            concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
            converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = samples
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8 if io_dtype == "int8" else tf.float32
        converter.inference_output_type = tf.int8 if io_dtype == "int8" else tf.float32
        converter._experimental_disable_per_channel_quantization_for_dense_layers = bool(dense_per_tensor)
        return bytes(converter.convert())


def convert(plan: ExportPlan) -> bytes:
    """The converter's int8 `.tflite` of `plan.model`, its generated layers frozen to stored kernels.

    Raises:
        ExportError: when the converter refuses the model (its last message line).
    """
    model = freeze(plan.model) if plan.layers else plan.model
    try:
        return convert_int8(model, plan.x, plan.options.io_dtype, dense_per_tensor=plan.options.dense_per_tensor)
    except ExportError:
        raise
    except Exception as error:  # noqa: BLE001 (the converter raises many types)
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        detail = lines[-1] if lines else type(error).__name__
        raise ExportError(f"the TFLite converter could not convert model {plan.model.name!r}: {detail}") from error
