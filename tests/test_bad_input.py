"""Bad input fails early, with the exception type and wording users search for.

Every message names the argument at fault, the value received and what is
allowed. Validation runs before any backend is touched, so each case is cheap
enough to check on every backend, through ``fastgd.fit`` and the estimators.
"""

import os
import re

import numpy as np
import pytest

import fastgd
from fastgd._validation import (
    SHUFFLE_MODES,
    check_n_threads,
    check_shuffle,
    usable_cpu_count,
)

from support import N_FEATURES, make_problem

X_OK, Y_OK = make_problem("squared_error", np.float64)
_, CODES_OK = make_problem("log_loss", np.float64)


def with_value(array, index, value):
    array = np.array(array, dtype=np.float64)
    array[index] = value
    return array


# (case id, fit arguments, exception type, pattern the message must match)
BAD_DATA = [
    ("X_1d", dict(X=X_OK[:, 0]), ValueError, "Expected a 2D array for X, got a 1D array"),
    ("X_3d", dict(X=X_OK[:, :, None]), ValueError, "Expected a 2D array for X, got a 3D array"),
    ("X_scalar", dict(X=3.0), TypeError, "X must be an array-like"),
    ("y_too_short", dict(y=Y_OK[:-1]), ValueError,
     "X and y have inconsistent numbers of samples: X has 45 rows, y has 44"),
    ("y_3d", dict(y=np.column_stack([Y_OK, Y_OK])[:, :, None]), ValueError,
     r"y must be 1-D of shape \(n_samples,\) or \(n_samples, n_outputs\); got shape \(45, 2, 1\)"),
    ("y_2d_classes", dict(y=np.column_stack([Y_OK, Y_OK]) > 0, loss="hinge"), ValueError,
     r"y must be 1-D of shape \(n_samples,\); got shape \(45, 2\) \(2-D y is for the "
     "regression losses\)"),
    ("zero_rows", dict(X=np.empty((0, 4)), y=np.empty(0)), ValueError,
     re.escape("Found array with 0 sample(s) (shape=(0, 4)) while a minimum of 1 is required")),
    ("zero_features", dict(X=np.empty((12, 0)), y=np.zeros(12)), ValueError,
     re.escape("Found array with 0 feature(s) (shape=(12, 0)) while a minimum of 1 is required")),
    ("nan_in_X", dict(X=with_value(X_OK, (3, 2), np.nan)), ValueError, "Input X contains NaN"),
    ("inf_in_X", dict(X=with_value(X_OK, (3, 2), -np.inf)), ValueError,
     "Input X contains infinity"),
    ("nan_in_float32_X", dict(X=with_value(X_OK, (44, 3), np.nan).astype(np.float32)), ValueError,
     "Input X contains NaN"),
    ("nan_in_y", dict(y=with_value(Y_OK, 0, np.nan)), ValueError, "Input y contains NaN"),
    ("inf_in_y", dict(y=with_value(Y_OK, 5, np.inf)), ValueError, "Input y contains infinity"),
    ("object_X", dict(X=X_OK.astype(object)), TypeError, "X must hold real numbers .* object"),
    ("complex_X", dict(X=X_OK.astype(complex)), TypeError, "X must hold real numbers .* complex"),
    ("bool_X", dict(X=X_OK > 0), TypeError, "X must hold real numbers .* bool"),
    ("string_X", dict(X=X_OK.astype(str)), TypeError, "X must hold real numbers .* string"),
    ("bytes_X", dict(X=X_OK.astype(bytes)), TypeError, "X must hold real numbers .* bytes"),
    ("string_y", dict(y=Y_OK.astype(str)), TypeError, "y must hold real numbers"),
    ("complex_y", dict(y=Y_OK.astype(complex)), TypeError,
     r"y must hold real numbers; got dtype complex \(complex128\)"),
    ("bool_y_for_regression", dict(y=Y_OK > 0), TypeError,
     r"y must hold real numbers; got dtype bool .* for loss='squared_error'"),
    ("non_integer_codes", dict(loss="log_loss", y=with_value(CODES_OK, 4, 0.5)), ValueError,
     "loss='log_loss' needs integer class codes in y; got non-integer values such as 0.5"),
    ("code_2_for_log_loss", dict(loss="log_loss", y=with_value(CODES_OK, 4, 2)), ValueError,
     "loss='log_loss' needs class codes in y within 0 or 1"),
    ("negative_code_for_hinge", dict(loss="hinge", y=with_value(CODES_OK, 4, -1)), ValueError,
     "loss='hinge' needs class codes in y within 0 or 1"),
    ("code_beyond_n_classes", dict(loss="multinomial", n_classes=2, y=with_value(CODES_OK, 4, 2)),
     ValueError, "loss='multinomial' needs class codes in y within 0..1"),
    ("one_class_multinomial", dict(loss="multinomial", y=np.zeros(45)), ValueError,
     "loss='multinomial' needs at least 2 classes"),
    ("one_class_2_multinomial", dict(loss="multinomial", y=np.full(45, 2)), ValueError,
     "loss='multinomial' needs at least 2 classes in y; got only class 2. Pass n_classes="),
    ("one_class_log_loss", dict(loss="log_loss", y=np.zeros(45)), ValueError,
     "loss='log_loss' needs at least 2 classes in y; got only class 0. Pass n_classes=2"),
    ("one_class_hinge", dict(loss="hinge", y=np.ones(45, dtype=bool)), ValueError,
     "loss='hinge' needs at least 2 classes in y; got only class 1"),
    ("non_integer_codes_for_multinomial", dict(loss="multinomial", y=with_value(CODES_OK, 0, 1.5)),
     ValueError, "loss='multinomial' needs integer class codes in y; got non-integer values "
     "such as 1.5"),
    # max(y) + 1 classes for multinomial: a stray code must not allocate 36 TiB.
    ("huge_class_code", dict(loss="multinomial", y=with_value(CODES_OK, 7, 10**12)), ValueError,
     re.escape("class code 1000000000000 (row 7) would mean 1000000000001 classes, more "
               "than the 45 rows of y")),
    ("huge_int_class_code", dict(loss="multinomial",
                                 y=with_value(CODES_OK, 9, 2**62).astype(np.int64)),
     ValueError, re.escape(f"class code {2**62} (row 9) would mean {2**62 + 1} classes")),
    ("class_code_equal_to_n_rows", dict(loss="multinomial", y=with_value(CODES_OK, 0, 45)),
     ValueError, re.escape("class code 45 (row 0) would mean 46 classes, more than the 45 rows")),
    ("n_classes_1", dict(loss="multinomial", n_classes=1, y=np.zeros(45)), ValueError,
     "n_classes"),
    ("n_classes_3_for_log_loss", dict(loss="log_loss", n_classes=3, y=CODES_OK), ValueError,
     "n_classes=3 does not fit loss='log_loss', a two-class loss .* pass n_classes=2 or None"),
    ("n_classes_for_regression", dict(n_classes=2), ValueError,
     "n_classes applies to the classification losses only; got n_classes=2 with "
     "loss='squared_error'"),
]

BAD_SETTINGS = [
    ("batch_size_0", dict(batch_size=0), ValueError, "batch_size must be an integer >= 1; got 0"),
    ("batch_size_negative", dict(batch_size=-3), ValueError, "batch_size must be an integer >= 1"),
    ("batch_size_2.5", dict(batch_size=2.5), TypeError, "batch_size must be an integer"),
    ("batch_size_True", dict(batch_size=True), TypeError, "batch_size must be an integer"),
    ("lr_0", dict(lr=0.0), ValueError, r"lr must be a finite number in \(0.0, inf\]; got 0.0"),
    ("lr_-1", dict(lr=-1), ValueError, "lr must be a finite number .* got -1"),
    ("lr_nan", dict(lr=float("nan")), ValueError, "lr must be a finite number .* got nan"),
    ("lr_inf", dict(lr=float("inf")), ValueError, "lr must be a finite number .* got inf"),
    ("lr_string", dict(lr="0.1"), TypeError, "lr must be a real number"),
    ("epochs_0", dict(epochs=0), ValueError, "epochs must be an integer >= 1; got 0"),
    ("epochs_2.0", dict(epochs=2.0), TypeError, "epochs must be an integer"),
    ("alpha_negative", dict(alpha=-0.1), ValueError, "alpha must be a finite number .* got -0.1"),
    ("l1_ratio_1.5", dict(l1_ratio=1.5), ValueError,
     r"l1_ratio must be a finite number in \[0.0, 1.0\]; got 1.5"),
    ("momentum_1", dict(momentum=1.0), ValueError,
     r"momentum must be a finite number in \[0.0, 1.0\)"),
    ("beta1_1", dict(beta1=1.0), ValueError, r"beta1 must be a finite number in \[0.0, 1.0\)"),
    ("beta2_1", dict(beta2=1.0), ValueError, r"beta2 must be a finite number in \[0.0, 1.0\)"),
    ("rho_1", dict(rho=1.0), ValueError, r"rho must be a finite number in \[0.0, 1.0\)"),
    ("decay_0", dict(decay=0.0), ValueError, "decay must be a finite number"),
    ("gamma_1.5", dict(gamma=1.5), ValueError, "gamma must be a finite number"),
    ("step_size_0", dict(step_size=0), ValueError, "step_size must be an integer >= 1"),
    ("eps_0", dict(eps=0.0), ValueError, "eps must be a finite number"),
    ("tol_negative", dict(tol=-1e-3), ValueError, "tol must be a finite number"),
    ("n_iter_no_change_0", dict(n_iter_no_change=0), ValueError, "n_iter_no_change must be"),
    ("callback_not_callable", dict(callback=3), TypeError, "callback must be callable or None"),
    ("epochs_negative", dict(epochs=-2), ValueError, "epochs must be an integer >= 1; got -2"),
    ("alpha_inf", dict(alpha=float("inf")), ValueError, "alpha must be a finite number .* got inf"),
    ("l1_ratio_negative", dict(l1_ratio=-0.1), ValueError,
     r"l1_ratio must be a finite number in \[0.0, 1.0\]; got -0.1"),
    ("momentum_negative", dict(momentum=-0.5), ValueError,
     r"momentum must be a finite number in \[0.0, 1.0\); got -0.5"),
    ("beta1_nan", dict(beta1=float("nan")), ValueError,
     r"beta1 must be a finite number in \[0.0, 1.0\); got nan"),
    ("beta2_negative", dict(beta2=-1e-3), ValueError,
     r"beta2 must be a finite number in \[0.0, 1.0\); got -0.001"),
    ("shuffle_1", dict(shuffle=1), TypeError,
     "shuffle must be one of True, False, 'batches'; got 1 of type int"),
    ("shuffle_None", dict(shuffle=None), TypeError,
     "shuffle must be one of True, False, 'batches'; got None"),
    ("fit_intercept_string", dict(fit_intercept="no"), TypeError,
     "fit_intercept must be True or False; got 'no' of type str"),
    ("drop_last_1", dict(drop_last=1), TypeError, "drop_last must be True or False; got 1"),
    ("random_state_negative", dict(random_state=-1), ValueError,
     "random_state must be None, a non-negative integer or a numpy.random.Generator; got -1"),
    ("random_state_float", dict(random_state=1.5), TypeError,
     "random_state must be None, a non-negative integer .* got 1.5"),
    ("random_state_True", dict(random_state=True), TypeError,
     "random_state must be None, a non-negative integer .* got True"),
]

UNKNOWN_OPTIONS = [
    ("loss", "squared_eror", "squared_error"),
    ("optimizer", "adma", "adam"),
    ("schedule", "exponental", "exponential"),
    ("penalty", "elasticnett", "elasticnet"),
    ("backend", "numbaa", "numba"),
    ("shuffle", "batchs", "batches"),
]


def fit_with(backend, arguments):
    arguments = dict(arguments)
    X = arguments.pop("X", X_OK)
    y = arguments.pop("y", Y_OK)
    return fastgd.fit(X, y, backend=backend, epochs=arguments.pop("epochs", 1), **arguments)


@pytest.mark.parametrize(
    "arguments, error, message",
    [case[1:] for case in BAD_DATA],
    ids=[case[0] for case in BAD_DATA],
)
def test_bad_data_is_rejected_with_a_clear_message(backend, arguments, error, message):
    with pytest.raises(error, match=message):
        fit_with(backend, arguments)


@pytest.mark.parametrize(
    "arguments, error, message",
    [case[1:] for case in BAD_SETTINGS],
    ids=[case[0] for case in BAD_SETTINGS],
)
def test_bad_settings_are_rejected_naming_the_argument(backend, arguments, error, message):
    with pytest.raises(error, match=message):
        fit_with(backend, arguments)


@pytest.mark.parametrize(
    "name, typo, suggestion", UNKNOWN_OPTIONS, ids=[case[0] for case in UNKNOWN_OPTIONS]
)
def test_unknown_options_suggest_the_closest_name(backend, name, typo, suggestion):
    arguments = {name: typo}
    if name != "backend":
        arguments["backend"] = backend
    with pytest.raises(ValueError) as raised:
        fastgd.fit(X_OK, Y_OK, epochs=1, **arguments)
    message = str(raised.value)
    assert message.startswith(f"{name}={typo!r} is not supported; expected one of ")
    assert f"Did you mean {suggestion!r}?" in message


@pytest.mark.parametrize("name", ["loss", "optimizer", "schedule", "penalty", "backend",
                                  "shuffle"])  # fmt: skip
def test_unknown_options_without_a_close_name_list_the_choices(name):
    with pytest.raises(ValueError, match=f"{name}='zzzzzz' is not supported") as raised:
        fastgd.fit(X_OK, Y_OK, epochs=1, **{name: "zzzzzz"})
    assert "Did you mean" not in str(raised.value)


CHOICES = {
    "loss": fastgd._config.LOSSES,
    "optimizer": fastgd._config.OPTIMIZERS,
    "schedule": fastgd._config.SCHEDULES,
    "penalty": fastgd._config.PENALTIES,
    "backend": ("numba", "cython", "numpy"),
    "shuffle": SHUFFLE_MODES,
}


@pytest.mark.parametrize("name", sorted(CHOICES))
def test_unknown_options_list_every_valid_name(name):
    with pytest.raises(ValueError) as raised:
        fastgd.fit(X_OK, Y_OK, epochs=1, **{name: "zzzzzz"})
    listed = str(raised.value).split("expected one of ", 1)[1]
    for choice in CHOICES[name]:
        assert repr(choice) in listed


@pytest.mark.parametrize(
    "arguments", [case[1] for case in BAD_SETTINGS], ids=[case[0] for case in BAD_SETTINGS]
)
def test_every_settings_message_names_the_argument_and_the_value(arguments):
    ((name, value),) = arguments.items()
    with pytest.raises((ValueError, TypeError)) as raised:
        fit_with("numpy", arguments)
    message = str(raised.value)
    assert message.startswith(name)
    assert f"got {value!r}" in message or f"got {float(value)!r}" in message


def test_integer_X_is_converted_to_float64_as_documented(backend):
    as_int = np.round(4 * X_OK).astype(np.int64)
    assert fastgd.fit(as_int, Y_OK, epochs=1, backend=backend).coef.dtype == np.float64
    assert "integer X (and float16 or longdouble) is converted to a float64" in " ".join(
        fastgd.fit.__doc__.split()
    )
    with pytest.raises(ValueError, match=(
        "allow_copy=False, but X would have to be copied: it has dtype int64 and "
        r"training needs float64. Pass np.ascontiguousarray\(X, dtype=np.float64\)")):
        fastgd.fit(as_int, Y_OK, epochs=1, backend=backend, allow_copy=False)


def test_non_finite_values_are_located(backend):
    with pytest.raises(ValueError, match=re.escape(
            "Input X contains NaN (the first at row 3, column 2). Remove or impute")):
        fit_with(backend, dict(X=with_value(X_OK, (3, 2), np.nan)))
    with pytest.raises(ValueError, match=re.escape("Input y contains infinity (the first at index 5)")):
        fit_with(backend, dict(y=with_value(Y_OK, 5, -np.inf)))
    # Far down a large X: past the first block the check scans.
    X = np.zeros((200_000, 2))
    X[150_001, 1] = np.inf
    with pytest.raises(ValueError, match=re.escape("(the first at row 150001, column 1)")):
        fastgd.fit(X, np.zeros(200_000), epochs=1, backend=backend)


def test_bool_y_holds_class_codes_for_the_classification_losses(backend):
    as_bool = CODES_OK.astype(bool)
    for loss in ("log_loss", "hinge"):
        result = fastgd.fit(X_OK, as_bool, loss=loss, epochs=2, random_state=0, backend=backend)
        expected = fastgd.fit(X_OK, CODES_OK, loss=loss, epochs=2, random_state=0,
                              backend=backend)  # fmt: skip
        np.testing.assert_array_equal(result.coef, expected.coef)


def test_n_classes_lets_a_chunk_of_y_show_one_class(backend):
    for loss in ("log_loss", "hinge"):
        result = fastgd.fit(X_OK, np.zeros(45), loss=loss, n_classes=2, epochs=1,
                            backend=backend)  # fmt: skip
        assert result.coef.shape == (N_FEATURES,)


# --- validation functions of settings that fit does not take yet -------------------


@pytest.mark.parametrize("value, expected", [(True, True), (False, False),
                                             (np.bool_(True), True), ("batches", "batches")])  # fmt: skip
def test_check_shuffle_accepts_the_three_modes(value, expected):
    assert check_shuffle(value) == expected
    assert type(check_shuffle(value)) is type(expected)


def test_check_shuffle_suggests_the_closest_mode():
    with pytest.raises(ValueError, match=re.escape(
            "shuffle='batch' is not supported; expected one of True, False, 'batches'. "
            "Did you mean 'batches'?")):
        check_shuffle("batch")
    with pytest.raises(ValueError, match="expected one of True, False, 'batches'.$"):
        check_shuffle("rows")


@pytest.mark.parametrize("value", [0, 1, None, 1.0, ["batches"]], ids=repr)
def test_check_shuffle_rejects_other_types(value):
    with pytest.raises(TypeError, match=re.escape(
            f"shuffle must be one of True, False, 'batches'; got {value!r} of type "
            f"{type(value).__name__}.")):
        check_shuffle(value)


@pytest.mark.parametrize("value", [1, 2, 7, np.int64(3)], ids=repr)
def test_check_n_threads_returns_a_positive_count(value):
    assert check_n_threads(value) == value
    assert type(check_n_threads(value)) is int


def test_check_n_threads_minus_one_is_every_usable_cpu():
    count = check_n_threads(-1)
    assert count == usable_cpu_count() >= 1
    if hasattr(os, "sched_getaffinity"):
        assert count == len(os.sched_getaffinity(0))
    else:
        assert count == os.cpu_count()


@pytest.mark.parametrize("value", [0, -2, -100])
def test_check_n_threads_rejects_zero_and_other_negatives(value):
    with pytest.raises(ValueError, match=re.escape(
            f"n_threads must be an integer >= 1, or -1 for every CPU; got {value}.")):
        check_n_threads(value)


@pytest.mark.parametrize("value", [1.5, 2.0, True, "2", None], ids=repr)
def test_check_n_threads_rejects_non_integers(value):
    with pytest.raises(TypeError, match=re.escape(
            f"n_threads must be an integer >= 1, or -1 for every CPU; got {value!r} of type")):
        check_n_threads(value)


def test_bad_input_never_reaches_the_backend(monkeypatch, backend):
    from fastgd.backends import get_backend

    def fail(*args):
        raise AssertionError("the backend ran on invalid input")

    monkeypatch.setattr(get_backend(backend), "run_epoch", fail)
    for case in BAD_DATA + BAD_SETTINGS:
        with pytest.raises(case[2]):
            fit_with(backend, case[1])


@pytest.mark.parametrize("loss", ["squared_error", "log_loss", "multinomial"])
def test_predicting_with_the_wrong_number_of_features_is_rejected(backend, loss):
    X, y = make_problem(loss, np.float64)
    result = fastgd.fit(X, y, loss=loss, epochs=1, backend=backend)
    message = re.escape(
        f"X has 3 features, but this model is expecting {N_FEATURES} features as input."
    )
    methods = [result.predict, result.decision_function]
    if loss != "squared_error":
        methods.append(result.predict_proba)
    for method in methods:
        with pytest.raises(ValueError, match=message):
            method(X[:, :3])


def test_predicting_nan_is_rejected(backend):
    result = fastgd.fit(X_OK, Y_OK, epochs=1, backend=backend)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        result.predict(with_value(X_OK, (0, 0), np.nan))


# --- the estimators: the same rules, through scikit-learn's API -----------------------


def estimator_fit(backend, arguments):
    sklearn = pytest.importorskip("sklearn")  # noqa: F841
    arguments = dict(arguments)
    X = arguments.pop("X", X_OK)
    y = arguments.pop("y", Y_OK)
    model = fastgd.MiniBatchRegressor(backend=backend, epochs=arguments.pop("epochs", 1),
                                      **arguments)  # fmt: skip
    return model.fit(X, y)


@pytest.mark.parametrize(
    "arguments, error, message",
    [case[1:] for case in BAD_SETTINGS],
    ids=[case[0] for case in BAD_SETTINGS],
)
def test_estimators_reject_bad_settings_with_the_same_message(backend, arguments, error,
                                                              message):  # fmt: skip
    with pytest.raises(error, match=message):
        estimator_fit(backend, arguments)


# scikit-learn's validate_data runs first in the estimators, with its own
# (searchable) wording; fastgd's checks follow.
ESTIMATOR_BAD_DATA = [
    ("X_1d", dict(X=X_OK[:, 0]), ValueError, "Expected 2D array, got 1D array"),
    ("y_too_short", dict(y=Y_OK[:-1]), ValueError, "inconsistent numbers of samples"),
    ("zero_rows", dict(X=np.empty((0, 4)), y=np.empty(0)), ValueError, "0 sample"),
    ("zero_features", dict(X=np.empty((12, 0)), y=np.zeros(12)), ValueError,
     re.escape("0 feature(s) (shape=(12, 0)) while a minimum of 1 is required")),
    ("nan_in_X", dict(X=with_value(X_OK, (3, 2), np.nan)), ValueError,
     re.escape("Input X contains NaN (the first at row 3, column 2)")),
    ("inf_in_X", dict(X=with_value(X_OK, (3, 2), np.inf)), ValueError,
     "Input X contains infinity"),
    ("nan_in_y", dict(y=with_value(Y_OK, 0, np.nan)), ValueError, "Input y contains NaN"),
    ("complex_X", dict(X=X_OK.astype(complex)), ValueError, "Complex data not supported"),
    ("string_X", dict(X=np.full((45, 4), "a", dtype=object)), ValueError, "could not convert"),
]


@pytest.mark.parametrize(
    "arguments, error, message",
    [case[1:] for case in ESTIMATOR_BAD_DATA],
    ids=[case[0] for case in ESTIMATOR_BAD_DATA],
)
def test_estimators_reject_bad_data(backend, arguments, error, message):
    with pytest.raises(error, match=message):
        estimator_fit(backend, arguments)


def test_estimators_reject_one_class_and_unknown_predict_shapes(backend):
    pytest.importorskip("sklearn")
    from sklearn.exceptions import NotFittedError

    classifier = fastgd.MiniBatchClassifier(backend=backend, epochs=1)
    with pytest.raises(NotFittedError):
        classifier.predict(X_OK)
    with pytest.raises(ValueError, match=re.escape(
            "A classifier needs samples of at least 2 classes; got 1 class in y: ['a']")):
        classifier.fit(X_OK, np.full(45, "a"))
    classifier.fit(X_OK, CODES_OK)
    with pytest.raises(ValueError, match=(
            f"X has 3 features, but MiniBatchClassifier is expecting {N_FEATURES} features")):
        classifier.predict(X_OK[:, :3])


# --- values that fit their own dtype but not the one training casts them to -------------

def _layouts(X):
    sparse = pytest.importorskip("scipy.sparse")
    return {"dense": X, "csr": sparse.csr_array(X)}


def _fit_by(entry, backend, X, y, loss="squared_error"):
    if entry == "fit":
        return fastgd.fit(X, y, loss=loss, backend=backend, epochs=1)
    pytest.importorskip("sklearn")
    if entry == "regressor":
        return fastgd.MiniBatchRegressor(backend=backend, epochs=1).fit(X, y)
    return fastgd.MiniBatchClassifier(backend=backend, epochs=1).fit(X, y)


@pytest.mark.parametrize("layout", ["dense", "csr"])
@pytest.mark.parametrize("entry", ["fit", "regressor"])
def test_y_beyond_float32_is_named_as_an_overflow_of_the_cast(backend, entry, layout):
    X = _layouts(X_OK.astype(np.float32))[layout]
    y = with_value(Y_OK, 4, 1e39)
    with pytest.raises(ValueError, match=re.escape(
            "Input y holds values that do not fit float32: 1e+39 (the first, at index 4) "
            "overflows float32")):
        _fit_by(entry, backend, X, y)


@pytest.mark.parametrize("layout", ["dense", "csr"])
@pytest.mark.parametrize("entry", ["fit", "regressor", "classifier"])
def test_longdouble_X_beyond_float64_is_named_as_an_overflow_of_the_cast(backend, entry, layout):
    if np.finfo(np.longdouble).max <= np.finfo(np.float64).max:
        pytest.skip("longdouble is float64 here")
    X = X_OK.astype(np.longdouble)
    X[2, 1] = np.longdouble(1e300) * np.longdouble(1e100)
    X = _layouts(X)[layout]
    with pytest.raises(ValueError, match=re.escape(
            "Input X holds values that do not fit float64: 1.0000000000000000684e+400 "
            "(the first, at row 2, column 1) overflows float64")):
        _fit_by(entry, backend, X, Y_OK if entry != "classifier" else CODES_OK, "squared_error")


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_longdouble_infinity_is_still_infinity(backend, layout):
    X = _layouts(with_value(X_OK, (2, 1), np.inf).astype(np.longdouble))[layout]
    with pytest.raises(ValueError, match=re.escape("Input X contains infinity (the first at "
                                                   "row 2, column 1)")):
        _fit_by("fit", backend, X, Y_OK)


@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_float64_X_beyond_a_float32_model_is_named_as_an_overflow(backend, layout):
    pytest.importorskip("sklearn")
    model = fastgd.MiniBatchRegressor(backend=backend, epochs=1).fit(
        X_OK.astype(np.float32), Y_OK)
    X = _layouts(with_value(X_OK, (5, 0), -1e39))[layout]
    with pytest.raises(ValueError, match=re.escape(
            "Input X holds values that do not fit float32: -1e+39 (the first, at row 5, "
            "column 0) overflows float32")):
        model.partial_fit(X, Y_OK)


# --- lists and DataFrames: the message names X and the row or column at fault ------------

ENTRIES = ["fit", "regressor", "classifier"]


def _targets(entry, n):
    return CODES_OK[:n] if entry == "classifier" else Y_OK[:n]


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_ragged_list_is_refused_naming_X_and_the_rows(backend, entry):
    X = X_OK[:6].tolist()
    X[1] = X[1][:1]
    X[4] = X[4][:2]
    with pytest.raises(ValueError, match=re.escape(
            "X must be of shape (n_samples, n_features), but it is a ragged nested "
            f"sequence: row 0 has {N_FEATURES} values but row 1 has 1 value (2 of the 6 rows "
            "differ from row 0)")):
        _fit_by(entry, backend, X, _targets(entry, 6))


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_row_that_is_a_number_is_named(backend, entry):
    X = X_OK[:6].tolist()
    X[3] = 1.0
    with pytest.raises(ValueError, match="ragged nested sequence: .* but row 3 has a single "
                                         "number, not a sequence"):
        _fit_by(entry, backend, X, _targets(entry, 6))


def _frame(**columns):
    pd = pytest.importorskip("pandas")
    return pd.DataFrame({"a": X_OK[:, 0], "b": X_OK[:, 1], **columns})


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_string_column_is_named(backend, entry):
    X = _frame(u=["u"] * 45)
    error = TypeError if entry == "fit" else ValueError
    with pytest.raises(error, match=re.escape("column 'u' (column 2) of the DataFrame X has "
                                              "dtype ") + ".*: could not convert string to "
                                              "float: 'u'"):
        _fit_by(entry, backend, X, _targets(entry, 45))


def test_nullable_integer_columns_train_as_their_float64_values(backend):
    pd = pytest.importorskip("pandas")
    X = _frame(n=pd.array(np.arange(45) % 5, dtype="Int64"),
               f=pd.array(X_OK[:, 2], dtype="Float64"))  # fmt: skip
    plain = X.to_numpy(dtype=np.float64)
    for entry in ENTRIES:
        loss = "log_loss" if entry == "classifier" else "squared_error"
        y = _targets(entry, 45)
        if entry == "fit":
            got = fastgd.fit(X, y, loss=loss, backend=backend, epochs=2, random_state=0)
            want = fastgd.fit(plain, y, loss=loss, backend=backend, epochs=2, random_state=0)
            np.testing.assert_array_equal(got.coef, want.coef)
            continue
        pytest.importorskip("sklearn")
        make = fastgd.MiniBatchRegressor if entry == "regressor" else fastgd.MiniBatchClassifier
        got = make(backend=backend, epochs=2, random_state=0).fit(X, y)
        want = make(backend=backend, epochs=2, random_state=0).fit(plain, y)
        np.testing.assert_allclose(got.coef_, want.coef_, rtol=1e-4, atol=1e-6)
        assert got.predict(X).shape == (45,)


@pytest.mark.parametrize("entry", ENTRIES)
def test_pd_NA_in_a_nullable_column_is_refused_as_NaN_naming_the_column(backend, entry):
    pd = pytest.importorskip("pandas")
    n = pd.array(np.arange(45) % 5, dtype="Int64")
    n[3] = pd.NA
    with pytest.raises(ValueError, match=re.escape(
            "Input X contains NaN (the first at row 3, column 2 ('n'))")):
        _fit_by(entry, backend, _frame(n=n), _targets(entry, 45))


@pytest.mark.parametrize("entry", ENTRIES)
def test_NaN_in_a_DataFrame_names_the_column(backend, entry):
    X = _frame(c=with_value(X_OK[:, 2], 7, np.nan))
    with pytest.raises(ValueError, match=re.escape(
            "Input X contains NaN (the first at row 7, column 2 ('c'))")):
        _fit_by(entry, backend, X, _targets(entry, 45))
