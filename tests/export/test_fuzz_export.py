"""Fuzz: every random small architecture exports with boot == frozen in TFLM, or is refused with a clear error.

`check_export` exports each model twice (`synthesis="boot"` and `"frozen"`)
and compares the two files' outputs in TFLM bit for bit. Every registered
kernel kind is checked once with BatchNormalization after its generated
layers and residual Adds around them; the random draws cover the rest of
the space (all kinds, read from the registry).
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypertiny_keras.testing.fuzzing import Architecture, check_export, kinds, random_architecture

EXAMPLES = int(os.environ.get("HYPERTINY_FUZZ_EXAMPLES", "100"))


@pytest.mark.parametrize("head", kinds())
@pytest.mark.parametrize("dims", [1, 2])
def test_every_kind_with_batch_norm_and_residual_adds_boots_as_it_freezes(tmp_path, head, dims):
    # Widths 8 -> 8 -> 16 -> 16: pw2 and pw4 sit inside residual Adds, each generated layer before a BatchNorm.
    arch = Architecture(dims=dims, channels=2, widths=(8, 8, 16, 16), head=head, rank=2, code_dim=4, hidden_dim=8,
                        generator_activation="relu", pw_activation="relu", use_bias=True, batch_norm=True,
                        residual=True, style="functional", seed=11 + dims)
    assert check_export(arch, tmp_path) == ("exported", "")


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1))
def test_every_architecture_exports_exactly_or_is_refused(tmp_path_factory, seed):
    arch = random_architecture(np.random.default_rng(seed))
    outcome, detail = check_export(arch, tmp_path_factory.mktemp("fuzz"))
    assert outcome in ("exported", "refused"), f"{arch}: {detail}"
