"""Model builders."""
from hypertiny_keras.models.separable import NORMALIZATIONS, hypertiny_pw, stored_pw_twin

__all__ = ["NORMALIZATIONS", "hypertiny_pw", "stored_pw_twin"]
