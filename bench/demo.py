"""`make demo`: batch, stochastic and mini-batch GD on the built-in problem.

Prints, per batch size, the final training loss after a few epochs and the
throughput in rows per second (median epoch), on a problem of 200,000 rows.
"""

import time

import numpy as np

import fastgd
from fastgd._synthetic import make_problem

from ._common import add_flag, bench_parser


def main(argv=None):
    parser = bench_parser(__doc__)
    add_flag(parser, "n_samples", 200_000)
    add_flag(parser, "n_features", 32)
    add_flag(parser, "epochs", 5)
    add_flag(parser, "backend", "numba")
    args = parser.parse_args(argv)
    n, d = args.n_samples, args.n_features

    X, y = make_problem(n, d)
    started = time.perf_counter()
    fastgd.fit(X[:100], y[:100], epochs=1, backend=args.backend)  # JIT / cache load
    print(f"fastgd {fastgd.__version__}, backend={args.backend}, "
          f"first fit {time.perf_counter() - started:.2f} s (compile or cache)")  # fmt: skip
    print(f"problem: squared_error, n={n:,}, d={d}, epochs={args.epochs}\n")
    print(f"{'method':<16}{'batch':>9}{'lr':>8}{'final loss':>14}{'rows/s':>14}")
    runs = [("SGD", 1, 0.005), ("mini-batch GD", 32, 0.05),
            ("mini-batch GD", 512, 0.2), ("batch GD", None, 0.5)]  # fmt: skip
    for name, batch_size, lr in runs:
        result = fastgd.fit(
            X, y, batch_size=batch_size, lr=lr, epochs=args.epochs,
            random_state=0, backend=args.backend,
        )  # fmt: skip
        rows_per_s = n / np.median(result.epoch_seconds)
        label = "n" if batch_size is None else str(batch_size)
        print(f"{name:<16}{label:>9}{lr:>8g}{result.loss_history[-1]:>14.6f}"
              f"{rows_per_s:>14,.0f}")  # fmt: skip
    print("\nfinal loss: mean squared-error loss ½(p − y)² over the last epoch's "
          "batches (noise floor ≈ 0.005).")


if __name__ == "__main__":
    main()
