"""The Dask driver's data: collections to row blocks, checked in one pass, kept on the workers.

A block is one chunk of rows of X (all of its columns) with the same rows of
y (and of the sample weights, if any). :func:`checked_blocks` turns whatever the user passed into blocks checked
by ``fastgd._validation``'s own functions, one task per block, and leaves
them where they were computed (a distributed client's futures, or values in
this process for Dask's local scheduler): the training tasks of
``fastgd._dask_driver`` then run where their block lives, and only
parameters travel.
"""

from typing import NamedTuple

import numpy as np

from ._config import CLASSIFICATION_LOSSES
from ._validation import (
    check_sample_weight,
    check_X,
    check_y,
    is_multi_output,
    output_weights,
    refuse_zero_weights,
    shown,
)


def as_dask_array(data, name):
    """``data`` as a dask array with known chunk sizes and one chunk of columns.

    A dask array is taken as it is; a dask DataFrame or Series through
    ``to_dask_array(lengths=True)`` (its partitions' lengths, computed once);
    anything else (NumPy, pandas, a list) is one block. A dask array of
    unknown chunk sizes has them computed once (``compute_chunk_sizes``), and
    one split along its columns is rechunked once into a single chunk of
    columns (a row of X must be whole in one block).
    """
    import dask.array as da

    if not isinstance(data, da.Array):
        if hasattr(data, "to_dask_array") and hasattr(data, "npartitions"):
            data = data.to_dask_array(lengths=True)
        else:
            array = check_X(data) if name == "X" else np.asarray(data)
            return da.from_array(array, chunks=array.shape or -1)
    if any(np.isnan(size) for size in data.shape):
        data = data.compute_chunk_sizes()
    if data.ndim == 2 and len(data.chunks[1]) > 1:
        data = data.rechunk({1: -1})
    return data


class Blocks(NamedTuple):
    """Checked blocks of X and y and what the driver knows of them.

    ``handles`` are what the driver's executor hands to tasks, in block order
    (each stands for ``(X_block, y_block, sample_weight_block)``, checked, the
    weights laid out by ``output_weights`` or None); ``rows`` the blocks'
    row counts.
    """

    handles: list
    rows: tuple
    n_features: int
    n_outputs: int
    dtype: np.dtype
    multi_output: bool

    @property
    def n_samples(self):
        return sum(self.rows)


def _check_block(X, y, sample_weight, first_row, dtype, loss, n_classes, allow_copy):
    """One block checked as ``fastgd.fit`` checks its data, and its class codes' range.

    Returns ``(X, y, sample_weight, codes, n_outputs, any_weight)``: the
    weights are a part of the whole, from row ``first_row`` on (they may
    all be 0 in one block), and
    ``any_weight`` says whether one is positive.
    """
    X = check_X(X, dtype=dtype, allow_copy=allow_copy)
    classification = loss in CLASSIFICATION_LOSSES
    codes = (np.min(y), np.max(y)) if classification and np.size(y) else None
    y, n_outputs = check_y(y, X.shape[0], loss, X.dtype, n_classes, allow_copy=allow_copy)
    weights = check_sample_weight(sample_weight, X.shape[0], first_row=first_row)
    any_weight = weights is None or bool(weights.any())
    return X, y, output_weights(weights, n_outputs, loss), codes, n_outputs, any_weight


def _summary(block, index):
    """What the driver gathers of a checked block: small numbers, never the data."""
    X, _, _, codes, n_outputs, any_weight = block
    return X.shape[0], codes, n_outputs, any_weight


def checked_blocks(X, y, sample_weight, settings, executor):
    """Check X and y once, blockwise, and keep the checked blocks on the workers.

    What needs no data (dimensions, dtypes, row counts) is refused here
    before any task runs; the rest (finiteness, class codes, conversions)
    in one pass of one task per block running ``check_X`` / ``check_y``,
    whose first error is raised as ``fastgd.fit`` would raise it, before any
    training. A block may lack some classes (``n_classes`` is resolved over
    all blocks, as ``fastgd.fit`` does over its y), or have weights all 0
    (the whole may not). ``sample_weight`` is None, a number or a
    collection of X's rows, rechunked like y.

    Returns
    -------
    Blocks
    """
    import dask

    loss, allow_copy, n_classes = settings["loss"], settings["allow_copy"], settings["n_classes"]
    X, y = as_dask_array(X, "X"), as_dask_array(y, "y")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D of shape (n_samples, n_features); got shape {X.shape}.")
    # The dtype rule of check_X, on one row of X's dtype: refused (bool,
    # complex, object) before any task, and the dtype training will use.
    dtype = check_X(np.zeros((1, X.shape[1]), dtype=X.dtype)).dtype
    if y.shape[:1] != X.shape[:1]:
        raise ValueError(
            f"X and y have inconsistent numbers of samples: X has {X.shape[0]} rows, "
            f"y has {y.shape[0] if y.ndim else 'no'} rows."
        )
    if 0 in X.chunks[0]:
        raise ValueError(f"X has a block of 0 rows (row chunks {shown(X.chunks[0])}); "
                         "rechunk it, e.g. X.rechunk({0: 'auto'}).")  # fmt: skip
    if y.chunks[0] != X.chunks[0]:
        y = y.rechunk({0: X.chunks[0]})
    if sample_weight is None or (not dask.is_dask_collection(sample_weight)
                                 and np.ndim(sample_weight) == 0):  # fmt: skip
        # None or a number: the same for every block (check_sample_weight's rules).
        w_blocks = [sample_weight] * len(X.chunks[0])
    else:
        weights = as_dask_array(sample_weight, "sample_weight")
        if weights.ndim != 1 or weights.shape[0] != X.shape[0]:
            raise ValueError(
                f"sample_weight must be of shape ({X.shape[0]},), one weight per row of X; "
                f"got shape {weights.shape}."
            )
        if weights.chunks[0] != X.chunks[0]:
            weights = weights.rechunk({0: X.chunks[0]})
        w_blocks = weights.to_delayed().ravel()
    multi_output = is_multi_output(y, loss)
    # A block may lack classes: each is checked against the most classes
    # the whole y may hold (2 for the two-class losses, one per row for
    # multinomial), the driver resolves n_classes from every block's codes.
    block_classes = n_classes
    if n_classes is None and loss in CLASSIFICATION_LOSSES:
        block_classes = max(X.shape[0], 2) if loss == "multinomial" else 2
    x_blocks, y_blocks = X.to_delayed().ravel(), y.to_delayed().ravel()
    first_rows = np.cumsum((0,) + X.chunks[0][:-1]).tolist()
    check = dask.delayed(_check_block, pure=True)
    handles = executor.persist([
        check(xb, yb, wb, first_row, dtype, loss, block_classes, allow_copy)
        for xb, yb, wb, first_row in zip(x_blocks, y_blocks, w_blocks, first_rows)
    ], near=x_blocks)  # fmt: skip
    summaries = executor.gather(executor.map(_summary, handles))
    rows = tuple(int(n) for n, _, _, _ in summaries)
    n_outputs = summaries[0][2]
    codes = [c for _, c, _, _ in summaries if c is not None]
    refuse_zero_weights(any(any_weight for *_, any_weight in summaries))
    if loss in CLASSIFICATION_LOSSES:
        low, high = min(c[0] for c in codes), max(c[1] for c in codes)
        # check_y's own rules on the codes' range: the classes of the whole y.
        resolved = n_classes
        if resolved is None and loss == "multinomial" and low != high:
            resolved = int(high) + 1
        _, n_outputs = check_y(np.array([low, high]), 2, loss, dtype, resolved)
    return Blocks(handles, rows, X.shape[1], n_outputs, dtype, multi_output)
