"""No hidden copies, no silent changes: inputs are read, never written, copied at most once.

A C-contiguous float32/float64 X (read-only and ``np.memmap`` included)
reaches the kernels as it is, and every backend's kernel gives the same bits
from it as from a writable copy (and from an int64 row order as from an
int32 one); anything else is converted once by the documented rule, and
``allow_copy=False`` refuses that conversion instead.
"""

import hashlib
import re

import numpy as np
import pytest

import fastgd
from fastgd._engine import row_order_dtype
from fastgd.backends import get_backend

from support import (
    N_CLASSES,
    assert_same_fit,
    epoch_from_zero,
    kernel_inputs,
    make_problem,
    spy_on_run_epoch,
)

LOSSES = ["squared_error", "log_loss", "multinomial", "hinge"]
SETTINGS = dict(epochs=2, batch_size=7, random_state=0)


def digest(array):
    """Contents, dtype, shape, layout and writeability of an array, as one string."""
    array = np.asarray(array)
    flags = (array.flags.c_contiguous, array.flags.f_contiguous, array.flags.writeable)
    return (hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
            + f"{array.dtype}{array.shape}{array.strides}{flags}")  # fmt: skip


def inputs(loss, dtype=np.float64):
    X, y = make_problem(loss, dtype)
    return {
        "c": (X, y),
        "fortran": (np.asfortranarray(X), y),
        "int": (np.round(4 * X).astype(np.int32), y),
        "float32_y": (X, y.astype(np.float32)),
        "strided": (np.repeat(X, 2, axis=1)[:, ::2], y[:, None]),
    }


def read_only(X, y, tmp_path, kind):
    if kind == "read_only":
        X, y = X.copy(), y.copy()
        X.setflags(write=False)
        y.setflags(write=False)
        return X, y
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    X, y = np.load(tmp_path / "X.npy", mmap_mode="r"), np.load(tmp_path / "y.npy", mmap_mode="r")
    assert isinstance(X, np.memmap) and not X.flags.writeable
    return X, y


# --- inputs are never modified --------------------------------------------------------


@pytest.mark.parametrize("loss", LOSSES)
def test_fit_never_modifies_its_inputs(backend, loss):
    for layout, (X, y) in inputs(loss).items():
        before = digest(X), digest(y)
        result = fastgd.fit(X, y, loss=loss, backend=backend, **SETTINGS)
        result.predict(X)
        assert (digest(X), digest(y)) == before, layout


def test_estimators_never_modify_their_inputs(backend):
    pytest.importorskip("sklearn")
    for Model, loss in [(fastgd.MiniBatchRegressor, "squared_error"),
                        (fastgd.MiniBatchClassifier, "multinomial")]:  # fmt: skip
        for layout, (X, y) in inputs(loss).items():
            y = y.reshape(-1)  # scikit-learn warns about a column
            before = digest(X), digest(y)
            model = Model(backend=backend, early_stopping=True, **SETTINGS).fit(X, y)
            model.partial_fit(X, y)
            model.predict(X)
            assert (digest(X), digest(y)) == before, (Model.__name__, layout)


# --- read-only arrays and np.memmap -------------------------------------------------------


@pytest.mark.parametrize("kind", ["read_only", "memmap"])
@pytest.mark.parametrize("loss", LOSSES)
def test_read_only_and_memmapped_inputs_train_like_writable_ones(backend, dtype, loss, kind,
                                                                 tmp_path):  # fmt: skip
    X, y = make_problem(loss, dtype)
    y = y.astype(dtype)
    X_ro, y_ro = read_only(X, y, tmp_path, kind)
    n_classes = N_CLASSES if loss == "multinomial" else None
    settings = dict(loss=loss, backend=backend, n_classes=n_classes, **SETTINGS)
    result = fastgd.fit(X_ro, y_ro, allow_copy=False, **settings)
    expected = fastgd.fit(X, y, **settings)
    np.testing.assert_array_equal(result.coef, expected.coef, strict=True)
    assert result.loss_history == expected.loss_history
    assert_same_fit(result, expected, 0.0)  # the intercept and the counters too
    np.testing.assert_array_equal(result.predict(X_ro), expected.predict(X))


@pytest.mark.parametrize("kind", ["read_only", "memmap"])
def test_estimators_accept_read_only_and_memmapped_inputs(backend, kind, tmp_path):
    pytest.importorskip("sklearn")
    for Model, loss in [(fastgd.MiniBatchRegressor, "squared_error"),
                        (fastgd.MiniBatchClassifier, "log_loss")]:  # fmt: skip
        X, y = make_problem(loss, np.float64)
        X_ro, y_ro = read_only(X, y, tmp_path, kind)
        model = Model(backend=backend, allow_copy=False, **SETTINGS).fit(X_ro, y_ro)
        model.partial_fit(X_ro, y_ro)
        expected = Model(backend=backend, **SETTINGS).fit(X, y)
        expected.partial_fit(X, y)
        np.testing.assert_array_equal(model.coef_, expected.coef_, strict=True)
        np.testing.assert_array_equal(model.predict(X_ro), expected.predict(X))


@pytest.mark.parametrize("kind", ["read_only", "memmap"])
def test_kernels_use_read_only_and_memmapped_arrays_as_they_are(backend, dtype, kind, tmp_path):
    # run_epoch itself, with a read-only row order too (the engine's is its own).
    X, y, order, cfg = kernel_inputs(dtype)
    X_ro, y_ro = read_only(X, y, tmp_path, kind)
    order.flags.writeable = False
    kernels = get_backend(backend)
    P, state, returned = epoch_from_zero(kernels, X_ro, y_ro, order, cfg)
    P_rw, state_rw, returned_rw = epoch_from_zero(kernels, X, y, order.copy(), cfg)
    np.testing.assert_array_equal(P, P_rw)
    np.testing.assert_array_equal(state, state_rw)
    assert returned == returned_rw


def test_int64_row_order_gives_the_int32_result(backend, dtype):
    # The engine passes int64 orders only beyond 2**31 rows; every kernel
    # takes both index dtypes, and they must walk the same rows.
    assert row_order_dtype(2**31) == np.int64
    X, y, order, cfg = kernel_inputs(dtype)
    kernels = get_backend(backend)
    P32, state32, returned32 = epoch_from_zero(kernels, X, y, order, cfg)
    P64, state64, returned64 = epoch_from_zero(kernels, X, y, order.astype(np.int64), cfg)
    np.testing.assert_array_equal(P64, P32)
    np.testing.assert_array_equal(state64, state32)
    assert returned64 == returned32


# --- no copy of a C-contiguous float X -----------------------------------------------------


@pytest.mark.parametrize("kind", ["plain", "read_only", "memmap"])
def test_a_c_contiguous_float_X_reaches_the_kernel_without_a_copy(monkeypatch, backend, dtype,
                                                                  kind, tmp_path):  # fmt: skip
    X, y = make_problem("squared_error", dtype)
    y = y.astype(dtype)
    if kind != "plain":
        X, y = read_only(X, y, tmp_path, kind)
    calls = spy_on_run_epoch(monkeypatch, backend)
    fastgd.fit(X, y, backend=backend, **SETTINGS)
    assert len(calls) == 2
    for call in calls:
        # The very buffer: same address, same layout.
        assert call["X"].__array_interface__["data"] == X.__array_interface__["data"]
        assert call["X"].strides == X.strides
        assert np.shares_memory(call["y"], y)


def test_estimators_pass_a_c_contiguous_float_X_without_a_copy(monkeypatch, backend, dtype):
    pytest.importorskip("sklearn")
    X, y = make_problem("squared_error", dtype)
    calls = spy_on_run_epoch(monkeypatch, backend)
    fastgd.MiniBatchRegressor(backend=backend, **SETTINGS).fit(X, y)
    fastgd.MiniBatchClassifier(backend=backend, **SETTINGS).fit(X, y > 0)
    assert len(calls) == 4
    assert all(np.shares_memory(call["X"], X) for call in calls)


def test_other_layouts_are_copied_once_not_once_per_epoch(monkeypatch, backend):
    for layout, (X, y) in inputs("squared_error").items():
        calls = spy_on_run_epoch(monkeypatch, backend)
        fastgd.fit(X, y, backend=backend, **SETTINGS)
        assert calls[0]["X"] is calls[1]["X"], layout
        assert calls[0]["y"] is calls[1]["y"], layout
        monkeypatch.undo()


# --- allow_copy=False ---------------------------------------------------------------------

REFUSED = [
    ("int_X", lambda X, y: (np.round(X).astype(np.int64), y),
     "X would have to be copied: it has dtype int64 and training needs float64"),
    ("float16_X", lambda X, y: (X.astype(np.float16), y),
     "X would have to be copied: it has dtype float16 and training needs float64"),
    ("fortran_X", lambda X, y: (np.asfortranarray(X), y),
     "X would have to be copied: it is Fortran-ordered, not C-contiguous"),
    ("strided_X", lambda X, y: (np.repeat(X, 2, axis=1)[:, ::2], y),
     "X would have to be copied: it is a strided view, not C-contiguous"),
    ("list_X", lambda X, y: (X.tolist(), y),
     "X would have to be copied: it is a list, not a NumPy array"),
    ("float32_y_for_float64_X", lambda X, y: (X, y.astype(np.float32)),
     "y would have to be copied: it has dtype float32 and training needs float64"),
    ("float64_y_for_float32_X", lambda X, y: (X.astype(np.float32), y),
     "y would have to be copied: it has dtype float64 and training needs float32"),
    ("strided_y", lambda X, y: (X, np.repeat(y, 2)[::2]),
     "y would have to be copied: it is a strided view, not C-contiguous"),
    ("list_y", lambda X, y: (X, y.tolist()),
     "y would have to be copied: it is a list, not a NumPy array"),
]


@pytest.mark.parametrize("make, message", [case[1:] for case in REFUSED],
                         ids=[case[0] for case in REFUSED])  # fmt: skip
def test_allow_copy_false_refuses_every_conversion_saying_why(monkeypatch, backend, make,
                                                              message):  # fmt: skip
    X, y = make(*make_problem("squared_error", np.float64))
    calls = spy_on_run_epoch(monkeypatch, backend)
    with pytest.raises(ValueError, match=re.escape(f"allow_copy=False, but {message}.")) as err:
        fastgd.fit(X, y, backend=backend, allow_copy=False, **SETTINGS)
    assert "or allow_copy=True" in str(err.value)
    assert calls == []
    fastgd.fit(X, y, backend=backend, **SETTINGS)  # the default converts


def test_allow_copy_false_accepts_arrays_it_can_use(backend, dtype):
    X, y = make_problem("log_loss", dtype)
    result = fastgd.fit(X, y.astype(dtype), loss="log_loss", backend=backend, allow_copy=False,
                        **SETTINGS)  # fmt: skip
    assert result.coef.dtype == dtype
    # A Fortran array of one column is C-contiguous too: nothing to copy.
    fastgd.fit(np.asfortranarray(X[:, :1]), y.astype(dtype), allow_copy=False, backend=backend)


def test_allow_copy_must_be_a_bool():
    X, y = make_problem("squared_error", np.float64)
    with pytest.raises(TypeError, match="allow_copy must be True or False; got 0"):
        fastgd.fit(X, y, allow_copy=0)


def test_estimators_with_allow_copy_false_refuse_to_copy_X(backend):
    pytest.importorskip("sklearn")
    X, y = make_problem("squared_error", np.float64)
    model = fastgd.MiniBatchRegressor(backend=backend, allow_copy=False, **SETTINGS)
    with pytest.raises(ValueError, match=re.escape(
            "allow_copy=False, but X would have to be copied: it is Fortran-ordered")):
        model.fit(np.asfortranarray(X), y)
    model.fit(X, y)
    with pytest.raises(ValueError, match=re.escape(
            "X would have to be copied: it has dtype float32 and training needs float64")):
        model.partial_fit(X.astype(np.float32), y)  # the model trains in float64
    with pytest.raises(TypeError, match="allow_copy must be True or False; got 'no'"):
        fastgd.MiniBatchRegressor(allow_copy="no").fit(X, y)
