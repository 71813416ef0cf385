"""Every backend's epoch kernel beside the NumPy reference (`make bench-kernels`).

A pytest-benchmark suite, not part of `make test`::

    pytest bench/ --benchmark-group-by=param

prints one table per batch size (1, 32, 4096) with the backends side by side
(``param:batch_size`` and the default ``group`` grouping give the same tables).
The problem is fixed: n = 100,000 × d = 64 float64 from ``make_problem``,
squared error, plain SGD, one epoch in a fixed shuffled row order, from zero
parameters. Each benchmark first asserts that its backend's parameters and
epoch loss equal the reference's on the same input (rtol 1e-9), then times
(``_common.check_then_time``, with pytest-benchmark as the timer).

At batch size 1 the epoch covers the first 10,000 rows of the order (the
reference needs about 0.25 s for those); every backend gets the same rows, so
a group compares like with like. ``extra_info`` records the rows and rows/s.
"""

import functools

import numpy as np
import pytest

from fastgd._config import N_STATE_SLOTS
import fastgd
from fastgd._engine import row_order_dtype
from fastgd._synthetic import make_problem
from fastgd._validation import check_fit_settings
from fastgd.backends import get_backend

from ._common import SETTINGS, SHUFFLED, Case, check_then_time

N_SAMPLES, N_FEATURES = 100_000, 64
# Rows of the timed epoch, per batch size.
ROWS = {1: 10_000, 32: N_SAMPLES, 4096: N_SAMPLES}

# The batch size is the only parameter, so `--benchmark-group-by=param`
# groups by it and each group holds one test per backend.
batch_sizes = pytest.mark.parametrize("batch_size", list(ROWS), ids=lambda b: f"batch_size={b}")


@pytest.fixture(scope="module")
def problem():
    X, y = make_problem(N_SAMPLES, N_FEATURES)
    rng = np.random.default_rng(0)
    order = rng.permutation(N_SAMPLES).astype(row_order_dtype(N_SAMPLES))
    return X, y, order


def epoch_from_zero(kernels, X, y, order, cfg, P, state):
    """One epoch from zero parameters (reset in place); returns the epoch loss."""
    P.fill(0.0)
    state.fill(0.0)
    loss, _ = kernels.run_epoch(X, y, order, P, state, cfg, SETTINGS["lr"], 0, SHUFFLED)
    return loss


def epoch_parameters(X, y, order, cfg, backend):
    """Parameters and loss of one epoch from zero with ``backend``: what is checked."""
    P = np.zeros((1, X.shape[1] + 1), dtype=X.dtype)
    state = np.zeros((N_STATE_SLOTS,) + P.shape, dtype=X.dtype)
    loss = epoch_from_zero(get_backend(backend), X, y, order, cfg, P, state)
    return P, np.asarray(loss)


def bench_epoch(benchmark, problem, backend, batch_size):
    """Check ``backend`` against the reference, then time its epoch."""
    if backend not in fastgd.available_backends():
        pytest.skip(f"backend {backend!r} is not usable in this installation")
    X, y, order = problem
    order = order[: ROWS[batch_size]]
    cfg, _ = check_fit_settings(batch_size=batch_size, n_samples=len(order), **SETTINGS)
    kernels = get_backend(backend)
    P = np.zeros((1, N_FEATURES + 1), dtype=X.dtype)
    state = np.zeros((N_STATE_SLOTS,) + P.shape, dtype=X.dtype)

    def timed():
        benchmark.group = f"batch_size={batch_size}"
        benchmark.extra_info["rows"] = len(order)
        benchmark(epoch_from_zero, kernels, X, y, order, cfg, P, state)
        if benchmark.stats is not None:  # None under --benchmark-disable
            benchmark.extra_info["rows_per_s"] = len(order) / benchmark.stats.stats.median

    check = functools.partial(epoch_parameters, X, y, order, cfg)
    check_then_time({backend: Case(backend, timed, check)}, where="on the same input", say=None)


@batch_sizes
def test_numba_epoch(benchmark, problem, batch_size):
    bench_epoch(benchmark, problem, "numba", batch_size)


@batch_sizes
def test_cython_epoch(benchmark, problem, batch_size):
    bench_epoch(benchmark, problem, "cython", batch_size)


@batch_sizes
def test_numpy_epoch(benchmark, problem, batch_size):
    bench_epoch(benchmark, problem, "numpy", batch_size)
