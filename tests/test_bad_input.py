"""Bad input fails early, with the exception type and wording users search for.

Every message names the argument at fault. Validation runs before any backend
is touched, so each case is cheap enough to check on every backend.
"""

import re

import numpy as np
import pytest

import fastgd

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
    ("y_2d", dict(y=np.column_stack([Y_OK, Y_OK])), ValueError,
     r"y must be 1-D .* got shape \(45, 2\)"),
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
    ("string_y", dict(y=Y_OK.astype(str)), TypeError, "y must hold real numbers"),
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
    ("n_classes_1", dict(loss="multinomial", n_classes=1, y=np.zeros(45)), ValueError,
     "n_classes"),
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
]

UNKNOWN_OPTIONS = [
    ("loss", "squared_eror", "squared_error"),
    ("optimizer", "adma", "adam"),
    ("schedule", "exponental", "exponential"),
    ("penalty", "elasticnett", "elasticnet"),
    ("backend", "numbaa", "numba"),
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


@pytest.mark.parametrize("name", ["loss", "optimizer", "schedule", "penalty", "backend"])
def test_unknown_options_without_a_close_name_list_the_choices(name):
    with pytest.raises(ValueError, match=f"{name}='zzzzzz' is not supported") as raised:
        fastgd.fit(X_OK, Y_OK, epochs=1, **{name: "zzzzzz"})
    assert "Did you mean" not in str(raised.value)


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
