"""What the CPU backends (Numba, Cython) share, written once: how an epoch runs, and
the functions in front of their kernels.

Both compiled backends receive ``run`` (an :class:`~fastgd._config.ExecutionConfig`)
and hand their kernels a :class:`CpuExecution`: the same settings with the
row order turned into the one thing the epoch loops read of it, whether to
prefetch rows. The kernels then branch on plain integers, as they do on
``KernelConfig``; a GPU backend would make its own decisions from ``run``.
:func:`define_contract` writes the backend contract's functions into each
CPU backend's module, over that backend's kernel modules; in front of every
dense epoch, :func:`usable_threads` runs on one thread the epochs whose
threads cannot run in this process.
"""

import contextlib
import functools
import math
import os
import threading
import warnings
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


# --- threads that cannot run in this process ---------------------------------
# The runtimes a CPU backend's threads run on, as its ``thread_runtime()``
# names them. Two of them cannot run every threaded epoch (measured with
# Numba 0.68 and GCC 12's libgomp):
# - GNU OpenMP (libgomp: the Cython extension's prange, and Numba's "omp"
#   layer, one library for both) cannot start threads in a process forked
#   from one whose threads had run: the child's parallel region hangs
#   forever, or Numba kills the child ("fork() called from a process already
#   using GNU OpenMP"), whichever backend ran the parent's threads. Numba
#   kills it once the parent has launched its omp layer at all, threads or
#   not (``_numba_backend`` records that before a fork).
# - Numba's "workqueue" layer (its fallback where neither TBB nor OpenMP
#   loads) aborts the process when two threads run parallel regions at once
#   ("Concurrent access has been detected").
# Numba's "tbb" layer, "workqueue" under fork and GNU OpenMP under
# concurrent threads run as they are.
GNU_OPENMP = "gnu-openmp"
WORKQUEUE = "workqueue"

# The pid of the process whose GNU OpenMP threads have run, None before: a
# forked child has another pid. A pid, not a flag reset by
# os.register_at_fork, because a fork made from C (a C library's
# subprocess, say) runs no Python fork hook and breaks libgomp all the same.
_openmp_threads_pid = None
# Held by the one threaded epoch that may run on the workqueue layer.
_workqueue_lock = threading.Lock()
# The reasons already warned of: a process warns once of each, not every epoch.
_warned = set()

FORKED_AFTER_OPENMP = (
    "fastgd: this process was forked from one whose GNU OpenMP threads had run "
    "(a threaded fit, n_threads > 1 or parallel='hogwild'), and GNU OpenMP cannot "
    "start threads in such a child: they would hang or be killed. Its threaded "
    "epochs run on one thread instead (the same result; parallel='hogwild' runs "
    "as the serial epoch). To keep the threads, start worker processes with the "
    "'spawn' or 'forkserver' method (multiprocessing.get_context('forkserver'), "
    "joblib's default 'loky' backend), or fit with n_threads=1 before forking."
)
WORKQUEUE_BUSY = (
    "fastgd: Numba's 'workqueue' threading layer cannot run two threaded epochs "
    "at once (it would abort the process), and another thread is running one: "
    "this epoch runs on one thread instead (the same result; parallel='hogwild' "
    "runs as the serial epoch). Install TBB (`python -m pip install tbb`) for "
    "Numba's thread-safe 'tbb' layer, or use backend='cython'."
)


def starts_threads(run):
    """Whether an epoch of ``run`` enters a parallel region.

    More than one thread does, and so does ``run.hogwild`` with one worker:
    its kernel is a parallel loop whatever its count.
    """
    return run.n_threads > 1 or bool(run.hogwild)


@contextlib.contextmanager
def usable_threads(run, thread_runtime):
    """Run an epoch of ``run`` on threads that can run here: yields the ``run`` to use.

    That is ``run`` itself, or, where its threads would hang or kill the
    process, ``run`` on one thread without hogwild, whose kernels enter no
    parallel region (with a ``RuntimeWarning``, once per process and
    reason): in a process forked after GNU OpenMP's threads had run, and on
    Numba's workqueue layer while another thread's epoch holds its threads.
    That epoch runs on one thread rather than wait: the data-parallel result
    is the same for any thread count, the caller's own core does the work
    instead of idling, and a child forked while the lock was held cannot
    wait on it forever.

    Parameters
    ----------
    run : ExecutionConfig
        How the epoch was asked to run.
    thread_runtime : callable
        Returns the runtime the backend's threads run on (``GNU_OPENMP``,
        ``WORKQUEUE`` or another name); called for threaded epochs only.
    """
    if not starts_threads(run):
        yield run
        return
    runtime = thread_runtime()
    if runtime == GNU_OPENMP:
        if _openmp_threads_pid not in (None, os.getpid()):
            yield _one_thread(run, FORKED_AFTER_OPENMP)
            return
        # Before the threads start: a fork from another thread during this
        # epoch makes a child that must not start them either.
        note_openmp_threads()
        yield run
    elif runtime == WORKQUEUE:
        if not _workqueue_lock.acquire(blocking=False):
            yield _one_thread(run, WORKQUEUE_BUSY)
            return
        try:
            yield run
        finally:
            _workqueue_lock.release()
    else:
        yield run


def note_openmp_threads():
    """Record that GNU OpenMP threads run, or may run, in this process.

    A child forked from now on runs its threaded epochs on one thread. A
    child keeps the record of the ancestor it has (which is what makes it
    one that cannot start threads).
    """
    global _openmp_threads_pid
    if _openmp_threads_pid is None:
        _openmp_threads_pid = os.getpid()


def _one_thread(run, reason):
    """``run`` on one thread without hogwild: no parallel region; warns of ``reason`` once."""
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(reason, RuntimeWarning, stacklevel=2)
    return run._replace(n_threads=1, hogwild=0)


def _new_workqueue_lock():
    global _workqueue_lock
    _workqueue_lock = threading.Lock()


# A child has only the thread that forked: a lock another thread held
# then is held by no one there.
os.register_at_fork(after_in_child=_new_workqueue_lock)


def read_only(*arrays):
    """Read-only views of ``arrays`` (None stays None): what the kernels get of their inputs.

    The kernels never write X, y, the row order or the weights, and Numba
    compiles a kernel once per array type, writable and read-only being two:
    with every input read-only, a user's ``np.memmap(mode="r")`` or frozen
    array reuses the kernel already compiled (and cached) instead of
    compiling another, 10-25 s per dtype. A view costs about a microsecond.
    """
    views = []
    for array in arrays:
        if array is not None and array.flags.writeable:
            array = array.view()
            array.flags.writeable = False
        views.append(array)
    return views


def define_contract(namespace, dense, sparse, thread_runtime):
    """Define the backend contract's functions in a CPU backend's module ``namespace``.

    The Numba and the Cython backend differ only in their kernels, so the
    functions in front of them are written once, here: ``run_epoch`` (by
    layout, :func:`fastgd.backends.dispatch_layout`, and by ``run.hogwild``),
    ``run_epoch_sparse``, ``batch_gradient``, ``batch_gradient_sparse`` and
    ``apply_update``. ``dense`` and ``sparse`` are the modules of the dense
    and the CSR kernels (Numba's ``_numba`` and ``_numba_sparse``; the Cython
    extension for both); ``thread_runtime()`` names the runtime the dense
    kernels' threads run on (:func:`usable_threads`). Python runs once per
    call, never once per batch.
    """
    from . import dispatch_layout

    def run_epoch(X, y, order, P, state, cfg, lr, t0, run=ExecutionConfig(), sample_weight=None):
        """One epoch of mini-batch gradient descent; see ``_reference.run_epoch``.

        A dense X runs on ``run.n_threads`` threads, sharing each batch of
        more than ``CHUNK_ROWS`` rows (the same result for any count), or,
        with ``run.hogwild``, on lock-free threads that share the batches.
        A CSR X goes to :func:`run_epoch_sparse`. X, y and order may be
        read-only (``np.memmap(mode="r")`` included). Where the threads
        cannot run (a forked child, a busy workqueue layer), the epoch runs
        on one thread, with a warning (:func:`usable_threads`).
        """
        X, y, order, sample_weight = read_only(X, y, order, sample_weight)
        with usable_threads(run, thread_runtime) as run:
            epoch = dense.run_epoch_hogwild if run.hogwild else dense.run_epoch
            return epoch(X, y, order, P, state, cfg, cpu_execution(run, cfg.batch_size), lr, t0,
                         sample_weight)  # fmt: skip

    def run_epoch_sparse(data, indices, indptr, y, order, P, state, cfg, lr, t0,
                         run=ExecutionConfig(), sample_weight=None):  # fmt: skip
        """One epoch over the CSR rows ``order``; see ``_reference_sparse.run_epoch_sparse``."""
        data, indices, indptr, y, order, sample_weight = read_only(data, indices, indptr, y, order,
                                                                   sample_weight)  # fmt: skip
        return sparse.run_epoch_sparse(data, indices, indptr, y, order, P, state, cfg,
                                       cpu_execution(run, cfg.batch_size), lr, t0,
                                       sample_weight)  # fmt: skip

    def batch_gradient(X, y, rows, P, cfg, sample_weight=None):
        """``(loss_sum, G)`` of the batch ``rows``; see ``_reference.batch_gradient``."""
        X, y, rows, sample_weight = read_only(X, y, rows, sample_weight)
        return dense.batch_gradient(X, y, rows, P, cfg, SERIAL, sample_weight)

    def batch_gradient_sparse(data, indices, indptr, y, rows, P, cfg, sample_weight=None):
        """:func:`batch_gradient` of the CSR matrix ``(data, indices, indptr)``."""
        data, indices, indptr, y, rows, sample_weight = read_only(data, indices, indptr, y, rows,
                                                                  sample_weight)  # fmt: skip
        return sparse.batch_gradient_sparse(data, indices, indptr, y, rows, P, cfg, sample_weight)

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
