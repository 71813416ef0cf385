"""The engine's compiled passes (``fastgd._compiled``): shuffle=True's row order against its
plain-Python twin, and the one-read finiteness check of large inputs."""

import collections
import itertools

import numpy as np
import pytest

import fastgd
from fastgd._compiled import (
    PREFETCH_AHEAD,
    batch_order,
    batch_order_reference,
    finite_sum,
    permute,
    permute_reference,
)
from fastgd._state import RowOrder

SIZES = [0, 1, 2, 3, PREFETCH_AHEAD - 1, PREFETCH_AHEAD, PREFETCH_AHEAD + 1, 100, 1000]
SEEDS = [0, 1, 2**63, 2**64 - 1, 12_345_678_901_234_567]


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("with_rows", [False, True], ids=["all_rows", "some_rows"])
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("n", SIZES)
def test_compiled_permutation_is_the_reference_one(n, seed, with_rows, index_dtype):
    rows = np.arange(n, dtype=index_dtype)[::-1] * 3 + 7 if with_rows else None
    order = np.full(n, -1, dtype=index_dtype)
    result = permute(order, seed, rows)
    assert result is order
    expected = permute_reference(np.empty(n, dtype=np.int64), seed, rows)
    np.testing.assert_array_equal(order, expected)
    np.testing.assert_array_equal(np.sort(order), np.sort(np.arange(n) if rows is None else rows))


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("with_rows", [False, True], ids=["all_rows", "some_rows"])
@pytest.mark.parametrize("seed", SEEDS[:3])
@pytest.mark.parametrize("n, batch_size", [(0, 1), (1, 1), (7, 7), (20, 5), (23, 5), (100, 1),
                                           (1000, 3), (1000, 64)])  # fmt: skip
def test_compiled_batch_order_is_the_reference_one(n, batch_size, seed, with_rows, index_dtype):
    rows = np.arange(n, dtype=index_dtype)[::-1] * 3 + 7 if with_rows else None
    order = np.full(n, -1, dtype=index_dtype)
    assert batch_order(order, seed, batch_size, rows) is order
    expected = batch_order_reference(np.empty(n, dtype=np.int64), seed, batch_size, rows)
    np.testing.assert_array_equal(order, expected)


def test_every_permutation_of_five_rows_is_about_equally_likely():
    counts = collections.Counter(
        tuple(permute(np.empty(5, dtype=np.int32), int(seed)))
        for seed in np.random.default_rng(0).integers(0, 2**63, 60_000)
    )
    assert set(counts) == set(itertools.permutations(range(5)))
    expected = 60_000 / 120
    chi2 = sum((count - expected) ** 2 / expected for count in counts.values())
    # 119 degrees of freedom: the 99.99th percentile is about 188.
    assert chi2 < 188


def test_each_row_lands_anywhere_about_equally_often():
    n, draws = 50, 10_000
    landed = np.zeros((n, n))
    for seed in range(draws):
        landed[np.arange(n), permute(np.empty(n, dtype=np.int32), seed)] += 1
    # Every (position, row) cell expects draws / n = 200; a Binomial's
    # standard deviation there is ~14, so 6 sigma is 85.
    assert np.abs(landed - draws / n).max() < 85


def test_each_epoch_of_a_seed_has_its_own_permutation_and_gets_it_again():
    orders = RowOrder()
    epochs = [orders.draw(7, epoch, True, 4, 1000).copy() for epoch in range(3)]
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    np.testing.assert_array_equal(RowOrder().draw(7, 1, True, 4, 1000), epochs[1])
    # A shuffled epoch after an epoch in the data's order, and the reverse.
    fresh = RowOrder()
    np.testing.assert_array_equal(fresh.draw(7, 0, False, 4, 1000), np.arange(1000))
    np.testing.assert_array_equal(fresh.draw(7, 2, True, 4, 1000), epochs[2])
    np.testing.assert_array_equal(fresh.draw(7, 3, False, 4, 1000), np.arange(1000))


def test_an_epoch_over_some_rows_permutes_those_rows():
    rows = np.array([9, 3, 5, 11, 0, 2], dtype=np.int32)
    order = RowOrder().draw(1, 0, True, 2, 12, rows)
    np.testing.assert_array_equal(np.sort(order), np.sort(rows))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finite_sum_is_the_float64_sum(dtype):
    a = np.random.default_rng(0).normal(size=(300, 7)).astype(dtype)
    assert finite_sum(a) == pytest.approx(np.sum(a, dtype=np.float64), rel=1e-12)
    # float32 values whose float32 sum would overflow: the float64 sum is finite.
    big = np.full(100_000, 3e38, dtype=np.float32)
    assert np.isfinite(finite_sum(big))


@pytest.mark.parametrize("value, word", [(np.nan, "NaN"), (np.inf, "infinity"), (-np.inf, "infinity")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_inputs_with_one_bad_value_are_refused_naming_it(dtype, value, word):
    # Past 65,536 elements the check is the compiled one.
    X = np.ones((40_000, 3), dtype=dtype)
    y = np.zeros(40_000)
    X[39_999, 2] = value
    with pytest.raises(ValueError, match=f"Input X contains {word} \\(the first at row 39999, column 2\\)"):
        fastgd.fit(X, y, epochs=1)
    X[39_999, 2] = 1.0
    y_bad = np.zeros(70_000)
    y_bad[12] = value
    with pytest.raises(ValueError, match=f"Input y contains {word} \\(the first at index 12\\)"):
        fastgd.fit(np.ones((70_000, 1), dtype=dtype), y_bad, epochs=1)


def test_large_finite_values_whose_sum_overflows_are_accepted():
    X = np.full((40_000, 2), 1e308)
    assert not np.isfinite(finite_sum(X))
    # Finite, though their sum is not: the exact check tells the two apart.
    # (y = 0 from zero weights: every gradient is 0.)
    result = fastgd.fit(X, np.zeros(40_000), epochs=1)
    assert np.all(result.coef == 0.0)
