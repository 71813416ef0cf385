"""Plain SGD's L2 is scikit-learn's shrink, ``w *= max(0, 1 − η·l2)``: it never diverges alone.

Issue 16, item 7. With ``optimizer='sgd'`` the L2 part of the penalty is
applied as a shrink of the weights before the gradient step (scikit-learn's
``_plain_sgd``: ``w.scale(max(0, 1 − η·alpha·(1 − l1_ratio)))`` then
``w.add(x, −η·dloss)``). While ``η·l2 < 1`` that is the gradient step of
``l2·½‖w‖²``; beyond it the weights are set to 0 instead of overshooting,
so a strong ``alpha`` gives a finite (if heavily regularised) fit:

- every backend, dense and CSR (lazy and dense updates), both dtypes, batch
  sizes 1 and 8, with ``lr·alpha > 1``: finite, and the compiled backends
  give the reference's numbers;
- at batch size 1 the fit is scikit-learn's ``SGDRegressor`` epoch by epoch;
- a grid search over ``alpha`` up to 1e5 gives finite scores.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from support import (
    ALL_BACKENDS,
    COMPILED_BACKENDS,
    DTYPES,
    REFERENCE_BACKEND,
    assert_same_fit,
    make_problem,
    rtol_for,
)

import fastgd

LR = 0.1
STRONG_ALPHAS = (1e3, 1e5)  # lr·alpha = 100 and 1e4, far beyond 1
LAYOUTS = ("dense", "csr-lazy", "csr-dense")


def problem(layout, dtype):
    X, y = make_problem("squared_error", dtype)
    if layout != "dense":
        # Some stored entries dropped, so a lazy batch leaves columns untouched.
        X = np.where(np.abs(X) < 0.5, 0.0, X).astype(dtype)
        X = sp.csr_array(X)
    return X, y


def fit(backend, layout, dtype, batch_size, alpha, epochs=3, **settings):
    X, y = problem(layout, dtype)
    sparse_update = "dense" if layout == "csr-dense" else "lazy"
    return fastgd.fit(
        X, y, optimizer="sgd", lr=LR, batch_size=batch_size, epochs=epochs,
        penalty="l2", alpha=alpha, shuffle=False, backend=backend,
        sparse_update=sparse_update, **settings,
    )  # fmt: skip


@pytest.mark.parametrize("alpha", STRONG_ALPHAS)
@pytest.mark.parametrize("batch_size", [1, 8])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_strong_l2_is_finite_and_the_reference(backend, layout, dtype, batch_size, alpha):
    result = fit(backend, layout, dtype, batch_size, alpha)
    assert np.all(np.isfinite(result.coef)) and np.all(np.isfinite(result.intercept))
    assert np.all(np.isfinite(result.loss_history))
    assert result.n_epochs == 3
    if backend != REFERENCE_BACKEND:
        expected = fit(REFERENCE_BACKEND, layout, dtype, batch_size, alpha)
        assert_same_fit(result, expected, rtol_for(dtype))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_a_shrink_of_zero_zeroes_the_weights_before_the_step(backend):
    # lr·alpha >= 1: each update starts from w = 0, so after one row the
    # weights are −lr·dL/dz·x of that row alone.
    X, y = problem("dense", np.float64)
    result = fastgd.fit(
        X[:1], y[:1], lr=LR, batch_size=1, epochs=1, penalty="l2", alpha=1.0 / LR,
        shuffle=False, fit_intercept=False, backend=backend,
    )  # fmt: skip
    np.testing.assert_allclose(result.coef, LR * y[0] * X[0], rtol=1e-12)


@pytest.mark.parametrize("compiled", COMPILED_BACKENDS)
def test_lazy_csr_restarts_the_scale_after_a_zero_shrink(compiled):
    # Alternating weak and strong epochs would expose a scale left at 0
    # over a stale v: a later epoch would read garbage (or NaN) weights.
    X, y = problem("csr-lazy", np.float64)
    kwargs = dict(optimizer="sgd", batch_size=4, epochs=2, penalty="l2", shuffle=False)
    for backend_results in [
        [fastgd.fit(X, y, lr=LR, alpha=a, backend=b, **kwargs) for a in (1e5, 1e-3)]
        for b in (compiled, REFERENCE_BACKEND)
    ]:
        for r in backend_results:
            assert np.all(np.isfinite(r.coef))
    for a in (1e5, 1e-3):
        result = fastgd.fit(X, y, lr=LR, alpha=a, backend=compiled, **kwargs)
        expected = fastgd.fit(X, y, lr=LR, alpha=a, backend=REFERENCE_BACKEND, **kwargs)
        assert_same_fit(result, expected, rtol_for(np.float64))


# --- scikit-learn's SGDRegressor, epoch by epoch ----------------------------------


@pytest.mark.parametrize("layout", ["dense", "csr-lazy", "csr-dense"])
@pytest.mark.parametrize("alpha", [0.05, 3.0, 1e3])  # lr·alpha = 0.005, 0.3, 100
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_batch_size_one_is_sklearns_sgd_regressor(backend, alpha, layout):
    sklearn_linear = pytest.importorskip("sklearn.linear_model")
    X, y = problem(layout, np.float64)
    lr = 0.1 if alpha < 1e3 else 0.01
    for k in (1, 2, 3):
        reference = sklearn_linear.SGDRegressor(
            penalty="l2", alpha=alpha, learning_rate="constant", eta0=lr,
            shuffle=False, max_iter=k, tol=None, average=False,
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter reached
            # The dense copy: scikit-learn decays a sparse X's intercept steps.
            reference.fit(X.toarray() if sp.issparse(X) else X, y)
        result = fastgd.fit(
            X, y, batch_size=1, shuffle=False, penalty="l2", alpha=alpha, lr=lr,
            epochs=k, backend=backend,
            sparse_update="dense" if layout == "csr-dense" else "lazy",
        )  # fmt: skip
        expected = np.append(reference.coef_, reference.intercept_)
        actual = np.append(result.coef, result.intercept)
        np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12)


# --- a grid search over alpha -------------------------------------------------------


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_grid_search_over_alpha_up_to_1e5_gives_finite_scores(backend):
    model_selection = pytest.importorskip("sklearn.model_selection")
    X, y = make_problem("squared_error", np.float64, n=60)
    search = model_selection.GridSearchCV(
        fastgd.MiniBatchRegressor(
            penalty="l2", lr=0.1, epochs=5, batch_size=4, random_state=0, backend=backend
        ),
        {"alpha": [1e-4, 1.0, 1e2, 1e5]},
        cv=3,
        error_score="raise",
    )
    search.fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)), scores
    assert search.best_params_["alpha"] == 1e-4
