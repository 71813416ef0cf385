"""What the CPU backends (Numba, Cython) share, written once: how an epoch runs, and
the functions in front of their kernels.

Both compiled backends receive ``run`` (an :class:`~fastgd._config.ExecutionConfig`)
and hand their kernels a :class:`CpuExecution`: the same settings with the
row order turned into the one thing the epoch loops read of it, whether to
prefetch rows. The kernels then branch on plain integers, as they do on
``KernelConfig``; a GPU backend would make its own decisions from ``run``.
:func:`define_contract` writes the backend contract's functions into each
CPU backend's module, over that backend's kernel modules.
"""

import functools
import math
from typing import NamedTuple

import numpy as np

from .._config import ORDER_BATCHES, ORDER_SHUFFLED, SPARSE_LAZY, ExecutionConfig

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


def define_contract(namespace, dense, sparse):
    """Define the backend contract's functions in a CPU backend's module ``namespace``.

    The Numba and the Cython backend differ only in their kernels, so the
    functions in front of them are written once, here: ``run_epoch`` (by
    layout, :func:`fastgd.backends.dispatch_layout`, and by ``run.hogwild``),
    ``run_epoch_sparse``, ``batch_gradient``, ``batch_gradient_sparse`` and
    ``apply_update``. ``dense`` and ``sparse`` are the modules of the dense
    and the CSR kernels (Numba's ``_numba`` and ``_numba_sparse``; the Cython
    extension for both). Python runs once per call, never once per batch.
    """
    from . import dispatch_layout

    def run_epoch(X, y, order, P, state, cfg, lr, t0, run=ExecutionConfig()):
        """One epoch of mini-batch gradient descent; see ``_reference.run_epoch``.

        A dense X runs on ``run.n_threads`` threads, sharing each batch of
        more than ``CHUNK_ROWS`` rows (the same result for any count), or,
        with ``run.hogwild``, on lock-free threads that share the batches.
        A CSR X goes to :func:`run_epoch_sparse`. X, y and order may be
        read-only (``np.memmap(mode="r")`` included).
        """
        epoch = dense.run_epoch_hogwild if run.hogwild else dense.run_epoch
        return epoch(X, y, order, P, state, cfg, cpu_execution(run, cfg.batch_size), lr, t0)

    def run_epoch_sparse(data, indices, indptr, y, order, P, state, cfg, lr, t0,
                         run=ExecutionConfig()):  # fmt: skip
        """One epoch over the CSR rows ``order``; see ``_reference_sparse.run_epoch_sparse``."""
        return sparse.run_epoch_sparse(data, indices, indptr, y, order, P, state, cfg,
                                       cpu_execution(run, cfg.batch_size), lr, t0)  # fmt: skip

    def batch_gradient(X, y, rows, P, cfg):
        """``(loss_sum, G)`` of the batch ``rows``; see ``_reference.batch_gradient``."""
        return dense.batch_gradient(X, y, rows, P, cfg, SERIAL)

    def batch_gradient_sparse(data, indices, indptr, y, rows, P, cfg):
        """:func:`batch_gradient` of the CSR matrix ``(data, indices, indptr)``."""
        return sparse.batch_gradient_sparse(data, indices, indptr, y, rows, P, cfg)

    def apply_update(P, G, state, cfg, lr, t):
        """Update ``P`` and ``state`` in place from the mean gradient G; see ``_reference``.

        Returns whether every parameter and moment is finite after it.
        """
        # A float64 copy: the kernel adds the L2 term to its G in place.
        G = np.array(G, dtype=np.float64, order="C")
        return math.isfinite(dense.update_parameters(P, G, state, cfg, lr, t))

    functions = (run_epoch, run_epoch_sparse, batch_gradient, batch_gradient_sparse, apply_update)
    for function in functions:
        # Theirs, not this module's: dispatch_layout finds the CSR twin there,
        # where a test's monkeypatch may have replaced it.
        function.__module__ = namespace["__name__"]
        namespace[function.__name__] = function
    namespace["run_epoch"] = dispatch_layout("run_epoch_sparse")(run_epoch)
    namespace["batch_gradient"] = dispatch_layout("batch_gradient_sparse")(batch_gradient)
