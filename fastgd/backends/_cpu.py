"""What the CPU backends (Numba, Cython) decide about how an epoch runs, written once.

Both compiled backends receive ``run`` (an :class:`~fastgd._config.ExecutionConfig`)
and hand their kernels a :class:`CpuExecution`: the same settings with the
row order turned into the one thing the epoch loops read of it, whether to
prefetch rows. The kernels then branch on plain integers, as they do on
``KernelConfig``; a GPU backend would make its own decisions from ``run``.
"""

import functools
from typing import NamedTuple

from .._config import ORDER_BATCHES, ORDER_SHUFFLED, SPARSE_LAZY

# Largest batch of shuffle='batches' whose rows are prefetched: a small
# batch starts at a random address every few rows, a larger one streams,
# where prefetching measured up to 10% slower.
PREFETCH_MAX_BATCH = 64


class CpuExecution(NamedTuple):
    """How a compiled CPU epoch runs: the record its kernels read (the Cython struct mirrors it).

    ``n_threads``, ``hogwild`` and ``sparse_update`` are those of the
    ``ExecutionConfig``; ``prefetch`` (0/1) asks the dense epoch loops to
    announce rows a few steps before they are read (:func:`cpu_execution`).
    """

    n_threads: int = 1
    hogwild: int = 0
    sparse_update: int = SPARSE_LAZY
    prefetch: int = 0


def prefetches(row_order, batch_size):
    """Whether an epoch in ``row_order`` (a code of ``ROW_ORDERS``) prefetches its rows.

    Rows at random addresses are prefetched: every row of a shuffled epoch,
    and the rows of small batches in a random batch order (larger batches
    stream from memory on their own). Sequential epochs never prefetch.
    """
    return row_order == ORDER_SHUFFLED or (
        row_order == ORDER_BATCHES and batch_size <= PREFETCH_MAX_BATCH
    )


# Cached: called once per epoch with the few (run, batch size) pairs of a fit.
@functools.lru_cache(maxsize=256)
def cpu_execution(run, batch_size):
    """The :class:`CpuExecution` of ``run`` for an epoch of batches of ``batch_size`` rows."""
    return CpuExecution(
        n_threads=run.n_threads,
        hogwild=run.hogwild,
        sparse_update=run.sparse_update,
        prefetch=int(prefetches(run.row_order, batch_size)),
    )


# One batch_gradient call, on one thread, without prefetching (its rows are
# a single batch, read once).
SERIAL = CpuExecution()
