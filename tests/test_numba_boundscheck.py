"""The Numba kernels under ``NUMBA_BOUNDSCHECK=1`` (``make test-debug``).

The release kernels index without checks: validated input never needs them.
The debug run compiles them again with Numba's bounds checking on (and an
empty cache directory, so the cached release kernels are not reused) and runs
the contract tests that way; this module proves the checks are really on.
"""

import os

import numpy as np
import pytest

from fastgd._config import N_STATE_SLOTS
from fastgd._validation import check_fit_settings

from support import make_problem

numba = pytest.importorskip("numba")


@pytest.mark.skipif(
    os.environ.get("NUMBA_BOUNDSCHECK") != "1",
    reason="bounds-checked kernels: run with NUMBA_BOUNDSCHECK=1 (make test-debug)",
)
def test_numba_kernels_check_bounds():
    from fastgd.backends import get_backend

    assert numba.config.BOUNDSCHECK, "NUMBA_BOUNDSCHECK=1 but Numba did not read it"
    kernels = get_backend("numba")
    X, y = make_problem("squared_error", np.float64)
    cfg, run = check_fit_settings(
        loss="squared_error", optimizer="sgd", lr=0.01, schedule="constant",
        batch_size=1, n_samples=len(X), epochs=1, penalty=None, alpha=0.0,
        l1_ratio=0.15, fit_intercept=True, drop_last=False, tol=None,
        n_iter_no_change=5, epsilon=0.1, power_t=0.25, decay=0.9, step_size=10,
        gamma=0.1, momentum=0.9, beta1=0.9, beta2=0.999, eps=1e-8, rho=0.9,
        weight_decay=0.01,
    )  # fmt: skip
    order = np.arange(3, dtype=np.int32)
    order[-1] = len(X)  # one row past the end
    P = np.zeros((1, X.shape[1] + 1))
    state = np.zeros((N_STATE_SLOTS,) + P.shape)
    with pytest.raises(IndexError):
        kernels.run_epoch(X, y, order, P, state, cfg, 0.01, 0, run)
