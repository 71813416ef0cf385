"""The backend contract (docs/architecture.md), checked on every backend.

Each usable backend declares ``CAPABILITIES`` and ``TOLERANCE``; the tests
run over those declarations, not over hand-written copies per backend:

- ``run_epoch`` equals a Python loop of ``batch_gradient`` + ``apply_update``
  over the same batches, for every loss, optimizer and penalty, in each
  dtype and data layout the backend can do, within its ``TOLERANCE`` (the
  reference's is 0: its ``run_epoch`` is that loop);
- every compiled backend's ``batch_gradient`` is the reference's;
- ``apply_update`` leaves the caller's G as it is, ``batch_gradient`` P.
"""

import numpy as np
import pytest
import scipy.sparse as sp

from fastgd._config import (
    N_STATE_SLOTS,
    LOSSES,
    OPTIMIZERS,
    ORDER_SHUFFLED,
    PENALTIES,
    SPARSE_DENSE,
    SPARSE_LAZY,
    ExecutionConfig,
    penalty_split,
)
from fastgd._engine import row_order_dtype
from fastgd.backends import get_backend

from support import (
    ALL_BACKENDS,
    COMPILED_BACKENDS,
    N_CLASSES,
    N_SAMPLES,
    REFERENCE_BACKEND,
    RTOL,
    assert_close,
    kernel_config,
    make_problem,
)

CAPABILITY_NAMES = {"dense", "csr", "float32", "float64", "threads", "hogwild"}
DTYPES = {"float64": np.float64, "float32": np.float32}
# 45 rows in batches of 7: six whole batches and a partial last one of 3.
BATCH_SIZE = 7
LR, T0 = 0.05, 4  # an epoch that is not the first: update numbers continue from T0


def capable(backends, *needs):
    """``(backend, need)`` pairs for each backend whose CAPABILITIES include ``need``."""
    return [
        pytest.param(name, need, id=f"{name}-{need}")
        for name in backends
        for need in needs
        if need in get_backend(name).CAPABILITIES
    ]


def csr(X):
    """A CSR twin of X with about half its entries stored (int32 indices)."""
    X = np.where(np.abs(X) > 0.6, X, 0.0).astype(X.dtype)
    return sp.csr_array(X)


def inputs(loss, dtype, layout, n=N_SAMPLES, seed=0):
    """X (dense or CSR), y in X's dtype, a shuffled row order, and the output count."""
    X, y = make_problem(loss, dtype, n=n, seed=seed)
    order = np.random.default_rng(seed + 1).permutation(n).astype(row_order_dtype(n))
    n_outputs = N_CLASSES if loss == "multinomial" else 1
    return (csr(X) if layout == "csr" else X), y.astype(dtype), order, n_outputs


def start(n_features, n_outputs, dtype, seed=2):
    """Parameters and optimizer state in the middle of a fit (moments >= 0 suit every optimizer)."""
    rng = np.random.default_rng(seed)
    P = (0.3 * rng.standard_normal((n_outputs, n_features + 1))).astype(dtype)
    state = (0.01 * np.abs(rng.standard_normal((N_STATE_SLOTS,) + P.shape))).astype(dtype)
    return P, state


def settings(loss, optimizer, penalty, fit_intercept=True, drop_last=False):
    l2, l1 = penalty_split(penalty, 0.01, 0.5)
    return kernel_config(
        loss, optimizer=OPTIMIZERS.index(optimizer), batch_size=BATCH_SIZE,
        drop_last=int(drop_last), fit_intercept=int(fit_intercept), l2=l2, l1=l1,
        power_t=0.25,  # invscaling: the per-update rate is applied inside
    )  # fmt: skip


def loop_of_batches(kernels, X, y, order, P, state, cfg, lr, t0, sample_weight=None):
    """The contract's definition of an epoch: ``batch_gradient`` + ``apply_update`` per batch."""
    batch_losses = []
    t = t0
    for first in range(0, len(order), cfg.batch_size):
        rows = order[first : first + cfg.batch_size]
        if cfg.drop_last and len(rows) < cfg.batch_size:
            break
        loss_sum, G = kernels.batch_gradient(X, y, rows, P, cfg, sample_weight)
        batch_losses.append(loss_sum / len(rows))
        t += 1
        kernels.apply_update(P, G, state, cfg, lr, t)
    return float(np.mean(batch_losses)), t - t0


def assert_epoch_is_the_loop(backend, X, y, order, P, state, cfg, run, sample_weight=None):
    __tracebackhide__ = True
    kernels = get_backend(backend)
    rtol = kernels.TOLERANCE[np.dtype(P.dtype).name]
    P_loop, state_loop = P.copy(), state.copy()
    loss, n_updates = kernels.run_epoch(X, y, order, P, state, cfg, LR, T0, run,
                                        sample_weight=sample_weight)  # fmt: skip
    loop_loss, loop_updates = loop_of_batches(kernels, X, y, order, P_loop, state_loop, cfg, LR,
                                              T0, sample_weight)  # fmt: skip
    assert n_updates == loop_updates
    assert P.dtype == P_loop.dtype and state.dtype == state_loop.dtype
    assert_close(P, P_loop, rtol, "P")
    assert_close(state, state_loop, rtol, "state")
    assert_close(loss, loop_loss, rtol, "mean loss")


# --- the declarations -------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_BACKENDS)
def test_every_backend_declares_its_capabilities_and_tolerance(name):
    kernels = get_backend(name)
    assert isinstance(kernels.CAPABILITIES, frozenset)
    assert kernels.CAPABILITIES <= CAPABILITY_NAMES
    # What every driver may count on: dense X in float64.
    assert {"dense", "float64"} <= kernels.CAPABILITIES
    assert set(kernels.TOLERANCE) == set(DTYPES)
    for dtype, rtol in kernels.TOLERANCE.items():
        assert isinstance(rtol, float) and 0.0 <= rtol < 1e-3, (dtype, rtol)
    for function in ("run_epoch", "run_epoch_sparse", "batch_gradient", "apply_update"):
        assert callable(getattr(kernels, function)), function


def test_the_reference_is_its_own_tolerance_zero():
    kernels = get_backend(REFERENCE_BACKEND)
    assert kernels.TOLERANCE == {"float64": 0.0, "float32": 0.0}
    assert {"threads", "hogwild"}.isdisjoint(kernels.CAPABILITIES)


@pytest.mark.parametrize("name", COMPILED_BACKENDS)
def test_compiled_backends_promise_what_the_contract_tests_hold_them_to(name):
    # The grids of test_contract.py and the others compare them to the
    # reference at support.RTOL.
    assert get_backend(name).TOLERANCE == {dtype.name: rtol for dtype, rtol in RTOL.items()}


# --- run_epoch == the loop of batch_gradient + apply_update ---------------------


@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no_intercept"])
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("penalty", PENALTIES, ids=str)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("backend, layout", capable(ALL_BACKENDS, "dense", "csr"))
def test_run_epoch_is_the_loop_of_batch_gradient_and_apply_update(
    backend, layout, loss, optimizer, penalty, dtype, fit_intercept
):
    if dtype not in get_backend(backend).CAPABILITIES:
        pytest.skip(f"{backend} does not declare {dtype}")
    X, y, order, n_outputs = inputs(loss, DTYPES[dtype], layout)
    P, state = start(X.shape[1], n_outputs, DTYPES[dtype])
    cfg = settings(loss, optimizer, penalty, fit_intercept)
    # A CSR epoch is the loop in its dense update mode (lazy SGD: below).
    run = ExecutionConfig(row_order=ORDER_SHUFFLED, sparse_update=SPARSE_DENSE)
    assert_epoch_is_the_loop(backend, X, y, order, P, state, cfg, run)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("backend, layout", capable(ALL_BACKENDS, "dense", "csr"))
def test_a_weighted_epoch_is_the_loop_of_weighted_batch_gradients(
    backend, layout, loss, optimizer, dtype
):
    # sample_weight, indexed like y, weighs the rows in both (issue 16 item 1).
    if dtype not in get_backend(backend).CAPABILITIES:
        pytest.skip(f"{backend} does not declare {dtype}")
    X, y, order, n_outputs = inputs(loss, DTYPES[dtype], layout)
    P, state = start(X.shape[1], n_outputs, DTYPES[dtype])
    cfg = settings(loss, optimizer, "elasticnet")
    weights = np.random.default_rng(5).uniform(0.0, 3.0, X.shape[0])
    weights[::4] = 0.0
    run = ExecutionConfig(row_order=ORDER_SHUFFLED, sparse_update=SPARSE_DENSE)
    assert_epoch_is_the_loop(backend, X, y, order, P, state, cfg, run, weights)


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("penalty", PENALTIES, ids=str)
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("backend, layout", capable(ALL_BACKENDS, "csr"))
def test_lazy_sgd_on_csr_is_the_loop_too(backend, layout, loss, penalty, dtype):
    # Lazy SGD (a scale factor, closed-form catch-ups) is the dense update
    # rearranged: the same loop, to rounding.
    if dtype not in get_backend(backend).CAPABILITIES:
        pytest.skip(f"{backend} does not declare {dtype}")
    X, y, order, n_outputs = inputs(loss, DTYPES[dtype], layout)
    P, state = start(X.shape[1], n_outputs, DTYPES[dtype])
    cfg = settings(loss, "sgd", penalty)
    run = ExecutionConfig(row_order=ORDER_SHUFFLED, sparse_update=SPARSE_LAZY)
    assert_epoch_is_the_loop(backend, X, y, order, P, state, cfg, run)


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("backend, layout", capable(ALL_BACKENDS, "dense", "csr"))
def test_run_epoch_with_drop_last_is_the_loop_without_the_partial_batch(
    backend, layout, optimizer
):
    X, y, order, n_outputs = inputs("huber", np.float64, layout)
    P, state = start(X.shape[1], n_outputs, np.float64)
    cfg = settings("huber", optimizer, "elasticnet", drop_last=True)
    run = ExecutionConfig(row_order=ORDER_SHUFFLED, sparse_update=SPARSE_DENSE)
    assert_epoch_is_the_loop(backend, X, y, order, P, state, cfg, run)


@pytest.mark.parametrize("row_order", ["sequential", "shuffled", "batches"])
@pytest.mark.parametrize("backend, layout", capable(ALL_BACKENDS, "dense"))
def test_the_row_order_a_backend_is_told_of_changes_no_number(backend, layout, row_order):
    # The CPU backends prefetch according to it; results stay the same bits.
    from fastgd._config import ROW_ORDERS

    X, y, order, n_outputs = inputs("log_loss", np.float64, layout)
    cfg = settings("log_loss", "adam", "l2")
    results = []
    for run in (ExecutionConfig(), ExecutionConfig(row_order=ROW_ORDERS.index(row_order))):
        P, state = start(X.shape[1], n_outputs, np.float64)
        returned = get_backend(backend).run_epoch(X, y, order, P, state, cfg, LR, T0, run)
        results.append((P, state, returned))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_array_equal(results[0][1], results[1][1])
    assert results[0][2] == results[1][2]


# --- batch_gradient of the compiled backends == the reference's ---------------


@pytest.mark.parametrize("n_rows", [1, BATCH_SIZE, 2500], ids=lambda m: f"{m}rows")
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("backend, layout", capable(COMPILED_BACKENDS, "dense", "csr"))
def test_compiled_batch_gradient_is_the_references(backend, layout, loss, dtype, n_rows):
    # 2500 rows: a batch the compiled kernels sum chunk by chunk (CHUNK_ROWS = 1024).
    kernels = get_backend(backend)
    if dtype not in kernels.CAPABILITIES:
        pytest.skip(f"{backend} does not declare {dtype}")
    X, y, order, n_outputs = inputs(loss, DTYPES[dtype], layout, n=max(N_SAMPLES, n_rows))
    P, _ = start(X.shape[1], n_outputs, DTYPES[dtype])
    rows = order[:n_rows]
    cfg = settings(loss, "sgd", None)
    loss_sum, G = kernels.batch_gradient(X, y, rows, P, cfg)
    expected_sum, expected_G = get_backend(REFERENCE_BACKEND).batch_gradient(X, y, rows, P, cfg)
    rtol = kernels.TOLERANCE[dtype]
    assert isinstance(loss_sum, float)
    assert G.dtype == np.float64 and G.shape == P.shape
    assert_close(G, expected_G, rtol, "G")
    assert_close(loss_sum / n_rows, expected_sum / n_rows, rtol, "mean loss")


@pytest.mark.parametrize("loss", ["squared_error", "multinomial"])
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_batch_gradient_is_the_same_for_dense_and_csr_x(backend, loss):
    kernels = get_backend(backend)
    if "csr" not in kernels.CAPABILITIES:
        pytest.skip(f"{backend} does not declare csr")
    X, y, order, n_outputs = inputs(loss, np.float64, "csr")
    P, _ = start(X.shape[1], n_outputs, np.float64)
    cfg = settings(loss, "sgd", None)
    dense = kernels.batch_gradient(X.toarray(), y, order[:BATCH_SIZE], P, cfg)
    sparse = kernels.batch_gradient(X, y, order[:BATCH_SIZE], P, cfg)
    assert_close(sparse[1], dense[1], 1e-12, "G")
    assert sparse[0] == pytest.approx(dense[0], rel=1e-12)


def test_batch_gradient_is_the_gradient_of_the_loss_alone():
    # The intercept column holds the mean dL/dz even without an intercept,
    # and the penalty is left to apply_update: the same G whatever they are.
    kernels = get_backend(REFERENCE_BACKEND)
    X, y, order, _ = inputs("huber", np.float64, "dense")
    P, _ = start(X.shape[1], 1, np.float64)
    rows = order[:BATCH_SIZE]
    plain = kernels.batch_gradient(X, y, rows, P, settings("huber", "sgd", None))
    other = kernels.batch_gradient(X, y, rows, P, settings("huber", "adam", "elasticnet", False))
    np.testing.assert_array_equal(plain[1], other[1])
    _, dZ = kernels.LOSS_FUNCTIONS[LOSSES.index("huber")](
        X[rows] @ P[:, :-1].T + P[:, -1], y[rows], settings("huber", "sgd", None)
    )
    assert plain[1][0, -1] == pytest.approx(dZ.mean(), rel=1e-12)


# --- what the seam leaves alone -------------------------------------------------


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("backend, layout", capable(ALL_BACKENDS, "dense", "csr"))
def test_the_seam_leaves_its_inputs_alone(backend, layout, optimizer):
    kernels = get_backend(backend)
    X, y, order, n_outputs = inputs("multinomial", np.float64, layout)
    P, state = start(X.shape[1], n_outputs, np.float64)
    cfg = settings("multinomial", optimizer, "elasticnet")
    P_before = P.copy()
    _, G = kernels.batch_gradient(X, y, order[:BATCH_SIZE], P, cfg)
    np.testing.assert_array_equal(P, P_before)
    G_before = G.copy()
    kernels.apply_update(P, G, state, cfg, LR, T0 + 1)
    np.testing.assert_array_equal(G, G_before)
    assert not np.array_equal(P, P_before)
