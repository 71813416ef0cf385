"""What the bench scripts share: the command line, the check, the machine, the floor.

Every bench (``bench.engine_speed``, ``bench.floor``, ``bench.sparse``,
``bench.scaling``, ``bench/test_kernels.py``) checks its backends against the
NumPy reference and then times them through one routine,
:func:`check_then_time`, and spells its options with :func:`add_flag`, so a
figure and a flag mean the same thing in each of them.
"""

import argparse
import json
import os
import platform
import re
import time
from typing import Callable, NamedTuple, Optional

import numpy as np
from numba import njit, prange

from fastgd._config import N_STATE_SLOTS, ORDER_SHUFFLED, ExecutionConfig
from fastgd.backends import get_backend
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


# --- the command line: one spelling per option ------------------------------

# The options the bench CLIs share, each spelt once: (flag, argparse keywords).
# A singular flag takes one value, a plural one a list. A bench adds only the
# ones it uses, with its own default (and help, where it says more).
FLAGS = {
    "n_samples": ("--n-samples", dict(type=int, help="rows of the problem")),
    "n_features": ("--n-features", dict(type=int, help="columns of the problem")),
    "dtype": ("--dtype", dict(choices=["float64", "float32"], help="dtype of X")),
    "dtypes": ("--dtypes", dict(nargs="+", choices=["float64", "float32"],
                                help="dtypes of X, one problem each")),
    "batch_sizes": ("--batch-sizes", dict(nargs="+", help="rows per update; 'n' is all rows")),
    "backend": ("--backend", dict(help="the one backend measured")),
    "backends": ("--backends", dict(nargs="+", help="default: every available backend")),
    "epochs": ("--epochs", dict(type=int, help="epochs per fit")),
    "repeats": ("--repeats", dict(type=int, help="timed runs of each configuration")),
    "no_peers": ("--no-peers", dict(action="store_true",
                                    help="skip the peers (scikit-learn, PyTorch)")),
    "out": ("--out", dict(help="folder to write this bench's JSON (and plots) into")),
}  # fmt: skip


def bench_parser(doc, **options):
    """An ArgumentParser for a bench: its docstring's first line, no abbreviated flags.

    Abbreviations are off because the flags share prefixes (``--n-samples``,
    ``--n-features``, ``--no-peers``): a shortened flag is refused, never
    taken for another.
    """
    return argparse.ArgumentParser(description=doc.splitlines()[0], allow_abbrev=False,
                                   **options)  # fmt: skip


def add_flag(parser, name, default=None, **options):
    """Add the shared option ``name`` (a key of FLAGS) with ``default``; ``options`` override."""
    flag, shared = FLAGS[name]
    parser.add_argument(flag, default=default, **{**shared, **options})


def batch_size_arg(text):
    """A batch size on the command line: a positive integer or ``n`` (all rows)."""
    if text == "n":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'n', got {text!r}")


def resolve_batch_sizes(values, n):
    """Sorted, distinct batch sizes clipped to ``n``, with ``'n'`` read as ``n``."""
    from fastgd._validation import check_int

    return sorted({min(n, n if b == "n" else check_int("batch_size", b, 1)) for b in values})


def write_json(out, name, figures):
    """Write ``figures`` to ``out/name`` (``out`` a folder, made if missing); return the path."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, name)
    with open(path, "w") as f:
        json.dump(figures, f, indent=1, default=float)
    return path


# --- check against the reference, then time ----------------------------------

REFERENCE = "numpy"
# What each compiled backend promises against the reference (rtol per dtype),
# for a backend module that does not declare it as ``TOLERANCE`` itself.
DEFAULT_TOLERANCE = {"float64": 1e-9, "float32": 1e-4}


def readme_markers(name):
    """The README's markers around the generated block ``name``: ``(start, end)``.

    The README's generated tables live between such markers, so that a
    bench's ``--readme`` rewrites its own table and nothing else.
    """
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def readme_block(document, name):
    """The text between the markers of block ``name`` in ``document``."""
    start, end = readme_markers(name)
    return document.split(start)[1].split(end)[0]


def rewrite_readme_block(path, name, text):
    """Replace the text between the markers of block ``name`` in the file ``path`` with ``text``."""
    start, end = readme_markers(name)
    with open(path) as f:
        document = f.read()
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(document):
        raise ValueError(f"{path} has no {start} ... {end} block to rewrite")
    with open(path, "w") as f:
        f.write(pattern.sub(lambda _: f"{start}\n{text}\n{end}", document))


def tolerance(backend, dtype):
    """The relative agreement ``backend`` promises with the NumPy reference on ``dtype``."""
    declared = getattr(get_backend(backend), "TOLERANCE", DEFAULT_TOLERANCE)
    return declared[np.dtype(dtype).name]


class Case(NamedTuple):
    """One contender of a bench: a backend (or a peer) at one setting.

    ``backend`` names a fastgd backend, or a peer (``"sklearn"``) whose
    ``check`` is None. ``time()`` makes one timed run and returns what the
    bench keeps of it (seconds, rows/s, a record). ``check(name)`` computes
    the parameters (an array, or a tuple of arrays) of a small version of
    the same run with backend ``name``; None skips the check (a peer,
    hogwild's nondeterministic threads).
    """

    backend: str
    time: Callable[[], object]
    check: Optional[Callable[[str], object]] = None


def _as_arrays(value):
    return [np.asarray(v) for v in (value if isinstance(value, tuple) else (value,))]


def check_then_time(cases, repeats=1, *, where="", between_rounds=None, say=print):
    """Check every case against the NumPy reference, then time all of them, interleaved.

    The one way a bench measures: a figure of a backend that computes
    something else is not worth reporting, so nothing is timed until every
    checked case's ``check(case.backend)`` equals ``check("numpy")`` within
    the backend's tolerance (rtol, and atol = rtol / 1000 for values near 0;
    the reference runs once per distinct ``check``). Then ``repeats`` rounds,
    each calling every case's ``time()`` in the order of ``cases``, so that
    the machine's noise hits the contenders alike.

    Parameters
    ----------
    cases : dict
        ``key -> Case``; the keys are the bench's own (``(backend, batch_size)``).
    repeats : int, default=1
    where : str
        Said in the ``checked:`` line: on what the check ran.
    between_rounds : callable or None
        ``between_rounds(i)`` before round ``i`` (from 0): a progress line.
    say : callable or None
        Receives the ``checked:`` line (default ``print``); None keeps quiet.

    Returns
    -------
    dict
        ``key -> [measurement of each round]``.

    Raises
    ------
    AssertionError
        When a backend disagrees with the reference, before anything is timed.
    """
    expected, checked, rtols = {}, {}, {}
    for case in cases.values():
        if case.check is None:
            continue
        if case.check not in expected:
            expected[case.check] = _as_arrays(case.check(REFERENCE))
        if case.backend == REFERENCE or (case.check, case.backend) in checked:
            continue
        got = _as_arrays(case.check(case.backend))
        dtype = got[0].dtype
        rtol = tolerance(case.backend, dtype)
        for g, e in zip(got, expected[case.check]):
            np.testing.assert_allclose(
                g, e, rtol=rtol, atol=rtol * 1e-3,
                err_msg=f"backend {case.backend!r} disagrees with the NumPy reference "
                        f"{where}: no timing is worth reporting",
            )  # fmt: skip
        checked[case.check, case.backend] = True
        rtols[dtype.name] = rtol
    names = list(dict.fromkeys(backend for _, backend in checked))
    if names and say is not None:
        limits = ", ".join(f"{rtol:g} {dtype}" for dtype, rtol in rtols.items())
        say(f"checked: {', '.join(names)} = NumPy reference{' ' + where if where else ''} "
            f"(rtol {limits})")  # fmt: skip
    measured = {key: [] for key in cases}
    for round_ in range(repeats):
        if between_rounds is not None:
            between_rounds(round_)
        for key, case in cases.items():
            measured[key].append(case.time())
    return measured


# --- the machine --------------------------------------------------------------


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


# How time_epoch runs an epoch unless told otherwise: its orders are shuffled.
SHUFFLED = ExecutionConfig(row_order=ORDER_SHUFFLED)


def time_epoch(kernels, X, y, order, cfg, n_outputs, lr=SETTINGS["lr"], run=SHUFFLED):
    """Seconds for one epoch over ``order`` from zero parameters, and the parameters."""
    P = np.zeros((n_outputs, X.shape[1] + 1), dtype=X.dtype)
    state = np.zeros((N_STATE_SLOTS,) + P.shape, dtype=X.dtype)
    started = time.perf_counter()
    kernels.run_epoch(X, y, order, P, state, cfg, lr, 0, run)
    return time.perf_counter() - started, P


# --- the memory floor: the cheapest possible pass over X ---------------------

# The kernels' flag set (FASTMATH in fastgd/backends/_numba.py: no nnan/ninf,
# which would let LLVM fold away divergence checks). "reassoc" is the one that
# matters here: it lets LLVM split the sum into vector lanes, so the loop runs
# at the speed of memory rather than at one dependent add per cycle.
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
