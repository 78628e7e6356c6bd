"""Training of HyperTinyPW models: the Eq. 5 objective inside `model.fit`, AdamW with
gradient clipping and a weight EMA, validation macro-F1 early stopping, NaN-safe
checkpoint/resume (`train`), post-training packing of the generated path
(`pack_model`), per-subject fine-tuning of a named part (`personalize`), and one code
patch per subject of a fleet (`personalize_many`)."""
from hypertiny_keras.training.callbacks import (
    EpochSnapshot,
    NonFiniteLossGuard,
    ValidationMacroF1,
    WeightEMA,
    validation_macro_f1,
)
from hypertiny_keras.training.checkpoint import copy_model, read_checkpoint, write_checkpoint
from hypertiny_keras.training.distiller import Distiller
from hypertiny_keras.training.fleet import FleetSettings, Subject, personalize_many, subjects_from_npz
from hypertiny_keras.training.packing import PackedModel, pack_model, packed_variables, quantize_symmetric
from hypertiny_keras.training.personalize import TRAINABLE, Personalized, codes_file, personalize, tuned_variables
from hypertiny_keras.training.trainer import TrainConfig, TrainResult, train

__all__ = [
    "TRAINABLE",
    "Distiller",
    "EpochSnapshot",
    "FleetSettings",
    "NonFiniteLossGuard",
    "PackedModel",
    "Personalized",
    "Subject",
    "TrainConfig",
    "TrainResult",
    "ValidationMacroF1",
    "WeightEMA",
    "codes_file",
    "copy_model",
    "pack_model",
    "packed_variables",
    "personalize",
    "personalize_many",
    "quantize_symmetric",
    "read_checkpoint",
    "subjects_from_npz",
    "train",
    "tuned_variables",
    "validation_macro_f1",
    "write_checkpoint",
]
