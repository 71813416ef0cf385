"""Shared vocabulary of the test suite: backends, problems and the comparison rule.

Imported by the test modules as ``support`` (pytest puts this folder on
``sys.path``, as stumpy's tests do with ``naive.py``).
"""

import functools

import numpy as np

import fastgd
from fastgd._config import N_STATE_SLOTS, ORDER_SHUFFLED, ExecutionConfig
from fastgd._validation import check_fit_settings
from fastgd.backends import get_backend

# The NumPy reference is the specification; every other usable backend is
# checked against it. A new backend (e.g. "cython") joins every contract test
# by being listed in ``fastgd.available_backends()``: this is the one list.
REFERENCE_BACKEND = "numpy"
ALL_BACKENDS = fastgd.available_backends()
COMPILED_BACKENDS = [name for name in ALL_BACKENDS if name != REFERENCE_BACKEND]


def backends_with(*capabilities):
    """The usable backends whose ``CAPABILITIES`` include every one of ``capabilities``.

    A test of threads or hogwild runs on what the backends declare (e.g.
    ``backends_with("hogwild")``), never on a list of names written out.
    """
    return [name for name in ALL_BACKENDS if set(capabilities) <= get_backend(name).CAPABILITIES]


DTYPES = (np.float64, np.float32)
# Relative agreement promised between backends (docs/architecture.md, "The backend contract").
RTOL = {np.dtype(np.float64): 1e-9, np.dtype(np.float32): 1e-4}

N_SAMPLES, N_FEATURES, N_CLASSES = 45, 4, 3
# No true weight is zero on purpose: a weight that hovers at the L1
# threshold makes float32 trajectories chaotic (with rmsprop at batch size 1,
# a one-ulp change of X moves the float64 answer by ~2e-5), and the float32
# contract of 1e-4 could then not tell a bug from rounding. Exact zeros still
# occur in the grid and are tested on their own with a stronger penalty.
TRUE_COEF = np.array([1.5, -2.0, 0.7, 0.5])
TRUE_INTERCEPT = 0.5


def rtol_for(dtype):
    return RTOL[np.dtype(dtype)]


def max_relative_error(actual, expected):
    """``max|a − b| / max(1, max|b|)``: relative for large values, absolute near 0."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if expected.size == 0:
        return 0.0
    scale = max(1.0, float(np.max(np.abs(expected))))
    return float(np.max(np.abs(actual - expected))) / scale


def assert_close(actual, expected, rtol, what="value"):
    __tracebackhide__ = True
    error = max_relative_error(actual, expected)
    assert error <= rtol, (
        f"{what}: relative error {error:.3g} exceeds {rtol:.3g}\n"
        f"actual:   {np.asarray(actual)!r}\nexpected: {np.asarray(expected)!r}"
    )


def assert_same_fit(result, expected, rtol):
    """Parameters, loss history and counters of two fits agree to ``rtol``."""
    __tracebackhide__ = True
    assert result.coef.shape == expected.coef.shape
    assert result.coef.dtype == expected.coef.dtype
    assert np.shape(result.intercept) == np.shape(expected.intercept)
    assert_close(result.coef, expected.coef, rtol, "coef")
    assert_close(result.intercept, expected.intercept, rtol, "intercept")
    assert_close(result.loss_history, expected.loss_history, rtol, "loss_history")
    assert result.n_epochs == expected.n_epochs
    assert result.n_updates == expected.n_updates


# The classification losses of one output, y in {0, 1}.
TWO_CLASS_LOSSES = ("log_loss", "hinge", "modified_huber", "squared_hinge", "perceptron")


def n_classes_for(loss):
    """The ``n_classes`` of ``fit`` for a problem of ``make_targets``: None for regression."""
    if loss == "multinomial":
        return N_CLASSES
    return 2 if loss in TWO_CLASS_LOSSES else None


def make_targets(loss, X, rng, coef=TRUE_COEF, intercept=TRUE_INTERCEPT):
    """Targets a linear model can fit: real values, 0/1 codes or 0..2 codes."""
    n, d = X.shape
    coef = np.resize(coef, d)
    if loss == "multinomial":
        W = np.resize(np.array([[1.0, -1.0, 0.5], [-0.5, 1.0, 1.0]]), (d, N_CLASSES))
        scores = X @ W + 0.3 * rng.standard_normal((n, N_CLASSES))
        y = scores.argmax(axis=1)
        # Every class present whenever there are enough rows.
        y[: min(n, N_CLASSES)] = np.arange(min(n, N_CLASSES))
        return y.astype(np.int64)
    signal = X @ coef + intercept + 0.1 * rng.standard_normal(n)
    if loss in TWO_CLASS_LOSSES:
        y = (signal > intercept).astype(np.int64)
        y[: min(n, 2)] = np.arange(min(n, 2))
        return y
    return signal


def make_problem(loss, dtype, n=N_SAMPLES, d=N_FEATURES, seed=0):
    """A small, fresh (X, y) for ``loss``: standard normal X of ``dtype``."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = make_targets(loss, X, rng)
    return np.ascontiguousarray(X, dtype=dtype), y


# How kernel_inputs' shuffled row order is run: one thread, rows prefetched.
SHUFFLED_RUN = ExecutionConfig(row_order=ORDER_SHUFFLED)


def kernel_inputs(dtype=np.float64, loss="squared_error", batch_size=7, n=N_SAMPLES, **settings):
    """X, y, a shuffled int32 row order and a ``KernelConfig``: inputs of ``run_epoch`` itself.

    y has X's dtype; the settings are adam with an elastic-net penalty and
    invscaling rates, unless ``settings`` (keywords of ``fastgd.fit``) say
    otherwise.
    """
    X, y = make_problem(loss, dtype, n=n)
    y = y.astype(dtype)
    order = np.random.default_rng(1).permutation(len(X)).astype(np.int32)
    fields = dict(
        loss=loss, optimizer="adam", lr=0.05, schedule="invscaling", epochs=1,
        penalty="elasticnet", alpha=0.01, l1_ratio=0.5, fit_intercept=True,
        drop_last=False, tol=None, n_iter_no_change=5, epsilon=0.1, power_t=0.25,
        decay=0.9, step_size=10, gamma=0.1, momentum=0.9, beta1=0.9, beta2=0.999,
        eps=1e-8, rho=0.9, weight_decay=0.01,
    )  # fmt: skip
    fields.update(settings)
    cfg, _ = check_fit_settings(batch_size=batch_size, n_samples=len(X), **fields)
    return X, y, order, cfg


def epoch_from_zero(kernels, X, y, order, cfg, n_outputs=1, run=SHUFFLED_RUN):
    """Parameters, optimizer state and return value of one ``kernels.run_epoch`` from zero."""
    P = np.zeros((n_outputs, X.shape[1] + 1), dtype=X.dtype)
    state = np.zeros((N_STATE_SLOTS,) + P.shape, dtype=X.dtype)
    returned = kernels.run_epoch(X, y, order, P, state, cfg, 0.05, 0, run=run)
    return P, state, returned


def kernel_config(loss, **overrides):
    """A ``KernelConfig`` for calling loss functions directly.

    The settings table's defaults (plain SGD, no penalty, a constant rate)
    at batch size 1, with ``overrides`` replacing fields.
    """
    cfg, _ = check_fit_settings(n_samples=1, loss=loss, batch_size=1)
    return cfg._replace(**overrides)


def spy_on_run_epoch(monkeypatch, backend):
    """Record the arguments of every ``run_epoch`` call the engine makes."""
    module = get_backend(backend)
    real_run_epoch = module.run_epoch
    calls = []

    def run_epoch(X, y, order, P, state, cfg, lr, t0, run=ExecutionConfig(), sample_weight=None):
        calls.append(dict(X=X, y=y, order=order.copy(), cfg=cfg, lr=lr, t0=t0, run=run,
                          sample_weight=sample_weight))  # fmt: skip
        return real_run_epoch(X, y, order, P, state, cfg, lr, t0, run, sample_weight)

    monkeypatch.setattr(module, "run_epoch", run_epoch)
    return calls


def wrap_run_epoch(monkeypatch, backend, wrapper):
    """Make the engine call ``wrapper(call, real_run_epoch, *args)`` for each epoch.

    ``call`` counts the backend's epoch calls from 1 (one per trainer per
    epoch): a test injects a failure into one chosen epoch this way.
    ``args`` are ``run_epoch``'s up to ``t0``; the ``run`` the engine passed
    and ``sample_weight`` the engine passed are bound into ``real_run_epoch``.
    """
    module = get_backend(backend)
    real_run_epoch = module.run_epoch
    calls = [0]

    def run_epoch(X, y, order, P, state, cfg, lr, t0, run=ExecutionConfig(), sample_weight=None):
        calls[0] += 1
        real = functools.partial(real_run_epoch, run=run, sample_weight=sample_weight)
        return wrapper(calls[0], real, X, y, order, P, state, cfg, lr, t0)

    monkeypatch.setattr(module, "run_epoch", run_epoch)


# Fitting with integer weights equals fitting with the rows repeated (and
# weight 0 with them removed) only for full-batch gradient descent: with
# shuffled mini-batches a repeated row is a different sequence of updates
# (other batches, other batch means), not the same update scaled.
SAMPLE_WEIGHT_CHECKS = {
    name: "shuffled mini-batches: a repeated row is another sequence of updates, not a "
          "weighted one"
    for name in ("check_sample_weight_equivalence_on_dense_data",
                 "check_sample_weight_equivalence_on_sparse_data")
}
