"""``MiniBatchOneClassSVM``: scikit-learn's ``SGDOneClassSVM`` on the engine.

At batch size 1, in the data's order, it is scikit-learn's algorithm update
for update, so the parameters after every epoch agree to rounding (dense X;
a CSR X gives the numbers of its dense copy, where scikit-learn damps a
sparse X's intercept steps by 0.01). Mini-batches, the other optimizers and
the layouts are the engine's: each compiled backend equals the reference.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import SGDOneClassSVM
from sklearn.utils.estimator_checks import parametrize_with_checks

from fastgd import MiniBatchClassifier, MiniBatchOneClassSVM
from fastgd._settings import ONE_CLASS, check_settings, engine_settings, kernel_records

from support import (
    ALL_BACKENDS, COMPILED_BACKENDS, DTYPES, REFERENCE_BACKEND, SAMPLE_WEIGHT_CHECKS, assert_close,
    rtol_for,
)

# Agreement with scikit-learn in float64, relative to max(1, |value|).
SKLEARN_RTOL = 1e-10
NU = 0.3


def one_class_data(n=80, d=5, seed=0, dtype=np.float64):
    """Rows around a centre away from the origin, a few far off (outliers)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) + np.linspace(0.5, 2.0, d)
    X[::10] *= 4.0
    return X.astype(dtype)


def layout(X, sparse):
    if not sparse:
        return X
    X = X.copy()
    X[np.abs(X) < 1.0] = 0.0  # stored zeros would be no test of sparsity
    return sp.csr_matrix(X)


def dense_of(X):
    return X.toarray() if sp.issparse(X) else X


# scikit-learn's schedules that both define alike at batch size 1:
# 'adaptive' is left out, as its plateaus are measured on scikit-learn's
# objective (with the nu terms), fastgd's on the mean loss.
SCHEDULES = [
    ("constant", {}),
    ("invscaling", dict(power_t=0.5)),
    ("optimal", {}),
]


def sklearn_model(schedule, extra, fit_intercept=True, **kwargs):
    return SGDOneClassSVM(nu=NU, learning_rate=schedule, eta0=0.05, tol=None, shuffle=False,
                          fit_intercept=fit_intercept, **extra, **kwargs)  # fmt: skip


def fastgd_model(schedule, extra, backend, fit_intercept=True, **kwargs):
    return MiniBatchOneClassSVM(nu=NU, schedule=schedule, lr=0.05, batch_size=1, tol=None,
                                shuffle=False, fit_intercept=fit_intercept, backend=backend,
                                **extra, **kwargs)  # fmt: skip


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("schedule, extra", SCHEDULES, ids=[name for name, _ in SCHEDULES])
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_every_epoch_equals_scikit_learn_at_batch_size_1(backend, schedule, extra,
                                                         fit_intercept, sparse):  # fmt: skip
    X = layout(one_class_data(), sparse)
    expected = sklearn_model(schedule, extra, fit_intercept)
    model = fastgd_model(schedule, extra, backend, fit_intercept)
    for epoch in range(4):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # scikit-learn's partial_fit ConvergenceWarning
            expected.partial_fit(dense_of(X))
        model.partial_fit(X)
        assert_close(model.coef_, expected.coef_, SKLEARN_RTOL, f"coef_ after epoch {epoch + 1}")
        assert_close(model.offset_, expected.offset_, SKLEARN_RTOL,
                     f"offset_ after epoch {epoch + 1}")  # fmt: skip
    assert model.coef_.shape == expected.coef_.shape
    assert model.offset_.shape == expected.offset_.shape == (1,)


@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("average", [True, 10])
@pytest.mark.parametrize("schedule, extra", [SCHEDULES[0], SCHEDULES[2]], ids=["constant", "optimal"])
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_averaged_fit_equals_scikit_learn_at_batch_size_1(backend, schedule, extra, average,
                                                          sparse):  # fmt: skip
    X = layout(one_class_data(seed=2), sparse)
    expected = sklearn_model(schedule, extra, average=average, max_iter=3).fit(dense_of(X))
    model = fastgd_model(schedule, extra, backend, average=average, epochs=3).fit(X)
    assert_close(model.coef_, expected.coef_, SKLEARN_RTOL, "averaged coef_")
    assert_close(model.offset_, expected.offset_, SKLEARN_RTOL, "averaged offset_")


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_fit_equals_scikit_learn_fit_from_initial_parameters(backend):
    X = one_class_data(seed=1)
    coef_init, offset_init = np.linspace(-0.2, 0.3, X.shape[1]), np.array([0.4])
    expected = sklearn_model("invscaling", dict(power_t=0.5), max_iter=5).fit(
        X, coef_init=coef_init.copy(), offset_init=offset_init.copy())  # fmt: skip
    model = fastgd_model("invscaling", dict(power_t=0.5), backend, epochs=5).fit(
        X, coef_init=coef_init, offset_init=offset_init)  # fmt: skip
    assert_close(model.coef_, expected.coef_, SKLEARN_RTOL, "coef_")
    assert_close(model.offset_, expected.offset_, SKLEARN_RTOL, "offset_")
    assert model.n_iter_ == expected.n_iter_ == 5


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_float32_is_close_to_scikit_learn(backend):
    X = one_class_data(dtype=np.float32)
    expected = sklearn_model("constant", {}, max_iter=3).fit(X)
    model = fastgd_model("constant", {}, backend, epochs=3).fit(X)
    assert model.coef_.dtype == model.offset_.dtype == np.float32
    assert_close(model.coef_, expected.coef_, 1e-4, "coef_")
    assert_close(model.offset_, expected.offset_, 1e-4, "offset_")


# Mini-batches: each compiled backend against the reference.
MINI_BATCH_GRID = [
    dict(optimizer="sgd", batch_size=8),
    dict(optimizer="sgd", batch_size=8, schedule="optimal"),
    dict(optimizer="sgd", batch_size=1, fit_intercept=False),
    dict(optimizer="momentum", batch_size=8),
    dict(optimizer="adam", batch_size=16, schedule="invscaling", power_t=0.5),
    dict(optimizer="adamw", batch_size=None),
]


@pytest.mark.parametrize("sparse_update", ["lazy", "dense"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "csr"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda dtype: np.dtype(dtype).name)
@pytest.mark.parametrize("settings", MINI_BATCH_GRID,
                         ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))  # fmt: skip
@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
def test_compiled_backends_equal_the_reference_on_mini_batches(backend, settings, dtype, sparse,
                                                               sparse_update):  # fmt: skip
    if sparse_update == "dense" and not sparse:
        pytest.skip("sparse_update applies to a sparse X only")
    X = layout(one_class_data(n=100, dtype=dtype), sparse)
    common = dict(nu=0.2, lr=0.02, epochs=4, tol=None, random_state=3,
                  sparse_update=sparse_update, **settings)  # fmt: skip
    expected = MiniBatchOneClassSVM(backend=REFERENCE_BACKEND, **common).fit(X)
    model = MiniBatchOneClassSVM(backend=backend, **common).fit(X)
    assert_close(model.coef_, expected.coef_, rtol_for(dtype), "coef_")
    assert_close(model.offset_, expected.offset_, rtol_for(dtype), "offset_")
    # The drift moved the intercept: the nu term is in the update.
    assert model.offset_[0] != 0.0 or not settings.get("fit_intercept", True)


def test_csr_equals_its_dense_copy():
    X = layout(one_class_data(), True)
    common = dict(nu=NU, lr=0.05, batch_size=4, epochs=3, tol=None, random_state=0)
    sparse_model = MiniBatchOneClassSVM(**common).fit(X)
    dense_model = MiniBatchOneClassSVM(**common).fit(X.toarray())
    assert_close(sparse_model.coef_, dense_model.coef_, 1e-12, "coef_")
    assert_close(sparse_model.offset_, dense_model.offset_, 1e-12, "offset_")


def test_partial_fit_k_times_is_fit_with_k_epochs():
    X = one_class_data()
    common = dict(nu=NU, lr=0.05, batch_size=4, tol=None, random_state=5)
    fitted = MiniBatchOneClassSVM(epochs=3, **common).fit(X)
    partial = MiniBatchOneClassSVM(**common)
    for _ in range(3):
        partial.partial_fit(X)
    np.testing.assert_array_equal(partial.coef_, fitted.coef_)
    np.testing.assert_array_equal(partial.offset_, fitted.offset_)
    assert partial.n_iter_ == fitted.n_iter_ == 3


def test_predictions_are_plus_or_minus_one_and_scores_are_shifted_decisions():
    X = one_class_data()
    model = MiniBatchOneClassSVM(nu=0.1, lr=0.02, epochs=20, tol=None, random_state=0).fit(X)
    labels = model.predict(X)
    assert set(np.unique(labels)) <= {-1, 1}
    assert (labels == 1).any() and (labels == -1).any()
    decision = model.decision_function(X)
    np.testing.assert_array_equal(labels, np.where(decision >= 0.0, 1, -1))
    np.testing.assert_array_equal(model.score_samples(X), decision + model.offset_)
    np.testing.assert_allclose(decision, X @ model.coef_ - model.offset_, rtol=1e-12)
    np.testing.assert_array_equal(model.fit_predict(X), labels)
    # Far from the data is an outlier.
    assert model.predict(-10.0 * np.ones((1, X.shape[1])))[0] == -1


def test_the_record_carries_nu_as_penalty_and_intercept_drift():
    cfg, _ = kernel_records(engine_settings(ONE_CLASS, check_settings(ONE_CLASS, {"nu": 0.25})),
                            n_samples=10)  # fmt: skip
    assert (cfg.l2, cfg.l1, cfg.intercept_drift) == (0.25, 0.0, 0.25)
    # Every other model has no drift.
    assert MiniBatchClassifier()._settings()["loss"] == "log_loss"
    assert kernel_records(MiniBatchClassifier()._settings(), 10)[0].intercept_drift == 0.0


@pytest.mark.parametrize("nu", [0.0, 1.5, -0.1, float("nan")])
def test_a_nu_outside_zero_one_is_refused_by_name(nu):
    with pytest.raises(ValueError, match="nu"):
        MiniBatchOneClassSVM(nu=nu).fit(one_class_data())


def test_a_bad_offset_init_changes_nothing():
    X = one_class_data()
    model = MiniBatchOneClassSVM(lr=0.05, epochs=2, tol=None, random_state=0).fit(X)
    before = (model.coef_.copy(), model.offset_.copy())
    with pytest.raises(ValueError, match="offset_init"):
        model.fit(X, offset_init=np.zeros(2))
    np.testing.assert_array_equal(model.coef_, before[0])
    np.testing.assert_array_equal(model.offset_, before[1])


def test_warm_start_continues():
    X = one_class_data()
    common = dict(nu=NU, lr=0.05, batch_size=4, tol=None, random_state=5)
    once = MiniBatchOneClassSVM(epochs=4, **common).fit(X)
    twice = MiniBatchOneClassSVM(epochs=2, warm_start=True, **common).fit(X).fit(X)
    np.testing.assert_array_equal(twice.coef_, once.coef_)
    np.testing.assert_array_equal(twice.offset_, once.offset_)


@parametrize_with_checks(
    [MiniBatchOneClassSVM(), MiniBatchOneClassSVM(batch_size=1)],
    expected_failed_checks=lambda estimator: SAMPLE_WEIGHT_CHECKS,
)
def test_passes_scikit_learn_checks(estimator, check):
    check(estimator)
