"""Reproducibility: the seed decides the row order, and nothing else varies."""

import numpy as np
import pytest

import fastgd

from support import make_problem

SETTINGS = dict(loss="log_loss", optimizer="adam", penalty="elasticnet", batch_size=1,
                lr=0.05, alpha=0.01, epochs=4)  # fmt: skip


def fit(backend, dtype, **overrides):
    X, y = make_problem("log_loss", dtype)
    return fastgd.fit(X, y, backend=backend, **dict(SETTINGS, **overrides))


def assert_bit_identical(a, b):
    np.testing.assert_array_equal(a.coef, b.coef, strict=True)
    np.testing.assert_array_equal(a.intercept, b.intercept, strict=True)
    assert a.loss_history == b.loss_history


def test_same_random_state_gives_bit_identical_fits(backend, dtype):
    assert_bit_identical(fit(backend, dtype, random_state=7), fit(backend, dtype, random_state=7))


def test_a_seeded_generator_gives_the_same_fit_as_its_seed(backend):
    by_seed = fit(backend, np.float64, random_state=7)
    by_generator = fit(backend, np.float64, random_state=np.random.default_rng(7))
    assert_bit_identical(by_seed, by_generator)


def test_different_random_states_give_different_fits_when_shuffling(backend, dtype):
    a = fit(backend, dtype, random_state=1)
    b = fit(backend, dtype, random_state=2)
    assert not np.array_equal(a.coef, b.coef)
    assert a.loss_history != b.loss_history


def test_random_state_has_no_effect_without_shuffle(backend):
    a = fit(backend, np.float64, random_state=1, shuffle=False)
    b = fit(backend, np.float64, random_state=2, shuffle=False)
    assert_bit_identical(a, b)


@pytest.mark.parametrize("random_state", [None, 3])
def test_shuffle_changes_the_visiting_order(backend, random_state):
    shuffled = fit(backend, np.float64, random_state=random_state)
    in_order = fit(backend, np.float64, random_state=random_state, shuffle=False)
    assert not np.array_equal(shuffled.coef, in_order.coef)
