"""Throughput of one epoch, per backend and batch size (`make bench-speed`).

Default problem: n = 1,000,000 × d = 64 float64, squared_error, plain SGD,
shuffled rows, one thread. Every backend first proves it computes the same
parameters as the NumPy reference on a slice of the problem, then each
(backend, batch size) is timed over ``--repeats`` epochs, the backends
interleaved so that machine noise hits them alike. The NumPy reference is
slow per row, so it runs on a prefix of the epoch's row order (its cost per
row does not depend on n) and says so.
"""

import argparse

import numpy as np

import fastgd
from fastgd._engine import row_order_dtype
from fastgd._synthetic import make_problem
from fastgd.backends import get_backend

from ._common import SETTINGS, legacy_config, machine_line, time_epoch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32, 4096])
    parser.add_argument("--backends", nargs="+", default=None,
                        help="default: every available backend")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--reference-rows", type=int, default=20_000,
                        help="rows of the NumPy reference's timed prefix")  # fmt: skip
    args = parser.parse_args(argv)
    backends = args.backends or fastgd.available_backends()

    print(machine_line())
    X, y = make_problem(args.n, args.d, dtype=np.dtype(args.dtype).type)
    rng = np.random.default_rng(0)
    order = rng.permutation(args.n).astype(row_order_dtype(args.n))
    print(f"problem: n={args.n:,} d={args.d} {args.dtype}, squared_error, sgd, "
          f"shuffled, median of {args.repeats} epochs\n")  # fmt: skip

    reference = get_backend("numpy")
    rows = {}
    for batch_size in args.batch_sizes:
        cfg = legacy_config(batch_size=batch_size, n_samples=args.n, **SETTINGS)
        check = order[: min(args.n, 4 * batch_size + 1000)]
        _, expected = time_epoch(reference, X, y, check, cfg, 1)
        for name in backends:
            _, got = time_epoch(get_backend(name), X, y, check, cfg, 1)
            np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12,
                                       err_msg=f"{name} disagrees with the reference")  # fmt: skip
        seconds = {name: [] for name in backends}
        for _ in range(args.repeats):
            for name in backends:
                part = order if name != "numpy" else order[: args.reference_rows]
                elapsed, _ = time_epoch(get_backend(name), X, y, part, cfg, 1)
                seconds[name].append(elapsed / len(part))
        for name in backends:
            per_row = np.array(seconds[name])
            rows[name, batch_size] = 1.0 / per_row
            note = f"  (timed on {args.reference_rows:,} rows)" if name == "numpy" else ""
            print(f"{name:>7} batch {batch_size:>5}: {np.median(1 / per_row):>13,.0f} rows/s "
                  f"[min {np.min(1 / per_row):,.0f}, max {np.max(1 / per_row):,.0f}]{note}")  # fmt: skip
    if "numpy" in backends:
        print()
        for name in backends:
            if name == "numpy":
                continue
            for batch_size in args.batch_sizes:
                ratio = np.median(rows[name, batch_size]) / np.median(rows["numpy", batch_size])
                print(f"{name} / numpy at batch {batch_size}: {ratio:,.1f}x")


if __name__ == "__main__":
    main()
