"""Cycles per row of the epoch kernels on rows in L1, against the least their loads and multiply-adds need (`make bench-cycles`).

What limits an epoch that does not reach its memory floor (issue 17, item 7):
the kernel's own arithmetic, measured where memory costs nothing. For each
dtype, width d, loss, batch size, backend and row order, the kernel runs one
epoch over ``--visits`` rows (default ``VISITS``) drawn from a block of X small enough to stay in
the L1 data cache (``L1_BYTES`` of rows), in the data's order or shuffled
(each pass over the block a new permutation, with the prefetch of a shuffled
epoch on). Seconds per row become cycles at the clock measured in the same
process by :func:`clock_hz`.

Beside each figure, :func:`least_cycles`: the cycles the row's work needs at
least on a core that issues two 256-bit loads, one 256-bit store and two
256-bit fused multiply-adds per cycle (AMD Zen 2 to 4, Intel since Haswell),
from counting those operations (float64 lanes: four per vector; float32
rows are widened to float64, so they take as many vectors). And the memory
floor of the same problem in cycles per row (a sequential read of the rows
of ``--floor-rows`` x d), so that the two can be set side by side: an epoch
from memory that does not overlap the two pays for their sum.

Every case is checked against the NumPy reference first
(``_common.check_then_time``), then timed ``--repeats`` times, interleaved;
the figure is the median.
"""

import functools
import time

import numpy as np
from numba import njit

import fastgd
from fastgd._config import ORDER_SEQUENTIAL, ORDER_SHUFFLED, ExecutionConfig
from fastgd._synthetic import make_problem
from fastgd._validation import check_fit_settings
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
    read_rows_sequentially,
    time_epoch,
    write_json,
)

# Half of a 32 KiB L1 data cache: the rest holds the parameters, the
# gradient and the order's stretch being read.
L1_BYTES = 16 * 1024
VISITS = 1 << 19
LOSSES = {"squared_error": "regression", "log_loss": "binary"}
ORDERS = {"sequential": ORDER_SEQUENTIAL, "shuffled": ORDER_SHUFFLED}
# 256-bit vectors of float64, and what the core issues per cycle.
LANES = 4
LOADS_PER_CYCLE, STORES_PER_CYCLE, FMAS_PER_CYCLE = 2, 1, 2
CHAIN_STEPS = 50_000_000


@njit(cache=True)
def _dependent_chain(n, x):
    # Three dependent one-cycle integer operations per step (shift, add,
    # xor): nothing can overlap them, so a step is 3 cycles.
    for i in range(n):
        x = (x + (x >> 7)) ^ i
    return x


def clock_hz(repeats=5):
    """The core's clock now, from the time of a chain of dependent one-cycle operations."""
    _dependent_chain(1000, 1)
    seconds = min(call_seconds(lambda: _dependent_chain(CHAIN_STEPS, 1), repeats))
    return 3 * CHAIN_STEPS / seconds


def least_cycles(d, batch_size):
    """The fewest cycles a row needs: its loads, stores and multiply-adds at the core's issue rates.

    Per row: the score (x and w loaded, one multiply-add per lane), then
    the row's part of the step: at batch size 1 the update of w (x and w
    loaded, w stored, a multiply-add), above it the row added into the
    batch's gradient G (x and G loaded, G stored, a multiply-add). Per
    batch of m > 1 rows, shared by its rows: G zeroed (stored), the update
    (P and G loaded, P stored, a multiply-add). The bound is the busiest
    resource's count over its rate; the loss's own arithmetic (a few scalar
    operations, an exp and a log for log loss) is left out.
    """
    v = -(-(d + 1) // LANES)
    loads, stores, fmas = 2 * v + 2 * v, v, 2 * v
    if batch_size > 1:
        loads += 2 * v / batch_size
        stores += 2 * v / batch_size
        fmas += v / batch_size
    return max(loads / LOADS_PER_CYCLE, stores / STORES_PER_CYCLE, fmas / FMAS_PER_CYCLE)


def visiting_order(n_block, shuffled, visits, seed=0):
    """``visits`` row numbers of a block of ``n_block`` rows: passes in order, or each pass a new permutation."""
    passes = -(-visits // n_block)
    if not shuffled:
        return np.tile(np.arange(n_block, dtype=np.int32), passes)[:visits]
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.permutation(n_block) for _ in range(passes)])[:visits].astype(np.int32)


def epoch_seconds(kernels, X, y, order, cfg, run):
    return time_epoch(kernels, X, y, order, cfg, 1, run=run)[0]


def parameters(X, y, order, cfg, run, backend):
    """The parameters after the first 2,000 visits: what is checked against the reference."""
    return time_epoch(get_backend(backend), X, y, order[:2000], cfg, 1, run=run)[1]


def floor_cycles(d, dtype, rows, hz, repeats=5):
    """Cycles per row of a sequential read of ``rows`` x ``d`` from memory (the median of ``repeats``)."""
    X = np.ones((rows, d), dtype=dtype)
    read_rows_sequentially(X[:1])
    return float(np.median(call_seconds(lambda: read_rows_sequentially(X), repeats))) * hz / rows


def main(argv=None):
    parser = bench_parser(__doc__)
    parser.add_argument("--widths", nargs="+", type=int, default=[32, 64], help="columns d")
    add_flag(parser, "dtypes", ["float64", "float32"])
    add_flag(parser, "batch_sizes", [1, 8, 32, 256, 4096], type=batch_size_arg)
    add_flag(parser, "backends", ["numba", "cython"])
    add_flag(parser, "repeats", 7)
    parser.add_argument("--visits", type=int, default=VISITS, help="rows visited per timed epoch")
    parser.add_argument("--floor-rows", type=int, default=1_000_000,
                        help="rows of the memory floor's read")  # fmt: skip
    add_flag(parser, "out", help="write cycles.json into this folder")
    args = parser.parse_args(argv)
    available = fastgd.available_backends()
    args.backends = [b for b in args.backends if b in available]
    print(machine_line())
    hz = clock_hz()
    print(f"clock: {hz / 1e9:.2f} GHz (a chain of dependent one-cycle operations)")
    figures = {"machine": machine_info(), "date": time.strftime("%Y-%m-%d"), "args": vars(args),
               "clock_hz": hz, "cells": {}, "floor_cycles": {}}  # fmt: skip
    for dtype in args.dtypes:
        for d in args.widths:
            n_block = L1_BYTES // (d * np.dtype(dtype).itemsize)
            floor = floor_cycles(d, dtype, args.floor_rows, hz)
            figures["floor_cycles"][f"{dtype} d={d}"] = floor
            print(f"\n{dtype}, d = {d}: {n_block} rows in L1; memory floor "
                  f"{floor:.0f} cycles/row (sequential read of {args.floor_rows:,} rows)")  # fmt: skip
            cases = {}
            for loss, task in LOSSES.items():
                X, y = make_problem(n_block, d, task=task, dtype=np.dtype(dtype).type)
                for batch_size in sorted(set(args.batch_sizes)):
                    cfg, _ = check_fit_settings(**{**SETTINGS, "loss": loss,
                                                   "batch_size": batch_size,
                                                   "n_samples": args.visits})  # fmt: skip
                    for order_name, code in ORDERS.items():
                        order = visiting_order(n_block, order_name == "shuffled", args.visits)
                        run = ExecutionConfig(row_order=code)
                        check = functools.partial(parameters, X, y, order, cfg, run)
                        for backend in args.backends:
                            timed = functools.partial(epoch_seconds, get_backend(backend),
                                                      X, y, order, cfg, run)  # fmt: skip
                            cases[loss, batch_size, order_name, backend] = Case(backend, timed, check)
            measured = check_then_time(cases, args.repeats, where="on 2,000 visits",
                                       say=lambda line: print("  " + line))  # fmt: skip
            print("  | loss | batch | order | " + " | ".join(args.backends)
                  + " | least |  (cycles per row)")  # fmt: skip
            for (loss, batch_size, order_name) in dict.fromkeys(k[:3] for k in cases):
                cells = []
                for backend in args.backends:
                    cycles = float(np.median(measured[loss, batch_size, order_name, backend])) * hz / args.visits
                    cells.append(cycles)
                    figures["cells"][f"{dtype} d={d} {loss} bs{batch_size} {order_name} {backend}"] = {
                        "cycles_per_row": cycles, "least_cycles": least_cycles(d, batch_size)}
                print(f"  | {loss} | {batch_size} | {order_name} | "
                      + " | ".join(f"{c:.0f}" for c in cells)
                      + f" | {least_cycles(d, batch_size):.0f} |")  # fmt: skip
    if args.out:
        print(f"\nwrote {write_json(args.out, 'cycles.json', figures)}")
    return figures


if __name__ == "__main__":
    main()
