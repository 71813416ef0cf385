"""What a user's `fastgd.fit` call gets, against the memory floor (`make bench-fit`).

The figures of issue 17, measured as a user would time them: the wall
clock of a whole ``fastgd.fit`` call (validation, every epoch and
everything between), as rows/s (rows x epochs over the call's seconds), set
against one read of X made just before the call, in the same process:

- ``shuffle=True`` against reading X's rows in a random order, ``False`` and
  ``'batches'`` against reading X sequentially; the share is the median over
  the repetitions of those paired ratios;
- Numba against Cython, fit by fit (the two run one after the other, A B A B);
- shuffled batch size 1 against batch size 4096;
- the one-off checks before training (``check_X`` and ``check_y``) against
  one read of X, and the work of each epoch outside the kernel (the call's
  time less its epochs' and the checks') as a share of an epoch.

Before anything is timed, each backend's fit of every cell is checked
against the NumPy reference on the first CHECK_ROWS rows. The figures go to
``end_to_end.json`` (``--out``); ``--readme`` rewrites README.md's table
from them (:func:`readme_table`), so the README shows what the last run
measured, never a pasted number.
"""

import functools
import json
import time

import numpy as np

import fastgd
from fastgd._engine import row_order_dtype
from fastgd._synthetic import make_problem
from fastgd._validation import check_X, check_y

from ._common import (
    Case,
    add_flag,
    batch_size_arg,
    bench_parser,
    call_seconds,
    check_then_time,
    machine_info,
    machine_line,
    read_rows_in_order,
    read_rows_sequentially,
    resolve_batch_sizes,
    rewrite_readme_block,
    write_json,
)

MODES = (True, False, "batches")
LOSSES = {"squared_error": "regression", "log_loss": "binary"}
CHECK_ROWS = 2_000
LR = 1e-3
README_BLOCK = "end-to-end"  # the README's markers of the table


def mode_name(mode):
    return {False: "False", "batches": "'batches'", True: "True"}[mode]


def timed_fit(X, y, read_floor, epochs, **settings):
    """One whole ``fit`` call after one read of the floor: a dict of what was measured."""
    floor_seconds = call_seconds(read_floor, 1)[0]
    started = time.perf_counter()
    result = fastgd.fit(X, y, epochs=epochs, lr=LR, **settings)
    return {
        "fit_seconds": time.perf_counter() - started,
        "floor_seconds": floor_seconds,
        "epoch_seconds": [float(s) for s in result.epoch_seconds],
    }


def check_fit(X, y, settings, backend):
    """Parameters of a one-epoch fit on the first CHECK_ROWS rows: what is checked."""
    result = fastgd.fit(X[:CHECK_ROWS], y[:CHECK_ROWS], epochs=1, lr=LR, random_state=0,
                        backend=backend, **settings)  # fmt: skip
    return result.coef, np.asarray(result.intercept)


def checks_seconds(X, y, loss, repeats=5):
    """Median seconds of the one-off checks of X and y that every fit makes."""
    return float(np.median(call_seconds(lambda: (check_X(X), check_y(y, X.shape[0], loss, X.dtype)),
                                        repeats)))  # fmt: skip


def measure_problem(n, d, dtype, args, say):
    """Every cell of one problem size and dtype: {cell name: figures}."""
    figures = {}
    for loss, task in LOSSES.items():
        X, y = make_problem(n, d, task=task, dtype=np.dtype(dtype).type)
        order = np.random.default_rng(0).permutation(n).astype(row_order_dtype(n))
        read_rows_sequentially(X[:1])
        read_rows_in_order(X, order[:1])
        readers = {True: lambda: read_rows_in_order(X, order)}
        readers[False] = readers["batches"] = lambda: read_rows_sequentially(X)
        read_seconds = float(np.median(call_seconds(readers[False], 5)))
        checks = checks_seconds(X, y, loss)
        cases = {}
        for batch_size in resolve_batch_sizes(args.batch_sizes, n):
            for mode in MODES:
                settings = dict(loss=loss, batch_size=batch_size, shuffle=mode)
                check = functools.partial(check_fit, X, y, settings)
                for backend in args.backends:
                    timed = functools.partial(timed_fit, X, y, readers[mode], args.epochs,
                                              backend=backend, random_state=0, **settings)  # fmt: skip
                    cases[loss, mode, batch_size, backend] = Case(backend, timed, check)
        measured = check_then_time(cases, args.repeats, where=f"on {CHECK_ROWS:,} rows", say=say)
        for (loss_, mode, batch_size, backend), runs in measured.items():
            rows = n * args.epochs
            shares = [rows / r["fit_seconds"] / (n / r["floor_seconds"]) for r in runs]
            kernel = [sum(r["epoch_seconds"]) for r in runs]
            outside = [(r["fit_seconds"] - k - checks) / args.epochs for r, k in zip(runs, kernel)]
            epoch = [k / args.epochs for k in kernel]
            figures[f"{loss_} {mode_name(mode)}@{batch_size} {backend}"] = {
                "rows_per_s": float(np.median([rows / r["fit_seconds"] for r in runs])),
                "floor_share": float(np.median(shares)),
                "floor_share_range": [float(min(shares)), float(max(shares))],
                "kernel_floor_share": float(np.median(
                    [rows / k / (n / r["floor_seconds"]) for r, k in zip(runs, kernel)])),  # fmt: skip
                "outside_per_epoch_share": float(np.median(np.divide(outside, epoch))),
                "fit_seconds": [r["fit_seconds"] for r in runs],
            }
        figures[f"{loss} checks"] = {"seconds": checks, "read_seconds": read_seconds,
                                     "of_a_read": checks / read_seconds}  # fmt: skip
        del X, y, order
    return figures


def cell_ratio(figures, a, b):
    """Cell ``a``'s rows/s over cell ``b``'s, fit by fit (b's seconds over a's): median, min, max."""
    ratios = np.asarray(figures[b]["fit_seconds"]) / np.asarray(figures[a]["fit_seconds"])
    return float(np.median(ratios)), float(ratios.min()), float(ratios.max())


def summary(problem, backends, batch_sizes, n):
    """Per problem: the share of the floor per cell, Numba / Cython, batch 1 / batch 4096."""
    lines = []
    for loss in LOSSES:
        lines.append(f"  {loss}: one-off checks {problem[f'{loss} checks']['of_a_read']:.2f} x one read of X")
        for batch_size in batch_sizes:
            cells = []
            for mode in MODES:
                for backend in backends:
                    f = problem[f"{loss} {mode_name(mode)}@{batch_size} {backend}"]
                    cells.append(f"{backend} {f['floor_share']:.2f}")
                if {"numba", "cython"} <= set(backends):
                    key = f"{loss} {mode_name(mode)}@{batch_size}"
                    median, _, _ = cell_ratio(problem, key + " numba", key + " cython")
                    cells.append(f"(numba/cython {median:.2f})")
            lines.append(f"    batch {batch_size:>7}: " + "  ".join(cells))
        if 1 in batch_sizes and 4096 in batch_sizes:
            for backend in backends:
                one = problem[f"{loss} True@1 {backend}"]["rows_per_s"]
                big = problem[f"{loss} True@4096 {backend}"]["rows_per_s"]
                lines.append(f"    shuffled batch 1 / batch 4096, {backend}: {one / big:.2f}")
    return lines


def main(argv=None):
    parser = bench_parser(__doc__)
    parser.add_argument("--sizes", nargs="+", default=["200000x32", "1000000x64"],
                        help="problems as ROWSxCOLUMNS")  # fmt: skip
    add_flag(parser, "dtypes", ["float64", "float32"])
    add_flag(parser, "batch_sizes", [1, 8, 32, 256, 4096, "n"], type=batch_size_arg)
    add_flag(parser, "backends", ["numba", "cython"])
    add_flag(parser, "epochs", 5)
    add_flag(parser, "repeats", 5)
    add_flag(parser, "out", help="also write the figures as end_to_end.json into this folder")
    parser.add_argument("--readme", help="rewrite this README's end-to-end table from the figures")
    parser.add_argument("--table-from", metavar="JSON",
                        help="measure nothing: rewrite --readme's table from this end_to_end.json")
    args = parser.parse_args(argv)
    if args.table_from:
        with open(args.table_from) as f:
            figures = json.load(f)
        rewrite_readme_block(args.readme, README_BLOCK, readme_table(figures))
        return figures
    available = fastgd.available_backends()
    args.backends = [b for b in args.backends if b in available]

    print(machine_line())
    print(f"whole fastgd.fit calls, {args.epochs} epochs, lr={LR}, one thread; median of "
          f"{args.repeats} fits, each against a read of X just before it")  # fmt: skip
    figures = {"machine": machine_info(), "date": time.strftime("%Y-%m-%d"), "args": vars(args),
               "problems": {}}  # fmt: skip
    for size in args.sizes:
        n, d = (int(part) for part in size.lower().split("x"))
        for dtype in args.dtypes:
            print(f"\n{n:,} x {d} {dtype}: share of the floor (random-order read for "
                  f"shuffle=True, sequential for False, 'batches'), in the order True, False, 'batches'")  # fmt: skip
            problem = measure_problem(n, d, dtype, args, say=lambda line: print("  " + line))
            figures["problems"][f"{n}x{d} {dtype}"] = problem
            for line in summary(problem, args.backends, resolve_batch_sizes(args.batch_sizes, n), n):
                print(line)
    if args.out:
        print(f"wrote {write_json(args.out, 'end_to_end.json', figures)}")
    if args.readme:
        rewrite_readme_block(args.readme, README_BLOCK, readme_table(figures))
        print(f"rewrote the end-to-end table of {args.readme}")
    return figures


def readme_table(figures):
    """The README's table of the end-to-end figures: one row per problem, loss and shuffle mode."""
    args = figures["args"]
    backends = args["backends"]
    lines = [
        f"Whole `fastgd.fit` calls ({args['epochs']} epochs, one thread; median of "
        f"{args['repeats']} fits, each against a read of X made just before it): rows/s as a "
        "share of the memory floor (a random-order read of X for `shuffle=True`, a sequential "
        "one otherwise) at batch sizes 8 to n, then Numba's rows/s over Cython's (medians per "
        f"batch size, the lowest and highest), shuffled batch size 1's rows/s over batch size "
        "4096's per backend, and the most time any cell spent per epoch outside the kernel "
        "(the call less its epochs and the one-off checks) as a share of an epoch. "
        f"{figures['machine']['cpu']}, {figures['machine']['cores']} cores, "
        f"{figures['date']}.",
        "",
        "| problem | loss | shuffle | " + " | ".join(f"{b} share of floor" for b in backends)
        + " | Numba / Cython | batch 1 / 4096 (shuffled) | outside the kernel, per epoch |",
        "| --- | --- | --- | " + " | ".join("---" for _ in backends) + " | --- | --- | --- |",
    ]
    for name, problem in figures["problems"].items():
        n = int(name.split("x")[0])
        sizes = [b for b in resolve_batch_sizes(args["batch_sizes"], n) if b >= 8]
        for loss in LOSSES:
            for mode in MODES:
                key = f"{loss} {mode_name(mode)}"
                shares = []
                for backend in backends:
                    values = [problem[f"{key}@{b} {backend}"]["floor_share"] for b in sizes]
                    shares.append(f"{min(values):.2f}–{max(values):.2f}")
                if {"numba", "cython"} <= set(backends):
                    speed = [cell_ratio(problem, f"{key}@{b} numba", f"{key}@{b} cython")[0]
                             for b in sizes]  # fmt: skip
                    versus = f"{min(speed):.2f}–{max(speed):.2f}"
                else:
                    versus = "–"
                small = "–"
                if mode is True and f"{key}@1 {backends[0]}" in problem:
                    small = ", ".join(
                        f"{problem[f'{key}@1 {b}']['rows_per_s'] / problem[f'{key}@4096 {b}']['rows_per_s']:.2f}"
                        for b in backends if f"{key}@4096 {b}" in problem)  # fmt: skip
                outside = [problem[f"{key}@{b} {backend}"]["outside_per_epoch_share"]
                           for b in sizes for backend in backends]  # fmt: skip
                pretty = name.replace("x", " × ", 1)
                lines.append(f"| {pretty} | {loss} | {mode_name(mode)} | " + " | ".join(shares)
                             + f" | {versus} | {small} | {max(outside):.1%} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
