"""Every check of a user's array or setting, written once.

``fastgd.fit``, the estimators and the bench call these functions; kernels
assume their output and never raise. Messages follow scikit-learn's wording
where users already search for it ("Input X contains NaN", ...) and always
name the argument, the value received and what is allowed.
"""

import difflib
import numbers

import numpy as np

from ._config import (
    CLASSIFICATION_LOSSES,
    LOSSES,
    OPTIMIZERS,
    PENALTIES,
    SCHEDULES,
    KernelConfig,
    penalty_split,
)

FLOAT_DTYPES = (np.float32, np.float64)


def check_option(name, value, allowed):
    """Return ``value`` if it is one of ``allowed``, else raise with a suggestion."""
    if any(value is option or value == option for option in allowed):
        return value
    names = ", ".join(repr(option) for option in allowed)
    message = f"{name}={value!r} is not supported; expected one of {names}."
    if isinstance(value, str):
        close = difflib.get_close_matches(
            value, [option for option in allowed if isinstance(option, str)], n=1
        )
        if close:
            message += f" Did you mean {close[0]!r}?"
    raise ValueError(message)


def check_int(name, value, minimum, maximum=None):
    """Return ``value`` as an int in ``[minimum, maximum]``, else raise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be an integer >= {minimum}; got {value!r} "
            f"of type {type(value).__name__}."
        )
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{upper}; got {value!r}.")
    return int(value)


def check_float(name, value, *, low=None, high=None, low_open=False, high_open=False):
    """Return ``value`` as a finite float inside the given interval, else raise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number; got {value!r} of type {type(value).__name__}."
        )
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not np.isfinite(value) or too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        lo = "-inf" if low is None else repr(low)
        hi = "inf" if high is None else repr(high)
        raise ValueError(
            f"{name} must be a finite number in {left}{lo}, {hi}{right}; got {value!r}."
        )
    return value


def check_callback(callback):
    """Return ``callback`` if it is callable or None, else raise."""
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None; got {callback!r}.")
    return callback


def check_class_count(classes):
    """Return ``classes`` if it holds at least two labels, else raise.

    A classifier cannot learn a decision from one class; the message says
    "class", which is what scikit-learn's estimator checks look for.
    """
    if len(classes) < 2:
        raise ValueError(
            f"A classifier needs samples of at least 2 classes; got {len(classes)} "
            f"class: {list(classes)!r}."
        )
    return classes


def check_validation_split(n_validation, n_samples, validation_fraction):
    """Raise unless a hold-out of ``n_validation`` rows leaves both sides non-empty."""
    if n_validation < 1 or n_validation >= n_samples:
        raise ValueError(
            "early_stopping needs at least 1 validation row and 1 training row; "
            f"validation_fraction={validation_fraction!r} of n_samples={n_samples} "
            f"gives {n_validation} validation row(s). Use more rows or another "
            "validation_fraction, or set early_stopping=False."
        )


def _assert_all_finite(a, name):
    # One pass and no n-sized temporary: a sum is finite exactly when every
    # term is, unless it overflowed, which the exact check below tells apart.
    if np.isfinite(np.sum(a, dtype=np.float64)):
        return
    for start in range(0, a.shape[0], 65536):
        block = a[start : start + 65536]
        if np.isnan(block).any():
            raise ValueError(f"Input {name} contains NaN.")
        if not np.isfinite(block).all():
            raise ValueError(f"Input {name} contains infinity.")


def check_X(X, *, dtype=None):
    """Return X as a C-contiguous float32 or float64 2-D array.

    A C-contiguous float32 or float64 array is returned as it is (no copy).
    Integer input is converted to float64 and anything else that is not
    C-contiguous is copied once to C order, keeping its float dtype. ``dtype``
    forces the float dtype (used to predict with a model's own dtype).
    """
    if not hasattr(X, "__array__") and not isinstance(X, (list, tuple)):
        raise TypeError(f"X must be an array-like of numbers; got {type(X).__name__}.")
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2D array for X, got a {X.ndim}D array of shape {X.shape}. "
            "Reshape your data with X.reshape(-1, 1) for a single feature "
            "or X.reshape(1, -1) for a single sample."
        )
    kind = X.dtype.kind
    if kind not in "fiu":
        what = {"b": "bool", "c": "complex", "O": "object", "U": "string", "S": "bytes"}
        raise TypeError(
            f"X must hold real numbers (float32 or float64); got dtype "
            f"{what.get(kind, str(X.dtype))} ({X.dtype})."
        )
    if X.shape[0] < 1:
        raise ValueError(
            f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 "
            "is required."
        )
    if X.shape[1] < 1:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 "
            "is required."
        )
    if dtype is None:
        dtype = X.dtype if X.dtype in FLOAT_DTYPES else np.float64
    X = np.ascontiguousarray(X, dtype=dtype)
    _assert_all_finite(X, "X")
    return X


def check_y(y, n_samples, loss, dtype, n_classes=None):
    """Return ``(y, n_outputs)``: y as a contiguous array of X's dtype.

    For the classification losses y must hold class codes: 0/1 for log_loss
    and hinge, 0..n_classes-1 for multinomial (n_classes defaults to
    ``max(y) + 1``).
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D of shape (n_samples,); got shape {y.shape}.")
    if y.shape[0] != n_samples:
        raise ValueError(
            f"X and y have inconsistent numbers of samples: X has {n_samples} rows, "
            f"y has {y.shape[0]}."
        )
    if y.dtype.kind not in "fiu":
        raise TypeError(f"y must hold real numbers; got dtype {y.dtype}.")
    _assert_all_finite(y, "y")
    n_outputs = 1
    if loss in CLASSIFICATION_LOSSES:
        if np.any(y != np.round(y)):
            raise ValueError(
                f"loss={loss!r} needs integer class codes in y; got non-integer values "
                "such as " + repr(float(y[y != np.round(y)][0])) + "."
            )
        if loss == "multinomial":
            top = int(y.max()) + 1
            n_outputs = top if n_classes is None else check_int("n_classes", n_classes, 2)
            allowed = f"0..{n_outputs - 1}"
        else:
            n_outputs, allowed = 1, "0 or 1"
        high = n_outputs - 1 if n_outputs > 1 else 1
        if y.min() < 0 or y.max() > high:
            raise ValueError(
                f"loss={loss!r} needs class codes in y within {allowed}; "
                f"got values from {y.min()!r} to {y.max()!r}."
            )
        if n_outputs < 2 and loss == "multinomial":
            raise ValueError(
                "loss='multinomial' needs at least 2 classes; y holds only class 0."
            )
    return np.ascontiguousarray(y, dtype=dtype), n_outputs


def check_fit_settings(
    *,
    loss,
    optimizer,
    lr,
    schedule,
    batch_size,
    n_samples,
    epochs,
    penalty,
    alpha,
    l1_ratio,
    fit_intercept,
    drop_last,
    tol,
    n_iter_no_change,
    epsilon,
    power_t,
    decay,
    step_size,
    gamma,
    momentum,
    beta1,
    beta2,
    eps,
    rho,
    weight_decay,
):
    """Check every training setting; return the kernels' ``KernelConfig``."""
    check_option("loss", loss, LOSSES)
    check_option("optimizer", optimizer, OPTIMIZERS)
    check_option("schedule", schedule, SCHEDULES)
    check_option("penalty", penalty, PENALTIES)
    check_float("lr", lr, low=0.0, low_open=True)
    if batch_size is None:
        batch_size = n_samples
    batch_size = min(check_int("batch_size", batch_size, 1), n_samples)
    check_int("epochs", epochs, 1)
    check_float("alpha", alpha, low=0.0)
    l1_ratio = check_float("l1_ratio", l1_ratio, low=0.0, high=1.0)
    if tol is not None:
        check_float("tol", tol, low=0.0)
    check_int("n_iter_no_change", n_iter_no_change, 1)
    check_float("epsilon", epsilon, low=0.0)
    check_float("power_t", power_t, low=0.0)
    check_float("decay", decay, low=0.0, high=1.0, low_open=True)
    check_int("step_size", step_size, 1)
    check_float("gamma", gamma, low=0.0, high=1.0, low_open=True)
    for name, value in (("momentum", momentum), ("beta1", beta1), ("beta2", beta2)):
        check_float(name, value, low=0.0, high=1.0, high_open=True)
    check_float("rho", rho, low=0.0, high=1.0, high_open=True)
    check_float("eps", eps, low=0.0, low_open=True)
    check_float("weight_decay", weight_decay, low=0.0)
    l2, l1 = penalty_split(penalty, alpha, l1_ratio)
    return KernelConfig(
        loss=LOSSES.index(loss),
        optimizer=OPTIMIZERS.index(optimizer),
        batch_size=batch_size,
        drop_last=int(bool(drop_last)),
        fit_intercept=int(bool(fit_intercept)),
        l2=l2,
        l1=l1,
        epsilon=float(epsilon),
        power_t=float(power_t) if schedule == "invscaling" else 0.0,
        momentum=float(momentum),
        beta1=float(beta1),
        beta2=float(beta2),
        eps=float(eps),
        rho=float(rho),
        weight_decay=float(weight_decay),
    )
