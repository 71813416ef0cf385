"""What the bench scripts share: the machine, one timed epoch, the memory floor.

``bench.engine_speed``, ``bench.scaling`` and ``bench/test_kernels.py`` import
from here, so a figure means the same thing in each of them.
"""

import os
import platform
import time

import numpy as np
from numba import njit, prange

from fastgd._engine import _legacy_kernel_config
from fastgd._validation import check_fit_settings
from fastgd.backends._numba import numba_threads

# Every keyword of ``check_fit_settings`` except batch_size and n_samples:
# squared error, plain SGD at a constant rate, no penalty, one epoch.
SETTINGS = dict(
    loss="squared_error", optimizer="sgd", lr=1e-3, schedule="constant", epochs=1,
    penalty=None, alpha=1e-4, l1_ratio=0.15, fit_intercept=True, drop_last=False,
    tol=None, n_iter_no_change=5, epsilon=0.1, power_t=0.25, decay=0.9,
    step_size=10, gamma=0.1, momentum=0.9, beta1=0.9, beta2=0.999, eps=1e-8,
    rho=0.9, weight_decay=0.01,
)  # fmt: skip


def legacy_config(**settings):
    """TEMPORARY until h14-backends lands: ``check_fit_settings``' two records as one.

    Today's kernels take one record, KernelConfig's fields and the execution
    ones (``fastgd._engine._legacy_kernel_config``).
    """
    return _legacy_kernel_config(*check_fit_settings(**settings))


def machine_info(threads=1):
    """The machine a figure was measured on, as a dict (CPU, cores, versions, threads)."""
    import numba

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info
                       if line.startswith("model name"))  # fmt: skip
    except (OSError, StopIteration):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "threads": threads,
    }


def machine_line(threads=1):
    """One line naming the machine, to print above every table of figures."""
    m = machine_info(threads)
    return (f"machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
            f"numpy {m['numpy']}, numba {m['numba']}, "
            f"{threads} thread{'s' if threads != 1 else ''}")  # fmt: skip


def time_epoch(kernels, X, y, order, cfg, n_outputs, lr=SETTINGS["lr"]):
    """Seconds for one epoch over ``order`` from zero parameters, and the parameters."""
    P = np.zeros((n_outputs, X.shape[1] + 1), dtype=X.dtype)
    state = np.zeros((2,) + P.shape, dtype=X.dtype)
    started = time.perf_counter()
    kernels.run_epoch(X, y, order, P, state, cfg, lr, 0)
    return time.perf_counter() - started, P


# --- the memory floor: the cheapest possible pass over X ---------------------

# DESIGN.md's flag set (no nnan/ninf); "reassoc" is the one that matters here:
# it lets LLVM split the sum into vector lanes, so the loop runs at the speed
# of memory rather than at one dependent add per cycle.
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


@njit(cache=True, fastmath=_FASTMATH)
def read_rows_sequentially(X):
    """Sum of every element of X, row after row: one streaming pass."""
    total = 0.0
    for i in range(X.shape[0]):
        row = X[i]
        for j in range(row.shape[0]):
            total += row[j]
    return total


@njit(cache=True, fastmath=_FASTMATH)
def read_rows_in_order(X, order):
    """Sum of every element of the rows ``X[order]``: the engine's access pattern."""
    total = 0.0
    for k in range(order.shape[0]):
        row = X[order[k]]
        for j in range(row.shape[0]):
            total += row[j]
    return total


@njit(cache=True, fastmath=_FASTMATH, parallel=True)
def read_rows_on_threads(X, n_parts):
    """``read_rows_sequentially`` with X cut into ``n_parts`` contiguous shares, one per thread."""
    n = X.shape[0]
    totals = np.zeros(n_parts)
    for part in prange(n_parts):
        totals[part] = read_rows_sequentially(X[n * part // n_parts : n * (part + 1) // n_parts])
    return totals.sum()


def call_seconds(read, repeats):
    """Seconds of each of ``repeats`` calls of ``read()``."""
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        read()
        seconds.append(time.perf_counter() - started)
    return seconds


def best_seconds(read, repeats):
    """The fastest of ``repeats`` calls of ``read()``, in seconds."""
    return min(call_seconds(read, repeats))


def threaded_memory_floor(X, threads, repeats=3):
    """Rows/s of reading X once sequentially on ``threads`` threads, best of ``repeats``.

    The ceiling of a data-parallel epoch: where one core already draws most
    of the memory bus, a second adds little, whatever the kernel does.
    """
    with numba_threads(threads):
        read_rows_on_threads(X[:threads], threads)
        return X.shape[0] / best_seconds(lambda: read_rows_on_threads(X, threads), repeats)


@njit(cache=True, fastmath=_FASTMATH, parallel=True)
def multiply_add_on_threads(n_parts, sweeps):
    """``sweeps`` passes of a multiply-add over 64 floats held in L1, once per thread.

    No memory traffic, no shared data: what each core's arithmetic alone does.
    """
    totals = np.zeros(n_parts)
    for part in prange(n_parts):
        a = np.full(64, part + 1.0)
        for _ in range(sweeps):
            for j in range(64):
                a[j] = a[j] * 0.999999 + 1e-9
        totals[part] = a.sum()
    return totals.sum()


def threaded_arithmetic_speedup(threads, sweeps=2_000_000, repeats=3):
    """How much more arithmetic ``threads`` threads do than one, each with its own work.

    ``threads`` where every thread has a physical core of its own; about 1
    where the host runs a VM's CPUs as hyperthreads of one core, which then
    share its arithmetic units (and which a VM cannot see from inside).
    """
    seconds = {}
    for count in (1, threads):
        with numba_threads(count):
            multiply_add_on_threads(count, 1)
            seconds[count] = best_seconds(lambda: multiply_add_on_threads(count, sweeps), repeats)
    return threads * seconds[1] / seconds[threads]


def memory_floor(X, order, repeats=3, statistic=min):
    """Time one read of X, sequentially and in the row order ``order``: the best (or ``statistic``) of ``repeats``.

    No training can visit the rows faster than this machine reads them, so an
    epoch's rows/s divided by the floor's is the fraction of what memory allows.
    The first call of each kernel (compile, or load from Numba's cache) is not timed.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    order : ndarray of shape (n_samples,)
        A permutation in the engine's index dtype (``row_order_dtype``).
    repeats : int
    statistic : callable, default=min
        What is kept of the ``repeats`` times: the best, or (``np.median``)
        the same statistic as the epoch times it is set against.

    Returns
    -------
    dict
        ``{"sequential": {...}, "shuffled": {...}, "repeats": int}``, each
        with ``seconds``, ``rows_per_s`` and ``bytes_per_s``.
    """
    read_rows_sequentially(X[:1])
    read_rows_in_order(X, order[:1])
    passes = {
        "sequential": lambda: read_rows_sequentially(X),
        "shuffled": lambda: read_rows_in_order(X, order),
    }
    floor = {"repeats": repeats}
    for name, read in passes.items():
        seconds = float(statistic(call_seconds(read, repeats)))
        floor[name] = {
            "seconds": seconds,
            "rows_per_s": X.shape[0] / seconds,
            "bytes_per_s": X.nbytes / seconds,
        }
    return floor
