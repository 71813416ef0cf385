"""Throughput of one epoch, per backend and batch size (`make bench-speed`).

Default problem: n = 1,000,000 × d = 64 float64, squared_error, plain SGD,
shuffled rows, one thread. Every backend first proves it computes the same
parameters as the NumPy reference on a prefix of the row order, then each
(backend, batch size) is timed over ``--repeats`` epochs, the backends and
batch sizes interleaved so that machine noise hits them alike
(``_common.check_then_time``). The NumPy reference is slow per row, so it
runs on a prefix of the epoch's row order (its cost per row does not depend
on n) and says so.
"""

import functools

import numpy as np

import fastgd
from fastgd._engine import row_order_dtype
from fastgd._synthetic import make_problem
from fastgd._validation import check_fit_settings
from fastgd.backends import get_backend

from ._common import (
    SETTINGS,
    Case,
    add_flag,
    batch_size_arg,
    bench_parser,
    check_then_time,
    machine_info,
    machine_line,
    resolve_batch_sizes,
    time_epoch,
    write_json,
)


def epoch_parameters(X, y, order, cfg, backend):
    """The parameters after one epoch over ``order`` from zero: what is checked."""
    return time_epoch(get_backend(backend), X, y, order, cfg, 1)[1]


def epoch_rows_per_s(kernels, X, y, order, cfg):
    """Rows/s of one epoch over ``order`` from zero: what is timed."""
    return len(order) / time_epoch(kernels, X, y, order, cfg, 1)[0]


def main(argv=None):
    parser = bench_parser(__doc__)
    add_flag(parser, "n_samples", 1_000_000)
    add_flag(parser, "n_features", 64)
    add_flag(parser, "dtypes", ["float64"])
    add_flag(parser, "batch_sizes", [1, 32, 4096], type=batch_size_arg)
    add_flag(parser, "backends")
    add_flag(parser, "repeats", 5, help="timed epochs of each (backend, batch size)")
    parser.add_argument("--reference-rows", type=int, default=20_000,
                        help="rows of the NumPy reference's timed prefix")  # fmt: skip
    add_flag(parser, "out", help="also write the figures as engine_speed.json into this folder")
    args = parser.parse_args(argv)
    backends = args.backends or fastgd.available_backends()
    n = args.n_samples
    batch_sizes = resolve_batch_sizes(args.batch_sizes, n)

    print(machine_line())
    figures = {"machine": machine_info(), "args": vars(args), "rows_per_s": {}}
    for dtype in args.dtypes:
        X, y = make_problem(n, args.n_features, dtype=np.dtype(dtype).type)
        rng = np.random.default_rng(0)
        order = rng.permutation(n).astype(row_order_dtype(n))
        print(f"problem: n={n:,} d={args.n_features} {dtype}, squared_error, sgd, "
              f"shuffled, median of {args.repeats} epochs")  # fmt: skip
        cases = {}
        for batch_size in batch_sizes:
            cfg, _ = check_fit_settings(batch_size=batch_size, n_samples=n, **SETTINGS)
            prefix = order[: min(n, 4 * batch_size + 1000)]
            check = functools.partial(epoch_parameters, X, y, prefix, cfg)
            for name in backends:
                part = order if name != "numpy" else order[: args.reference_rows]
                timed = functools.partial(epoch_rows_per_s, get_backend(name), X, y, part, cfg)
                cases[name, batch_size] = Case(name, timed, check)
        rows = check_then_time(cases, args.repeats, where="on a prefix of the row order")
        print()
        for (name, batch_size), rates in rows.items():
            rates = np.array(rates)
            note = f"  (timed on {args.reference_rows:,} rows)" if name == "numpy" else ""
            print(f"{name:>7} batch {batch_size:>5}: {np.median(rates):>13,.0f} rows/s "
                  f"[min {np.min(rates):,.0f}, max {np.max(rates):,.0f}]{note}")  # fmt: skip
        if "numpy" in backends:
            print()
            for name in backends:
                if name == "numpy":
                    continue
                for batch_size in batch_sizes:
                    ratio = np.median(rows[name, batch_size]) / np.median(rows["numpy", batch_size])
                    print(f"{name} / numpy at batch {batch_size}: {ratio:,.1f}x")
        figures["rows_per_s"][dtype] = {f"{name}@{b}": rates for (name, b), rates in rows.items()}
        del X, y
        print()
    if args.out:
        print(f"wrote {write_json(args.out, 'engine_speed.json', figures)}")
    return figures


if __name__ == "__main__":
    main()
