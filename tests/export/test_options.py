"""ExportOptions: validated in one place; export_tflite's keywords and `options=` are the same choices."""
import inspect

import numpy as np
import pytest

from hypertiny_keras.export import ExportError, ExportOptions, export_tflite
from hypertiny_keras.testing.fuzzing import Architecture, build, representative_data


def test_keyword_defaults_are_the_options_defaults():
    parameters = inspect.signature(export_tflite).parameters
    defaults = ExportOptions()
    for field in ExportOptions.__dataclass_fields__:
        assert parameters[field].default == getattr(defaults, field), field
    assert defaults.dense_per_tensor  # one FULLY_CONNECTED scale: what both Arduino TFLM libraries read


@pytest.mark.parametrize("changes,match", [
    (dict(synthesis="lazy"), "synthesis must be one of"),
    (dict(io_dtype="int16"), "io_dtype must be one of"),
    (dict(verify_samples=0), "verify_samples must be >= 1"),
    (dict(tolerance_steps=float("nan")), "tolerance_steps must be a number >= 0"),
    (dict(tolerance_steps="x"), "must be numbers"),
    (dict(init_weight_bits=6), "init_weight_bits must be 8 or 4"),
])
def test_bad_options_are_refused_when_made(changes, match):
    with pytest.raises(ExportError, match=match):
        ExportOptions(**changes)


def test_options_are_normalised_and_frozen():
    options = ExportOptions(verify_samples=np.int64(8), tolerance_steps=3, per_channel=0)
    assert (options.verify_samples, options.tolerance_steps, options.per_channel) == (8, 3.0, False)
    assert type(options.verify_samples) is int and type(options.tolerance_steps) is float
    with pytest.raises(AttributeError):
        options.synthesis = "frozen"


def test_options_argument_exports_like_the_keywords(tmp_path):
    arch = Architecture(dims=1, channels=1, widths=(8, 12), head="dense", rank=2, code_dim=4, hidden_dim=8,
                        generator_activation="relu", pw_activation="relu", use_bias=True, batch_norm=False,
                        residual=False, style="functional", seed=3)
    model, x = build(arch), representative_data(arch)
    by_keywords = export_tflite(model, x, tmp_path / "a.tflite", synthesis="frozen", verify_samples=8)
    by_options = export_tflite(model, x, tmp_path / "b.tflite",
                               options=ExportOptions(synthesis="frozen", verify_samples=8))
    assert (tmp_path / "a.tflite").read_bytes() == (tmp_path / "b.tflite").read_bytes()
    assert by_options.synthesis == by_keywords.synthesis == "frozen" and by_options.dense_per_tensor
    with pytest.raises(ExportError, match="not both.*synthesis"):
        export_tflite(model, x, tmp_path / "c.tflite", synthesis="frozen", options=ExportOptions())
    assert not (tmp_path / "c.tflite").exists()
