"""The mathematics: the losses differentiate correctly and descent reaches the optimum.

The reference backend is the specification, so it is checked here against
things that owe nothing to fastgd: closed-form and scikit-learn solutions,
textbook loss formulas and central finite differences.
"""

import numpy as np
import pytest
from scipy.special import expit, logsumexp
from sklearn.linear_model import ElasticNet, Lasso, LogisticRegression

import fastgd
from fastgd._config import LOSSES
from fastgd.backends import _reference

from support import (
    ALL_BACKENDS,
    REFERENCE_BACKEND,
    TWO_CLASS_LOSSES,
    kernel_config,
    make_targets,
    max_relative_error,
)

EPSILON = 0.1  # huber / epsilon_insensitive width used throughout this module
KINK_CLEARANCE = 1e-3


def standardized_problem(n=200, d=5, seed=0, intercept=1.5):
    """Well-conditioned least squares: standardised X, a linear target + noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    coef = np.array([2.0, -1.0, 0.5, 0.0, 3.0])[:d]
    y = X @ coef + intercept + 0.3 * rng.standard_normal(n)
    return X, y


FULL_BATCH = dict(batch_size=None, lr=0.5, epochs=2000, random_state=0)


# --- full-batch descent reaches the known optimum ----------------------------


@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no_intercept"])
def test_full_batch_gd_reaches_the_least_squares_solution(backend, dtype, fit_intercept):
    X, y = standardized_problem()
    A = np.column_stack([X, np.ones(len(X))]) if fit_intercept else X
    solution = np.linalg.lstsq(A, y, rcond=None)[0]

    result = fastgd.fit(
        X.astype(dtype), y, fit_intercept=fit_intercept, backend=backend, **FULL_BATCH
    )
    fitted = np.append(result.coef, result.intercept) if fit_intercept else result.coef
    rtol = 1e-6 if dtype == np.float64 else 1e-4
    assert max_relative_error(fitted, solution) <= rtol
    if not fit_intercept:
        assert result.intercept == 0.0


def test_full_batch_gd_with_l2_reaches_the_ridge_solution(backend):
    X, y = standardized_problem()
    alpha = 0.3
    # mean ½(Xw + b − y)² + alpha·½‖w‖², intercept unpenalised: centre, then solve.
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    coef = np.linalg.solve(Xc.T @ Xc / len(X) + alpha * np.eye(X.shape[1]), Xc.T @ yc / len(X))
    intercept = y.mean() - X.mean(axis=0) @ coef

    result = fastgd.fit(X, y, penalty="l2", alpha=alpha, backend=backend, **FULL_BATCH)
    assert max_relative_error(result.coef, coef) <= 1e-6
    assert abs(result.intercept - intercept) <= 1e-6


@pytest.mark.parametrize(
    "penalty, l1_ratio, make_model",
    [
        ("l1", 1.0, lambda alpha, ratio: Lasso(alpha=alpha)),
        ("elasticnet", 0.4, lambda alpha, ratio: ElasticNet(alpha=alpha, l1_ratio=ratio)),
    ],
    ids=["l1_is_lasso", "elasticnet"],
)
def test_full_batch_proximal_gd_reaches_the_lasso_and_elasticnet_solutions(
    backend, penalty, l1_ratio, make_model
):
    # scikit-learn's objective is fastgd's: mean ½r² + alpha·R(w), same R.
    X, y = standardized_problem()
    alpha = 0.2
    model = make_model(alpha, l1_ratio).set_params(tol=1e-14, max_iter=100_000).fit(X, y)
    assert np.any(model.coef_ == 0.0), "the problem must switch a weight off"

    result = fastgd.fit(
        X, y, penalty=penalty, alpha=alpha, l1_ratio=l1_ratio, backend=backend,
        **FULL_BATCH,
    )  # fmt: skip
    assert max_relative_error(result.coef, model.coef_) <= 1e-6
    assert abs(result.intercept - model.intercept_) <= 1e-6
    np.testing.assert_array_equal(result.coef == 0.0, model.coef_ == 0.0)


@pytest.mark.parametrize("loss", ["log_loss", "multinomial"])
def test_full_batch_gd_reaches_l2_logistic_regression(backend, loss):
    X, _ = standardized_problem(n=300)
    y = make_targets(loss, X, np.random.default_rng(1))
    alpha = 0.05
    # scikit-learn minimises ½‖w‖² + C·Σ loss: the same optimum when C = 1/(n·alpha).
    model = LogisticRegression(C=1.0 / (len(X) * alpha), tol=1e-12, max_iter=10_000)
    model.fit(X, y)

    result = fastgd.fit(
        X, y, loss=loss, penalty="l2", alpha=alpha, batch_size=None, lr=1.0,
        epochs=3000, backend=backend,
    )  # fmt: skip
    if loss == "log_loss":
        assert max_relative_error(result.coef, model.coef_[0]) <= 1e-5
        assert abs(result.intercept - model.intercept_[0]) <= 1e-5
    else:
        assert max_relative_error(result.coef, model.coef_) <= 1e-5
        # Softmax is blind to a common shift of the intercepts: compare centred.
        centred = model.intercept_ - model.intercept_.mean()
        assert abs(np.sum(result.intercept)) <= 1e-9
        assert max_relative_error(result.intercept, centred) <= 1e-5


# --- the reference's losses: values and derivatives -------------------------


def loss_by_formula(loss, Z, y):
    """Per-row loss written from the textbook definitions, independent of fastgd."""
    if loss == "multinomial":
        return logsumexp(Z, axis=1) - Z[np.arange(len(y)), y.astype(int)]
    z, r, s = Z[:, 0], Z[:, 0] - y, 2.0 * y - 1.0
    if loss == "squared_error":
        return 0.5 * r**2
    if loss == "huber":
        return np.where(np.abs(r) <= EPSILON, 0.5 * r**2, EPSILON * (np.abs(r) - EPSILON / 2))
    if loss == "epsilon_insensitive":
        return np.maximum(np.abs(r) - EPSILON, 0.0)
    if loss == "log_loss":
        return np.log1p(np.exp(-s * z))
    if loss == "hinge":
        return np.maximum(1.0 - s * z, 0.0)
    if loss == "modified_huber":
        m = s * z
        return np.where(m >= 1.0, 0.0, np.where(m >= -1.0, (1.0 - m) ** 2, -4.0 * m))
    if loss == "squared_hinge":
        return np.maximum(1.0 - s * z, 0.0) ** 2
    if loss == "perceptron":
        return np.maximum(-s * z, 0.0)
    if loss == "squared_epsilon_insensitive":
        return np.maximum(np.abs(r) - EPSILON, 0.0) ** 2
    raise AssertionError(loss)


def away_from_kinks(loss, Z, y):
    """Rows whose loss is smooth within KINK_CLEARANCE of Z."""
    if loss in ("huber", "epsilon_insensitive", "squared_epsilon_insensitive"):
        return np.abs(np.abs(Z[:, 0] - y) - EPSILON) > KINK_CLEARANCE
    if loss in ("hinge", "squared_hinge"):
        return np.abs(1.0 - (2.0 * y - 1.0) * Z[:, 0]) > KINK_CLEARANCE
    if loss == "modified_huber":
        return np.abs(np.abs((2.0 * y - 1.0) * Z[:, 0]) - 1.0) > KINK_CLEARANCE
    if loss == "perceptron":
        return np.abs(Z[:, 0]) > KINK_CLEARANCE
    return np.ones(len(y), dtype=bool)


def random_scores(loss, n=400, seed=0, scale=2.0):
    """Scores Z (n, K) and targets y covering every branch of ``loss``."""
    rng = np.random.default_rng(seed)
    K = 3 if loss == "multinomial" else 1
    Z = scale * rng.standard_normal((n, K))
    if loss == "multinomial":
        y = rng.integers(0, K, n).astype(np.float64)
    elif loss in TWO_CLASS_LOSSES:
        y = rng.integers(0, 2, n).astype(np.float64)
    else:
        # Residuals spread over both sides of ±epsilon.
        y = Z[:, 0] + rng.uniform(-3 * EPSILON, 3 * EPSILON, n)
    keep = away_from_kinks(loss, Z, y)
    return Z[keep], y[keep]


@pytest.mark.parametrize("loss", LOSSES)
def test_reference_losses_match_their_formulas(loss):
    Z, y = random_scores(loss)
    values, _ = _reference.LOSS_FUNCTIONS[LOSSES.index(loss)](Z, y, kernel_config(loss))
    np.testing.assert_allclose(values, loss_by_formula(loss, Z, y), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("loss", LOSSES)
def test_reference_loss_derivatives_match_central_differences(loss):
    Z, y = random_scores(loss)
    loss_fn = _reference.LOSS_FUNCTIONS[LOSSES.index(loss)]
    cfg = kernel_config(loss)
    _, dZ = loss_fn(Z, y, cfg)
    assert dZ.shape == Z.shape
    h = 1e-6
    for k in range(Z.shape[1]):
        step = np.zeros_like(Z)
        step[:, k] = h
        numeric = (loss_fn(Z + step, y, cfg)[0] - loss_fn(Z - step, y, cfg)[0]) / (2 * h)
        np.testing.assert_allclose(dZ[:, k], numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("loss", ["log_loss", "multinomial"])
def test_reference_probabilistic_losses_are_stable_for_huge_scores(loss):
    Z, y = random_scores(loss, scale=1e3)
    values, dZ = _reference.LOSS_FUNCTIONS[LOSSES.index(loss)](Z, y, kernel_config(loss))
    assert np.all(np.isfinite(values)) and np.all(np.isfinite(dZ))
    if loss == "log_loss":
        # log(1 + e^m) without overflow: numpy's logaddexp(0, m).
        expected = np.logaddexp(0.0, -(2 * y - 1) * Z[:, 0])
        np.testing.assert_allclose(dZ[:, 0], expit(Z[:, 0]) - y, rtol=1e-12, atol=1e-12)
    else:
        expected = loss_by_formula(loss, Z, y)
        np.testing.assert_allclose(dZ.sum(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(values, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scale", [2.0, 1e3], ids=["moderate", "huge"])
@pytest.mark.parametrize("loss", LOSSES)
def test_numba_row_losses_match_the_reference(loss, scale):
    numba_backend = pytest.importorskip("fastgd.backends._numba")
    Z, y = random_scores(loss, n=100, scale=scale)
    cfg = kernel_config(loss)
    expected_values, expected_dZ = _reference.LOSS_FUNCTIONS[cfg.loss](Z, y, cfg)
    g = np.empty(Z.shape[1])
    for i in range(len(y)):
        if loss == "multinomial":
            value = numba_backend.multinomial_loss_dloss(np.ascontiguousarray(Z[i]), int(y[i]), g)
        else:
            value, g[0] = numba_backend.loss_and_derivative(
                cfg.loss, float(Z[i, 0]), float(y[i]), cfg.epsilon
            )
        assert value == pytest.approx(expected_values[i], rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(g, expected_dZ[i], rtol=1e-12, atol=1e-12)


# --- one descent step follows the gradient of the mean loss -----------------


def mean_loss(loss, X, y, theta, K):
    """Mean loss of parameters ``theta`` = (W (K, d), b (K,)) flattened."""
    d = X.shape[1]
    W, b = theta[: K * d].reshape(K, d), theta[K * d :]
    return float(np.mean(loss_by_formula(loss, X @ W.T + b, y)))


# The perceptron's loss has its kink at a zero score, where every row of the
# first step from zero parameters is: no central difference measures it there.
@pytest.mark.parametrize("loss", [name for name in LOSSES if name != "perceptron"])
def test_one_full_batch_sgd_step_follows_the_numeric_gradient(backend, loss):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((60, 4))
    y = make_targets(loss, X, rng)
    if loss in ("huber", "epsilon_insensitive", "squared_epsilon_insensitive"):
        # At zero parameters the residual is −y: keep it off the ±epsilon kinks.
        y = np.where(np.abs(np.abs(y) - EPSILON) < 0.05, y + 0.2, y)
    K = 3 if loss == "multinomial" else 1
    lr = 1e-3

    result = fastgd.fit(
        X, y, loss=loss, optimizer="sgd", lr=lr, batch_size=None, epochs=1,
        epsilon=EPSILON, shuffle=False, backend=backend,
    )  # fmt: skip
    # From zero, one step of θ := θ − lr·∇J leaves θ = −lr·∇J(0).
    theta = np.concatenate([np.reshape(result.coef, -1), np.reshape(result.intercept, -1)])
    step_gradient = -theta / lr

    h = 1e-6
    numeric = np.empty_like(theta)
    for j in range(theta.size):
        e = np.zeros_like(theta)
        e[j] = h
        numeric[j] = (mean_loss(loss, X, y, e, K) - mean_loss(loss, X, y, -e, K)) / (2 * h)
    np.testing.assert_allclose(step_gradient, numeric, rtol=1e-6, atol=1e-8)
    assert result.loss_history[0] == pytest.approx(mean_loss(loss, X, y, 0 * theta, K))


@pytest.mark.parametrize("batch_size", [1, 7])
def test_an_invscaling_rate_beyond_the_float_range_is_zero_on_every_backend(batch_size):
    """``power_t=200``: t**power_t overflows from t = 35 on, and the rate is 0 there, everywhere."""
    X = np.random.default_rng(0).normal(size=(60, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    settings = dict(schedule="invscaling", power_t=200.0, batch_size=batch_size, epochs=2,
                    random_state=0)  # fmt: skip
    expected = fastgd.fit(X, y, backend=REFERENCE_BACKEND, **settings)
    for backend in ALL_BACKENDS:
        result = fastgd.fit(X, y, backend=backend, **settings)
        np.testing.assert_allclose(result.coef, expected.coef, rtol=1e-12)
        assert result.n_epochs == 2
