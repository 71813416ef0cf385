"""Fixtures shared by every test module.

Backends come from ``support.ALL_BACKENDS`` / ``support.COMPILED_BACKENDS``
and, for what not every backend can do, from their ``CAPABILITIES``
(``support.backends_with``): a test that takes ``backend`` runs once per
usable backend, one that takes ``compiled_backend`` once per backend checked
against the reference, and ``threaded_backend`` / ``hogwild_backend`` once
per backend that declares ``"threads"`` / ``"hogwild"``.
"""

import numpy as np
import pytest
from hypothesis import settings

import support

# No example database: nothing is written outside tests/; a failure prints
# its @reproduce_failure blob instead.
settings.register_profile(
    "fastgd", deadline=None, max_examples=40, print_blob=True, database=None
)
settings.load_profile("fastgd")


@pytest.fixture(params=support.ALL_BACKENDS)
def backend(request):
    """Every usable backend, the reference included."""
    return request.param


@pytest.fixture(params=support.COMPILED_BACKENDS)
def compiled_backend(request):
    """Every backend that must agree with the NumPy reference."""
    return request.param


@pytest.fixture(params=support.backends_with("threads"))
def threaded_backend(request):
    """Every backend that runs a batch's gradient on several threads."""
    return request.param


@pytest.fixture(params=support.backends_with("hogwild"))
def hogwild_backend(request):
    """Every backend that runs parallel='hogwild' (lock-free threads)."""
    return request.param


@pytest.fixture(params=support.DTYPES, ids=lambda dt: np.dtype(dt).name)
def dtype(request):
    return request.param


@pytest.fixture
def problem(loss, dtype):
    """A small (X, y) with targets that suit ``loss``; X has dtype ``dtype``."""
    return support.make_problem(loss, dtype)
