"""The engine's compiled passes outside the backends: the row order of a shuffled epoch, and the finiteness check.

This module imports Numba; ``_state`` and ``_validation`` import it on
first use, not with fastgd.

**The row permutation** (:func:`permute`). ``Generator.shuffle`` of a
million int32 row indices takes ~21 ms on the 2-core machine the benchmarks
run on, a quarter of a 4096-row-batch epoch over 1,000,000 x 64 float64
rows; :func:`permute` takes ~4.5 ms. It is the "inside-out" Fisher-Yates
shuffle (Durstenfeld's, written while filling the buffer, so the rows are
written once, not written and then swapped), drawing from SplitMix64
(Steele, Lea & Flood 2014), and prefetching the slot each step will touch a
few steps ahead: past the caches (10,000,000 rows and more), the swaps'
random accesses are what it waits on.

``j`` uniform in ``0..i`` is the high 64 bits of ``r · (i + 1)`` for a
64-bit draw ``r`` (Lemire's multiply-shift, without the rejection step):
each ``j`` is off the uniform probability by less than ``(i + 1) / 2**64``,
under 1.2e-10 for the 2**31 rows of an int32 order. The compiled function
and :func:`permute_reference` (the specification, for the tests) give the
same permutation for the same ``(seed, n)`` on any machine: integer
arithmetic only.

**The batch order** (:func:`batch_order`, ``shuffle='batches'``): the
whole batches in the order of :func:`permute`'s permutation of their
numbers, written in one compiled pass (NumPy's broadcast add and
``Generator.permutation`` took ~1.8 ms per epoch at 1,000,000 rows in 4096-row
batches, 5% of a float32 epoch). :func:`batch_order_reference` is its twin.

**The finiteness check** (:func:`finite_sum`): the float64 sum of an
array's elements, finite exactly when every element is (or the sum
overflowed, which the caller tells apart). One streaming read, as fast as
the memory floor's (NumPy's ``sum`` of float32 in float64 converts through
buffers, at twice the time of a read).
"""

import numpy as np
from numba import types
from numba.extending import overload

from .backends._numba import _jit, prefetch_to_l1

MASK64 = (1 << 64) - 1
# SplitMix64's constants: the golden-ratio increment and the two multipliers
# of its finaliser.
GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
# Steps ahead that a slot is prefetched: enough to cover a memory latency
# with the swaps in between (10,000,000 rows: 2x faster than without; within
# the caches it changes nothing).
PREFETCH_AHEAD = 16


def permute_reference(order, seed, rows=None):
    """Fill ``order`` with a permutation of ``rows`` (None: ``0..n-1``) drawn from the 64-bit ``seed``.

    The plain-Python specification of :func:`permute`: slow (about a
    microsecond a row), for the tests.
    """
    state = seed & MASK64
    for i in range(order.shape[0]):
        state = (state + GOLDEN) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * MIX1) & MASK64
        z = ((z ^ (z >> 27)) * MIX2) & MASK64
        r = z ^ (z >> 31)
        j = (r * (i + 1)) >> 64
        order[i] = order[j]
        order[j] = i if rows is None else rows[i]
    return order


def permute(order, seed, rows=None):
    """Fill ``order`` with a permutation of ``rows`` (None: ``0..n-1``) drawn from the 64-bit ``seed``.

    The permutation of :func:`permute_reference`, compiled; ``order`` is
    int32 or int64 and is returned.
    """
    _permute(order, np.uint64(seed & MASK64), rows)
    return order


def source(rows, i):
    """Row ``i`` of the rows being permuted: ``rows[i]``, or ``i`` where ``rows`` is None."""


@overload(source, inline="always")
def _source(rows, i):
    if isinstance(rows, types.NoneType):
        return lambda rows, i: i
    return lambda rows, i: rows[i]


u64 = np.uint64


@_jit(inline="always")
def draw(state, bound):
    """(next state, a draw in ``0..bound-1``): SplitMix64, then the high word of ``r · bound``."""
    state = state + u64(GOLDEN)
    z = state
    z = (z ^ (z >> u64(30))) * u64(MIX1)
    z = (z ^ (z >> u64(27))) * u64(MIX2)
    r = z ^ (z >> u64(31))
    # The high 64 bits from 32-bit halves: Numba has no 128-bit integers.
    low = u64(0xFFFFFFFF)
    r_lo, r_hi, b_lo, b_hi = r & low, r >> u64(32), bound & low, bound >> u64(32)
    lo_lo, lo_hi, hi_lo = r_lo * b_lo, r_lo * b_hi, r_hi * b_lo
    middle = (lo_lo >> u64(32)) + (lo_hi & low) + (hi_lo & low)
    return state, r_hi * b_hi + (lo_hi >> u64(32)) + (hi_lo >> u64(32)) + (middle >> u64(32))


@_jit
def _permute(order, seed, rows):
    n = order.shape[0]
    state = seed
    # The draws of the next PREFETCH_AHEAD steps, made ahead so that the
    # slot each will touch is in cache when its step comes.
    ahead = np.empty(PREFETCH_AHEAD, np.int64)
    for i in range(min(PREFETCH_AHEAD, n)):
        state, j = draw(state, u64(i + 1))
        ahead[i] = np.int64(j)
    for i in range(n):
        k = i % PREFETCH_AHEAD
        j = ahead[k]
        order[i] = order[j]
        order[j] = source(rows, i)
        later = i + PREFETCH_AHEAD
        if later < n:
            state, j = draw(state, u64(later + 1))
            ahead[k] = np.int64(j)
            prefetch_to_l1(order, ahead[k])


def batch_order_reference(order, seed, batch_size, rows=None):
    """Fill ``order`` with the rows' contiguous batches, in a random batch order from ``seed``.

    The specification of :func:`batch_order`: the batches' numbers
    permuted by :func:`permute_reference`; a last, partial batch stays last.
    """
    base = np.arange(order.shape[0]) if rows is None else np.asarray(rows)
    n_whole = order.shape[0] // batch_size
    picks = permute_reference(np.empty(n_whole, dtype=np.int64), seed)
    whole = base[: n_whole * batch_size].reshape(n_whole, batch_size)
    order[: n_whole * batch_size] = whole[picks].reshape(-1)
    order[n_whole * batch_size :] = base[n_whole * batch_size :]
    return order


def batch_order(order, seed, batch_size, rows=None):
    """The batch order of :func:`batch_order_reference`, compiled; ``order`` is returned."""
    n_whole = order.shape[0] // batch_size
    picks = permute(np.empty(n_whole, dtype=order.dtype), seed)
    _batch_order(order, picks, batch_size, rows)
    return order


@_jit
def _batch_order(order, picks, batch_size, rows):
    n_whole = picks.shape[0]
    for b in range(n_whole):
        start = picks[b] * batch_size
        out = b * batch_size
        for k in range(batch_size):
            order[out + k] = source(rows, start + k)
    for i in range(n_whole * batch_size, order.shape[0]):
        order[i] = source(rows, i)


@_jit
def _finite_sum_1d(a):
    total = 0.0
    for k in range(a.shape[0]):
        total += np.float64(a[k])
    return total


def finite_sum(a):
    """The float64 sum of the elements of ``a`` (float32 or float64, C-contiguous), in one read."""
    return _finite_sum_1d(a.reshape(-1))
