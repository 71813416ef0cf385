"""The losses taken from scikit-learn give scikit-learn's numbers.

``modified_huber``, ``squared_hinge``, ``perceptron`` and
``squared_epsilon_insensitive`` are defined as in scikit-learn's
``sklearn/linear_model/_sgd_fast.pyx.tp``. At batch size 1, unshuffled, with a
constant rate, plain SGD is scikit-learn's ``SGDClassifier`` /
``SGDRegressor`` update (the L2 penalty as its weight scaling), so the
coefficients agree to rounding, on every backend; one-vs-rest classifiers
and ``modified_huber``'s ``predict_proba`` / ``predict_log_proba`` too.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier, SGDRegressor

import fastgd
from fastgd import MiniBatchClassifier
from fastgd._result import FitResult

from support import ALL_BACKENDS

NEW_CLASSIFICATION = ("modified_huber", "squared_hinge", "perceptron")
NEW_REGRESSION = ("squared_epsilon_insensitive",)
RTOL = 1e-10
LR = 0.05
EPSILON = 0.1


def problem(loss, n=40, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    signal = X @ np.array([1.0, -2.0, 0.5, 1.5])[:d] + 0.3 + 0.5 * rng.standard_normal(n)
    if loss in NEW_CLASSIFICATION:
        return X, (signal > 0.3).astype(np.int64)
    return X, signal


def multiclass_problem(n=60, d=4, n_classes=3, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((d, n_classes))
    y = (X @ W + 0.5 * rng.standard_normal((n, n_classes))).argmax(axis=1)
    return X, y


def sklearn_model(loss, **settings):
    cls = SGDClassifier if loss in NEW_CLASSIFICATION else SGDRegressor
    extra = {"epsilon": EPSILON} if loss in NEW_REGRESSION else {}
    return cls(loss=loss, learning_rate="constant", eta0=LR, shuffle=False, tol=None,
               **extra, **settings)  # fmt: skip


def sklearn_fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y)


def assert_close(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=RTOL * scale)


@pytest.mark.parametrize("epochs", [1, 2, 3])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("penalty", [None, "l2"])
@pytest.mark.parametrize("loss", NEW_CLASSIFICATION + NEW_REGRESSION)
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_batch_size_one_equals_scikit_learn(backend, loss, penalty, fit_intercept, epochs):
    X, y = problem(loss)
    expected = sklearn_fit(sklearn_model(loss, penalty=penalty, alpha=0.01, max_iter=epochs,
                                         fit_intercept=fit_intercept), X, y)  # fmt: skip
    result = fastgd.fit(
        X, y, loss=loss, lr=LR, batch_size=1, shuffle=False, epochs=epochs, penalty=penalty,
        alpha=0.01, fit_intercept=fit_intercept, epsilon=EPSILON, backend=backend,
    )  # fmt: skip
    assert np.abs(expected.coef_).max() > 0.0
    assert_close(result.coef, expected.coef_.reshape(-1))
    assert_close(result.intercept, expected.intercept_[0])


def test_the_perceptron_updates_on_a_zero_score():
    """``z <= 0``: from zero parameters the first row already moves them."""
    X, y = np.array([[1.0, 2.0]]), np.array([1])
    result = fastgd.fit(X, y, loss="perceptron", lr=1.0, batch_size=1, epochs=1,
                        shuffle=False, n_classes=2, backend="numpy")  # fmt: skip
    np.testing.assert_array_equal(result.coef, [1.0, 2.0])
    assert result.intercept == 1.0


@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("loss", NEW_CLASSIFICATION)
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_one_vs_rest_equals_scikit_learn(backend, loss, fit_intercept):
    X, y = multiclass_problem()
    labels = np.array(["a", "b", "c"])[y]
    expected = sklearn_fit(sklearn_model(loss, penalty="l2", alpha=0.01, max_iter=3,
                                         fit_intercept=fit_intercept), X, labels)  # fmt: skip
    model = MiniBatchClassifier(
        loss=loss, lr=LR, batch_size=1, shuffle=False, epochs=3, tol=None, penalty="l2", alpha=0.01,
        fit_intercept=fit_intercept, backend=backend,
    ).fit(X, labels)  # fmt: skip
    assert model.coef_.shape == (3, X.shape[1])
    assert_close(model.coef_, expected.coef_)
    assert_close(model.intercept_, expected.intercept_)
    np.testing.assert_array_equal(model.predict(X), expected.predict(X))


@pytest.mark.parametrize("n_classes", [2, 3])
def test_modified_huber_probabilities_equal_scikit_learn(n_classes):
    X, y = problem("modified_huber") if n_classes == 2 else multiclass_problem()
    expected = sklearn_fit(sklearn_model("modified_huber", max_iter=2), X, y)
    # Scores all beyond ±1 in some rows (clipped), and a row of all -1 and
    # below in the multi-class case (its normalising sum is 0: uniform).
    X = np.vstack([X, 50 * X[:3], -50 * X[:3]])
    if n_classes == 3:
        expected.coef_[:] = 0.0
        expected.intercept_[:] = [-2.0, -1.0, -1.5]
        expected.coef_[:, 0] = [1.0, 2.0, -1.0]
        X = np.vstack([X, [[0.0] * X.shape[1]], [[-1.0] + [0.0] * (X.shape[1] - 1)]])
    model = MiniBatchClassifier(loss="modified_huber", lr=LR, batch_size=1, shuffle=False,
                                epochs=1, tol=None, backend="numpy").fit(X[: len(y)], y)  # fmt: skip
    model.coef_, model.intercept_ = expected.coef_.copy(), expected.intercept_.copy()
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba, expected.predict_proba(X), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-14)
    with np.errstate(divide="ignore"):
        expected_log = expected.predict_log_proba(X)
    np.testing.assert_allclose(model.predict_log_proba(X), expected_log, rtol=1e-14, atol=1e-15)
    if n_classes == 3:
        np.testing.assert_allclose(proba[-2], [1 / 3] * 3, rtol=1e-15)
    # fastgd's own result object gives the same numbers.
    coef = expected.coef_.reshape(-1) if n_classes == 2 else expected.coef_
    intercept = expected.intercept_[0] if n_classes == 2 else expected.intercept_
    result = FitResult(coef=coef, intercept=intercept, loss="modified_huber")
    np.testing.assert_allclose(result.predict_proba(X), expected.predict_proba(X), rtol=1e-14,
                               atol=1e-15)  # fmt: skip
    np.testing.assert_allclose(result.predict_log_proba(X), expected_log, rtol=1e-14, atol=1e-15)


def test_an_all_zero_row_gets_uniform_probabilities():
    coef = np.zeros((3, 2))
    result = FitResult(coef=coef, intercept=np.array([-1.0, -2.0, -1.5]), loss="modified_huber")
    np.testing.assert_array_equal(result.predict_proba(np.zeros((1, 2))), [[1 / 3] * 3])


@pytest.mark.parametrize("loss", ["squared_hinge", "perceptron"])
def test_predict_proba_stays_unavailable_for_the_other_new_losses(loss):
    X, y = problem(loss)
    model = MiniBatchClassifier(loss=loss, epochs=1, tol=None, backend="numpy").fit(X, y)
    assert not hasattr(model, "predict_proba")
    assert not hasattr(model, "predict_log_proba")
