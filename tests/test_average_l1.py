"""Averaged SGD (``average``) and the cumulative L1 penalty (``l1_method='cumulative'``).

Issue 16 items 3 and 6:

- every compiled backend computes what the reference computes, for the new
  settings over optimizers, batch sizes, dtypes and the three layouts (dense
  X, CSR with the lazy and the dense update);
- at batch size 1, unshuffled, with a constant rate, plain SGD is
  scikit-learn's ``average=`` (True and an int, no penalty and L2,
  regressor and classifier) and its cumulative L1 penalty (l1 and
  elastic-net, dense X and CSR X: scikit-learn penalises only a sparse row's
  stored columns, and every column of a dense row), epoch by epoch to 1e-10;
- the estimators show the average and train on from the last iterate;
- ``sparsify()`` / ``densify()``.
"""

import functools
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import SGDClassifier, SGDRegressor

import fastgd
from fastgd import MiniBatchClassifier, MiniBatchRegressor
from fastgd._config import OPTIMIZERS, SLOT_AVERAGE

from support import (
    ALL_BACKENDS,
    N_SAMPLES,
    REFERENCE_BACKEND,
    assert_same_fit,
    make_problem,
    rtol_for,
)

LAYOUTS = ("dense", "csr-lazy", "csr-dense")


def laid_out(X, layout):
    """X as ``layout`` has it: the array, or a CSR copy with about half its entries 0."""
    if layout == "dense":
        return X
    X = X.copy()
    X[np.random.default_rng(3).random(X.shape) < 0.5] = 0.0
    return sp.csr_matrix(X)


def sparse_update(layout):
    return "dense" if layout == "csr-dense" else "lazy"


# --- compiled == reference ---------------------------------------------------------

# Each case: the loss it runs with and its settings (a loss per case keeps the
# grid small while every loss family meets a new setting).
CASES = {
    "average": ("squared_error", dict(average=True, penalty="l2")),
    "average_from_10": ("log_loss", dict(average=10, penalty="l1")),
    "cumulative_l1": ("hinge", dict(penalty="l1", l1_method="cumulative")),
    "cumulative_elasticnet": ("huber", dict(penalty="elasticnet", l1_method="cumulative")),
    "cumulative_and_average": (
        "multinomial", dict(penalty="elasticnet", l1_method="cumulative", average=10)
    ),
}
SETTINGS = dict(lr=0.05, alpha=0.01, l1_ratio=0.5, epochs=3, random_state=0)


@functools.lru_cache(maxsize=None)
def reference_fit(case, optimizer, batch_size, dtype, layout):
    loss, settings = CASES[case]
    X, y = make_problem(loss, dtype)
    return fastgd.fit(
        laid_out(X, layout), y, loss=loss, optimizer=optimizer, batch_size=batch_size,
        sparse_update=sparse_update(layout), backend=REFERENCE_BACKEND, **settings, **SETTINGS,
    )  # fmt: skip


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("batch_size", (1, 7, N_SAMPLES), ids=lambda b: f"bs{b}")
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("case", CASES)
def test_compiled_backends_match_reference(
    compiled_backend, dtype, case, optimizer, batch_size, layout
):
    loss, settings = CASES[case]
    X, y = make_problem(loss, dtype)
    result = fastgd.fit(
        laid_out(X, layout), y, loss=loss, optimizer=optimizer, batch_size=batch_size,
        sparse_update=sparse_update(layout), backend=compiled_backend, **settings, **SETTINGS,
    )  # fmt: skip
    assert np.all(np.isfinite(result.coef))
    assert_same_fit(result, reference_fit(case, optimizer, batch_size, dtype, layout),
                    rtol_for(dtype))  # fmt: skip


# --- scikit-learn, epoch by epoch ----------------------------------------------------


def sgd_problem(layout, classifier):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6))
    y = X[:, :3] @ [1.0, -2.0, 0.5] + 0.3 + 0.3 * rng.standard_normal(40)
    return laid_out(X, layout), (y > 0).astype(np.int64) if classifier else y


def assert_sklearn_epochs(backend, layout, classifier, fit_intercept, sklearn_dense, **settings):
    """fastgd.fit and scikit-learn's SGD after 1, 2 and 3 epochs, to 1e-10.

    ``sklearn_dense``: scikit-learn trains on the dense copy of a CSR X
    (it decays a sparse X's intercept steps, which fastgd does not).
    """
    X, y = sgd_problem(layout, classifier)
    sklearn_settings = {k: v for k, v in settings.items() if k != "l1_method"}
    estimator = SGDClassifier if classifier else SGDRegressor
    for epochs in (1, 2, 3):
        expected = estimator(
            loss="hinge" if classifier else "squared_error", learning_rate="constant",
            eta0=0.05, shuffle=False, max_iter=epochs, tol=None, fit_intercept=fit_intercept,
            **sklearn_settings,
        )  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter reached
            expected.fit(X.toarray() if sklearn_dense and sp.issparse(X) else X, y)
        result = fastgd.fit(
            X, y, loss="hinge" if classifier else "squared_error", batch_size=1,
            shuffle=False, lr=0.05, epochs=epochs, fit_intercept=fit_intercept,
            sparse_update=sparse_update(layout), backend=backend, **settings,
        )  # fmt: skip
        np.testing.assert_allclose(
            np.append(result.coef, result.intercept),
            np.append(expected.coef_, expected.intercept_), rtol=1e-10, atol=1e-12,
        )  # fmt: skip


@pytest.mark.parametrize("classifier", [False, True], ids=["regressor", "classifier"])
@pytest.mark.parametrize("penalty", [None, "l2"], ids=str)
@pytest.mark.parametrize("average", [True, 10], ids=["True", "10"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_average_is_sklearns(backend, layout, average, penalty, classifier):
    assert_sklearn_epochs(backend, layout, classifier, True, True, average=average,
                          penalty=penalty, alpha=0.01)  # fmt: skip


@pytest.mark.parametrize("classifier", [False, True], ids=["regressor", "classifier"])
@pytest.mark.parametrize("penalty", ["l1", "elasticnet"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_cumulative_l1_is_sklearns(backend, layout, penalty, classifier):
    settings = dict(penalty=penalty, alpha=0.05, l1_ratio=0.5, l1_method="cumulative")
    if layout == "csr-lazy":
        # scikit-learn's sparse rule (the row's stored columns), on its
        # sparse input, where it decays intercept steps: without intercept.
        assert_sklearn_epochs(backend, layout, classifier, False, False, **settings)
    else:
        # Every column, as scikit-learn's dense input.
        assert_sklearn_epochs(backend, layout, classifier, True, True, **settings)


def test_the_sparse_rule_differs_from_the_dense_one():
    # Without this the CSR test above could pass with every column penalised.
    X, y = sgd_problem("csr-lazy", False)
    settings = dict(penalty="l1", alpha=0.05, l1_method="cumulative", batch_size=1,
                    shuffle=False, lr=0.05, epochs=2, backend=REFERENCE_BACKEND)  # fmt: skip
    lazy = fastgd.fit(X, y, **settings)
    dense = fastgd.fit(X, y, sparse_update="dense", **settings)
    assert np.max(np.abs(lazy.coef - dense.coef)) > 1e-3


# --- what the model shows, and what it trains on -------------------------------------


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_estimators_show_the_average_and_train_on_from_the_iterate(backend):
    # partial_fit continues from the raw iterate and the running average, as
    # scikit-learn's does.
    X, y = sgd_problem("dense", False)
    ours = MiniBatchRegressor(lr=0.05, batch_size=1, shuffle=False, average=True,
                              backend=backend)  # fmt: skip
    theirs = SGDRegressor(learning_rate="constant", eta0=0.05, shuffle=False, average=True,
                          penalty=None)  # fmt: skip
    for _ in range(3):
        ours.partial_fit(X, y)
        theirs.partial_fit(X, y)
        np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-10)
        np.testing.assert_allclose(ours.intercept_, theirs.intercept_, rtol=1e-10)
    trainer = ours._trainers[0]
    np.testing.assert_array_equal(trainer.state[SLOT_AVERAGE][0, :-1], ours.coef_)
    assert np.max(np.abs(trainer.P[0, :-1] - ours.coef_)) > 1e-6  # the iterate differs


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_the_classifier_averages_every_one_vs_rest_output(backend):
    X, _ = sgd_problem("dense", False)
    labels = np.array([0, 1, 2, 1] * 10)
    ours = MiniBatchClassifier(loss="hinge", lr=0.05, batch_size=1, shuffle=False, epochs=2,
                               tol=None, average=5, backend=backend).fit(X, labels)  # fmt: skip
    theirs = SGDClassifier(loss="hinge", learning_rate="constant", eta0=0.05, shuffle=False,
                           max_iter=2, tol=None, average=5, penalty=None)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs.fit(X, labels)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-10)
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, rtol=1e-10)


def test_fit_result_is_the_average_and_its_state_the_iterate():
    X, y = make_problem("squared_error", np.float64)
    result = fastgd.fit(X, y, average=True, backend=REFERENCE_BACKEND, random_state=0)
    np.testing.assert_array_equal(result.coef, result.state.optimizer_state[SLOT_AVERAGE][0, :-1])
    assert result.intercept == result.state.optimizer_state[SLOT_AVERAGE][0, -1]
    assert not np.array_equal(result.coef, result.state.P[0, :-1])


def test_before_averaging_starts_the_model_is_the_iterate():
    X, y = make_problem("squared_error", np.float64)
    settings = dict(batch_size=1, epochs=1, random_state=0, backend=REFERENCE_BACKEND)
    late = fastgd.fit(X, y, average=N_SAMPLES + 1, **settings)
    plain = fastgd.fit(X, y, **settings)
    np.testing.assert_array_equal(late.coef, plain.coef)
    started = fastgd.fit(X, y, average=N_SAMPLES, **settings)  # the last update: averaged once
    np.testing.assert_array_equal(started.coef, plain.coef)


def test_average_counts_rows_as_the_updates_that_see_them():
    # At batch size 7, "after 10 rows" is update ceil(10 / 7) = 2.
    X, y = make_problem("squared_error", np.float64)
    settings = dict(batch_size=7, epochs=2, random_state=0, backend=REFERENCE_BACKEND)
    np.testing.assert_array_equal(fastgd.fit(X, y, average=10, **settings).coef,
                                  fastgd.fit(X, y, average=8, **settings).coef)  # fmt: skip
    assert not np.array_equal(fastgd.fit(X, y, average=10, **settings).coef,
                              fastgd.fit(X, y, average=7, **settings).coef)  # fmt: skip


def test_average_off_is_the_plain_fit():
    X, y = make_problem("squared_error", np.float64)
    settings = dict(epochs=2, random_state=0, backend=REFERENCE_BACKEND)
    plain = fastgd.fit(X, y, **settings)
    for off in (False, 0):
        np.testing.assert_array_equal(fastgd.fit(X, y, average=off, **settings).coef, plain.coef)


def test_cumulative_penalty_zeroes_noise_weights_the_proximal_step_leaves():
    # Irrelevant features under per-row gradients: the soft-threshold leaves
    # them jittering around 0, the cumulative penalty clips them to 0.
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 20))
    y = X[:, 0] - X[:, 1] + 0.5 * rng.standard_normal(400)
    settings = dict(batch_size=1, penalty="l1", alpha=0.01, lr=0.01, epochs=5,
                    random_state=0, backend=REFERENCE_BACKEND)  # fmt: skip
    cumulative = fastgd.fit(X, y, l1_method="cumulative", **settings).coef
    proximal = fastgd.fit(X, y, **settings).coef
    assert np.sum(cumulative[2:] == 0.0) > np.sum(proximal[2:] == 0.0)
    assert abs(cumulative[0] - 1.0) < 0.1 and abs(cumulative[1] + 1.0) < 0.1


@pytest.mark.parametrize(
    "value, error", [(-1, ValueError), (1.5, TypeError), ("yes", TypeError), (None, TypeError)]
)
def test_bad_average_names_the_argument(value, error):
    X, y = make_problem("squared_error", np.float64)
    with pytest.raises(error, match="average"):
        fastgd.fit(X, y, average=value)
    with pytest.raises(error, match="average"):
        MiniBatchRegressor(average=value).fit(X, y)


def test_a_misspelt_l1_method_gets_a_suggestion():
    X, y = make_problem("squared_error", np.float64)
    with pytest.raises(ValueError, match="Did you mean 'cumulative'"):
        fastgd.fit(X, y, l1_method="cummulative")


# --- sparsify / densify ----------------------------------------------------------------


@pytest.mark.parametrize("estimator", [MiniBatchRegressor, MiniBatchClassifier])
def test_sparsify_and_densify_keep_the_predictions(estimator):
    X, y = sgd_problem("dense", estimator is MiniBatchClassifier)
    if estimator is MiniBatchClassifier:
        y = y + (X[:, 1] > 0)  # three classes: a (3, d) coef_
    model = estimator(penalty="l1", alpha=0.05, l1_method="cumulative", batch_size=1,
                      epochs=5, tol=None, random_state=0).fit(X, y)  # fmt: skip
    coef, predictions = model.coef_.copy(), model.predict(X)
    assert model.sparsify() is model
    assert sp.issparse(model.coef_) and model.coef_.format == "csr"
    assert model.coef_.nnz == np.count_nonzero(coef) < coef.size
    np.testing.assert_array_equal(model.predict(X), predictions)
    if hasattr(model, "decision_function"):
        assert model.decision_function(X).shape == model.densify().sparsify().decision_function(
            X).shape  # fmt: skip
    assert model.densify() is model
    assert isinstance(model.coef_, np.ndarray)
    np.testing.assert_array_equal(model.coef_, coef)
    assert model.densify().coef_.shape == coef.shape  # dense already: unchanged
    model.sparsify().partial_fit(X, y)  # training again makes coef_ an array
    assert isinstance(model.coef_, np.ndarray) and model.coef_.shape == coef.shape


@pytest.mark.parametrize("method", ["sparsify", "densify"])
def test_sparsify_and_densify_need_a_fitted_model(method):
    with pytest.raises(NotFittedError):
        getattr(MiniBatchRegressor(), method)()
