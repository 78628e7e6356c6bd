"""Model builders: the HyperTinyPW separable CNN, its stored twin, and a DS-CNN keyword spotter."""
from hypertiny_keras.models.ds_cnn import ds_cnn
from hypertiny_keras.models.separable import NORMALIZATIONS, hypertiny_pw, stored_pw_twin

__all__ = ["NORMALIZATIONS", "ds_cnn", "hypertiny_pw", "stored_pw_twin"]
