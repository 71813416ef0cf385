"""shuffle='batches': contiguous batches of the data, visited in a random order."""

import numpy as np
import pytest

import fastgd
from fastgd._engine import shuffled_batches
from support import REFERENCE_BACKEND, assert_same_fit, make_problem, rtol_for


@pytest.mark.parametrize("n, batch_size", [(20, 5), (23, 5), (7, 7), (9, 1), (5, 8)])
@pytest.mark.parametrize("with_rows", [False, True])
def test_shuffled_batches_moves_whole_batches_and_keeps_the_tail_last(n, batch_size, with_rows):
    rows = np.arange(100, 100 + n) if with_rows else None
    base = rows if with_rows else np.arange(n)
    order = np.zeros(n, dtype=np.int32)
    batch_size = min(batch_size, n)
    shuffled_batches(order, rows, batch_size, 0)
    n_whole = n // batch_size
    np.testing.assert_array_equal(np.sort(order), base)
    blocks = order[: n_whole * batch_size].reshape(n_whole, batch_size)
    assert np.all(np.diff(blocks, axis=1) == 1)  # each batch is contiguous
    assert set(blocks[:, 0]) == set(base[: n_whole * batch_size : batch_size])
    np.testing.assert_array_equal(order[n_whole * batch_size :], base[n_whole * batch_size :])


def test_shuffled_batches_draws_its_batch_order_from_the_seed():
    order = np.zeros(1000, dtype=np.int32)
    shuffled_batches(order, None, 10, 0)
    first = order.copy()
    shuffled_batches(order, None, 10, 1)
    assert not np.array_equal(first, order)
    shuffled_batches(order, None, 10, 0)
    np.testing.assert_array_equal(first, order)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("batch_size", [1, 7, 32])
def test_compiled_backends_match_reference_with_shuffled_batches(compiled_backend, dtype,
                                                                  optimizer, batch_size):  # fmt: skip
    X, y = make_problem("squared_error", dtype)
    settings = dict(shuffle="batches", optimizer=optimizer, batch_size=batch_size,
                    epochs=3, lr=0.05, random_state=3)  # fmt: skip
    result = fastgd.fit(X, y, backend=compiled_backend, **settings)
    expected = fastgd.fit(X, y, backend=REFERENCE_BACKEND, **settings)
    assert_same_fit(result, expected, rtol_for(dtype))


def test_shuffled_batches_is_seeded_and_differs_from_a_row_shuffle(backend):
    X, y = make_problem("squared_error", np.float64)
    fits = [fastgd.fit(X, y, shuffle=mode, batch_size=5, epochs=2, random_state=1,
                       backend=backend) for mode in ("batches", "batches", True)]  # fmt: skip
    np.testing.assert_array_equal(fits[0].coef, fits[1].coef)
    assert not np.array_equal(fits[0].coef, fits[2].coef)


def test_estimators_accept_shuffled_batches():
    X, y = make_problem("squared_error", np.float64)
    model = fastgd.MiniBatchRegressor(shuffle="batches", random_state=0).fit(X, y)
    assert np.isfinite(model.coef_).all()


def test_an_unshuffled_epoch_after_shuffled_ones_visits_the_data_in_its_order():
    X, y = make_problem("squared_error", np.float64)
    fits = []
    for modes in ((True, "batches", False), (False,)):
        model = fastgd.MiniBatchRegressor(batch_size=5, random_state=0)
        for mode in modes:
            model.set_params(shuffle=mode).partial_fit(X, y)
        fits.append(model._trainers[0]._order.copy())
    np.testing.assert_array_equal(fits[0], np.arange(len(X)))
    np.testing.assert_array_equal(fits[1], np.arange(len(X)))
