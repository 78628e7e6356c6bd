"""Training of HyperTinyPW models: the Eq. 5 objective inside `model.fit`."""
from hypertiny_keras.training.distiller import Distiller

__all__ = ["Distiller"]
