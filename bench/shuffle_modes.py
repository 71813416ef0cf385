"""Rows/s of each shuffle mode beside the memory floor (`python -m bench.shuffle_modes`).

For each dtype and batch size, fits the built-in problem with ``shuffle=False``,
``'batches'`` and ``True`` (Numba backend, plain SGD, one thread) and prints
the median epoch's rows/s after the first (compile/warm-up) epoch, next to the
floor measured in the same run: reading X once sequentially and in a shuffled
row order.
"""

import argparse

import numpy as np

import fastgd
from fastgd._synthetic import make_problem

from ._common import machine_line, memory_floor

MODES = (False, "batches", True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=64)
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 4096])
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args(argv)

    print(machine_line())
    for dtype in args.dtypes:
        X, y = make_problem(args.n, args.d, dtype=np.dtype(dtype).type)
        order = np.random.default_rng(0).permutation(args.n).astype(np.int32)
        floor = memory_floor(X, order)
        sequential = floor["sequential"]["rows_per_s"]
        shuffled = floor["shuffled"]["rows_per_s"]
        print(f"{dtype}: floor sequential {sequential / 1e6:.1f}M rows/s, "
              f"shuffled {shuffled / 1e6:.1f}M rows/s")  # fmt: skip
        for batch_size in args.batch_sizes:
            cells = []
            for mode in MODES:
                result = fastgd.fit(X, y, batch_size=batch_size, epochs=args.epochs,
                                    lr=1e-3, shuffle=mode, random_state=0)  # fmt: skip
                rate = args.n / np.median(result.epoch_seconds[1:])
                floor_rate = shuffled if mode is True else sequential
                cells.append(f"{mode!s:>7} {rate / 1e6:6.2f}M ({rate / floor_rate:4.0%})")
            print(f"  batch {batch_size:>5}: " + "  ".join(cells))
    print("(%) = share of the floor: sequential for False and 'batches', shuffled for True")


if __name__ == "__main__":
    main()
