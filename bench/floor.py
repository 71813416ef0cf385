"""Epoch rows/s against the memory floor, for every shuffle mode (`make bench-floor`).

The figures behind the speed targets (docs/performance-notes.md, issue 6), all
measured in one run on the built-in problem (squared_error, plain SGD,
Numba backend): for each dtype,

- the memory floor: rows/s of reading X once sequentially, and once in a
  shuffled row order, the median of three reads;
- the epoch kernel's rate on rows that stay in cache: its arithmetic alone;
- the epoch rows/s of ``shuffle=False``, ``'batches'`` and ``True`` at each
  batch size, with the share of the floor each should be compared with
  (sequential for False and 'batches', shuffled for True): each epoch is set
  against a read of the floor made just before it, between the epochs, and
  the share is the median of those paired ratios (the host's memory speed
  drifts within seconds, by more than some targets' margins);
- batch size 1 against batch size 4096, and float32 against float64;
- threads: ``n_threads`` = every CPU against one, for the data-parallel
  gradient of large batches and for ``parallel='hogwild'`` at small ones,
  beside the same ratio for simply reading X (sequentially, on one thread
  and on all of them), which no data-parallel epoch can beat, and for
  arithmetic alone (about 1 where the CPUs are hyperthreads of one core).

Each rate is the median over the epochs after the first (which compiles or
loads the kernels and warms the caches). Before any of it is timed, each
fit is checked against the NumPy reference on the first CHECK_ROWS rows
(``_common.check_then_time``); hogwild's threads, which change the result
from run to run, are not.
"""

import functools

import numpy as np

import fastgd
from fastgd._engine import row_order_dtype
from fastgd._synthetic import make_problem
from fastgd._validation import check_fit_settings, usable_cpu_count
from fastgd.backends import get_backend

from ._common import (
    SETTINGS,
    Case,
    add_flag,
    batch_size_arg,
    bench_parser,
    call_seconds,
    check_then_time,
    machine_info,
    machine_line,
    memory_floor,
    read_rows_in_order,
    read_rows_sequentially,
    resolve_batch_sizes,
    threaded_arithmetic_speedup,
    threaded_memory_floor,
    time_epoch,
    write_json,
)

MODES = (False, "batches", True)
# Rows of the check against the reference (at batch size 1 the reference
# needs about 0.05 s for them).
CHECK_ROWS = 2_000


def fit_parameters(X, y, settings, backend):
    """Parameters and losses of a one-epoch fit on the first CHECK_ROWS rows: what is checked."""
    result = fastgd.fit(X[:CHECK_ROWS], y[:CHECK_ROWS], epochs=1, lr=1e-3, random_state=0,
                        backend=backend, **settings)  # fmt: skip
    return result.coef, np.asarray(result.intercept), np.asarray(result.loss_history)


def epoch_rate(X, y, epochs, **settings):
    """Median rows/s of a fit's epochs after the first."""
    return epoch_rate_and_share(X, y, epochs, None, **settings)[0]


def epoch_rate_and_share(X, y, epochs, read_floor, **settings):
    """Median rows/s of a fit's epochs after the first, and the median of their shares of the floor.

    ``read_floor()`` reads X once as the floor does; it runs between the
    epochs (in the fit's callback), so each epoch after the first is set
    against the read made just before it. Without it, the share is None.
    """
    rates = []

    def between_epochs(epoch, loss, coef, intercept):
        if epoch < epochs:  # counted from 1: no epoch follows the last
            rates.append(X.shape[0] / call_seconds(read_floor, 1)[0])

    callback = None if read_floor is None else between_epochs
    result = fastgd.fit(X, y, epochs=epochs, lr=1e-3, random_state=0, callback=callback,
                        **settings)  # fmt: skip
    epoch_rates = X.shape[0] / np.asarray(result.epoch_seconds[1:])
    share = None if read_floor is None else float(np.median(epoch_rates / rates))
    return float(np.median(epoch_rates)), share


# Rows of the in-cache figure: 8 MiB of float64 at d = 64, inside the L3 cache
# of the machines we measure on, and ~300 µs of work per epoch, far above the
# cost of calling the kernel.
CACHED_ROWS = 16_384


def cached_rate(X, y, batch_size, backend, repeats=21):
    """Median rows/s of the epoch kernel (shuffle=False) over the first CACHED_ROWS rows, read again and again.

    Those rows stay in cache, so this is the kernel's arithmetic alone: the
    rate it would reach if memory cost nothing. An epoch from memory can only
    approach the floor where this is well above it.
    """
    X, y = X[:CACHED_ROWS], y[:CACHED_ROWS]
    n = X.shape[0]
    order = np.arange(n, dtype=row_order_dtype(n))
    cfg, sequential = check_fit_settings(**{**SETTINGS, "batch_size": batch_size, "n_samples": n})
    kernels = get_backend(backend)
    seconds = [time_epoch(kernels, X, y, order, cfg, 1, run=sequential)[0]
               for _ in range(repeats)]  # fmt: skip
    return n / float(np.median(seconds[1:]))


def floor_rates(X, order):
    """The floor each shuffle mode is set against, in rows/s: sequential or in ``order``.

    The median of three reads, the statistic of the epochs too.
    """
    floor = memory_floor(X, order, statistic=np.median)
    sequential, shuffled = floor["sequential"]["rows_per_s"], floor["shuffled"]["rows_per_s"]
    return {False: sequential, "batches": sequential, True: shuffled}


def mode_name(mode):
    return {False: "False", "batches": "'batches'", True: "True"}[mode]


def main(argv=None):
    parser = bench_parser(__doc__)
    add_flag(parser, "n_samples", 1_000_000)
    add_flag(parser, "n_features", 64)
    add_flag(parser, "dtypes", ["float64", "float32"])
    add_flag(parser, "batch_sizes", [1, 8, 32, 256, 4096, "n"], type=batch_size_arg)
    parser.add_argument("--thread-batch-sizes", type=batch_size_arg, nargs="+",
                        default=[4096, 16384, "n"])  # fmt: skip
    parser.add_argument("--hogwild-batch-sizes", type=batch_size_arg, nargs="+",
                        default=[1, 8, 32])  # fmt: skip
    add_flag(parser, "epochs", 4, help="epochs per fit; the first is not timed")
    add_flag(parser, "backend", "numba")
    add_flag(parser, "out", help="also write the figures as floor.json into this folder")
    args = parser.parse_args(argv)
    n = args.n_samples
    batch_sizes = resolve_batch_sizes(args.batch_sizes, n)
    threads = usable_cpu_count()

    print(machine_line(threads))
    print(f"problem: n={n:,} d={args.n_features}, squared_error, sgd, {args.backend}, "
          f"median of {args.epochs - 1} epochs\n")  # fmt: skip
    figures = {"machine": machine_info(threads), "args": vars(args), "dtypes": {}}
    rates = {}
    for dtype in args.dtypes:
        X, y = make_problem(n, args.n_features, dtype=np.dtype(dtype).type)
        order = np.random.default_rng(0).permutation(n).astype(row_order_dtype(n))
        floor = floor_rates(X, order)
        print(f"{dtype}: floor sequential {floor[False] / 1e6:.1f}M rows/s, "
              f"shuffled {floor[True] / 1e6:.1f}M rows/s")  # fmt: skip
        cached = {b: cached_rate(X, y, b, args.backend) for b in (8, 256)}
        print("  kernel on X in cache, shuffle=False: " + ", ".join(
            f"batch {b} {rate / 1e6:.1f}M rows/s ({rate / floor[False]:.2f} x the floor)"
            for b, rate in cached.items()))  # fmt: skip
        # The floor each mode is set against, one read at a time (see
        # epoch_rate_and_share); memory_floor above has compiled both.
        sequential, shuffled = lambda: read_rows_sequentially(X), lambda: read_rows_in_order(X, order)
        readers = {False: sequential, "batches": sequential, True: shuffled}
        cases = {}
        for batch_size in batch_sizes:
            for mode in MODES:
                settings = dict(batch_size=batch_size, shuffle=mode)
                timed = functools.partial(epoch_rate_and_share, X, y, args.epochs, readers[mode],
                                          backend=args.backend, **settings)  # fmt: skip
                check = functools.partial(fit_parameters, X, y, settings)
                cases[mode, batch_size] = Case(args.backend, timed, check)
        measured = check_then_time(cases, where=f"on {CHECK_ROWS:,} rows", say=indented)
        shares = {}
        for batch_size in batch_sizes:
            cells = []
            for mode in MODES:
                [(rate, share)] = measured[mode, batch_size]
                rates[dtype, mode, batch_size] = rate
                shares[f"{mode_name(mode)}@{batch_size}"] = share
                cells.append(f"{mode_name(mode):>9} {rate / 1e6:6.2f}M ({share:.2f})")
            print(f"  batch {batch_size:>7}: " + "  ".join(cells))
        if 1 in batch_sizes and 4096 in batch_sizes:
            cells = [f"{mode_name(m)} {rates[dtype, m, 1] / rates[dtype, m, 4096]:.2f}" for m in MODES]
            print("  batch 1 / batch 4096: " + ", ".join(cells))
        figures["dtypes"][dtype] = {
            "floor": {mode_name(mode): rate for mode, rate in floor.items()},
            "floor_shares": shares,
            "in_cache_rows_per_s": {str(b): rate for b, rate in cached.items()},
            "rows_per_s": {f"{mode_name(m)}@{b}": rates[dtype, m, b]
                           for m in MODES for b in batch_sizes},  # fmt: skip
        }
    if {"float64", "float32"} <= set(args.dtypes):
        print("float32 / float64:")
        for batch_size in batch_sizes:
            cells = [f"{mode_name(m)} {rates['float32', m, batch_size] / rates['float64', m, batch_size]:.2f}"
                     for m in MODES]  # fmt: skip
            print(f"  batch {batch_size:>7}: " + ", ".join(cells))

    X, y = make_problem(n, args.n_features)
    one_floor, many_floor = (threaded_memory_floor(X, count) for count in (1, threads))
    arithmetic = threaded_arithmetic_speedup(threads)
    print(f"\nthreads: {threads} against 1, float64; sequential floor {one_floor / 1e6:.1f}M rows/s "
          f"on 1 thread, {many_floor / 1e6:.1f}M on {threads} ({many_floor / one_floor:.2f}x); "
          f"arithmetic alone {arithmetic:.2f}x")  # fmt: skip
    figures["thread_floor"] = {"1": one_floor, str(threads): many_floor}
    figures["thread_arithmetic_speedup"] = arithmetic
    figures["threads"] = {}
    cases = {}
    for parallel, sizes, shuffle in (("data", args.thread_batch_sizes, False),
                                     ("hogwild", args.hogwild_batch_sizes, True)):  # fmt: skip
        for batch_size in resolve_batch_sizes(sizes, n):
            for count in (1, threads):
                settings = dict(batch_size=batch_size, shuffle=shuffle, n_threads=count,
                                parallel=parallel)  # fmt: skip
                timed = functools.partial(epoch_rate, X, y, args.epochs, backend=args.backend,
                                          **settings)  # fmt: skip
                # Hogwild's lock-free threads change the result from run to run.
                check = (None if parallel == "hogwild"
                         else functools.partial(fit_parameters, X, y, settings))  # fmt: skip
                cases[parallel, batch_size, count] = Case(args.backend, timed, check)
    measured = check_then_time(cases, where=f"on {CHECK_ROWS:,} rows, parallel='data'",
                               say=indented)  # fmt: skip
    for parallel, shuffle in (("data", False), ("hogwild", True)):
        for batch_size in dict.fromkeys(b for p, b, _ in cases if p == parallel):
            [one], [many] = (measured[parallel, batch_size, count] for count in (1, threads))
            figures["threads"][f"{parallel}@{batch_size}"] = {"1": one, str(threads): many}
            print(f"  parallel={parallel!r:<10} shuffle={mode_name(shuffle):<6} batch {batch_size:>7}: "
                  f"{one / 1e6:6.2f}M -> {many / 1e6:6.2f}M rows/s ({many / one:.2f}x)")  # fmt: skip
    print("(x.xx) after a rate = the median of its epochs' shares of the floor, each read just "
          "before the epoch: sequential for False and 'batches', shuffled for True")  # fmt: skip
    if args.out:
        print(f"wrote {write_json(args.out, 'floor.json', figures)}")
    return figures


def indented(line):
    print("  " + line)


if __name__ == "__main__":
    main()
