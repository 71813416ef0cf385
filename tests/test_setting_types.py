"""A setting given as any NumPy scalar trains as the plain Python number it holds.

Validation converts every setting (``fastgd._settings``); what reaches the
kernels, the schedule and the epoch loop must be that converted value, never
the user's object: a ``np.uint8`` epoch count wraps around in a loop bound, a
``np.float16`` learning rate is a type Numba cannot compile, and a
``np.longdouble`` one is not a type Numba knows at all.
"""

import numpy as np
import pytest

import fastgd
from fastgd._settings import DASK_FIT, ENTRY_POINTS, FIT, Float, Int, table

# The entry points that are functions returning a FitResult, not estimators.
FUNCTIONS = (FIT, DASK_FIT)

FLOAT_TYPES = (np.float16, np.float32, np.float64, np.longdouble)
INT_TYPES = (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64)
SMALL_SETTINGS = dict(epochs=3, batch_size=8)


def problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    return X, X @ np.array([1.0, -2.0, 0.5]) + 0.3, (X[:, 0] > 0).astype(int)


def train(entry, X, y_real, y_class, **settings):
    """The fitted coefficients of ``entry`` (fit or an estimator) with ``settings``."""
    settings = {"random_state": 0, **SMALL_SETTINGS, **settings}
    if entry in FUNCTIONS:
        return fit_function(entry)(X, y_real, **settings).coef
    if entry == "MiniBatchClassifier":
        return getattr(fastgd, entry)(**settings).fit(X, y_class).coef_
    return getattr(fastgd, entry)(**settings).fit(X, y_real).coef_


def fit_function(entry):
    if entry == DASK_FIT:
        from fastgd import dask

        return dask.fit
    return fastgd.fit


def numeric_cases():
    """(entry, name, value, scalar type) for every int and float setting's default."""
    for entry in ENTRY_POINTS:
        for name, row in table(entry).items():
            if isinstance(row.check, Int) and row.default is not None:
                kinds, value = INT_TYPES, SMALL_SETTINGS.get(name, row.default)
            elif isinstance(row.check, Float) and row.default is not None:
                kinds, value = FLOAT_TYPES, row.default
            else:
                continue
            for kind in kinds:
                if value != 0 and kind(value) == 0:
                    continue  # 1e-8 as a float16 is 0: another value, refused as such
                yield pytest.param(entry, name, value, kind,
                                   id=f"{entry}-{name}-{np.dtype(kind).name}")  # fmt: skip


@pytest.mark.parametrize("entry, name, value, kind", numeric_cases())
def test_every_numeric_setting_trains_as_its_python_value(entry, name, value, kind):
    X, y_real, y_class = problem()
    given = kind(value)
    plain = float(given) if isinstance(value, float) else int(given)
    expected = train(entry, X, y_real, y_class, **{name: plain})
    np.testing.assert_array_equal(train(entry, X, y_real, y_class, **{name: given}), expected,
                                  strict=True)  # fmt: skip


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_a_small_integer_type_epoch_count_runs_every_epoch(entry):
    X, y_real, y_class = problem()
    settings = dict(epochs=np.uint8(255), batch_size=np.uint8(30), lr=np.float16(0.01),
                    schedule="step", step_size=np.uint8(2), gamma=np.float16(0.9))  # fmt: skip
    if entry in FUNCTIONS:
        result = fit_function(entry)(X, y_real, **settings)
        assert result.n_epochs == 255 and len(result.loss_history) == 255
        return
    model = getattr(fastgd, entry)(tol=None, **settings)
    model.fit(X, y_class if entry == "MiniBatchClassifier" else y_real)
    assert model.n_iter_ == 255


@pytest.mark.parametrize("entry", [name for name in ENTRY_POINTS if name not in FUNCTIONS])
def test_the_step_schedule_counts_past_its_setting_type(entry):
    """``step_size=np.uint8(2)`` with 300 epochs: epoch // step_size passes 255."""
    X, y_real, y_class = problem()
    model = getattr(fastgd, entry)(epochs=300, batch_size=30, schedule="step", tol=None,
                                   step_size=np.uint8(2), random_state=0)  # fmt: skip
    model.fit(X, y_class if entry == "MiniBatchClassifier" else y_real)
    assert model.n_iter_ == 300
