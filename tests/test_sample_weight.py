"""``sample_weight`` and ``class_weight`` (issue 16, items 1 and 2).

Each row's loss and gradient are multiplied by its weight, and a batch's
gradient is the mean over its m rows of the weighted row gradients:

- every compiled backend gives the reference's numbers with weights, over
  losses × optimizers × batch sizes × dtypes, dense and CSR (lazy and dense
  updates), data-parallel threads and hogwild;
- weights of 1 give bit for bit the unweighted result on every backend;
- rows of weight 0 are rows removed (batch size 1, plain SGD, constant rate,
  no penalty: an update of a zero gradient changes nothing);
- integer weights are repeated rows in a batch's gradient sums;
- at batch size 1 the fit is scikit-learn's ``SGDRegressor`` /
  ``SGDClassifier`` with the same ``sample_weight`` and ``class_weight``
  (binary and one-vs-rest), to 1e-10;
- the weights are validated, and ``class_weight='balanced'`` is refused by
  ``partial_fit``.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.utils.class_weight import compute_class_weight

import fastgd
from fastgd import MiniBatchClassifier, MiniBatchRegressor
from fastgd._estimators import class_weights, one_vs_rest_weights
from fastgd.backends import get_backend

from support import (
    ALL_BACKENDS,
    COMPILED_BACKENDS,
    DTYPES,
    REFERENCE_BACKEND,
    assert_same_fit,
    make_problem,
    rtol_for,
)

SETTINGS = dict(lr=0.05, alpha=0.01, l1_ratio=0.5, penalty="elasticnet", epochs=3,
                random_state=0)  # fmt: skip
LOSSES = ("squared_error", "huber", "log_loss", "multinomial", "hinge", "modified_huber")
OPTIMIZERS = ("sgd", "momentum", "adam")
LAYOUTS = ("dense", "csr-lazy", "csr-dense")


def weights_for(n, seed=1):
    """Weights in [0, 3), some exactly 0 and some exactly 1."""
    w = np.random.default_rng(seed).uniform(0.0, 3.0, n)
    w[::7] = 0.0
    w[1::5] = 1.0
    return w


def data(loss, dtype, layout):
    X, y = make_problem(loss, dtype)
    if layout != "dense":
        X = sp.csr_array(np.where(np.abs(X) < 0.5, 0.0, X).astype(dtype))
    return X, y


def fit(backend, loss, dtype, layout, sample_weight, **settings):
    X, y = data(loss, dtype, layout)
    sparse_update = "dense" if layout == "csr-dense" else "lazy"
    return fastgd.fit(X, y, sample_weight, loss=loss, backend=backend,
                      sparse_update=sparse_update, **{**SETTINGS, **settings})  # fmt: skip


# --- the compiled backends are the reference's, with weights -------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("batch_size", [1, 7, 2000], ids=lambda b: f"bs{b}")
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
@pytest.mark.parametrize("loss", LOSSES)
def test_compiled_backends_match_reference_with_weights(compiled_backend, dtype, loss, optimizer,
                                                        batch_size, layout):  # fmt: skip
    X, _ = data(loss, dtype, layout)
    w = weights_for(X.shape[0])
    # lr 0.02: weights up to 3 with momentum at 0.05 nearly diverge (weights
    # of 1e4), where float32's rounding drifts past its tolerance.
    settings = dict(optimizer=optimizer, batch_size=batch_size, lr=0.02)
    result = fit(compiled_backend, loss, dtype, layout, w, **settings)
    expected = fit(REFERENCE_BACKEND, loss, dtype, layout, w, **settings)
    assert_same_fit(result, expected, rtol_for(dtype))
    if optimizer == "sgd":
        # The weights count (adaptive steps of full batches can be nearly
        # sign steps, which weights hardly change).
        unweighted = fit(compiled_backend, loss, dtype, layout, None, **settings)
        assert not np.allclose(result.coef, unweighted.coef)


@pytest.mark.parametrize("loss", ["squared_error", "multinomial"])
def test_threads_and_hogwild_with_weights(loss):
    # Batches of more than CHUNK_ROWS rows share out their chunks: the same
    # sums for any thread count. Hogwild on one thread is the serial epoch.
    for backend in COMPILED_BACKENDS:
        X, y = make_problem(loss, np.float64, n=3000)
        w = weights_for(3000)
        one = fastgd.fit(X, y, w, loss=loss, batch_size=2500, backend=backend, **SETTINGS)
        two = fastgd.fit(X, y, w, loss=loss, batch_size=2500, backend=backend, n_threads=2,
                         **SETTINGS)  # fmt: skip
        np.testing.assert_array_equal(one.coef, two.coef)
        reference = fastgd.fit(X, y, w, loss=loss, batch_size=2500, backend=REFERENCE_BACKEND,
                               **SETTINGS)  # fmt: skip
        assert_same_fit(one, reference, rtol_for(np.float64))
        serial = fastgd.fit(X, y, w, loss=loss, batch_size=8, backend=backend, **SETTINGS)
        hogwild = fastgd.fit(X, y, w, loss=loss, batch_size=8, backend=backend, n_threads=1,
                             parallel="hogwild", **SETTINGS)  # fmt: skip
        np.testing.assert_array_equal(serial.coef, hogwild.coef)
        # Several hogwild threads: not deterministic, but weighted and finite.
        many = fastgd.fit(X, y, w, loss=loss, batch_size=8, backend=backend, n_threads=2,
                          parallel="hogwild", **SETTINGS)  # fmt: skip
        assert np.all(np.isfinite(many.coef))


# --- weights of 1, weights of 0, integer weights ----------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("batch_size", [1, 7, 2000], ids=lambda b: f"bs{b}")
@pytest.mark.parametrize("loss", ["squared_error", "log_loss", "multinomial"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_weights_of_one_are_bit_for_bit_unweighted(backend, dtype, loss, batch_size, layout):
    X, _ = data(loss, dtype, layout)
    for optimizer in ("sgd", "adam"):
        settings = dict(optimizer=optimizer, batch_size=batch_size)
        ones = fit(backend, loss, dtype, layout, np.ones(X.shape[0]), **settings)
        none = fit(backend, loss, dtype, layout, None, **settings)
        np.testing.assert_array_equal(ones.coef, none.coef)
        np.testing.assert_array_equal(ones.intercept, none.intercept)
        # The loss to the last bit or two: under Numba's fastmath "reassoc",
        # LLVM may regroup the unweighted kernel's running loss sum, which the
        # multiplication by the weight pins in the weighted one (the
        # parameters, above, are bit for bit).
        np.testing.assert_allclose(ones.loss_history, none.loss_history, rtol=1e-14, atol=0)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("loss", ["squared_error", "hinge", "multinomial"])
def test_rows_of_weight_zero_are_rows_removed_at_batch_size_one(backend, loss, layout):
    X, y = data(loss, np.float64, layout)
    w = np.ones(X.shape[0])
    w[::3] = 0.0
    kept = np.flatnonzero(w)
    settings = dict(batch_size=1, shuffle=False, epochs=2, lr=0.05, backend=backend,
                    sparse_update="dense" if layout == "csr-dense" else "lazy")  # fmt: skip
    weighted = fastgd.fit(X, y, w, loss=loss, **settings)
    removed = fastgd.fit(X[kept], y[kept], loss=loss, n_classes=3 if loss == "multinomial"
                         else None, **settings)  # fmt: skip
    np.testing.assert_allclose(weighted.coef, removed.coef, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(weighted.intercept, removed.intercept, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("layout", ["dense", "csr"])
@pytest.mark.parametrize("loss", ["squared_error", "log_loss", "multinomial"])
def test_integer_weights_are_repeated_rows_in_a_batch_gradient(backend, loss, layout):
    X, y = make_problem(loss, np.float64)
    y = y.astype(np.float64)  # the engine's targets: X's dtype
    n_outputs = 3 if loss == "multinomial" else 1
    rng = np.random.default_rng(2)
    P = 0.1 * rng.standard_normal((n_outputs, X.shape[1] + 1))
    counts = rng.integers(0, 4, X.shape[0])
    rows = np.arange(X.shape[0], dtype=np.int64)
    repeated = np.repeat(rows, counts)
    cfg = fastgd._settings.kernel_records(
        fastgd._settings.check_settings("fit", {"loss": loss}), n_samples=X.shape[0]
    )[0]
    Xl = sp.csr_array(X) if layout == "csr" else X
    kernels = get_backend(backend)
    loss_w, G_w = kernels.batch_gradient(Xl, y, rows, P, cfg, counts.astype(np.float64))
    loss_r, G_r = kernels.batch_gradient(Xl, y, repeated, P, cfg)
    np.testing.assert_allclose(loss_w, loss_r, rtol=1e-12)
    # The means differ by their m: the sums are the same.
    np.testing.assert_allclose(G_w * len(rows), G_r * len(repeated), rtol=1e-10, atol=1e-12)


def test_integer_weights_are_repeated_rows_for_constant_gradient_steps():
    # Plain SGD at batch size 1 on the reference: a row of weight k is one
    # step of k times its gradient; k repeats of it are k steps, the same
    # where its gradient does not change between them (the perceptron's and
    # the hinge's, while the row stays misclassified; lr small).
    X = np.array([[1.0, 2.0], [-1.0, 0.5], [0.5, -1.0]])
    y = np.array([1, 0, 1])
    settings = dict(loss="hinge", lr=1e-3, batch_size=1, shuffle=False, epochs=1,
                    backend=REFERENCE_BACKEND)  # fmt: skip
    weighted = fastgd.fit(X, y, np.array([2.0, 1.0, 3.0]), **settings)
    repeated = fastgd.fit(X[[0, 0, 1, 2, 2, 2]], y[[0, 0, 1, 2, 2, 2]], **settings)
    np.testing.assert_allclose(weighted.coef, repeated.coef, rtol=1e-12)
    np.testing.assert_allclose(weighted.intercept, repeated.intercept, rtol=1e-12)


# --- scikit-learn at batch size 1 ---------------------------------------------------

RTOL = 1e-10
LR = 0.05


def sk_close(actual, expected):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=RTOL * scale)


def sk_fit(model, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit(X, y, **kwargs)


def sk_problem(n_classes=None, n=40, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    if n_classes is None:
        return X, X @ np.array([1.0, -2.0, 0.5, 1.5]) + 0.3 + 0.5 * rng.standard_normal(n)
    W = rng.standard_normal((d, n_classes))
    y = (X @ W + 0.5 * rng.standard_normal((n, n_classes))).argmax(axis=1)
    return X, (y if n_classes > 2 else y.astype(np.int64))


SK = dict(learning_rate="constant", eta0=LR, shuffle=False, tol=None, penalty="l2",
          alpha=0.01)  # fmt: skip
FG = dict(lr=LR, batch_size=1, shuffle=False, tol=None, penalty="l2", alpha=0.01)


@pytest.mark.parametrize("epochs", [1, 3])
def test_regression_with_sample_weight_equals_scikit_learn(backend, epochs):
    X, y = sk_problem()
    w = weights_for(len(y))
    expected = sk_fit(SGDRegressor(max_iter=epochs, **SK), X, y, sample_weight=w)
    result = fastgd.fit(X, y, w, lr=LR, batch_size=1, shuffle=False, epochs=epochs,
                        penalty="l2", alpha=0.01, backend=backend)  # fmt: skip
    sk_close(result.coef, expected.coef_)
    sk_close(result.intercept, expected.intercept_[0])
    model = MiniBatchRegressor(epochs=epochs, backend=backend, **FG).fit(X, y, sample_weight=w)
    sk_close(model.coef_, expected.coef_)


@pytest.mark.parametrize("class_weight", [None, {0: 2.5, 1: 0.5}, "balanced"], ids=str)
@pytest.mark.parametrize("loss", ["log_loss", "hinge"])
def test_binary_with_sample_and_class_weight_equals_scikit_learn(backend, loss, class_weight):
    X, y = sk_problem(2)
    labels = np.array(["no", "yes"])[y]
    cw = None if not isinstance(class_weight, dict) else {
        label: class_weight[k] for k, label in enumerate(["no", "yes"])}  # fmt: skip
    cw = "balanced" if class_weight == "balanced" else cw
    for w in (None, weights_for(len(y))):
        expected = sk_fit(SGDClassifier(loss=loss, max_iter=3, class_weight=cw, **SK), X,
                          labels, sample_weight=w)  # fmt: skip
        model = MiniBatchClassifier(loss=loss, epochs=3, class_weight=cw, backend=backend,
                                    **FG).fit(X, labels, sample_weight=w)  # fmt: skip
        sk_close(model.coef_, expected.coef_)
        sk_close(model.intercept_, expected.intercept_)


@pytest.mark.parametrize("class_weight", [{0: 3.0, 2: 0.25}, "balanced"], ids=str)
def test_one_vs_rest_with_class_weight_equals_scikit_learn(backend, class_weight):
    X, y = sk_problem(3, n=60, seed=1)
    w = weights_for(len(y))
    expected = sk_fit(SGDClassifier(loss="hinge", max_iter=3, class_weight=class_weight, **SK),
                      X, y, sample_weight=w)  # fmt: skip
    model = MiniBatchClassifier(loss="hinge", epochs=3, class_weight=class_weight,
                                backend=backend, **FG).fit(X, y, sample_weight=w)  # fmt: skip
    sk_close(model.coef_, expected.coef_)
    sk_close(model.intercept_, expected.intercept_)


# --- class weights -----------------------------------------------------------------


def test_class_weights_follow_scikit_learn():
    classes = np.array(["a", "b", "c"])
    codes = np.array([0, 0, 0, 1, 2, 2])
    np.testing.assert_allclose(
        class_weights("balanced", classes, codes),
        compute_class_weight("balanced", classes=classes, y=classes[codes]),
    )
    np.testing.assert_array_equal(class_weights({"b": 2.0}, classes, codes), [1.0, 2.0, 1.0])
    assert class_weights(None, classes, codes) is None
    np.testing.assert_array_equal(one_vs_rest_weights(np.array([1.0, 2.0, 3.0]), codes, 2),
                                  [1.0, 1.0, 1.0, 1.0, 3.0, 3.0])  # fmt: skip
    with pytest.raises(ValueError, match="class_weight names 'd', which is not a class"):
        class_weights({"d": 2.0}, classes, codes)


def test_multinomial_class_weight_is_each_rows_class_weight(backend):
    X, y = sk_problem(3, n=60, seed=1)
    cw = {0: 3.0, 1: 1.0, 2: 0.25}
    model = MiniBatchClassifier(epochs=3, class_weight=cw, backend=backend, **FG).fit(X, y)
    rows = fastgd.fit(X, y, np.array([cw[c] for c in y]), loss="multinomial", lr=LR,
                      batch_size=1, shuffle=False, epochs=3, penalty="l2", alpha=0.01,
                      backend=backend)  # fmt: skip
    np.testing.assert_array_equal(model.coef_, rows.coef)


def test_partial_fit_refuses_balanced_and_takes_a_dict():
    X, y = sk_problem(3, n=60, seed=1)
    model = MiniBatchClassifier(class_weight="balanced")
    with pytest.raises(ValueError, match="class_weight='balanced' is not supported by "
                                         "partial_fit"):  # fmt: skip
        model.partial_fit(X, y, classes=[0, 1, 2])
    assert not hasattr(model, "coef_")
    weights = compute_class_weight("balanced", classes=np.arange(3), y=y)
    chunked = MiniBatchClassifier(class_weight=dict(enumerate(weights)), shuffle=False,
                                  random_state=0)  # fmt: skip
    chunked.partial_fit(X, y, classes=[0, 1, 2], sample_weight=weights_for(60))
    whole = MiniBatchClassifier(class_weight="balanced", shuffle=False, epochs=1, tol=None,
                                random_state=0).fit(X, y, sample_weight=weights_for(60))  # fmt: skip
    np.testing.assert_allclose(chunked.coef_, whole.coef_, rtol=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_early_stopping_scores_held_out_rows_by_their_weights():
    X, y = sk_problem(n=200)
    w = weights_for(200)
    model = MiniBatchRegressor(early_stopping=True, epochs=5, tol=None, random_state=0,
                               backend=REFERENCE_BACKEND)  # fmt: skip
    model.fit(X, y, sample_weight=w)
    assert len(model.validation_scores_) == 5
    unweighted = MiniBatchRegressor(early_stopping=True, epochs=5, tol=None, random_state=0,
                                    backend=REFERENCE_BACKEND).fit(X, y)  # fmt: skip
    assert model.validation_scores_ != unweighted.validation_scores_


# --- validation ------------------------------------------------------------------------


@pytest.mark.parametrize("sample_weight, error, message", [
    (np.ones(5), ValueError, r"sample_weight must be of shape \(40,\)"),
    (np.ones((40, 1)), ValueError, r"sample_weight must be of shape \(40,\)"),
    (np.full(40, np.nan), ValueError, "Input sample_weight contains NaN"),
    (np.r_[np.ones(39), -1.0], ValueError, "sample_weight must be non-negative; got -1.0 at row 39"),
    (np.zeros(40), ValueError, "sample_weight is zero for every row"),
    (np.array(["a"] * 40), TypeError, "sample_weight must hold real numbers"),
    (np.ones(40, dtype=complex), TypeError, "sample_weight must hold real numbers"),
])  # fmt: skip
def test_bad_sample_weight_is_refused(sample_weight, error, message):
    X, y = sk_problem()
    with pytest.raises(error, match=message):
        fastgd.fit(X, y, sample_weight, backend=REFERENCE_BACKEND)
    model = MiniBatchRegressor(epochs=1)
    with pytest.raises(error, match=message):
        model.fit(X, y, sample_weight=sample_weight)
    assert not hasattr(model, "coef_")


def test_sample_weight_is_not_copied_or_written():
    X, y = sk_problem()
    w = weights_for(40)
    before = w.copy()
    w.flags.writeable = False
    fastgd.fit(X, y, w, backend=REFERENCE_BACKEND, epochs=1)
    np.testing.assert_array_equal(w, before)
    from fastgd._validation import check_sample_weight

    assert check_sample_weight(w, 40) is w
    assert check_sample_weight(None, 40) is None
    np.testing.assert_array_equal(check_sample_weight(2, 3), [2.0, 2.0, 2.0])
    np.testing.assert_array_equal(check_sample_weight([1, 0, 2], 3), [1.0, 0.0, 2.0])


@pytest.mark.parametrize("class_weight, message", [
    ("auto", "class_weight must be a dict of label to weight, 'balanced' or None"),
    ({0: -1.0}, r"class_weight\[0\] must be a finite number >= 0; got -1.0"),
    ({0: np.inf}, r"class_weight\[0\] must be a finite number >= 0"),
])  # fmt: skip
def test_bad_class_weight_is_refused(class_weight, message):
    X, y = sk_problem(2)
    model = MiniBatchClassifier(class_weight=class_weight, epochs=1)
    with pytest.raises(ValueError, match=message):
        model.fit(X, y)
    assert not hasattr(model, "coef_")
