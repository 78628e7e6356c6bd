"""The one table of generator activations: Keras, numpy, TFLite fused code and int8 clamp.

The shared generator g runs on the device as TFLite FULLY_CONNECTED with a
fused activation, so only activations that fuse are allowed. The layer (Keras
ops), the boot export's float model of the device (numpy) and its bit-exact
emulation (the int8 clamp of `CalculateActivationRangeQuantized`) all read
this table.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class Activation:
    """A clamp activation `min(max(x, low), high)`; `None` bounds are open.

    `fused` is the TFLite `ActivationFunctionType` code of the schema
    (NONE 0, RELU 1, RELU6 3).
    """

    name: str
    low: float | None
    high: float | None
    fused: int

    def keras(self, x):
        """Applies the activation to a Keras tensor."""
        from keras import ops

        if self.low is None and self.high is None:
            return x
        if self.high is None:
            return ops.maximum(x, self.low)
        return ops.clip(x, self.low, self.high)

    def numpy(self, x: np.ndarray) -> np.ndarray:
        """Applies the activation to a numpy array."""
        return np.clip(x, self.low, self.high) if (self.low, self.high) != (None, None) else x

    def int8_range(self, scale: float, zero_point: int) -> tuple[int, int]:
        """The int8 clamp TFLM applies for this fused activation on an output of (`scale`, `zero_point`)."""
        def quantize(value: float) -> int:
            return zero_point + int(math.floor(abs(value / scale) + 0.5)) * (1 if value >= 0 else -1)

        low, high = -128, 127
        if self.low is not None:
            low = max(low, quantize(self.low))
        if self.high is not None:
            high = min(high, quantize(self.high))
        return low, high


#: Activations of the shared generator, by name.
ACTIVATIONS = {
    "relu": Activation("relu", 0.0, None, 1),
    "relu6": Activation("relu6", 0.0, 6.0, 3),
    "linear": Activation("linear", None, None, 0),
}

#: Names of the activations the shared generator may use (the keys of `ACTIVATIONS`).
GENERATOR_ACTIVATIONS: tuple[str, ...] = tuple(ACTIVATIONS)


def get(name: str) -> Activation:
    """The activation called `name`.

    Raises:
        ValueError: for a name not in `ACTIVATIONS`.
    """
    if name not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {tuple(ACTIVATIONS)} (they fuse into TFLite "
            f"FULLY_CONNECTED), got {name!r}"
        )
    return ACTIVATIONS[name]
