"""``schedule='optimal'``: scikit-learn's ``learning_rate='optimal'``, on every backend.

The rate of update t (1-based) is ``1 / (alpha · (optimal_init + t − 1))``,
with Bottou's ``optimal_init`` from alpha and the loss (``_schedule``).
"""

import numpy as np
import pytest
from sklearn.linear_model import SGDClassifier, SGDRegressor

import fastgd
from fastgd import DivergenceError
from fastgd._schedule import epoch_learning_rate, optimal_init, update_exponent, update_offset
from fastgd._validation import check_fit_settings
from support import ALL_BACKENDS, COMPILED_BACKENDS, RTOL, max_relative_error

REGRESSION = ("squared_error", "huber")
CLASSIFICATION = ("log_loss", "hinge")


def problem(loss, n=60, seed=0):
    rng = np.random.default_rng(seed)
    # squared_error's first rates (alpha**-0.25: 3.2 at alpha=1e-2) overshoot
    # on rows of unit scale, and scikit-learn's fit diverges: small rows.
    X = rng.normal(size=(n, 3)) * (0.1 if loss == "squared_error" else 1.0)
    z = X @ np.array([1.0, -2.0, 0.5]) + 0.3
    if loss in CLASSIFICATION:
        y = (z + 0.5 * rng.normal(size=n) > 0).astype(np.float64)
    else:
        y = z + 0.5 * rng.normal(size=n)
    return X, y


def scikit_learn(loss, alpha, penalty, epochs):
    estimator = SGDClassifier if loss in CLASSIFICATION else SGDRegressor
    return estimator(loss=loss, learning_rate="optimal", alpha=alpha, penalty=penalty,
                     shuffle=False, tol=None, max_iter=epochs)  # fmt: skip


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("backend", ALL_BACKENDS)
@pytest.mark.parametrize("epochs", [1, 2, 3])
@pytest.mark.parametrize("penalty", ["l2", None])
@pytest.mark.parametrize("alpha", [1e-4, 1e-2])
@pytest.mark.parametrize("loss", REGRESSION + CLASSIFICATION)
def test_optimal_equals_scikit_learn(loss, alpha, penalty, epochs, backend):
    X, y = problem(loss)
    expected = scikit_learn(loss, alpha, penalty, epochs).fit(X, y)
    settings = dict(loss=loss, schedule="optimal", batch_size=1, shuffle=False,
                    epochs=epochs, penalty=penalty, alpha=alpha, backend=backend)  # fmt: skip
    coef = np.ravel(expected.coef_)
    intercept = np.ravel(expected.intercept_)
    if loss == "squared_error" and alpha == 1e-4:
        # The rate stays near alpha**-0.25 = 10 for thousands of updates:
        # the intercept's step multiplies its error by about 9 per row, and
        # scikit-learn's fit diverges (held near 1e13 only by its clip of
        # dloss at 1e12, which fastgd does not have). fastgd diverges too.
        assert np.abs(coef).max() > 1e10
        try:
            result = fastgd.fit(X, y, **settings)
        except DivergenceError:
            return
        assert np.abs(result.coef).max() > 1e10
        return
    result = fastgd.fit(X, y, **settings)
    rtol = 1e-10
    if loss == "huber" and alpha == 1e-4 and epochs == 3:
        # Rates near 10 with a gradient clipped at epsilon: every row
        # overshoots, and rounding differences (scikit-learn shrinks the
        # weights and adds eta·dloss·x; fastgd steps eta·(dloss·x + alpha·w))
        # grow by orders of magnitude by the third epoch (1e-9 to 1.2e-8 seen).
        rtol = 1e-6
    assert max_relative_error(np.ravel(result.coef), coef) <= rtol
    assert max_relative_error(np.ravel(result.intercept), intercept) <= rtol


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss", REGRESSION + CLASSIFICATION + ("multinomial",))
def test_optimal_mini_batches_equal_the_reference(loss, dtype, backend):
    X, y = problem("log_loss" if loss == "multinomial" else loss, n=70)
    X, y = X.astype(dtype), y.astype(dtype)
    settings = dict(loss=loss, schedule="optimal", batch_size=8, epochs=3, alpha=0.1,
                    penalty="l2", random_state=0)  # fmt: skip
    expected = fastgd.fit(X, y, backend="numpy", **settings)
    result = fastgd.fit(X, y, backend=backend, **settings)
    rtol = RTOL[np.dtype(dtype)]
    assert max_relative_error(result.coef, expected.coef) <= rtol
    assert max_relative_error(result.intercept, expected.intercept) <= rtol


def test_optimal_counts_updates_not_rows():
    """With batches, t is the update number: the rate after k updates is 1 / (alpha · (t0 + k))."""
    alpha = 1e-2
    cfg, _ = check_fit_settings(n_samples=10, schedule="optimal", alpha=alpha, loss="hinge")
    init = optimal_init(alpha, "hinge", 0.1)
    assert cfg.power_t == 1.0 and cfg.t_offset == init - 1.0
    base = epoch_learning_rate("optimal", 123.0, 0, 0.9, 10, 0.1, alpha)
    assert base == 1.0 / alpha  # lr is not read
    first = base / (1 + cfg.t_offset) ** cfg.power_t
    # Bottou's heuristic: the first rate is typw / max(1, dloss) = alpha**-0.25 here.
    np.testing.assert_allclose(first, alpha**-0.25, rtol=1e-14)
    assert update_exponent("invscaling", 0.5) == 0.5 and update_offset("invscaling", 0.0, "hinge", 0.1) == 0.0


@pytest.mark.parametrize("penalty", ["l2", None])
def test_optimal_refuses_alpha_zero_before_training(monkeypatch, penalty):
    X, y = problem("squared_error")
    import fastgd.backends._reference as reference

    def never(*args, **kwargs):
        raise AssertionError("trained")

    monkeypatch.setattr(reference, "run_batches", never)
    with pytest.raises(ValueError, match=r"schedule='optimal'.*alpha > 0.*alpha=0\.0"):
        fastgd.fit(X, y, schedule="optimal", alpha=0.0, penalty=penalty, backend="numpy")


def test_optimal_estimators_refuse_alpha_zero():
    X, y = problem("squared_error")
    with pytest.raises(ValueError, match=r"schedule='optimal'.*alpha"):
        fastgd.MiniBatchRegressor(schedule="optimal", alpha=0.0).fit(X, y)


@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("loss", ["huber", "hinge"])
def test_optimal_on_csr_equals_the_reference(loss, backend):
    sparse = pytest.importorskip("scipy.sparse")
    X, y = problem(loss, n=70)
    X[np.abs(X) < 0.7] = 0.0
    X = sparse.csr_matrix(X)
    settings = dict(loss=loss, schedule="optimal", batch_size=8, epochs=3, alpha=0.1,
                    penalty="l2", random_state=0)  # fmt: skip
    expected = fastgd.fit(X, y, backend="numpy", **settings)
    result = fastgd.fit(X, y, backend=backend, **settings)
    assert max_relative_error(result.coef, expected.coef) <= RTOL[np.dtype(np.float64)]
    assert max_relative_error(result.intercept, expected.intercept) <= RTOL[np.dtype(np.float64)]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_optimal_estimators_equal_scikit_learn(backend):
    X, y = problem("hinge")
    settings = dict(alpha=1e-2, penalty="l2", shuffle=False, tol=None)
    expected = SGDClassifier(loss="hinge", learning_rate="optimal", max_iter=3,
                             **settings).fit(X, y)  # fmt: skip
    model = fastgd.MiniBatchClassifier(loss="hinge", schedule="optimal", batch_size=1, epochs=3,
                                       backend=backend, **settings).fit(X, y)  # fmt: skip
    assert max_relative_error(np.ravel(model.coef_), np.ravel(expected.coef_)) <= 1e-10
    assert max_relative_error(model.intercept_, expected.intercept_) <= 1e-10
    X, y = problem("huber")
    expected = SGDRegressor(loss="huber", learning_rate="optimal", max_iter=3,
                            **settings).fit(X, y)  # fmt: skip
    model = fastgd.MiniBatchRegressor(loss="huber", schedule="optimal", batch_size=1, epochs=3,
                                      backend=backend, **settings).fit(X, y)  # fmt: skip
    assert max_relative_error(model.coef_, expected.coef_) <= 1e-10
    assert max_relative_error(model.intercept_, expected.intercept_) <= 1e-10
