"""fastgd.dask's estimators: fastgd's own, trained by ``fastgd.dask.fit``.

Each is the single-machine estimator (its hyperparameters, ``coef_``,
prediction code) trained by the Dask driver, plus the driver's three
settings. Prediction on a dask array is lazy and blockwise: the estimator's
own NumPy method on each block, through ``map_blocks``.
"""

import inspect

import numpy as np

from . import _estimators
from ._dask_driver import prepare
from ._engine import train
from ._settings import DASK_FIT, FIT, check_settings, setting_names, table

# The driver's own settings, which the estimators take too.
DRIVER_SETTINGS = tuple(name for name in setting_names(DASK_FIT) if name not in table(FIT))


def _is_dask(data):
    import dask.base

    return dask.base.is_dask_collection(data)


class _DaskEstimator:
    """What both Dask estimators add to the single-machine one."""

    def __init__(self, **params):
        # Defaults from the signature _own_init gives each class (scikit-learn reads it).
        for name, parameter in inspect.signature(type(self).__init__).parameters.items():
            if name != "self":
                setattr(self, name, params.pop(name, parameter.default))
        if params:
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument "
                            f"{next(iter(params))!r}")  # fmt: skip

    def _driver_settings(self, **engine):
        """The estimator's hyperparameters as ``fastgd.dask.fit``'s settings.

        The estimator-only ones (early stopping, class weights, warm start,
        progress) are not distributed: anything but their default is refused.
        """
        # The estimator's own checks first (its losses, its defaults).
        own = self._settings()
        for name, row in table(self._entry).items():
            if name not in table(DASK_FIT) and own[name] != row.default:
                raise ValueError(
                    f"{type(self).__name__} on Dask does not support {name}="
                    f"{getattr(self, name)!r}; leave it at its default, {row.default!r}."
                )
        given = {name: own[name] for name in table(self._entry) if name in table(DASK_FIT)}
        given.update({name: getattr(self, name) for name in DRIVER_SETTINGS})
        return check_settings(DASK_FIT, {**given, **engine})

    def _train(self, X, y, sample_weight, **engine):
        settings = self._driver_settings(**engine)
        trainer, epoch = prepare(X, y, sample_weight, settings)
        result = train(trainer, lambda: trainer.record(epoch), settings,
                       f"{type(self).__name__}.fit")  # fmt: skip
        self._engine_loss = settings["loss"]
        self.coef_, self.intercept_ = self._public_parameters(
            result.coef, np.asarray(result.intercept).astype(result.coef.dtype)
        )
        self.n_features_in_ = trainer.train_state.P.shape[1] - 1
        self.n_iter_, self.t_ = result.n_epochs, result.n_updates
        self.loss_curve_ = list(result.loss_history)
        return self

    def _blockwise(self, method, X, columns):
        """``method`` (the single-machine one) on X: lazily per block for a dask X."""
        compute = getattr(super(), method)
        if not _is_dask(X):
            return compute(X)
        from ._dask_data import as_dask_array

        X = as_dask_array(X, "X")
        meta = compute(np.zeros((1, X.shape[1]), dtype=X.dtype))
        if columns is None:
            return X.map_blocks(compute, drop_axis=1, dtype=meta.dtype)
        return X.map_blocks(compute, chunks=(X.chunks[0], (columns,)), dtype=meta.dtype)

    def score(self, X, y, sample_weight=None):
        """The single-machine ``score`` (R² or accuracy), dask collections computed first."""
        if _is_dask(X) or _is_dask(y):
            import dask

            X, y = dask.compute(X, y)
        return super().score(X, y, sample_weight)


def _lazy(what, shape):
    """Decorator: the numpydoc docstring of a prediction method that is lazy on dask X."""

    def decorate(method):
        method.__doc__ = f"""{what}; a lazy dask array (``map_blocks``) for a dask X.

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_features)

        Returns
        -------
        dask array or ndarray of shape {shape}
        """
        return method

    return decorate


def _signature(base):
    """``base.__init__``'s keywords plus the driver's: what scikit-learn's get_params reads."""
    parameters = list(inspect.signature(base.__init__).parameters.values())
    parameters += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY,
                                     default=table(DASK_FIT)[name].default)
                   for name in DRIVER_SETTINGS]  # fmt: skip
    return inspect.Signature(parameters)


class MiniBatchRegressor(_DaskEstimator, _estimators.MiniBatchRegressor):
    """:class:`fastgd.MiniBatchRegressor` trained on a Dask cluster by :func:`fastgd.dask.fit`.

    The hyperparameters of :class:`fastgd.MiniBatchRegressor` (but
    ``early_stopping``, ``warm_start`` and ``verbose``, which must keep their
    defaults) and ``strategy``, ``rounds_per_epoch``, ``client`` of
    :func:`fastgd.dask.fit`. ``predict`` of a dask array is a lazy dask array
    computed blockwise; ``score`` computes dask collections first.
    """

    def fit(self, X, y, sample_weight=None):
        """Fit on X and y (dask collections or arrays); see :func:`fastgd.dask.fit`.

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_features)
        y : dask array or array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : dask array, array-like of shape (n_samples,), float or None, default=None

        Returns
        -------
        self
        """
        return self._train(X, y, sample_weight)

    @_lazy("Predicted targets", "(n_samples,) or (n_samples, n_outputs)")
    def predict(self, X):
        return self._blockwise("predict", X, None if self.coef_.ndim == 1 else len(self.coef_))


class MiniBatchClassifier(_DaskEstimator, _estimators.MiniBatchClassifier):
    """:class:`fastgd.MiniBatchClassifier` trained on a Dask cluster by :func:`fastgd.dask.fit`.

    The hyperparameters of :class:`fastgd.MiniBatchClassifier` (but
    ``early_stopping``, ``class_weight``, ``warm_start`` and ``verbose``,
    which must keep their defaults) and ``strategy``, ``rounds_per_epoch``,
    ``client`` of :func:`fastgd.dask.fit`. ``classes_`` are the labels of y
    (one pass); ``predict``, ``predict_proba`` and ``decision_function`` of a
    dask array are lazy dask arrays computed blockwise.
    """

    def fit(self, X, y, sample_weight=None):
        """Fit on X and the labels y (dask collections or arrays); see :func:`fastgd.dask.fit`.

        Parameters
        ----------
        X : dask array or array-like of shape (n_samples, n_features)
        y : dask array or array-like of shape (n_samples,)
        sample_weight : dask array, array-like of shape (n_samples,), float or None, default=None

        Returns
        -------
        self
        """
        import dask.array as da

        from ._dask_data import as_dask_array

        y = as_dask_array(y, "y")
        self.classes_ = _estimators.check_class_count(da.unique(y).compute())
        # Every label is one of classes_, so its code is where it sorts.
        codes = y.map_blocks(lambda labels, classes=self.classes_: np.searchsorted(classes, labels),
                             dtype=np.intp)  # fmt: skip
        loss, _, _ = self._engine_setup(None)
        return self._train(X, codes, sample_weight, loss=loss, n_classes=len(self.classes_))

    @_lazy("Scores (positive means ``classes_[1]`` for two classes)",
           "(n_samples,) or (n_samples, n_classes)")
    def decision_function(self, X):
        return self._blockwise("decision_function", X,
                               None if len(self.classes_) == 2 else len(self.classes_))  # fmt: skip

    @_lazy("Predicted labels, from ``classes_``", "(n_samples,)")
    def predict(self, X):
        return self._blockwise("predict", X, None)

    @_estimators.available_if(lambda self: self.loss in _estimators.PROBABILISTIC_LOSSES)
    @_lazy("Class probabilities (``loss='log_loss'`` or ``'modified_huber'``)",
           "(n_samples, n_classes)")
    def predict_proba(self, X):
        return self._blockwise("predict_proba", X, len(self.classes_))


def _own_init(cls):
    """Give ``cls`` an ``__init__`` of its own whose signature lists every hyperparameter."""

    def __init__(self, **params):
        _DaskEstimator.__init__(self, **params)

    __init__.__signature__ = _signature(cls.__mro__[2])
    cls.__init__ = __init__


_own_init(MiniBatchRegressor)
_own_init(MiniBatchClassifier)
