"""Stage 4 of the export, shrink: the bytes of a flatbuffer model, made as small as TFLM allows.

compact -> flatbuffer diet (`export.diet`, unless turned off) -> strip names,
signatures and metadata (unless kept) -> compact. TFLM computes the same
outputs before and after.
"""
from __future__ import annotations

import dataclasses

from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from hypertiny_keras.export.diet import diet as flatbuffer_diet
from hypertiny_keras.tflite.flatbuffer import compact, strip, write_model


@dataclasses.dataclass(frozen=True)
class Shrunk:
    """A shrunk file: its bytes, the bytes stripping removed, and the bytes each diet kind removed."""

    data: bytes
    stripped_bytes: int
    diet_bytes: dict[str, int]


def shrink(model: schema.ModelT, diet: bool = True, keep_metadata: bool = False) -> Shrunk:
    """Shrink `model` in place and return its file.

    Args:
        model: a flatbuffer model (changed in place).
        diet: run the flatbuffer diet; `diet_bytes` is empty when off.
        keep_metadata: keep tensor names, signatures and metadata
            (`stripped_bytes` is then 0).
    """
    compact(model)
    dieted = flatbuffer_diet(model, stripped=not keep_metadata) if diet else {}
    unstripped = len(write_model(model))
    if not keep_metadata:
        strip(model)
        compact(model)
    data = write_model(model)
    return Shrunk(data, unstripped - len(data), dieted)
