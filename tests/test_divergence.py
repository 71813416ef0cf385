"""Divergence is caught at the batch where it happens, and no NaN is returned."""

import numpy as np
import pytest

import fastgd

DIVERGING = dict(lr=10.0, epochs=20, batch_size=32, random_state=0)


def exploding_problem(dtype=np.float64):
    rng = np.random.default_rng(0)
    X = (100.0 * rng.standard_normal((1000, 3))).astype(dtype)
    return X, X @ np.array([1.0, -2.0, 0.5]) + 3.0


def test_divergence_raises_a_floating_point_error_naming_epoch_batch_and_lr(backend):
    X, y = exploding_problem()
    with pytest.raises(fastgd.DivergenceError, match=r"epoch 1, batch \d+.*lr=10.*smaller lr"):
        with np.errstate(all="ignore"):
            fastgd.fit(X, y, backend=backend, **DIVERGING)
    assert issubclass(fastgd.DivergenceError, FloatingPointError)


def test_divergence_keeps_the_last_finite_epoch(backend):
    X, y = exploding_problem()
    # Just past the stable step size: the error grows slowly, so some epochs
    # complete before the loss overflows.
    with pytest.raises(fastgd.DivergenceError) as caught:
        with np.errstate(all="ignore"):
            fastgd.fit(X / 100.0, y, backend=backend, lr=2.5, epochs=500, random_state=0)
    err = caught.value
    assert err.epoch >= 2
    assert err.result.n_epochs == err.epoch - 1
    assert len(err.result.loss_history) == err.epoch - 1
    assert np.isfinite(err.result.loss_history).all()
    assert np.isfinite(err.result.coef).all() and np.isfinite(err.result.intercept)


def test_every_backend_stops_at_the_same_batch(dtype):
    X, y = exploding_problem(dtype)
    batches = set()
    for name in fastgd.available_backends():
        with pytest.raises(fastgd.DivergenceError) as caught:
            with np.errstate(all="ignore"):
                fastgd.fit(X, y, backend=name, **DIVERGING)
        batches.add((caught.value.epoch, caught.value.batch))
    assert len(batches) == 1
