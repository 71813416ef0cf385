"""Sparse X: scipy CSR trained on without densifying, in every backend.

- ``sparse_update='dense'`` gives the numbers of the dense copy of X, on
  every backend, over the whole grid (1e-9 relative in float64, 1e-4 in
  float32);
- ``sparse_update='lazy'`` on every compiled backend gives the numbers of
  the lazy NumPy reference over the same grid; for ``optimizer='sgd'`` (the
  scaled L2 and the cumulative L1 catch-up) that is the dense update, so lazy
  SGD equals the dense copy's fit;
- input handling: formats, conversion, duplicates, unsorted indices, empty
  rows, non-finite values, no modification, index dtypes, prediction;
- the estimators take sparse X.
"""

import functools

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given
from hypothesis import strategies as st

import fastgd
from fastgd._config import LOSSES, OPTIMIZERS, PENALTIES

from support import (
    COMPILED_BACKENDS,
    REFERENCE_BACKEND,
    assert_close,
    assert_same_fit,
    make_targets,
    n_classes_for,
    rtol_for,
)

N_ROWS, N_COLS, DENSITY = 40, 30, 0.2
BATCH_SIZES = (1, 7, N_ROWS)
SETTINGS = dict(lr=0.05, alpha=0.01, l1_ratio=0.5, epochs=2, random_state=0)


def sparse_problem(loss, dtype, n=N_ROWS, d=N_COLS, density=DENSITY, seed=0):
    """(CSR X, y): standard normal entries at ``density``, row 3 empty."""
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n, d)) < density, rng.standard_normal((n, d)), 0.0)
    dense[3] = 0.0
    y = make_targets(loss, dense, rng)
    return sp.csr_array(dense.astype(dtype)), y


def grid(test):
    """The grid of settings: loss × optimizer × penalty × batch size × intercept."""
    for name, values, ids in (
        ("fit_intercept", [True, False], ["intercept", "no_intercept"]),
        ("batch_size", BATCH_SIZES, [f"bs{b}" for b in BATCH_SIZES]),
        ("penalty", PENALTIES, [str(p) for p in PENALTIES]),
        ("optimizer", OPTIMIZERS, None),
        ("loss", LOSSES, None),
    ):
        test = pytest.mark.parametrize(name, values, ids=ids)(test)
    return test


@functools.lru_cache(maxsize=None)
def cached_fit(backend, layout, sparse_update, loss, optimizer, penalty, batch_size,
               dtype, fit_intercept):  # fmt: skip
    """One fit of a grid point, on the CSR X or its dense copy, computed once."""
    X, y = sparse_problem(loss, dtype)
    if layout == "dense":
        X = X.toarray()
    return fastgd.fit(
        X, y, loss=loss, optimizer=optimizer, penalty=penalty, batch_size=batch_size,
        fit_intercept=fit_intercept, backend=backend, sparse_update=sparse_update,
        **SETTINGS,
    )  # fmt: skip


# --- (a) sparse_update="dense": the dense copy's numbers -------------------------


@grid
def test_dense_update_on_csr_matches_the_dense_copy(
    backend, dtype, loss, optimizer, penalty, batch_size, fit_intercept
):
    point = (loss, optimizer, penalty, batch_size, dtype, fit_intercept)
    result = cached_fit(backend, "csr", "dense", *point)
    expected = cached_fit(backend, "dense", "lazy", *point)
    assert result.coef.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(result.coef))
    assert_same_fit(result, expected, rtol_for(dtype))


# --- (b) sparse_update="lazy": the lazy reference's numbers -----------------------


@grid
def test_lazy_update_matches_the_lazy_reference(
    compiled_backend, dtype, loss, optimizer, penalty, batch_size, fit_intercept
):
    point = (loss, optimizer, penalty, batch_size, dtype, fit_intercept)
    result = cached_fit(compiled_backend, "csr", "lazy", *point)
    expected = cached_fit(REFERENCE_BACKEND, "csr", "lazy", *point)
    assert result.coef.dtype == np.dtype(dtype)
    assert np.all(np.isfinite(result.coef))
    if not fit_intercept:
        assert np.all(np.asarray(result.intercept) == 0.0)
    assert_same_fit(result, expected, rtol_for(dtype))


# --- (c), (d) lazy SGD is exact: the dense copy's numbers ------------------------


@pytest.mark.parametrize("schedule", ["constant", "invscaling"])
@pytest.mark.parametrize("batch_size", BATCH_SIZES, ids=lambda b: f"bs{b}")
@pytest.mark.parametrize("penalty", PENALTIES, ids=str)
@pytest.mark.parametrize("loss", ["squared_error", "log_loss", "multinomial"])
def test_lazy_sgd_matches_the_dense_copy(backend, loss, penalty, batch_size, schedule):
    # Scaled L2 (penalty None / l2) and the cumulative L1 catch-up (l1,
    # elasticnet) are the dense SGD update rearranged: equal up to rounding.
    X, y = sparse_problem(loss, np.float64)
    settings = dict(SETTINGS, loss=loss, penalty=penalty, batch_size=batch_size,
                    schedule=schedule, power_t=0.5, epochs=3, backend=backend)  # fmt: skip
    lazy = fastgd.fit(X, y, sparse_update="lazy", **settings)
    dense = fastgd.fit(X.toarray(), y, **settings)
    assert_same_fit(lazy, dense, 1e-9)


@pytest.mark.parametrize(
    "lr, alpha",
    [(0.5, 1.0), (0.9, 3.0), (0.1, 0.3)],
    ids=["shrink_restart", "negative_shrink", "zeros"],
)
@pytest.mark.parametrize("penalty", ["l2", "l1", "elasticnet"])
def test_lazy_sgd_stays_exact_through_restarts_and_zeros(backend, penalty, lr, alpha):
    # A shrink factor 1 − η·l2 of 0.5 sends the scale (or the cumulative
    # shrink) below its restart bound within an epoch; one below 0 takes
    # the dense fallback; a strong L1 switches most weights off: the same
    # weights as the dense update, the same exact zeros.
    X, y = sparse_problem("log_loss", np.float64)
    settings = dict(loss="log_loss", penalty=penalty, lr=lr, alpha=alpha, l1_ratio=0.5,
                    batch_size=1, epochs=4, random_state=0, backend=backend)  # fmt: skip
    lazy = fastgd.fit(X, y, sparse_update="lazy", **settings)
    dense = fastgd.fit(X.toarray(), y, **settings)
    assert_same_fit(lazy, dense, 1e-9)
    if penalty != "l2":
        assert np.array_equal(lazy.coef == 0.0, dense.coef == 0.0)


@pytest.mark.parametrize("optimizer", [o for o in OPTIMIZERS if o != "sgd"])
def test_lazy_update_leaves_absent_columns_alone(backend, optimizer):
    # Column 5 has no entry: under the lazy form its weight never moves,
    # while every column with an entry does.
    X, y = sparse_problem("squared_error", np.float64)
    dense = X.toarray()
    dense[:, 5] = 0.0
    X = sp.csr_array(dense)
    settings = dict(optimizer=optimizer, penalty="l2", alpha=0.1, lr=0.05, batch_size=7,
                    epochs=2, random_state=0, backend=backend)  # fmt: skip

    lazy = fastgd.fit(X, y, sparse_update="lazy", **settings)
    assert lazy.coef[5] == 0.0
    assert np.all(lazy.coef[np.unique(X.indices)] != 0.0)


def test_numba_and_cython_share_the_sparse_constants():
    if "cython" not in COMPILED_BACKENDS:
        pytest.skip("the Cython backend is not built")
    from fastgd.backends import _cython_kernels, _numba_sparse

    assert _cython_kernels.SPARSE_MIN_SCALE == _numba_sparse.MIN_SCALE
    assert _cython_kernels.PREFETCH_DISTANCE == _numba_sparse.PREFETCH_DISTANCE
    assert _cython_kernels.UPDATE_TOUCHED == _numba_sparse.UPDATE_TOUCHED


# --- any shape, any density (hypothesis) ---------------------------------------------

sparse_settings = st.fixed_dictionaries(
    {
        "n": st.integers(1, 30),
        "d": st.integers(1, 6),
        "density": st.sampled_from([0.0, 0.1, 0.3, 1.0]),
        "batch_size": st.integers(1, 40),
        "loss": st.sampled_from(LOSSES),
        "optimizer": st.sampled_from(OPTIMIZERS),
        "penalty": st.sampled_from(PENALTIES),
        "sparse_update": st.sampled_from(["lazy", "dense"]),
        "dtype": st.sampled_from([np.float32, np.float64]),
        "fit_intercept": st.booleans(),
        "drop_last": st.booleans(),
        "shuffle": st.sampled_from([True, False, "batches"]),
        "seed": st.integers(0, 2**32 - 1),
    }
)


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@given(s=sparse_settings)
def test_compiled_backends_match_reference_on_any_sparse_shape(backend, s):
    # n = 1, d = 1, empty matrices, full ones, batches larger than n: the
    # compiled kernel equals the reference's form of the same sparse_update,
    # and where that form is the dense update, the dense copy's fit.
    # eps = 1e-3, not 1e-8: on an empty X with balanced classes, a log-loss or
    # softmax intercept gradient is 0, which float64 leaves as ±1e-17 or so,
    # depending on the order of summation; g / (sqrt(v) + 1e-8) would turn
    # that residue into a step of any size, and no two summation orders would
    # agree. test_contract pins the cases where the cancellation is exact.
    rng = np.random.default_rng(s["seed"])
    shape = (s["n"], s["d"])
    dense = np.where(rng.random(shape) < s["density"], rng.standard_normal(shape), 0.0)
    dense = dense.astype(s["dtype"])
    y = make_targets(s["loss"], dense.astype(np.float64), rng)
    arguments = dict(
        loss=s["loss"], optimizer=s["optimizer"], penalty=s["penalty"],
        batch_size=s["batch_size"], fit_intercept=s["fit_intercept"],
        drop_last=s["drop_last"], shuffle=s["shuffle"], lr=0.05, alpha=0.01,
        l1_ratio=0.5, epochs=3, random_state=s["seed"], eps=1e-3,
        n_classes=n_classes_for(s["loss"]),
    )  # fmt: skip
    X = sp.csr_array(dense)
    result = fastgd.fit(X, y, backend=backend, sparse_update=s["sparse_update"], **arguments)
    expected = fastgd.fit(X, y, backend=REFERENCE_BACKEND,
                          sparse_update=s["sparse_update"], **arguments)  # fmt: skip
    assert np.all(np.isfinite(result.coef)) and np.all(np.isfinite(result.loss_history))
    assert_same_fit(result, expected, rtol_for(s["dtype"]))
    if s["sparse_update"] == "dense" or s["optimizer"] == "sgd":
        on_dense = fastgd.fit(dense, y, backend=REFERENCE_BACKEND, **arguments)
        assert_same_fit(result, on_dense, rtol_for(s["dtype"]))


# --- (e) input handling -------------------------------------------------------------


def fit_both(X, y, backend="numba", **settings):
    settings = dict(SETTINGS, loss="squared_error", penalty="elasticnet", batch_size=7,
                    backend=backend, **settings)  # fmt: skip
    return fastgd.fit(X, y, **settings)


@pytest.mark.parametrize("sparse_update", ["lazy", "dense"])
@pytest.mark.parametrize("fmt", ["csc", "coo", "lil", "dok"])
def test_other_sparse_formats_are_converted_once_to_csr(backend, fmt, sparse_update):
    X, y = sparse_problem("squared_error", np.float64)
    expected = fit_both(X, y, backend, sparse_update=sparse_update)
    converted = fit_both(X.asformat(fmt), y, backend, sparse_update=sparse_update)
    assert_same_fit(converted, expected, 1e-12)
    with pytest.raises(ValueError, match=rf"allow_copy=False.*{fmt.upper()}.*CSR"):
        fit_both(X.asformat(fmt), y, backend, allow_copy=False)


def test_csr_of_float_dtype_is_not_copied(monkeypatch):
    X, y = sparse_problem("squared_error", np.float32)
    seen = []
    module = fastgd.backends.get_backend("numba")
    real = module.run_epoch_sparse

    def spy(data, indices, indptr, *rest):
        seen.append((data, indices, indptr))
        return real(data, indices, indptr, *rest)

    monkeypatch.setattr(module, "run_epoch_sparse", spy)
    result = fit_both(X, y.astype(np.float32), allow_copy=False)
    assert result.coef.dtype == np.float32
    data, indices, indptr = seen[0]
    assert data is X.data and indices is X.indices and indptr is X.indptr


def test_integer_data_and_mixed_index_dtypes_are_converted():
    X, y = sparse_problem("squared_error", np.float64)
    rounded = sp.csr_array(np.round(X.toarray() * 3))
    as_int = rounded.astype(np.int64)
    expected = fit_both(rounded, y)
    assert_same_fit(fit_both(as_int, y), expected, 1e-12)
    with pytest.raises(ValueError, match="allow_copy=False.*dtype int64"):
        fit_both(as_int, y, allow_copy=False)
    wide = X.copy()
    wide.indices, wide.indptr = X.indices.astype(np.int64), X.indptr.astype(np.int64)
    assert_same_fit(fit_both(wide, y, allow_copy=False), fit_both(X, y), 1e-12)
    mixed = X.copy()
    mixed.indices = X.indices.astype(np.int64)
    assert_same_fit(fit_both(mixed, y), fit_both(X, y), 1e-12)
    with pytest.raises(ValueError, match="allow_copy=False.*index arrays"):
        fit_both(mixed, y, allow_copy=False)


def test_duplicates_count_as_their_sum_and_unsorted_indices_work(backend):
    X, y = sparse_problem("squared_error", np.float64)
    # Every entry split in two halves, the halves stored in reverse column order.
    rows = []
    for i in range(X.shape[0]):
        lo, hi = X.indptr[i], X.indptr[i + 1]
        cols, vals = X.indices[lo:hi][::-1], X.data[lo:hi][::-1]
        rows.append((np.concatenate([cols, cols]), np.concatenate([vals, vals]) / 2))
    indptr = np.concatenate([[0], np.cumsum([len(c) for c, _ in rows])])
    messy = sp.csr_array(
        (np.concatenate([v for _, v in rows]), np.concatenate([c for c, _ in rows]), indptr),
        shape=X.shape,
    )
    before = (messy.data.copy(), messy.indices.copy(), messy.indptr.copy())
    for sparse_update in ("lazy", "dense"):
        result = fit_both(messy, y, backend, sparse_update=sparse_update)
        assert_same_fit(result, fit_both(X, y, backend, sparse_update=sparse_update), 1e-9)
    # Never modified: not sorted, not summed in place.
    for array, copy in zip((messy.data, messy.indices, messy.indptr), before):
        assert np.array_equal(array, copy)
    assert messy.nnz == 2 * X.nnz


def test_read_only_csr_arrays_train_as_writable_ones(backend):
    X, y = sparse_problem("log_loss", np.float64)
    settings = [dict(), dict(optimizer="adam"), dict(sparse_update="dense")]
    expected = [fit_both(X, y, backend, **kw) for kw in settings]
    for array in (X.data, X.indices, X.indptr, y):
        array.setflags(write=False)
    for kw, fit in zip(settings, expected):
        assert_same_fit(fit_both(X, y, backend, **kw), fit, 0.0)


def test_rows_without_entries_train_the_intercept_only(backend):
    X = sp.csr_array((4, 3))
    y = np.array([1.0, 2.0, 3.0, 4.0])
    for sparse_update in ("lazy", "dense"):
        result = fastgd.fit(X, y, lr=0.1, epochs=50, batch_size=1, backend=backend,
                            sparse_update=sparse_update, random_state=0)  # fmt: skip
        assert np.all(result.coef == 0.0)
        assert abs(result.intercept - 2.5) < 0.2


@pytest.mark.parametrize("value, word", [(np.nan, "NaN"), (np.inf, "infinity")])
def test_non_finite_stored_values_are_refused(value, word):
    X, y = sparse_problem("squared_error", np.float64)
    X = X.copy()
    X.data[5] = value
    row = int(np.searchsorted(X.indptr, 5, side="right")) - 1
    with pytest.raises(ValueError, match=rf"Input X contains {word} \(the first at row "
                                         rf"{row}, column {X.indices[5]}\)"):  # fmt: skip
        fastgd.fit(X, y)


@pytest.mark.parametrize("shape", [(0, 3), (3, 0)])
def test_empty_sparse_shapes_are_refused(shape):
    what = "sample" if shape[0] == 0 else "feature"
    with pytest.raises(ValueError, match=rf"0 {what}\(s\)"):
        fastgd.fit(sp.csr_array(shape), np.zeros(shape[0]))


def test_bad_sparse_values_and_indices_are_refused():
    y = np.zeros(2)
    with pytest.raises(TypeError, match="complex"):
        fastgd.fit(sp.csr_array(np.ones((2, 2), dtype=complex)), y)
    bad = sp.csr_array((np.ones(2), np.array([0, 1]), np.array([0, 1, 2])), shape=(2, 2))
    bad.indices[1] = 7
    with pytest.raises(ValueError, match="column indices run from 0 to 7"):
        fastgd.fit(bad, y)
    with pytest.raises(ValueError, match="sparse_update='lazi' is not supported.*'lazy'"):
        fastgd.fit(sp.csr_array(np.ones((2, 2))), y, sparse_update="lazi")


def test_prediction_takes_sparse_x(backend):
    X, y = sparse_problem("multinomial", np.float64)
    result = fastgd.fit(X, y, loss="multinomial", backend=backend, random_state=0)
    dense = X.toarray()
    for method in ("decision_function", "predict", "predict_proba"):
        assert_close(getattr(result, method)(X), getattr(result, method)(dense), 1e-12)
        assert_close(getattr(result, method)(sp.csc_matrix(X)),
                     getattr(result, method)(dense), 1e-12)  # fmt: skip
    with pytest.raises(ValueError, match="X has 29 features"):
        result.predict(X[:, :29])


def test_divergence_keeps_the_last_finite_parameters(backend):
    X, y = sparse_problem("squared_error", np.float64)
    with pytest.raises(fastgd.DivergenceError) as info:
        fastgd.fit(X * 1e150, y, lr=10.0, penalty="l1", batch_size=1, backend=backend,
                   random_state=0)  # fmt: skip
    assert np.all(np.isfinite(info.value.result.coef))


# --- (f) the estimators ------------------------------------------------------------


@pytest.mark.parametrize("sparse_update", ["lazy", "dense"])
def test_estimators_take_sparse_x(backend, sparse_update):
    pytest.importorskip("sklearn")
    from fastgd import MiniBatchClassifier, MiniBatchRegressor

    X, y = sparse_problem("squared_error", np.float64)
    settings = dict(backend=backend, random_state=0, penalty="l1", batch_size=4, epochs=10,
                    tol=None, sparse_update=sparse_update)  # fmt: skip
    regressor = MiniBatchRegressor(**settings).fit(X, y)
    expected = fastgd.fit(X, y, loss="squared_error", **settings)
    assert_close(regressor.coef_, expected.coef, 1e-12)
    assert_close(regressor.predict(X), regressor.predict(X.toarray()), 1e-12)
    partial = MiniBatchRegressor(**settings)
    for _ in range(10):
        partial.partial_fit(X, y)
    assert_close(partial.coef_, regressor.coef_, 1e-12)

    Xc, labels = sparse_problem("multinomial", np.float64)
    classifier = MiniBatchClassifier(early_stopping=True, **settings).fit(Xc, labels)
    assert classifier.predict_proba(Xc).shape == (N_ROWS, 3)
    assert classifier.score(sp.csc_matrix(Xc), labels) > 0.3
    with pytest.raises(ValueError, match="allow_copy=False.*CSC"):
        MiniBatchRegressor(allow_copy=False, **settings).fit(sp.csc_matrix(X), y)

