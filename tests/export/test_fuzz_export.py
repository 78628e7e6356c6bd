"""Fuzz: every random small architecture exports with boot == frozen in TFLM, or is refused with a clear error."""
import os

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from hypertiny_keras.testing.fuzzing import check_export, random_architecture

EXAMPLES = int(os.environ.get("HYPERTINY_FUZZ_EXAMPLES", "200"))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1))
def test_every_architecture_exports_exactly_or_is_refused(tmp_path_factory, seed):
    arch = random_architecture(np.random.default_rng(seed))
    outcome, detail = check_export(arch, tmp_path_factory.mktemp("fuzz"))
    assert outcome in ("exported", "refused"), f"{arch}: {detail}"
