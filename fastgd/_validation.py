"""Every check of a user's array or setting, written once.

``fastgd.fit``, the estimators and the bench call these functions; kernels
assume their output and never raise. Messages follow scikit-learn's wording
where users already search for it ("Input X contains NaN", ...) and always
name the argument, the value received and what is allowed.
"""

import difflib
import numbers
import os
import sys

import numpy as np

from ._config import CLASSIFICATION_LOSSES

FLOAT_DTYPES = (np.float32, np.float64)


def shown(value):
    """``repr(value)`` with NumPy scalars shown as the plain numbers they hold.

    ``np.int64(-1)`` reads ``-1`` in a message, as the user typed it, not
    NumPy 2's ``np.int64(-1)``.
    """
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def check_option(name, value, allowed):
    """Return ``value`` if it is one of ``allowed``, else raise with a suggestion."""
    if any(value is option or value == option for option in allowed):
        return value
    names = ", ".join(repr(option) for option in allowed)
    message = f"{name}={shown(value)} is not supported; expected one of {names}."
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
            f"{name} must be an integer >= {minimum}; got {shown(value)} "
            f"of type {type(value).__name__}."
        )
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{upper}; got {shown(value)}.")
    return int(value)


def check_float(name, value, *, low=None, high=None, low_open=False, high_open=False):
    """Return ``value`` as a finite float inside the given interval, else raise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number; got {shown(value)} of type {type(value).__name__}."
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
            f"{name} must be a finite number in {left}{lo}, {hi}{right}; got {shown(value)}."
        )
    return value


def check_verbose(verbose):
    """Return ``verbose`` as an int >= 0: True is 1, False 0 (scikit-learn takes both)."""
    if isinstance(verbose, (bool, np.bool_)):
        return int(verbose)
    return check_int("verbose", verbose, 0)


def check_average(average):
    """Return ``average`` (averaged SGD) as an int >= 0: False is 0, True 1 (scikit-learn's).

    An int n >= 1 starts averaging once n rows have been seen; 0 is off.
    """
    if isinstance(average, (bool, np.bool_)):
        return int(average)
    if not isinstance(average, numbers.Integral):
        raise TypeError(
            f"average must be True, False or an integer >= 0; got {shown(average)} "
            f"of type {type(average).__name__}."
        )
    return check_int("average", average, 0)


def check_callback(callback):
    """Return ``callback`` if it is callable or None, else raise."""
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None; got {shown(callback)}.")
    return callback


def check_bool(name, value):
    """Return ``value`` as a bool if it is one (Python's or NumPy's), else raise.

    Strict on purpose: ``fit_intercept="no"`` would otherwise mean True.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(
            f"{name} must be True or False; got {shown(value)} of type {type(value).__name__}."
        )
    return bool(value)


# The row-order modes of ``shuffle``: a fresh permutation of the rows every
# epoch (True), the data's order (False), or whole batches visited in a
# random order ("batches").
SHUFFLE_MODES = (True, False, "batches")


def check_shuffle(shuffle):
    """Return the row-order mode ``shuffle``: True, False or ``"batches"``, else raise.

    An unknown string is a ValueError that lists the modes and suggests the
    closest one; anything else (0, 1, None, ...) is a TypeError.
    """
    if isinstance(shuffle, (bool, np.bool_)):
        return bool(shuffle)
    if isinstance(shuffle, str):
        return check_option("shuffle", shuffle, SHUFFLE_MODES)
    raise TypeError(
        f"shuffle must be one of {', '.join(map(repr, SHUFFLE_MODES))}; got "
        f"{shown(shuffle)} of type {type(shuffle).__name__}."
    )


def usable_cpu_count():
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def check_n_threads(n_threads):
    """Return the thread count ``n_threads`` asks for: an int >= 1, or -1 for every CPU.

    -1 resolves to the CPUs this process may use (``os.sched_getaffinity``
    where available, else ``os.cpu_count()``). 0 and other negative values
    raise a ValueError; a non-integer raises a TypeError.
    """
    if isinstance(n_threads, (bool, np.bool_)) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(
            f"n_threads must be an integer >= 1, or -1 for every CPU; got "
            f"{shown(n_threads)} of type {type(n_threads).__name__}."
        )
    if n_threads == -1:
        return usable_cpu_count()
    if n_threads < 1:
        raise ValueError(
            f"n_threads must be an integer >= 1, or -1 for every CPU; got {shown(n_threads)}."
        )
    return int(n_threads)


def check_random_state(random_state):
    """Return the ``numpy.random.Generator`` that ``random_state`` seeds, else raise.

    None (fresh entropy: a different result every run), a non-negative
    integer, or a Generator (used as it is, so it advances); NumPy's other
    seeds (SeedSequence, BitGenerator, RandomState) work too.
    """
    allowed = "None, a non-negative integer or a numpy.random.Generator"
    if isinstance(random_state, (bool, np.bool_)):
        raise TypeError(f"random_state must be {allowed}; got {shown(random_state)}.")
    try:
        return np.random.default_rng(random_state)
    except (TypeError, ValueError) as exc:
        raise type(exc)(
            f"random_state must be {allowed}; got {shown(random_state)} of type "
            f"{type(random_state).__name__}."
        ) from exc


def check_class_count(classes):
    """Return ``classes`` if it holds at least two labels, else raise.

    A classifier cannot learn a decision from one class; the message says
    "class", which is what scikit-learn's estimator checks look for.
    """
    if len(classes) < 2:
        raise ValueError(
            f"A classifier needs samples of at least 2 classes; got {len(classes)} "
            f"class in y: {shown(np.asarray(classes).tolist())}."
        )
    return classes


def check_initial(name, value, shape, dtype):
    """``value`` (``coef_init`` or ``intercept_init``) as a float array of ``shape`` and ``dtype``.

    A single output's may drop the leading 1 (a binary model's
    ``(n_features,)``, an intercept given as a number); real numbers only,
    finite in ``dtype``.
    """
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must hold real numbers; got an array of dtype {array.dtype}."
        )
    allowed = {tuple(shape)} | ({tuple(shape[1:])} if shape[0] == 1 else set())
    if array.shape not in allowed:
        expected = " or ".join(str(option) for option in sorted(allowed, key=len, reverse=True))
        raise ValueError(
            f"{name} must have shape {expected} for this model; got shape {array.shape}."
        )
    with np.errstate(over="ignore", invalid="ignore"):
        cast = array.reshape(shape).astype(dtype)
    if not np.isfinite(cast).all():
        raise ValueError(
            f"{name} must be finite in {np.dtype(dtype)}; got "
            f"{shown(array.reshape(-1)[~np.isfinite(cast).reshape(-1)][0])}."
        )
    return cast


def check_validation_split(n_validation, n_samples, validation_fraction):
    """Raise unless a hold-out of ``n_validation`` rows leaves both sides non-empty."""
    if n_validation < 1 or n_validation >= n_samples:
        raise ValueError(
            "early_stopping needs at least 1 validation row and 1 training row; "
            f"validation_fraction={shown(validation_fraction)} of n_samples={n_samples} "
            f"gives {n_validation} validation row(s). Use more rows or another "
            "validation_fraction, or set early_stopping=False."
        )


def _cast(a, dtype):
    """``a`` as a C-contiguous array of ``dtype``; an overflow is reported later."""
    with np.errstate(over="ignore", invalid="ignore"):
        return np.ascontiguousarray(a, dtype=dtype)


def _refuse_overflow(name, value, at, dtype, hint):
    dtype = np.dtype(dtype)
    raise ValueError(
        f"Input {name} holds values that do not fit {dtype}: {str(value)} (the first, at "
        f"{at}) overflows {dtype}, whose largest finite value is "
        f"{float(np.finfo(dtype).max):.7g}. {name} is finite; its cast to {dtype} for "
        f"training is what overflowed. {hint}"
    )


def _overflow_hint(name, dtype):
    if name == "y" and np.dtype(dtype) == np.float32:
        return "Rescale y, or pass X as float64 to train in float64."
    return f"Rescale {name} before fitting."


def _column(where, columns):
    """``column 1``, or ``column 1 ('n')`` for a DataFrame's column labels."""
    if columns is None or where >= len(columns):
        return f"column {where}"
    return f"column {where} ({shown(columns[where])})"


def _sum_in_one_read(a):
    """The float64 sum of ``a``'s elements, at the cost of one read of ``a`` where it is large.

    Compiled for large C-contiguous float arrays (``_compiled.finite_sum``);
    NumPy's for the rest, which are small or about to be copied anyway.
    """
    if a.dtype in (np.float32, np.float64) and a.flags.c_contiguous and a.size >= 65536:
        from ._compiled import finite_sum

        return finite_sum(a)
    return np.sum(a, dtype=np.float64)


def _assert_all_finite(a, name, source=None, columns=None):
    """Refuse NaN and infinity in ``a``, the first located by row and column.

    ``source`` is the array ``a`` was cast from (same shape), if any: a value
    finite there and not in ``a`` is reported as the cast's overflow.
    ``columns`` are the labels of the DataFrame ``a`` came from, if any.
    """
    # One pass and no n-sized temporary: a sum is finite exactly when every
    # term is, unless it overflowed, which the exact check below tells apart.
    if np.isfinite(_sum_in_one_read(a)):
        return
    for start in range(0, a.shape[0], 65536):
        block = a[start : start + 65536]
        bad = ~np.isfinite(block)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            what = "NaN" if np.isnan(block[where]) else "infinity"
            row = start + where[0]
            at = f"row {row}, {_column(where[1], columns)}" if a.ndim == 2 else f"index {row}"
            if source is not None:
                original = source[(row,) + where[1:]]
                if np.isfinite(original):
                    _refuse_overflow(name, original, at, a.dtype, _overflow_hint(name, a.dtype))
            # scikit-learn's wording first: it is what users search for.
            raise ValueError(
                f"Input {name} contains {what} (the first at {at}). Remove or "
                f"impute the non-finite values of {name} before fitting."
            )


_DTYPE_WORDS = {"b": "bool", "c": "complex", "O": "object", "U": "string", "S": "bytes"}


def _copy_reason(array, converted, dtype):
    """Why ``array`` (the user's) cannot be used as ``dtype`` without a copy, or None.

    ``converted`` is ``np.asarray(array)``: a new array it owns means the
    conversion itself was a copy (a list, a DataFrame of mixed columns, ...).
    """
    if not isinstance(array, np.ndarray) and converted.flags.owndata:
        return f"it is a {type(array).__name__}, not a NumPy array"
    if converted.dtype != dtype:
        return f"it has dtype {converted.dtype} and training needs {np.dtype(dtype)}"
    if not converted.flags.c_contiguous:
        layout = "Fortran-ordered" if converted.flags.f_contiguous else "a strided view"
        return f"it is {layout}, not C-contiguous"
    return None


def _refuse_copy(name, reason, dtype):
    raise ValueError(
        f"allow_copy=False, but {name} would have to be copied: {reason}. Pass "
        f"np.ascontiguousarray({name}, dtype=np.{np.dtype(dtype).name}) yourself, "
        "or allow_copy=True."
    )


def check_no_copy(name, array, dtype=None):
    """Raise the ValueError of ``allow_copy=False`` if ``array`` would need a copy.

    For a caller that hands ``array`` to code that would copy it silently
    (scikit-learn's ``validate_data``); ``dtype`` is the dtype it must have,
    by default the one it would train in.
    """
    if is_sparse(array):
        dtype = training_dtype(array) if dtype is None else np.dtype(dtype)
        reason = _sparse_copy_reason(array, dtype)
        if reason is not None:
            _refuse_sparse_copy(name, reason, dtype)
        return
    converted = np.asarray(array)
    dtype = training_dtype(converted) if dtype is None else np.dtype(dtype)
    reason = _copy_reason(array, converted, dtype)
    if reason is not None:
        _refuse_copy(name, reason, dtype)


def _refuse_ragged(X, numpy_message):
    """Raise the ValueError of a nested sequence X whose rows differ in length."""
    lengths = [len(row) if hasattr(row, "__len__") else None for row in X]
    first = lengths[0]
    odd = next((i for i, n in enumerate(lengths) if n != first), None)
    if odd is None:
        detail = numpy_message
    else:
        def has(n):
            if n is None:
                return "a single number, not a sequence"
            return f"{n} value" + ("" if n == 1 else "s")

        differ = sum(n != first for n in lengths)
        detail = (
            f"row 0 has {has(first)} but row {odd} has {has(lengths[odd])} "
            f"({differ} of the {len(lengths)} rows differ from row 0)"
        )
    raise ValueError(
        f"X must be of shape (n_samples, n_features), but it is a ragged nested "
        f"sequence: {detail}. Give every row of X the same number of values."
    )


def _is_ragged(X):
    """Whether the list or tuple X holds rows of different lengths (no copy made)."""
    if not isinstance(X, (list, tuple)) or not X or not hasattr(X[0], "__len__"):
        return False
    first = len(X[0])
    return any(not hasattr(row, "__len__") or len(row) != first for row in X)


def _is_frame(X):
    """Whether X is a pandas DataFrame (never imports pandas)."""
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(X, pandas.DataFrame)


def _refuse_column(frame, position, error):
    label, dtype = frame.columns[position], frame.dtypes.iloc[position]
    try:
        np.asarray(frame.iloc[:, position], dtype=np.float64)
        detail = ""
    except (TypeError, ValueError) as exc:
        detail = f": {exc}"
    raise error(
        f"X must hold real numbers; column {shown(label)} (column {position}) of the "
        f"DataFrame X has dtype {dtype}{detail}. Encode, convert or drop that column, "
        f"e.g. X[{shown(label)}].astype(np.float64)."
    )


def _frame_to_array(frame):
    """The DataFrame X as an array, each column checked: the rule of ``fastgd.fit``.

    Numeric NumPy columns convert as NumPy converts them (no copy for one
    float dtype); pandas' nullable numeric columns (``Int64``, ``Float64``,
    ...) make it a float64 copy, ``pd.NA`` becoming NaN (refused as NaN is,
    as scikit-learn does); any other column is refused (TypeError), named.
    """
    types = sys.modules["pandas"].api.types
    nullable = False
    for position, dtype in enumerate(frame.dtypes):
        if isinstance(dtype, np.dtype) and dtype.kind in "fiu":
            continue
        if (not isinstance(dtype, np.dtype) and types.is_numeric_dtype(dtype)
                and not types.is_bool_dtype(dtype)):  # fmt: skip
            nullable = True
            continue
        _refuse_column(frame, position, TypeError)
    if nullable:
        return frame.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(frame)


def training_dtype(X):
    """The float dtype X trains in: its own if float32/float64, else float64."""
    return X.dtype if X.dtype in FLOAT_DTYPES else np.dtype(np.float64)


def check_X(X, *, dtype=None, allow_copy=True, columns=None):
    """Return X as a C-contiguous float32 or float64 2-D array.

    The conversion rule, applied once:

    - a C-contiguous float32 or float64 array (read-only and ``np.memmap``
      included) is returned as it is: no copy, and float32 trains in float32;
    - a float32 or float64 array in another layout (Fortran order, a strided
      view) is copied once to C order, keeping its dtype;
    - integer arrays (signed or unsigned) and the other float dtypes (float16,
      longdouble) are converted to a float64 copy;
    - bool, complex, object, string and other dtypes are refused (TypeError).

    With ``allow_copy=False`` any copy raises a ValueError instead, saying
    why one would be needed. ``dtype`` forces the float dtype (used to
    predict with a model's own dtype). X is never written to.

    A pandas DataFrame is checked column by column (a column that is not
    numeric is named; nullable numeric columns such as ``Int64`` become
    float64, ``pd.NA`` being refused as NaN is, naming its column).
    ``columns`` names the columns in messages where X is no longer the
    DataFrame it came from. A ragged nested sequence is a ValueError naming
    the rows whose lengths differ.

    A ``scipy.sparse`` matrix or array follows the rule of
    :func:`check_sparse_X` and comes back as CSR.
    """
    if is_sparse(X):
        return check_sparse_X(X, dtype=dtype, allow_copy=allow_copy)
    if not hasattr(X, "__array__") and not isinstance(X, (list, tuple)):
        raise TypeError(
            f"X must be an array-like of numbers of shape (n_samples, n_features); "
            f"got {type(X).__name__}."
        )
    given = X
    if _is_frame(X):
        columns = list(X.columns) if columns is None else columns
        X = _frame_to_array(X)
    else:
        try:
            X = np.asarray(X)
        except ValueError as exc:
            if "inhomogeneous" not in str(exc):
                raise
            _refuse_ragged(given, str(exc))
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2D array for X, got a {X.ndim}D array of shape {X.shape}. "
            "Reshape your data with X.reshape(-1, 1) for a single feature "
            "or X.reshape(1, -1) for a single sample."
        )
    kind = X.dtype.kind
    if kind not in "fiu":
        raise TypeError(
            "X must hold real numbers (float32 or float64, used as they are, or "
            "integers, converted to float64); got dtype "
            f"{_DTYPE_WORDS.get(kind, str(X.dtype))} ({X.dtype}). Convert it "
            "yourself, e.g. X.astype(np.float64)."
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
    dtype = training_dtype(X) if dtype is None else np.dtype(dtype)
    if not allow_copy:
        reason = _copy_reason(given, X, dtype)
        if reason is not None:
            _refuse_copy("X", reason, dtype)
    source = X
    X = _cast(X, dtype)
    _assert_all_finite(
        X, "X", source=None if X.dtype == source.dtype else source, columns=columns
    )
    return X


def check_X_before_validate_data(X, dtype=None):
    """Return X, checked for what scikit-learn's ``validate_data`` would misreport.

    The estimators call it first. A float X wider than float64 (longdouble)
    goes through :func:`check_X` here, so that an overflow of its cast is
    named as one, and it trains in float64 as in ``fastgd.fit``. A ragged
    nested sequence and a DataFrame column that cannot be converted to
    float are refused naming X and the row or column (ValueError, as
    scikit-learn's own).
    """
    if _is_ragged(X):
        _refuse_ragged(X, "")
    if _is_frame(X):
        types = sys.modules["pandas"].api.types
        for position, dtype in enumerate(X.dtypes):
            if types.is_object_dtype(dtype) or types.is_string_dtype(dtype):
                try:
                    np.asarray(X.iloc[:, position], dtype=np.float64)
                except (TypeError, ValueError):
                    _refuse_column(X, position, ValueError)
    if (is_sparse(X) or isinstance(X, np.ndarray)) and (
        X.dtype.kind == "f" and X.dtype not in FLOAT_DTYPES and X.dtype.itemsize > 8
    ):
        return check_X(X, dtype=dtype)
    return X


def is_sparse(X):
    """Whether X is a ``scipy.sparse`` matrix or array.

    Never imports scipy: a sparse X exists only once its user has imported
    ``scipy.sparse``, so ``import fastgd`` stays free of it.
    """
    sparse = sys.modules.get("scipy.sparse")
    return sparse is not None and sparse.issparse(X)


# Index dtypes the sparse kernels are compiled for (scipy's own two).
INDEX_DTYPES = (np.int32, np.int64)


def _sparse_copy_reason(X, dtype):
    """Why the sparse ``X`` cannot be trained on as ``dtype`` CSR without a copy, or None."""
    if X.format != "csr":
        return f"it is a {X.format.upper()} matrix, and training needs CSR"
    if X.dtype != dtype:
        return f"it has dtype {X.dtype} and training needs {np.dtype(dtype)}"
    if (
        X.indices.dtype != X.indptr.dtype
        or X.indices.dtype not in INDEX_DTYPES
        or not (X.data.flags.c_contiguous and X.indices.flags.c_contiguous
                and X.indptr.flags.c_contiguous)
    ):  # fmt: skip
        return (
            f"its index arrays (indices {X.indices.dtype}, indptr {X.indptr.dtype}) "
            "are not both contiguous int32 or both int64"
        )
    return None


def _refuse_sparse_copy(name, reason, dtype):
    raise ValueError(
        f"allow_copy=False, but {name} would have to be copied: {reason}. Pass "
        f"{name}.tocsr().astype(np.{np.dtype(dtype).name}) yourself, or allow_copy=True."
    )


def _assert_all_finite_sparse(X, name, source=None):
    """The dense rule on the stored values of a CSR ``X``, naming row and column.

    ``source`` is the stored-values array ``X.data`` was cast from, if any
    (same order): a value finite there is reported as the cast's overflow.
    """
    data = X.data[: X.indptr[-1]]
    if np.isfinite(np.sum(data, dtype=np.float64)):
        return
    bad = np.flatnonzero(~np.isfinite(data))
    if bad.size == 0:
        return  # every value finite: only their sum overflowed
    first = int(bad[0])
    what = "NaN" if np.isnan(data[first]) else "infinity"
    row = int(np.searchsorted(X.indptr, first, side="right")) - 1
    at = f"row {row}, column {int(X.indices[first])}"
    if source is not None and np.isfinite(source[first]):
        _refuse_overflow(name, source[first], at, X.dtype, _overflow_hint(name, X.dtype))
    raise ValueError(
        f"Input {name} contains {what} (the first at {at}). Remove or impute the "
        f"non-finite values of {name} before fitting."
    )


def _check_csr_structure(X):
    """Refuse a CSR whose index arrays would make a kernel read out of bounds.

    scipy does not check the column indices when a CSR is built from its
    three arrays; the compiled kernels trust them, so they are checked here.
    """
    n_samples, n_features = X.shape
    indptr, indices = X.indptr, X.indices
    if (
        indptr.shape[0] != n_samples + 1
        or indptr[0] != 0
        or indptr[-1] > min(indices.shape[0], X.data.shape[0])
        or np.any(indptr[1:] < indptr[:-1])
    ):
        raise ValueError(
            f"X is not a valid CSR matrix: indptr must be non-decreasing, of length "
            f"n_samples + 1 = {n_samples + 1}, from 0 to at most len(indices) = "
            f"{indices.shape[0]}. Rebuild it with scipy.sparse.csr_array."
        )
    used = indices[: indptr[-1]]
    if used.size and (used.min() < 0 or used.max() >= n_features):
        raise ValueError(
            f"X is not a valid CSR matrix: its column indices run from "
            f"{int(used.min())} to {int(used.max())}, outside 0..{n_features - 1}. "
            "Rebuild it with scipy.sparse.csr_array."
        )


def check_sparse_X(X, *, dtype=None, allow_copy=True):
    """Return the ``scipy.sparse`` X as a CSR matrix of float32 or float64.

    The conversion rule, applied once:

    - a CSR matrix or array of float32 or float64 with int32 or int64
      indices is returned as it is: no copy, never modified (its indices
      need not be sorted, and duplicate entries count as their sum, as in
      scipy's own products);
    - another sparse format (CSC, COO, LIL, ...) is converted to a CSR copy;
    - integer data (and float16 or longdouble) is converted to float64,
      index arrays of mixed or other integer dtypes to int64;
    - bool, complex and other dtypes are refused (TypeError).

    With ``allow_copy=False`` any conversion raises a ValueError instead.
    Non-finite stored values are refused as in a dense X, and so are 0 rows
    or 0 columns and index arrays that point outside the matrix.
    """
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2D array for X, got a {X.ndim}D sparse array of shape "
            f"{X.shape}."
        )
    kind = X.dtype.kind
    if kind not in "fiu":
        raise TypeError(
            "X must hold real numbers (float32 or float64, used as they are, or "
            "integers, converted to float64); got a sparse X of dtype "
            f"{_DTYPE_WORDS.get(kind, str(X.dtype))} ({X.dtype}). Convert it "
            "yourself, e.g. X.astype(np.float64)."
        )
    for axis, what in ((0, "sample"), (1, "feature")):
        if X.shape[axis] < 1:
            raise ValueError(
                f"Found array with 0 {what}(s) (shape={X.shape}) while a minimum of 1 "
                "is required."
            )
    dtype = training_dtype(X) if dtype is None else np.dtype(dtype)
    reason = _sparse_copy_reason(X, dtype)
    source = None
    if reason is not None:
        if not allow_copy:
            _refuse_sparse_copy("X", reason, dtype)
        if X.format != "csr":
            X = X.tocsr()
        if X.dtype != dtype:
            # The stored values before the cast, in the same order as after it.
            source = X.data
            with np.errstate(over="ignore", invalid="ignore"):
                X = X.astype(dtype)
        if _sparse_copy_reason(X, dtype) is not None:
            index = np.int64
            X = type(X)(
                (np.ascontiguousarray(X.data), np.ascontiguousarray(X.indices, index),
                 np.ascontiguousarray(X.indptr, index)),
                shape=X.shape,
            )  # fmt: skip
    _check_csr_structure(X)
    _assert_all_finite_sparse(X, "X", source=source)
    return X


def _refuse_class_code(y, high, n_samples):
    """Refuse a multinomial y whose largest code means more classes than rows.

    Without ``n_classes`` the class count is ``max(y) + 1``, one row of
    parameters each: a code of n_samples or more leaves classes without a
    single sample, and a stray large code would allocate without bound.
    """
    row = int(np.argmax(y))
    raise ValueError(
        f"loss='multinomial' takes its number of classes from y as max(y) + 1; the "
        f"class code {int(high)} (row {row}) would mean {int(high) + 1} classes, more "
        f"than the {n_samples} rows of y, so most classes would have no sample. Use "
        "codes 0..K-1 (np.unique(y, return_inverse=True)[1] gives them), or pass "
        "n_classes=K if y is one chunk of a larger problem."
    )


def is_multi_output(y, loss):
    """Whether ``y`` is a multi-output regression's targets: 2-D, one column per output.

    Such a fit keeps 2-D parameters, ``coef`` of shape (n_outputs,
    n_features), even for a single column, as scikit-learn's
    ``LinearRegression`` does for a y of shape (n_samples, 1).
    """
    return loss not in CLASSIFICATION_LOSSES and np.ndim(y) == 2


def check_y(y, n_samples, loss, dtype, n_classes=None, *, allow_copy=True):
    """Return ``(y, n_outputs)``: y as a contiguous 1-D array of X's dtype.

    For the regression losses y holds real numbers (integers are converted),
    of shape (n_samples,) or, one column per output, (n_samples, n_outputs),
    returned raveled in C order (the kernels' layout: output ``k`` of row
    ``i`` at ``i·n_outputs + k``).
    For the classification losses y holds class codes (integers, integral
    floats, or bools for 0/1): 0/1 for the two-class losses (log_loss, hinge,
    modified_huber, squared_hinge, perceptron), 0..n_classes-1 for
    multinomial and for a two-class margin loss given ``n_classes`` > 2
    (one-vs-rest: ``n_classes`` independent binary outputs). Without ``n_classes`` y must show at least two classes and
    multinomial has ``max(y) + 1`` of them, at most one per row of y (a larger
    code is refused before anything is allocated); with it (2 for the two-class losses)
    a chunk of y may lack some. With ``allow_copy=False`` a y that is not
    already a C-contiguous array of ``dtype`` raises instead of being copied.
    y is never written to.
    """
    given = y
    y = np.asarray(y)
    classification = loss in CLASSIFICATION_LOSSES
    if classification and y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 and not (is_multi_output(y, loss) and y.shape[1] >= 1):
        allowed = "(n_samples,)" if classification else "(n_samples,) or (n_samples, n_outputs)"
        raise ValueError(f"y must be 1-D of shape {allowed}; got shape {y.shape}"
                         + (" (2-D y is for the regression losses)." if classification and y.ndim == 2
                            else "."))  # fmt: skip
    if y.shape[0] != n_samples:
        raise ValueError(
            f"X and y have inconsistent numbers of samples: X has {n_samples} rows, "
            f"y has {y.shape[0]}."
        )
    if y.dtype.kind not in ("fiub" if classification else "fiu"):
        what = _DTYPE_WORDS.get(y.dtype.kind, str(y.dtype))
        allowed = (
            "class codes (integers, integral floats or bools)"
            if classification
            else f"real values (floats or integers) for loss={shown(loss)}"
        )
        raise TypeError(f"y must hold real numbers; got dtype {what} ({y.dtype}); "
                        f"expected {allowed}.")  # fmt: skip
    _assert_all_finite(y, "y")
    # A 2-D regression y is one output per column: the kernels read it
    # raveled in C order (row i's targets contiguous).
    n_outputs = y.shape[1] if y.ndim == 2 else 1
    if classification:
        if y.dtype.kind == "f" and np.any(y != np.round(y)):
            raise ValueError(
                f"loss={shown(loss)} needs integer class codes in y; got non-integer values "
                "such as " + repr(float(y[y != np.round(y)][0])) + "."
            )
        low, high = y.min(), y.max()
        if loss == "multinomial":
            if n_classes is None and high >= n_samples:
                _refuse_class_code(y, high, n_samples)
            n_outputs = int(high) + 1 if n_classes is None else check_int(
                "n_classes", n_classes, 2
            )
            allowed = f"0..{n_outputs - 1}"
        elif n_classes is not None and loss != "log_loss" and not (
            isinstance(n_classes, numbers.Integral) and n_classes == 2
        ):
            # A two-class margin loss with K > 2 classes: one-vs-rest, K
            # independent binary outputs over codes 0..K-1, in one pass.
            n_outputs = check_int("n_classes", n_classes, 2)
            allowed = f"0..{n_outputs - 1}"
        else:
            if n_classes is not None and not (
                isinstance(n_classes, numbers.Integral) and n_classes == 2
            ):
                raise ValueError(
                    f"n_classes={shown(n_classes)} does not fit loss={shown(loss)}, a two-class "
                    "loss (codes 0 and 1); pass n_classes=2 or None, or loss='multinomial' "
                    "for more classes."
                )
            allowed = "0 or 1"
        if low < 0 or high > max(n_outputs - 1, 1):
            raise ValueError(
                f"loss={shown(loss)} needs class codes in y within {allowed}; "
                f"got values from {shown(low)} to {shown(high)}."
            )
        if n_classes is None and low == high:
            raise ValueError(
                f"loss={shown(loss)} needs at least 2 classes in y; got only class "
                f"{int(low)}. Pass n_classes="
                f"{'2' if loss != 'multinomial' else 'K'} if y is one chunk of a "
                "larger problem that has the other classes."
            )
    elif n_classes is not None:
        raise ValueError(
            f"n_classes applies to the classification losses only; got "
            f"n_classes={shown(n_classes)} with loss={shown(loss)}. Leave it None."
        )
    if not allow_copy:
        reason = _copy_reason(given, y, dtype)
        if reason is not None:
            _refuse_copy("y", reason, dtype)
    # y was finite; its cast to X's dtype may not be (y = 1e39 for float32).
    source = y
    y = _cast(y, dtype)
    if y.dtype != source.dtype:
        _assert_all_finite(y, "y", source=source)
    return y.reshape(-1), n_outputs


def check_class_weight(class_weight):
    """``class_weight`` as given, once checked: None, ``'balanced'``, or a dict of finite weights >= 0.

    The dict's labels are matched to the classes when fitting (a label that
    is not a class is refused then); it is returned as it is, not copied
    (scikit-learn's rule for a hyperparameter).
    """
    if class_weight is None or (isinstance(class_weight, str) and class_weight == "balanced"):
        return class_weight
    if not isinstance(class_weight, dict):
        raise ValueError(
            f"class_weight must be a dict of label to weight, 'balanced' or None; got "
            f"{shown(class_weight)}."
        )
    for label, weight in class_weight.items():
        if (not isinstance(weight, numbers.Real) or isinstance(weight, bool)
                or not np.isfinite(weight) or weight < 0):  # fmt: skip
            raise ValueError(
                f"class_weight[{label!r}] must be a finite number >= 0; got {shown(weight)}."
            )
    return class_weight


def output_weights(sample_weight, n_outputs, loss):
    """Checked row weights laid out as the kernels read them (the backend contract's ``sample_weight``).

    None stays None. One output, or multinomial's K scores, read one weight
    per row. K > 1 independent outputs (a multi-output regression,
    one-vs-rest) read one weight per row and output, indexed like a
    multi-output y: ``sample_weight[i*K + k]``. Row weights are repeated for
    every output; a 2-D (n_samples, K) array (one-vs-rest's class weights,
    which differ by output) is raveled in C order.
    """
    if sample_weight is None:
        return None
    independent = n_outputs > 1 and loss != "multinomial"
    if sample_weight.ndim == 2:
        return np.ascontiguousarray(sample_weight, dtype=np.float64).reshape(-1)
    if independent:
        return np.repeat(sample_weight, n_outputs)
    return sample_weight


def check_sample_weight(sample_weight, n_samples, *, first_row=None):
    """Return ``sample_weight`` as a float64 C-contiguous array of shape (n_samples,), or None.

    None stays None (the unweighted kernels); a number is that weight for
    every row. The weights must be real (integers, floats or bools), finite
    and non-negative, and not all 0 (nothing would be learnt). An int
    ``first_row``: these are the weights of rows ``first_row`` on of a
    larger whole (a Dask block's), named so in messages; they may all be 0
    and the caller checks the whole with :func:`refuse_zero_weights`. A copy is made only
    when the array is not already C-contiguous float64; the caller's array
    is never written to.
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number) and not isinstance(sample_weight, bool):
        sample_weight = np.full(n_samples, sample_weight)
    given = np.asarray(sample_weight)
    if given.dtype.kind not in "fiub":
        what = _DTYPE_WORDS.get(given.dtype.kind, str(given.dtype))
        raise TypeError(
            f"sample_weight must hold real numbers; got dtype {what} ({given.dtype})."
        )
    if given.ndim != 1 or given.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight must be of shape ({n_samples},), one weight per row of X; "
            f"got shape {given.shape}."
        )
    weights = np.ascontiguousarray(given, dtype=np.float64)
    _assert_all_finite(weights, "sample_weight")
    negative = np.flatnonzero(weights < 0.0)
    if negative.size:
        raise ValueError(
            f"sample_weight must be non-negative; got {shown(weights[negative[0]])} "
            f"at row {(first_row or 0) + int(negative[0])}."
        )
    if first_row is None:
        refuse_zero_weights(weights.any())
    return weights


def refuse_zero_weights(any_positive):
    """Refuse weights of which none is positive (``any_positive`` False)."""
    if not any_positive:
        raise ValueError(
            "sample_weight is zero for every row (all weights are zero): there is "
            "nothing to learn. Give some rows a positive weight."
        )


def check_fit_settings(*, n_samples, **settings):
    """Check training settings; return the backends' ``(KernelConfig, ExecutionConfig)``.

    ``settings`` are keywords of :func:`fastgd.fit`; each one given is
    checked by its row of the settings table (``fastgd._settings``), each
    one left out takes its default. ``n_samples`` is the number of rows the
    batches are cut from (a larger ``batch_size`` is clipped to it).
    """
    # Imported here: the table is built from this module's checks.
    from ._settings import FIT, check_settings, kernel_records

    return kernel_records(check_settings(FIT, settings), n_samples)
