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
first (compiling) Numba call is made there (``_common.check_then_time``).
"""

import functools
import time

import numpy as np
import scipy.sparse as sp

import fastgd

from ._common import (
    Case,
    add_flag,
    bench_parser,
    check_then_time,
    machine_info,
    machine_line,
    write_json,
)

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


def fit_parameters(X, y, batch_size, alpha, backend):
    """Parameters of a one-epoch fit of the first 2,000 rows: what is checked."""
    result = fastgd_fit(X[:2000], y[:2000], backend, batch_size, 1, alpha)
    return result.coef, np.asarray(result.intercept)


def timed_fastgd(X, y, backend, batch_size, epochs, alpha):
    """``(rows/s, mean log loss)`` of one whole ``fastgd.fit``."""
    started = time.perf_counter()
    result = fastgd_fit(X, y, backend, batch_size, epochs, alpha)
    seconds = time.perf_counter() - started
    return X.shape[0] * epochs / seconds, mean_log_loss(X, y, result.coef, result.intercept)


def timed_sklearn(SGDClassifier, X, y, epochs, alpha):
    """``(rows/s, mean log loss)`` of one whole ``SGDClassifier.fit``."""
    model = SGDClassifier(
        loss="log_loss", penalty="l2", alpha=alpha, learning_rate="constant",
        eta0=LR, max_iter=epochs, tol=None, shuffle=True, random_state=0,
    )  # fmt: skip
    started = time.perf_counter()
    model.fit(X, y)
    seconds = time.perf_counter() - started
    return X.shape[0] * epochs / seconds, mean_log_loss(X, y, model.coef_[0], model.intercept_[0])


def summary(values):
    values = sorted(values)
    return f"{np.median(values):>13,.0f} rows/s [min {values[0]:,.0f}, max {values[-1]:,.0f}]"


def main(argv=None):
    parser = bench_parser(__doc__)
    add_flag(parser, "n_samples", 1_000_000)
    add_flag(parser, "n_features", 1_000_000)
    parser.add_argument("--nnz-per-row", type=int, default=20)
    add_flag(parser, "batch_sizes", [1, 256], type=int)
    add_flag(parser, "epochs", 1)
    add_flag(parser, "repeats", 3)
    parser.add_argument("--alpha", type=float, default=1e-4)
    add_flag(parser, "backends", help="default: every available compiled backend")
    add_flag(parser, "no_peers", help="skip scikit-learn's SGDClassifier")
    add_flag(parser, "out", help="also write the figures as sparse.json into this folder")
    args = parser.parse_args(argv)
    backends = args.backends or [b for b in fastgd.available_backends() if b != "numpy"]
    try:
        from sklearn.linear_model import SGDClassifier
    except ImportError:
        SGDClassifier = None
    use_sklearn = SGDClassifier is not None and not args.no_peers

    print(machine_line())
    started = time.perf_counter()
    X, y = make_sparse_problem(args.n_samples, args.n_features, args.nnz_per_row)
    built = time.perf_counter() - started
    print(f"problem: n={args.n_samples:,} d={args.n_features:,} nnz/row="
          f"{args.nnz_per_row} CSR float64 (built in {built:.1f} s), log_loss, sgd + l2 "
          f"alpha={args.alpha:g}, lr={LR} constant, {args.epochs} epoch(s), shuffled, "
          f"median of {args.repeats} fits")  # fmt: skip

    cases = {}
    for batch_size in args.batch_sizes:
        check = functools.partial(fit_parameters, X, y, batch_size, args.alpha)
        for backend in backends:
            timed = functools.partial(timed_fastgd, X, y, backend, batch_size, args.epochs,
                                      args.alpha)  # fmt: skip
            cases[f"fastgd {backend}", batch_size] = Case(backend, timed, check)
    if use_sklearn:
        timed = functools.partial(timed_sklearn, SGDClassifier, X, y, args.epochs, args.alpha)
        cases["sklearn SGDClassifier", 1] = Case("sklearn", timed)
    measured = check_then_time(cases, args.repeats, where="on 2,000 rows")
    print()

    rates = {key: [rate for rate, _ in runs] for key, runs in measured.items()}
    losses = {key: runs[-1][1] for key, runs in measured.items()}
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
    if args.out:
        figures = {"machine": machine_info(), "args": vars(args),
                   "rows_per_s": {f"{name}@{b}": v for (name, b), v in rates.items()},
                   "loss": {f"{name}@{b}": v for (name, b), v in losses.items()}}  # fmt: skip
        print(f"wrote {write_json(args.out, 'sparse.json', figures)}")
    return rates


if __name__ == "__main__":
    main()
