"""``schedule='adaptive'``: scikit-learn's definition, the rate in the resumable state."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.linear_model import SGDClassifier, SGDRegressor

import fastgd
from fastgd import MiniBatchClassifier, MiniBatchRegressor
from support import ALL_BACKENDS


def problem(n=80, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.3 + 0.5 * rng.normal(size=n)
    return X, y


SETTINGS = dict(lr=0.05, batch_size=1, shuffle=False, schedule="adaptive", tol=1e-3,
                n_iter_no_change=3, epochs=200)  # fmt: skip
SKLEARN = dict(learning_rate="adaptive", eta0=0.05, shuffle=False, tol=1e-3,
               n_iter_no_change=3, max_iter=200, penalty=None)  # fmt: skip


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_adaptive_equals_scikit_learn(backend):
    X, y = problem()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its ConvergenceWarning, if any
        expected = SGDRegressor(**SKLEARN).fit(X, y)
    model = MiniBatchRegressor(backend=backend, **SETTINGS).fit(X, y)
    # The rate was divided several times: the schedule did something.
    assert model._trainers[0].train_state.lr_factor < 1 / 5**2
    assert model.n_iter_ == expected.n_iter_
    np.testing.assert_allclose(model.coef_, expected.coef_, rtol=1e-10)
    np.testing.assert_allclose(model.intercept_, expected.intercept_, rtol=1e-10)
    result = fastgd.fit(X, y, backend=backend, **SETTINGS)
    assert result.n_epochs == expected.n_iter_ and result.converged
    np.testing.assert_allclose(result.coef, expected.coef_, rtol=1e-10)


def test_adaptive_equals_scikit_learn_for_a_classifier():
    X, y = problem(seed=1)
    labels = (y > 0).astype(int)
    settings = dict(SETTINGS, lr=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = SGDClassifier(loss="hinge", **dict(SKLEARN, eta0=0.01)).fit(X, labels)
    model = MiniBatchClassifier(loss="hinge", **settings).fit(X, labels)
    assert model.n_iter_ == expected.n_iter_
    np.testing.assert_allclose(model.coef_, expected.coef_, rtol=1e-10)
    np.testing.assert_allclose(model.intercept_, expected.intercept_, rtol=1e-10)


def test_adaptive_stops_once_the_rate_is_below_its_floor():
    X, y = problem()
    result = fastgd.fit(X, y, **dict(SETTINGS, lr=1e-6, epochs=500))
    # At 1e-6 the first plateau stops training: no division.
    assert result.converged and result.state.lr_factor == 1.0
    assert result.n_epochs < 500


def test_the_adaptive_rate_survives_a_pickle_and_partial_fits_continue_it():
    X, y = problem()
    first = fastgd.fit(X, y, **dict(SETTINGS, epochs=60))
    state = pickle.loads(pickle.dumps(first.state))
    assert state.lr_factor == first.state.lr_factor < 1.0
    # The next epoch runs at the reduced rate: lr_factor is read by advance.
    model = MiniBatchRegressor(**dict(SETTINGS, epochs=30, warm_start=True)).fit(X, y)
    factor = model._trainers[0].train_state.lr_factor
    model.partial_fit(X, y)
    assert model._trainers[0].train_state.lr_factor == factor


def test_without_tol_adaptive_is_the_constant_rate():
    X, y = problem()
    settings = dict(SETTINGS, tol=None, epochs=5)
    adaptive = fastgd.fit(X, y, **settings)
    constant = fastgd.fit(X, y, **dict(settings, schedule="constant"))
    np.testing.assert_array_equal(adaptive.coef, constant.coef)
