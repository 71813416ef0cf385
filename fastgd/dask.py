"""fastgd on a Dask cluster: the same engine over blocks of rows that stay on the workers.

Needs the extra ``fastgd[dask]`` (``dask[array]``, ``distributed``); ``import
fastgd`` never imports Dask.

Public names
------------
fit
    Fit a linear model on dask collections; returns a :class:`fastgd.FitResult`.
MiniBatchRegressor, MiniBatchClassifier
    scikit-learn estimators over :func:`fit` (need scikit-learn too); their
    ``predict``, ``predict_proba`` and ``decision_function`` return lazy dask
    arrays, computed blockwise.
"""

import inspect

from ._dask_driver import prepare
from ._engine import train
from ._settings import DASK_FIT, check_settings, document_settings, table

__all__ = ["MiniBatchClassifier", "MiniBatchRegressor", "fit"]


@document_settings(DASK_FIT)
def fit(X, y, sample_weight=None, **settings):
    """Fit a linear model by gradient descent on data spread over a Dask cluster.

    Takes every setting of :func:`fastgd.fit` (the same defaults and checks)
    and three of its own, ``strategy``, ``rounds_per_epoch`` and ``client``.
    The unit of work is a block of rows of X (one chunk along the rows, all
    of its columns), never a worker: one task per block per round, scheduled
    where the block lives; only parameters and optimizer state travel. The
    same data, chunking, seed and settings give bit-identical results, on
    any number of workers, and a worker lost during the fit changes nothing
    (its blocks are recomputed from their graph).

    ``strategy='average'``: each round every block runs fastgd's compiled
    epoch (:func:`fastgd._engine.advance`) over its rows, with the batch
    size, optimizer and schedule of ``fastgd.fit``, from the broadcast
    parameters and optimizer state; the driver then averages both, weighted
    by the blocks' rows, in block order. Block ``b`` shuffles its rows with
    the seed ``seed + b · 2**128`` and the epoch's number, so a single block
    is ``fastgd.fit`` on the same rows, bit for bit. The learning-rate
    schedule and the update counter ``t`` run on across rounds as on one
    machine: after each round ``t`` advances by the **largest** number of
    updates a block made in it (with equal blocks, every block's). The loss
    of an epoch is the row-weighted mean of the blocks' epoch losses.

    ``strategy='gradient'``: each epoch is one full-batch step; every block
    computes its loss sum and gradient sum (the backend's
    ``batch_gradient``), the sums are added four at a time in block order (a fixed
    tree) and the driver makes one update (``apply_update``). It equals
    ``fastgd.fit(X, y, batch_size=None, shuffle=False)`` to rounding.

    Parameters
    ----------
    X : dask array, dask DataFrame or array-like of shape (n_samples, n_features)
        A dask array is trained on block by block, its row chunks being the
        blocks: persist it first, with y (``X, y = dask.persist(X, y)``), so that it is read
        once. Chunks along the columns are merged once into one column chunk
        (a row must be whole in a block); unknown chunk sizes (a dask
        DataFrame's ``to_dask_array()``) are computed once. A dask DataFrame
        is taken through ``to_dask_array(lengths=True)``, one block per
        partition. Anything else (NumPy, pandas) is checked as
        :func:`fastgd.fit` checks it and is **one block**: chunk it yourself
        (``dask.array.from_array(X, chunks=(rows, -1))``) to spread it.
        Every block is checked as ``fastgd.fit`` checks its X (dtype,
        finiteness, the ``allow_copy`` rule), in one pass before any training.
    y : dask array, dask Series or array-like of shape (n_samples,) or (n_samples, n_outputs)
        As for :func:`fastgd.fit`, rechunked to X's row chunks if its own
        differ; a block may lack classes (the classes are those of all of y).
    sample_weight : dask array or array-like of shape (n_samples,), float or None, default=None
        As for :func:`fastgd.fit` (each row's loss and gradient times its
        weight), rechunked to X's row chunks; checked blockwise in the same
        pass as X (a block's weights may all be 0, not all of them). The
        average stays weighted by rows.
    {settings}

    Returns
    -------
    FitResult
        As :func:`fastgd.fit`'s; ``n_updates`` is the driver's counter
        (see above) and ``epoch_seconds`` the wall time of each epoch's
        rounds, scheduling included.

    Raises
    ------
    ValueError, TypeError
        For any input or setting :func:`fastgd.fit` refuses, before any
        training task runs; also ``strategy='gradient'`` with a
        ``batch_size`` (it needs None) or ``rounds_per_epoch`` other than 1.
    DivergenceError
        As in :func:`fastgd.fit`; ``err.result`` holds the last finite epoch.
    RuntimeError
        When a block lost with a worker cannot be recomputed (data scattered
        rather than built from a graph): nothing is averaged.

    Examples
    --------
    >>> import dask.array as da, numpy as np, fastgd.dask
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2000, 3))
    >>> y = X @ np.array([1.0, -2.0, 0.5]) + 3.0
    >>> X_blocks = da.from_array(X, chunks=(500, 3))
    >>> result = fastgd.dask.fit(X_blocks, y, lr=0.05, epochs=20, random_state=0)
    >>> np.round(result.coef, 2), round(result.intercept, 2)
    (array([ 1. , -2. ,  0.5]), 3.0)
    """
    settings = check_settings(DASK_FIT, settings)
    trainer, epoch = prepare(X, y, sample_weight, settings)
    return train(trainer, lambda: trainer.record(epoch), settings, "fastgd.dask.fit")


# The keywords are the table's (fastgd.fit's, then the driver's own), so
# that help() and inspect show them without a second list to keep.
fit.__signature__ = inspect.Signature(
    [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in ("X", "y")]
    + [inspect.Parameter("sample_weight", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)]
    + [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=row.default)
       for name, row in table(DASK_FIT).items()]
)  # fmt: skip

_ESTIMATORS = ("MiniBatchClassifier", "MiniBatchRegressor")


def __getattr__(name):
    # Loaded on first use, as fastgd's own estimators: scikit-learn only then.
    if name in _ESTIMATORS:
        from . import _dask_estimators

        return getattr(_dask_estimators, name)
    raise AttributeError(f"module 'fastgd.dask' has no attribute {name!r}")
