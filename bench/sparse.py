"""Sparse X: rows/s of fastgd against scikit-learn's SGDClassifier (`make bench-sparse`).

Default problem (issue 8): a CSR matrix of n = 1,000,000 rows × 1,000,000
columns with 20 stored entries per row (standard normal values at uniformly
drawn columns), binary labels from a sparse linear model; log_loss, plain SGD
with L2 (alpha = 1e-4) at a constant rate, shuffled rows, batch sizes 1 and
256 for fastgd (``sparse_update='lazy'``). scikit-learn's ``SGDClassifier``
(always one row per update) runs on the same matrix for the same epochs.

Every figure is the wall time of the whole ``fit`` call (validation
included), as rows/s = n · epochs / seconds, median [min-max] over
``--repeats`` fits, the contenders interleaved. Before timing, each fastgd
backend is checked against the NumPy reference on a 2,000-row slice, and the
first (compiling) Numba call is made there.
"""

import argparse
import time

import numpy as np
import scipy.sparse as sp

import fastgd

from ._common import machine_line

LR = 0.01


def make_sparse_problem(n_samples, n_features, nnz_per_row, seed=0):
    """(CSR X float64 with int32 indices, y in {0, 1}), built without a loop over rows."""
    rng = np.random.default_rng(seed)
    nnz = n_samples * nnz_per_row
    index = np.int32 if max(n_features, nnz) < 2**31 else np.int64
    indices = rng.integers(0, n_features, size=nnz, dtype=index)
    data = rng.standard_normal(nnz)
    indptr = np.arange(0, nnz + 1, nnz_per_row, dtype=index)
    X = sp.csr_matrix((data, indices, indptr), shape=(n_samples, n_features))
    coef = np.where(rng.random(n_features) < 0.1, rng.standard_normal(n_features), 0.0)
    y = (X @ coef + 0.1 * rng.standard_normal(n_samples) > 0).astype(np.int64)
    return X, y


def mean_log_loss(X, y, coef, intercept, rows=100_000):
    """Mean log loss of a fitted model on the first ``rows`` rows (a sanity figure)."""
    z = X[:rows] @ coef + intercept
    return float(np.mean(np.logaddexp(0.0, -(2.0 * y[:rows] - 1.0) * z)))


def fastgd_fit(X, y, backend, batch_size, epochs, alpha):
    return fastgd.fit(
        X, y, loss="log_loss", optimizer="sgd", lr=LR, penalty="l2", alpha=alpha,
        batch_size=batch_size, epochs=epochs, backend=backend, random_state=0,
        sparse_update="lazy",
    )  # fmt: skip


def check_backends(X, y, backends, batch_sizes, alpha):
    """Each backend's fit of a slice equals the NumPy reference's (and is compiled)."""
    Xs, ys = X[:2000], y[:2000]
    for batch_size in batch_sizes:
        expected = fastgd_fit(Xs, ys, "numpy", batch_size, 1, alpha)
        for backend in backends:
            got = fastgd_fit(Xs, ys, backend, batch_size, 1, alpha)
            np.testing.assert_allclose(got.coef, expected.coef, rtol=1e-9, atol=1e-12,
                                       err_msg=f"{backend} disagrees with the reference")  # fmt: skip


def summary(values):
    values = sorted(values)
    return f"{np.median(values):>13,.0f} rows/s [min {values[0]:,.0f}, max {values[-1]:,.0f}]"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=1_000_000)
    parser.add_argument("--n-features", type=int, default=1_000_000)
    parser.add_argument("--nnz-per-row", type=int, default=20)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 256])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--alpha", type=float, default=1e-4)
    parser.add_argument("--backends", nargs="+", default=None,
                        help="default: every available compiled backend")  # fmt: skip
    parser.add_argument("--no-sklearn", action="store_true", help="skip SGDClassifier")
    args = parser.parse_args(argv)
    backends = args.backends or [b for b in fastgd.available_backends() if b != "numpy"]
    try:
        from sklearn.linear_model import SGDClassifier
    except ImportError:
        SGDClassifier = None
    use_sklearn = SGDClassifier is not None and not args.no_sklearn

    print(machine_line())
    started = time.perf_counter()
    X, y = make_sparse_problem(args.n_samples, args.n_features, args.nnz_per_row)
    built = time.perf_counter() - started
    print(f"problem: n={args.n_samples:,} d={args.n_features:,} nnz/row="
          f"{args.nnz_per_row} CSR float64 (built in {built:.1f} s), log_loss, sgd + l2 "
          f"alpha={args.alpha:g}, lr={LR} constant, {args.epochs} epoch(s), shuffled, "
          f"median of {args.repeats} fits")  # fmt: skip
    check_backends(X, y, backends, args.batch_sizes, args.alpha)
    print(f"checked: {', '.join(backends)} = NumPy reference on 2,000 rows (rtol 1e-9)\n")

    n_rows = args.n_samples * args.epochs
    rates, losses = {}, {}
    for _ in range(args.repeats):
        for batch_size in args.batch_sizes:
            for backend in backends:
                started = time.perf_counter()
                result = fastgd_fit(X, y, backend, batch_size, args.epochs, args.alpha)
                seconds = time.perf_counter() - started
                key = (f"fastgd {backend}", batch_size)
                rates.setdefault(key, []).append(n_rows / seconds)
                losses[key] = mean_log_loss(X, y, result.coef, result.intercept)
        if use_sklearn:
            model = SGDClassifier(
                loss="log_loss", penalty="l2", alpha=args.alpha, learning_rate="constant",
                eta0=LR, max_iter=args.epochs, tol=None, shuffle=True, random_state=0,
            )  # fmt: skip
            started = time.perf_counter()
            model.fit(X, y)
            seconds = time.perf_counter() - started
            key = ("sklearn SGDClassifier", 1)
            rates.setdefault(key, []).append(n_rows / seconds)
            losses[key] = mean_log_loss(X, y, model.coef_[0], model.intercept_[0])

    for (name, batch_size), values in rates.items():
        print(f"{name:>22} batch {batch_size:>4}: {summary(values)}  "
              f"loss {losses[name, batch_size]:.4f}")
    if use_sklearn:
        peer = np.median(rates["sklearn SGDClassifier", 1])
        print()
        for (name, batch_size), values in rates.items():
            if name.startswith("fastgd"):
                print(f"{name} batch {batch_size} / sklearn: "
                      f"{np.median(values) / peer:.2f}x")  # fmt: skip
    return rates


if __name__ == "__main__":
    main()
