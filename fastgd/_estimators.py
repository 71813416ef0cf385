"""scikit-learn estimators on top of the engine.

``MiniBatchRegressor``, ``MiniBatchClassifier`` and ``MiniBatchOneClassSVM``
keep one engine ``Trainer`` per model, with one output per column of a 2-D
regression y, or per class of a multinomial or one-vs-rest classifier
(one-vs-rest: every loss but ``log_loss`` with more than two classes; its K
binary problems train as K independent outputs in one pass over X): ``fit``
runs its epochs through it, ``partial_fit`` runs one more epoch, so both give
the same numbers. This module imports scikit-learn; ``fastgd/__init__`` loads
it only when one of the classes is first used, so ``import fastgd`` does not
need scikit-learn.
"""

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, OutlierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._config import CLASSIFICATION_LOSSES, LOSSES, PROBABILISTIC_LOSSES
from ._engine import RAN_ALL_EPOCHS, Plateau, Trainer, add_note, run_epochs
from ._progress import make_progress
from ._result import FitResult
from ._schedule import EPOCH_RATE_SETTINGS
from ._settings import (
    CLASSIFIER,
    ONE_CLASS,
    REGRESSOR,
    check_settings,
    engine_settings,
    kernel_records,
    parameters_doc,
    setting_names,
)
from ._validation import (
    FLOAT_DTYPES,
    check_class_count,
    check_initial,
    check_no_copy,
    check_sample_weight,
    check_validation_split,
    check_X,
    check_X_before_validate_data,
    check_y,
    is_multi_output,
    output_weights,
    shown,
)

# The batch size is settled per call: partial_fit's chunks differ in size and
# the Trainer clips every epoch's batch to the rows it is given, so the config
# carries the requested size ("all rows" for None) rather than one chunk's.
_ALL_ROWS = np.iinfo(np.int64).max
# validate_data converts X of any other dtype (a list, integers) to the first
# of these: float64, as fastgd.fit and scikit-learn do; float32 stays float32.
_X_DTYPES = tuple(sorted(FLOAT_DTYPES, key=lambda dtype: -np.dtype(dtype).itemsize))

_COMMON_ATTRIBUTES = """\
    n_iter_ : int
        Epochs run since the model last started from zero (a ``fit`` without
        ``warm_start``, or the first ``partial_fit``): later ``partial_fit``
        calls and ``warm_start`` fits count on.
    t_ : int
        Parameter updates made (one per batch), counted like ``n_iter_``.
        Unlike scikit-learn's SGD estimators, whose ``t_`` counts samples
        seen plus one, fastgd counts updates: the clock of ``invscaling``.
    loss_curve_ : list of float
        Mean training loss of every epoch (without the penalty), as in
        :attr:`fastgd.FitResult.loss_history`; averaged over the outputs of
        a multi-output regressor or a one-vs-rest classifier.
    validation_scores_ : list of float or None
        With ``early_stopping``, the score on the held-out rows after every
        epoch of the last ``fit`` (R² for the regressor, accuracy for the
        classifier), as scikit-learn's ``MLPClassifier``; None without.
    best_validation_score_ : float or None
        The best of ``validation_scores_``: the epoch whose parameters the
        model keeps.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined only when X was a DataFrame with string column names.

    Notes
    -----
    ``fit`` stops by scikit-learn's rule (``tol``, ``n_iter_no_change``) and
    warns with a ``ConvergenceWarning`` when it reaches ``epochs`` first.

    A ``fit`` or ``partial_fit`` refused before training (a ValueError or
    TypeError for X, y or a setting) leaves the estimator exactly as it was:
    every check runs before any attribute is set.

    When ``fit`` or ``partial_fit`` stops on an error (``DivergenceError``, a
    Ctrl-C, an exception from ``callback`` or the TypeError of a callback
    that returns neither a bool nor None), the error propagates and the
    model keeps the fitted attributes of the last completed epoch (with
    ``early_stopping``, of the best epoch so far, as at a normal end), all
    finite. A Ctrl-C lets the epoch in progress finish; a second one stops at
    once (see :func:`fastgd.fit`).
"""


def _split_rng(random_state):
    """The generator that draws the early-stopping hold-out.

    An integer seed gets a stream of its own, so holding rows out does not
    reuse the draws of the row orders that the same seed gives.
    """
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        return np.random.default_rng([int(random_state), 1])
    return np.random.default_rng(random_state)


def _hold_out(n_samples, fraction, rng, strata=None):
    """Split ``range(n_samples)`` into sorted (training rows, validation rows).

    ``ceil(fraction · n)`` rows are held out, as scikit-learn's
    ``ShuffleSplit``, for the regressor and the classifier alike; with
    ``strata`` (class codes) they are shared among the classes in proportion
    to their sizes, as ``StratifiedShuffleSplit``. A split that would leave
    either side empty, or a class without a training row, raises: it never
    holds out fewer rows than asked.
    """
    n_validation = int(np.ceil(fraction * n_samples))
    check_validation_split(n_validation, n_samples, fraction)
    if strata is None:
        groups, sizes = [np.arange(n_samples)], [n_validation]
    else:
        labels = np.unique(strata)
        groups = [np.flatnonzero(strata == code) for code in labels]
        counts = np.array([rows.size for rows in groups])
        share = n_validation * counts / n_samples
        sizes = np.floor(share).astype(np.int64)
        # The rows left over go to the classes with the largest remainders.
        leftover = np.argsort(sizes - share, kind="stable")[: n_validation - sizes.sum()]
        sizes[leftover] += 1
        emptied = np.flatnonzero(sizes >= counts)
        if emptied.size:
            k = emptied[0]
            raise ValueError(
                f"early_stopping's stratified hold-out of validation_fraction={fraction!r} "
                f"would hold out all {int(counts[k])} row(s) of class classes_[{int(labels[k])}], "
                "leaving it no training row. Use a smaller validation_fraction or more "
                "rows, or set early_stopping=False."
            )
    validation = np.sort(
        np.concatenate([rng.choice(rows, size=size, replace=False)
                        for rows, size in zip(groups, sizes)])  # fmt: skip
    )
    training = np.ones(n_samples, dtype=bool)
    training[validation] = False
    return np.flatnonzero(training), validation


class _MiniBatchBase(BaseEstimator):
    """What the regressor and the classifier share: settings, data, training loop.

    A subclass names its entry point in the settings table (``_entry``:
    its settings, their checks and docs, the losses it accepts), whether y is
    numeric (``_numeric_y``), and four small methods: ``_encode_y`` (targets
    for the engine), ``_engine_setup`` (engine loss, outputs, one-vs-rest),
    ``_public_parameters`` (``coef_``/``intercept_`` shapes) and
    ``_score_rows`` (the early-stopping score). An estimator without a y
    (``_takes_y`` False: the one-class SVM) trains every row as class 1, and
    publishes its intercept under ``_intercept_attribute``.
    """

    _entry = None
    _numeric_y = True
    _takes_y = True
    _intercept_attribute = "intercept_"

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # scipy.sparse X is trained on as CSR, never densified.
        tags.input_tags.sparse = True
        return tags

    # --- settings -------------------------------------------------------------

    def _settings(self):
        """Every hyperparameter checked by its row of the settings table.

        The checked values are plain Python numbers, whatever NumPy scalar the
        user set (``epochs=np.uint8(255)`` is the int 255): training reads
        these, never the attributes themselves.
        """
        checked = check_settings(
            self._entry, {name: getattr(self, name) for name in setting_names(self._entry)}
        )
        return engine_settings(self._entry, checked)

    @staticmethod
    def _schedule(settings):
        return dict(
            backend=settings["backend"], **{name: settings[name] for name in EPOCH_RATE_SETTINGS}
        )

    # --- data and trainers ----------------------------------------------------

    def _prepare(self, X, y, classes, settings, *, continuing, init=(None, None),
                 sample_weight=None):  # fmt: skip
        """Validate the settings, X, y and the sample weights; changes nothing of the estimator.

        Returns ``(X, targets, weights, codes, sample_weight, commit)``: X
        ready for the kernels, the engine's targets (a list of one) and the
        row weights (None: unweighted; ``_row_weights``, laid out by
        ``output_weights``), y itself
        (regression) or its class codes, the checked ``sample_weight``
        (float64 or None), and ``commit()``, which alone changes the estimator: it sets
        what validation found (``n_features_in_``, ``feature_names_in_``,
        ``classes_``) and creates or reconfigures the trainers. A caller runs
        its own remaining checks (the early-stopping split), then commits, so
        that a call rejected by any check leaves the estimator as it was.

        scikit-learn's ``validate_data`` keeps its conventions (feature count
        and names, complex, sparse and object input); fastgd's own checks
        (finite values, float dtype, C order, targets) follow, no copy made
        when X is already a C-contiguous float array. ``validate_data`` and
        ``_encode_y`` set attributes as they check: they run on a shallow
        copy, whose attributes ``commit`` takes over.
        """
        cfg, run = kernel_records(settings, n_samples=_ALL_ROWS)
        if not settings["allow_copy"]:
            # Before scikit-learn's validate_data, which would make the copy.
            check_no_copy("X", X, self._trainers[0].P.dtype if continuing else None)
        shadow = object.__new__(type(self))
        vars(shadow).update(vars(self))
        columns = list(X.columns) if hasattr(X, "columns") else None
        X = check_X_before_validate_data(
            X, self._trainers[0].P.dtype if continuing else None
        )
        checks = dict(reset=not continuing, dtype=_X_DTYPES, order="C",
                      accept_sparse="csr", ensure_all_finite=False)  # fmt: skip
        if self._takes_y:
            X, y = validate_data(shadow, X, y, y_numeric=self._numeric_y,
                                multi_output=self._numeric_y, **checks)  # fmt: skip
        else:
            # An outlier detector's y is ignored: every row is an inlier.
            X = validate_data(shadow, X, **checks)
            y = np.ones(X.shape[0], dtype=X.dtype)
        X = check_X(X, dtype=self._trainers[0].P.dtype if continuing else None,
                    columns=columns)  # fmt: skip
        codes = shadow._encode_y(y, classes, first=not continuing)
        loss, n_outputs, one_vs_rest = shadow._engine_setup(codes)
        # log_loss with more than two classes is the engine's multinomial.
        cfg = cfg._replace(loss=LOSSES.index(loss))
        if continuing and loss != self._engine_loss:
            raise ValueError(
                f"loss={self.loss!r} cannot continue a model trained with "
                f"{self._engine_loss!r}; fit with warm_start=False to start again."
            )
        multi_output = is_multi_output(codes, loss)
        if continuing and (n_outputs, multi_output) != (
            self._trainers[0].P.shape[0], self._trainers[0].multi_output
        ):
            shape = f"(n_samples, {n_outputs})" if multi_output else "(n_samples,)"
            raise ValueError(
                f"y of shape {shape} cannot continue a model trained with "
                f"{self._trainers[0].P.shape[0]} output(s) of a "
                f"{'2-D' if self._trainers[0].multi_output else '1-D'} y; fit with "
                "warm_start=False to start again."
            )
        # The model's class count: a chunk of y (partial_fit) need not show
        # every class. One-vs-rest's K outputs read the class codes
        # themselves (output k's target: code == k), in one pass over X.
        n_classes = n_outputs if loss == "multinomial" or one_vs_rest else (
            2 if loss in CLASSIFICATION_LOSSES else None)
        targets = [check_y(codes, X.shape[0], loss, X.dtype, n_classes)[0]]
        sample_weight = check_sample_weight(sample_weight, X.shape[0])
        weights = output_weights(
            shadow._row_weights(codes, sample_weight, n_outputs, one_vs_rest, settings),
            n_outputs, loss)  # fmt: skip
        trainers = None
        if not continuing:
            trainers = [
                Trainer(
                    cfg, X.shape[1], n_outputs, X.dtype, loss=loss,
                    random_state=self.random_state, run=run, multi_output=multi_output,
                    **self._schedule(settings),
                )  # fmt: skip
            ]
            _start_from(trainers, *init, X.dtype)

        def commit():
            if continuing:
                # Every trainer gets the same settings, and reconfigure checks
                # them all before it changes anything: the first either
                # refuses them, unchanged, or all take them.
                for trainer in self._trainers:
                    trainer.reconfigure(cfg, run=run, **self._schedule(settings))
            else:
                shadow._engine_loss = loss
                shadow._trainers = trainers
            found = vars(shadow)
            for name in [name for name in vars(self) if name not in found]:
                delattr(self, name)
            vars(self).update(found)

        return X, targets, weights, codes, sample_weight, commit

    def _row_weights(self, codes, sample_weight, n_outputs, one_vs_rest, settings):
        """The rows' weights before ``output_weights`` lays them out: ``sample_weight`` itself here."""
        return sample_weight

    def _epoch(self, X, targets, weights, shuffle, rows=None):
        """One epoch of the model's trainer, all or nothing (:meth:`Trainer.epoch`).

        Every output (a multi-output regressor's columns, a one-vs-rest
        classifier's classes) trains in this one pass over X.
        """
        return self._trainers[0].epoch(X, targets[0], shuffle=shuffle, rows=rows,
                                       sample_weight=weights)  # fmt: skip

    def _current_parameters(self):
        """Copies of the trainer's parameters in ``coef_``/``intercept_`` shapes."""
        result = self._trainers[0].result
        coef, intercept = result.coef, np.asarray(result.intercept)
        return self._public_parameters(coef, intercept.astype(coef.dtype))

    def _predictor(self, coef, intercept):
        """A :class:`FitResult` over public-shaped parameters: fastgd's own prediction."""
        # A regressor's 2-D coef is a multi-output one, kept 2-D even for one
        # output; a classifier's single row is its one binary score.
        if coef.ndim == 1 or (coef.shape[0] == 1 and self._engine_loss in CLASSIFICATION_LOSSES):
            coef, intercept = coef.reshape(-1), intercept[0]
        return FitResult(coef=coef, intercept=intercept, loss=self._engine_loss)

    def _publish(self):
        """Set the fitted attributes from the trainer."""
        result = self._trainers[0].result
        self.coef_, intercept = self._current_parameters()
        setattr(self, self._intercept_attribute, intercept)
        self.n_iter_ = result.n_epochs
        self.t_ = result.n_updates
        self.loss_curve_ = list(result.loss_history)

    def __setstate__(self, state):
        # A one-vs-rest model pickled when it kept one Trainer per class
        # loads as the one Trainer of K outputs that it is now.
        trainers = state.get("_trainers")
        if trainers is not None and len(trainers) > 1:
            state = dict(state, _trainers=[_merge_trainers(trainers)])
        super().__setstate__(state)

    # --- training ---------------------------------------------------------------

    def _fit(self, X, y, sample_weight=None, coef_init=None, intercept_init=None):
        settings = self._settings()
        init = (coef_init, intercept_init)
        # Initial parameters given start a new fit from them, warm_start or
        # not (as scikit-learn, where they take precedence over coef_).
        continuing = (settings["warm_start"] and hasattr(self, "_trainers")
                      and coef_init is None and intercept_init is None)  # fmt: skip
        X, targets, weights, codes, sample_weight, commit = self._prepare(
            X, y, None, settings, continuing=continuing, init=init, sample_weight=sample_weight
        )
        rows, plateau, monitor = None, None, None
        tol = settings["tol"]
        early_stopping = settings["early_stopping"]
        if early_stopping:
            rows, held = _hold_out(
                X.shape[0], settings["validation_fraction"], _split_rng(self.random_state),
                strata=None if self._numeric_y else codes,
            )  # fmt: skip
        commit()
        trainers = self._trainers
        self.validation_scores_ = [] if early_stopping else None
        self.best_validation_score_ = None
        if early_stopping:
            X_valid, y_valid = X[held], codes[held]
            # The held-out rows' own weights weigh their score, as in
            # scikit-learn (class weights shape training only).
            w_valid = None if sample_weight is None else sample_weight[held]
            best = {"score": -np.inf, "P": None}

            def monitor(loss):
                score = self._score_rows(
                    self._predictor(*self._current_parameters()), X_valid, y_valid, w_valid
                )
                self.validation_scores_.append(score)
                if score > best["score"]:
                    best["score"] = self.best_validation_score_ = score
                    best["P"] = [trainer.snapshot(average=True) for trainer in trainers]
                return "validation score", score

            tol = 0.0 if tol is None else tol
        if tol is not None:
            plateau = Plateau(tol, settings["n_iter_no_change"])
        n_rows = X.shape[0] if rows is None else rows.shape[0]
        try:
            ended = run_epochs(
                lambda: self._epoch(X, targets, weights, settings["shuffle"], rows),
                settings["epochs"],
                plateau=plateau,
                monitor=monitor,
                callback=settings["callback"],
                parameters=self._current_parameters,
                progress=make_progress(
                    settings["verbose"], settings["epochs"], n_rows, type(self).__name__
                ),
                first_epoch=trainers[0].result.n_epochs + 1,
                on_plateau=self._on_plateau,
            )
        except KeyboardInterrupt as exc:
            self._note_interrupt(exc, "fit")
            raise
        else:
            if plateau is not None and ended == RAN_ALL_EPOCHS:
                watched = "validation score" if early_stopping else "training loss"
                warnings.warn(
                    f"{type(self).__name__} ran all epochs={settings['epochs']} without "
                    f"its {watched} meeting the stopping rule (tol={plateau.tol:g}, "
                    f"n_iter_no_change={plateau.n_iter_no_change}). Consider increasing "
                    "epochs, or a larger lr.",
                    ConvergenceWarning,
                    stacklevel=3,
                )
        finally:
            # Also when training stopped on an error: the completed epochs'
            # parameters (all finite) are what the model keeps.
            if early_stopping and best["P"] is not None:
                for trainer, saved in zip(trainers, best["P"]):
                    trainer.restore(*saved)
            self._publish()
        return self

    def _on_plateau(self):
        """``adaptive``'s decay, for every trainer alike (they share the schedule)."""
        return all([trainer.on_plateau() for trainer in self._trainers])

    def _partial_fit(self, X, y, classes, sample_weight=None):
        settings = self._settings()
        continuing = hasattr(self, "_trainers")
        X, targets, weights, _, _, commit = self._prepare(
            X, y, classes, settings, continuing=continuing, sample_weight=sample_weight
        )
        commit()
        try:
            run_epochs(
                lambda: self._epoch(X, targets, weights, settings["shuffle"]),
                1,
                callback=settings["callback"],
                parameters=self._current_parameters,
                first_epoch=self._trainers[0].result.n_epochs + 1,
            )
        except KeyboardInterrupt as exc:
            self._note_interrupt(exc, "partial_fit")
            raise
        finally:
            self._publish()
        return self

    def _note_interrupt(self, exc, method):
        add_note(exc, f"{type(self).__name__}.{method} was interrupted; the model "
                      f"keeps the parameters of its {self._trainers[0].result.n_epochs} "
                      "completed epoch(s).")  # fmt: skip

    # --- prediction -------------------------------------------------------------

    def _decision(self, X, method, intercept=None):
        """``method`` of the fitted model's predictor on a validated X (with ``intercept``, if given)."""
        check_is_fitted(self)
        X = validate_data(
            self, X, reset=False, dtype=_X_DTYPES, order="C", accept_sparse="csr",
            ensure_all_finite=False,
        )  # fmt: skip
        intercept = self.intercept_ if intercept is None else intercept
        return getattr(self._predictor(self._dense_coef(), intercept), method)(X)

    # --- sparse coefficients (scikit-learn's SparseCoefMixin) -------------------

    def _dense_coef(self):
        """``coef_`` as an array of its usual shape, whether or not :meth:`sparsify` made it sparse."""
        coef = self.coef_
        if not isinstance(coef, np.ndarray):  # a scipy.sparse matrix
            shape = self._public_parameters(self._trainers[0].result.coef, np.zeros(1))[0].shape
            coef = coef.toarray().reshape((-1,) + shape[1:])
        return coef

    def sparsify(self):
        """Convert ``coef_`` to a ``scipy.sparse`` CSR matrix, as scikit-learn's linear models do.

        Worth it where most weights are exactly 0 (an L1 penalty's models):
        the matrix stores only the others. Predictions are unchanged (X is
        multiplied by the dense coefficients). Training again (``fit``,
        ``partial_fit``) sets ``coef_`` to an array again; :meth:`densify`
        does so without training.

        Returns
        -------
        self
        """
        check_is_fitted(self)
        import scipy.sparse as sp

        self.coef_ = sp.csr_matrix(self.coef_)
        return self

    def densify(self):
        """Convert a ``coef_`` made sparse by :meth:`sparsify` back to a NumPy array (its usual shape).

        Returns
        -------
        self
        """
        check_is_fitted(self)
        self.coef_ = self._dense_coef()
        return self


class MiniBatchRegressor(RegressorMixin, _MiniBatchBase):
    __doc__ = f"""Linear regression fitted by mini-batch gradient descent.

    scikit-learn's estimator API over :func:`fastgd.fit`: the same keyword
    arguments and the same numbers for the same ``random_state``. Works in
    ``Pipeline``, ``GridSearchCV`` and ``clone``, and pickles.

    Parameters
    ----------
{parameters_doc(REGRESSOR)}
    Attributes
    ----------
    coef_ : ndarray of shape (n_features,) or (n_outputs, n_features)
        2-D for a 2-D y (multi-output regression), even of one column, as
        scikit-learn's ``LinearRegression``; each output is fitted as a
        single-output regression of its column would be, all in one pass
        over X per epoch.
    intercept_ : ndarray of shape (1,) or (n_outputs,)
{_COMMON_ATTRIBUTES}
    See Also
    --------
    fastgd.fit : the function underneath.
    MiniBatchClassifier : the classifier.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd import MiniBatchRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(1000, 3))
    >>> y = X @ np.array([1.0, -2.0, 0.5]) + 3.0
    >>> model = MiniBatchRegressor(lr=0.05, epochs=20, random_state=0).fit(X, y)
    >>> np.round(model.coef_, 2), np.round(model.intercept_, 2)
    (array([ 1. , -2. ,  0.5]), array([3.]))
    """

    _entry = REGRESSOR
    _numeric_y = True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # A 2-D y is one output per column, all trained in one pass over X.
        tags.target_tags.multi_output = True
        return tags

    def __init__(
        self,
        *,
        loss="squared_error",
        optimizer="sgd",
        lr=0.01,
        schedule="constant",
        batch_size=32,
        epochs=1000,
        penalty=None,
        alpha=0.0001,
        l1_ratio=0.15,
        l1_method="proximal",
        fit_intercept=True,
        shuffle=True,
        drop_last=False,
        tol=1e-3,
        n_iter_no_change=5,
        early_stopping=False,
        validation_fraction=0.1,
        warm_start=False,
        random_state=None,
        backend="numba",
        verbose=0,
        callback=None,
        allow_copy=True,
        epsilon=0.1,
        power_t=0.25,
        decay=0.9,
        step_size=10,
        gamma=0.1,
        momentum=0.9,
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        rho=0.9,
        weight_decay=0.01,
        average=False,
        n_threads=1,
        parallel="data",
        sparse_update="lazy",
    ):
        _store_parameters(self, locals())

    def fit(self, X, y, sample_weight=None, *, coef_init=None, intercept_init=None):
        """Fit for up to ``epochs`` epochs (continuing the last fit with ``warm_start``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets; a 2-D y is a multi-output regression, one output per
            column.
        coef_init : array-like of shape (n_features,) or (n_outputs, n_features), default=None
        sample_weight : array-like of shape (n_samples,) or float, default=None
            Weights of the rows (None: all 1); see :func:`fastgd.fit`. With
            ``early_stopping`` the held-out rows' weights weigh their score.
            Initial weights (zeros when None). Given, this or
            ``intercept_init`` starts a new fit from them, also with
            ``warm_start``.
        intercept_init : float or array-like of shape (1,) or (n_outputs,), default=None
            Initial intercept (0 when None).

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, coef_init, intercept_init)

    def partial_fit(self, X, y, sample_weight=None):
        """Run one epoch over ``X``, ``y``, continuing from the current parameters.

        ``epochs``, ``tol`` and ``early_stopping`` do not apply. Calling it
        ``k`` times on the same data gives the coefficients of ``fit`` with
        ``epochs=k`` and the same ``random_state``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            1-D, or 2-D with as many columns, as the y the model started with.
        sample_weight : array-like of shape (n_samples,) or float, default=None
            Weights of this chunk's rows (None: all 1); see :func:`fastgd.fit`.

        Returns
        -------
        self
        """
        return self._partial_fit(X, y, None, sample_weight)

    def predict(self, X):
        """Predicted targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
            2-D for a model fitted to a 2-D y.
        """
        return self._decision(X, "predict")

    # --- hooks of the base class ----------------------------------------------------

    def _encode_y(self, y, classes, first):
        return y

    def _engine_setup(self, y):
        return self.loss, y.shape[1] if y.ndim == 2 else 1, False

    def _public_parameters(self, coef, intercept):
        return coef.copy(), intercept.reshape(-1).copy()

    def _score_rows(self, predictor, X, y, sample_weight=None):
        return r2_score(y, predictor.predict(X), sample_weight=sample_weight)


class MiniBatchClassifier(ClassifierMixin, _MiniBatchBase):
    __doc__ = f"""Linear classifier fitted by mini-batch gradient descent.

    Logistic regression (``loss='log_loss'``: binary for two classes,
    multinomial softmax for more), a linear SVM (``loss='hinge'``,
    ``'squared_hinge'``), ``'modified_huber'`` or the perceptron
    (``loss='perceptron'``), those one-vs-rest for more than two classes, on
    the engine of
    :func:`fastgd.fit`. Labels may be of any kind (strings, non-contiguous
    integers): they are sorted into ``classes_`` and predicted back.

    Parameters
    ----------
{parameters_doc(CLASSIFIER)}
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    coef_ : ndarray of shape (1, n_features) or (n_classes, n_features)
        One row for two classes (the score of ``classes_[1]``), as in
        scikit-learn's ``SGDClassifier``.
    intercept_ : ndarray of shape (1,) or (n_classes,)
{_COMMON_ATTRIBUTES}
    See Also
    --------
    fastgd.fit : the function underneath.
    MiniBatchRegressor : the regressor.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from fastgd import MiniBatchClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> model = MiniBatchClassifier(optimizer="adam", lr=0.05, epochs=50,
    ...                             random_state=0).fit(X, y)
    >>> model.coef_.shape, model.predict_proba(X[:2]).shape
    ((3, 4), (2, 3))
    """

    _entry = CLASSIFIER
    _numeric_y = False

    def __init__(
        self,
        *,
        loss="log_loss",
        optimizer="sgd",
        lr=0.01,
        schedule="constant",
        batch_size=32,
        epochs=1000,
        penalty=None,
        alpha=0.0001,
        l1_ratio=0.15,
        l1_method="proximal",
        fit_intercept=True,
        shuffle=True,
        drop_last=False,
        tol=1e-3,
        n_iter_no_change=5,
        early_stopping=False,
        validation_fraction=0.1,
        warm_start=False,
        class_weight=None,
        random_state=None,
        backend="numba",
        verbose=0,
        callback=None,
        allow_copy=True,
        epsilon=0.1,
        power_t=0.25,
        decay=0.9,
        step_size=10,
        gamma=0.1,
        momentum=0.9,
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        rho=0.9,
        weight_decay=0.01,
        average=False,
        n_threads=1,
        parallel="data",
        sparse_update="lazy",
    ):
        _store_parameters(self, locals())

    def fit(self, X, y, sample_weight=None, *, coef_init=None, intercept_init=None):
        """Fit for up to ``epochs`` epochs (continuing the last fit with ``warm_start``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Labels of any kind; at least two distinct values.
        sample_weight : array-like of shape (n_samples,) or float, default=None
            Weights of the rows (None: all 1), multiplied by ``class_weight``'s;
            see :func:`fastgd.fit`. With ``early_stopping`` the held-out rows'
            sample weights weigh their accuracy.
        coef_init : array-like of shape (n_classes, n_features), default=None
            Initial weights (zeros when None), rows in the order of
            ``classes_``; for two classes of shape (1, n_features) or
            (n_features,). Given, this or ``intercept_init`` starts a new
            fit from them, also with ``warm_start``.
        intercept_init : array-like of shape (n_classes,), default=None
            Initial intercepts (0 when None); for two classes a number or
            shape (1,).

        Returns
        -------
        self
        """
        return self._fit(X, y, sample_weight, coef_init, intercept_init)

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Run one epoch over ``X``, ``y``, continuing from the current parameters.

        ``epochs``, ``tol`` and ``early_stopping`` do not apply. Calling it
        ``k`` times on the same data gives the coefficients of ``fit`` with
        ``epochs=k`` and the same ``random_state``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        classes : array-like of shape (n_classes,), default=None
            Every label the model will see; required on the first call
            (a chunk need not contain them all), optional afterwards.
        sample_weight : array-like of shape (n_samples,) or float, default=None
            Weights of this chunk's rows (None: all 1), multiplied by
            ``class_weight``'s (a dict; ``'balanced'`` is refused here).

        Returns
        -------
        self
        """
        if classes is None and not hasattr(self, "_trainers"):
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if isinstance(self.class_weight, str) and self.class_weight == "balanced":
            # One chunk's class frequencies are not the data's: scikit-learn's
            # SGDClassifier refuses it too, rather than weigh silently wrong.
            raise ValueError(
                "class_weight='balanced' is not supported by partial_fit: a chunk's class "
                "frequencies are not those of the whole data. Compute the weights once, "
                "sklearn.utils.class_weight.compute_class_weight('balanced', classes=classes, "
                "y=y) over y (or a large enough sample of it), and pass them as "
                "class_weight=dict(zip(classes, weights))."
            )
        return self._partial_fit(X, y, classes, sample_weight)

    def decision_function(self, X):
        """Scores: for two classes, positive means ``classes_[1]``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        return self._decision(X, "decision_function")

    def predict(self, X):
        """Predicted labels, from ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        codes = self._decision(X, "predict")
        return self.classes_[codes]

    @available_if(lambda self: self.loss in PROBABILISTIC_LOSSES)
    def predict_proba(self, X):
        """Class probabilities (``loss='log_loss'`` or ``'modified_huber'``).

        ``modified_huber``'s are scikit-learn's ``SGDClassifier``'s:
        ``(clip(score, -1, 1) + 1) / 2`` of each class, rows normalised (a
        row of all zeros gets the uniform ``1 / n_classes``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``; rows sum to 1.
        """
        return self._decision(X, "predict_proba")

    @available_if(lambda self: self.loss in PROBABILISTIC_LOSSES)
    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba` (``-inf`` where a probability is 0).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    # --- hooks of the base class ----------------------------------------------------

    def _encode_y(self, y, classes, first):
        """Class codes 0..K-1 of the labels ``y`` (setting ``classes_`` when first)."""
        check_classification_targets(y)
        given = None if classes is None else np.unique(classes)
        if first:
            self.classes_ = check_class_count(np.unique(y) if given is None else given)
        elif given is not None and not np.array_equal(given, self.classes_):
            raise ValueError(
                f"classes={given.tolist()!r} is not the same as on the first call, "
                f"{self.classes_.tolist()!r}."
            )
        codes = np.searchsorted(self.classes_, y)
        unknown = (codes >= len(self.classes_)) | (
            self.classes_[np.minimum(codes, len(self.classes_) - 1)] != y
        )
        if unknown.any():
            raise ValueError(
                f"y contains labels not in classes_ {self.classes_.tolist()!r}, such as "
                f"{shown(y[unknown][0])}."
            )
        return codes

    def _engine_setup(self, codes):
        n_classes = len(self.classes_)
        if n_classes == 2:
            return self.loss, 1, False
        if self.loss == "log_loss":
            return "multinomial", n_classes, False
        return self.loss, n_classes, True

    def _row_weights(self, codes, sample_weight, n_outputs, one_vs_rest, settings):
        """The rows' weights: ``sample_weight`` times the rows' class weights.

        Without ``class_weight``, ``sample_weight`` itself (None stays None:
        the unweighted kernels). Otherwise scikit-learn's rule: a row of
        class k weighs ``class_weight[k]`` in the binary and the multinomial
        model, and problem k of one-vs-rest weighs its positive rows
        ``class_weight[k]`` and the rest 1 (:func:`one_vs_rest_weights`):
        one-vs-rest's weights have shape (n_samples, n_outputs), a column
        per output.
        """
        per_class = class_weights(settings["class_weight"], self.classes_, codes)
        if per_class is None:
            return sample_weight
        if one_vs_rest:
            weights = np.column_stack([one_vs_rest_weights(per_class, codes, k)
                                       for k in range(n_outputs)])  # fmt: skip
            return weights if sample_weight is None else weights * sample_weight[:, None]
        weights = per_class[codes]
        return weights if sample_weight is None else weights * sample_weight

    def _public_parameters(self, coef, intercept):
        return np.atleast_2d(coef).copy(), intercept.reshape(-1).copy()

    def _score_rows(self, predictor, X, codes, sample_weight=None):
        return float(np.average(predictor.predict(X) == codes, weights=sample_weight))


def class_weights(class_weight, classes, codes):
    """The weight of each class of ``classes`` (float64, one per class), or None without weights.

    ``class_weight`` is a setting already checked (None, ``'balanced'`` or a
    dict of label to weight): a dict's classes not named weigh 1, and a label
    that is not a class is refused; ``'balanced'`` is scikit-learn's
    ``n_samples / (n_classes · count(k))``, counted over ``codes`` (every
    class of ``fit``'s y is present in it).
    """
    if class_weight is None:
        return None
    if isinstance(class_weight, str):
        counts = np.bincount(codes, minlength=len(classes)).astype(np.float64)
        return len(codes) / (len(classes) * counts)
    unknown = [label for label in class_weight if label not in set(classes.tolist())]
    if unknown:
        raise ValueError(
            f"class_weight names {shown(unknown[0])}, which is not a class; the classes are "
            f"{classes.tolist()!r}."
        )
    return np.array([float(class_weight.get(label, 1.0)) for label in classes.tolist()])


def one_vs_rest_weights(per_class, codes, k):
    """The class weights of one-vs-rest problem ``k``: ``per_class[k]`` for class k's rows, 1 elsewhere.

    scikit-learn's ``pos_weight=class_weight[k]``, ``neg_weight=1``.
    """
    return np.where(codes == k, per_class[k], 1.0)


class MiniBatchOneClassSVM(OutlierMixin, _MiniBatchBase):
    __doc__ = f"""Linear one-class SVM fitted by mini-batch gradient descent.

    scikit-learn's ``SGDOneClassSVM`` on the engine of :func:`fastgd.fit`:
    the same objective, ``ν/2·‖w‖² + ν·b + mean max(0, 1 − (w·x + b))``,
    and the same attributes, with ``offset_ = 1 − b`` and the decision
    function ``X · coef_ − offset_`` (positive: an inlier). At
    ``batch_size=1`` with ``optimizer='sgd'`` it is scikit-learn's
    algorithm, update for update (for a sparse X, scikit-learn also damps
    the intercept's steps by 0.01; fastgd does not, so a sparse X gives the
    numbers of its dense copy). Larger batches, the other optimizers and
    schedules, threads and backends are those of the other estimators. Meant
    for features from a kernel approximation (``sklearn.kernel_approximation``)
    as scikit-learn's is.

    Parameters
    ----------
{parameters_doc(ONE_CLASS)}
    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
    offset_ : ndarray of shape (1,)
        ``decision_function = score_samples − offset_``; 1 minus the
        intercept the engine fits.
{_COMMON_ATTRIBUTES}
    See Also
    --------
    sklearn.linear_model.SGDOneClassSVM : scikit-learn's, stochastic only.
    MiniBatchClassifier : ``loss='hinge'`` is the two-class linear SVM.

    Examples
    --------
    >>> import numpy as np
    >>> from fastgd import MiniBatchOneClassSVM
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(1000, 2)) + 5.0
    >>> model = MiniBatchOneClassSVM(nu=0.1, lr=0.01, epochs=20, tol=None,
    ...                              random_state=0).fit(X)
    >>> model.predict([[5.0, 5.0], [-5.0, -5.0]])
    array([ 1, -1], dtype=int32)
    """

    _entry = ONE_CLASS
    _takes_y = False
    _intercept_attribute = "offset_"

    def __init__(
        self,
        *,
        nu=0.5,
        optimizer="sgd",
        lr=0.01,
        schedule="constant",
        batch_size=32,
        epochs=1000,
        fit_intercept=True,
        shuffle=True,
        drop_last=False,
        tol=1e-3,
        n_iter_no_change=5,
        warm_start=False,
        random_state=None,
        backend="numba",
        verbose=0,
        callback=None,
        allow_copy=True,
        power_t=0.25,
        decay=0.9,
        step_size=10,
        gamma=0.1,
        momentum=0.9,
        beta1=0.9,
        beta2=0.999,
        eps=1e-8,
        rho=0.9,
        weight_decay=0.01,
        average=False,
        n_threads=1,
        parallel="data",
        sparse_update="lazy",
    ):
        _store_parameters(self, locals())

    def fit(self, X, y=None, coef_init=None, offset_init=None, sample_weight=None):
        """Fit for up to ``epochs`` epochs (continuing the last fit with ``warm_start``).

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)
        y : None
            Ignored: every row is an inlier.
        coef_init : array-like of shape (n_features,), default=None
            Initial weights (zeros when None). Given, this or
            ``offset_init`` starts a new fit from them, also with
            ``warm_start``.
        offset_init : float or array-like of shape (1,), default=None
            Initial offset (0 when None, as scikit-learn's: an intercept of 1).
        sample_weight : array-like of shape (n_samples,) or float, default=None
            Weights of the rows (None: all 1); see :func:`fastgd.fit`.

        Returns
        -------
        self
        """
        return self._fit(X, None, sample_weight, coef_init, offset_init)

    def partial_fit(self, X, y=None, sample_weight=None):
        """Run one epoch over ``X``, continuing from the current parameters.

        ``epochs`` and ``tol`` do not apply. Calling it ``k`` times on the
        same data gives the coefficients of ``fit`` with ``epochs=k`` and the
        same ``random_state``.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,) or float, default=None
            Weights of this chunk's rows (None: all 1).

        Returns
        -------
        self
        """
        return self._partial_fit(X, None, None, sample_weight)

    def decision_function(self, X):
        """Signed distance to the boundary, ``X · coef_ − offset_``: positive for an inlier.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        # The score with intercept −offset_: X · coef_ − offset_ exactly.
        check_is_fitted(self)
        return self._decision(X, "decision_function", -self.offset_)

    def score_samples(self, X):
        """The raw score ``X · coef_``: ``decision_function(X) + offset_``.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return self.decision_function(X) + self.offset_

    def predict(self, X):
        """1 for an inlier (``decision_function >= 0``), -1 for an outlier.

        Parameters
        ----------
        X : array-like or scipy.sparse matrix of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), int32
        """
        return np.where(self.decision_function(X) >= 0.0, 1, -1).astype(np.int32)

    # --- hooks of the base class ----------------------------------------------------

    def _prepare(self, X, y, classes, settings, *, continuing, init=(None, None),
                 sample_weight=None):  # fmt: skip
        """The base class's, starting a new model from the intercept ``1 − offset_init``."""
        coef_init, offset_init = init
        X, targets, weights, codes, sample_weight, commit = super()._prepare(
            X, y, classes, settings, continuing=continuing, init=(coef_init, None),
            sample_weight=sample_weight,
        )  # fmt: skip
        prepared = X, targets, weights, codes, sample_weight
        if continuing:
            return *prepared, commit
        offset = np.zeros(1, X.dtype) if offset_init is None else check_initial(
            "offset_init", offset_init, (1,), X.dtype)  # fmt: skip

        def commit_with_offset():
            commit()
            trainer = self._trainers[0]
            P = trainer.snapshot()
            P[:, -1] = 1.0 - offset
            trainer.restore(P)

        return *prepared, commit_with_offset

    def _encode_y(self, y, classes, first):
        return y

    def _engine_setup(self, y):
        return "hinge", 1, False

    def _public_parameters(self, coef, intercept):
        return coef.copy(), (1.0 - intercept.reshape(1)).astype(coef.dtype)

    def _score_rows(self, predictor, X, y):
        raise NotImplementedError("MiniBatchOneClassSVM has no early stopping.")


def _merge_trainers(trainers):
    """One Trainer of K outputs from the K single-output Trainers of an old one-vs-rest pickle.

    Those trained in lockstep (every epoch of one was an epoch of all, under
    one schedule), so counters, rates and row-order seeds agree (the seeds
    did for an integer ``random_state``: the first one's is kept). The
    parameter and optimizer blocks are stacked in class order; the loss
    history is the mean over the classes, what ``loss_curve_`` showed, and
    the mean of what the outputs' losses now are.
    """
    first = trainers[0]
    state = first.train_state.copy()
    state.P = np.vstack([trainer.P for trainer in trainers])
    state.optimizer_state = np.concatenate([trainer.state for trainer in trainers], axis=1)
    state.first_loss = float(np.mean([t.train_state.first_loss for t in trainers]))
    state.first_scale = float(max(t.train_state.first_scale for t in trainers))
    merged = object.__new__(Trainer)
    merged.__setstate__(dict(vars(first), train_state=state))
    result = first.result
    merged.result = FitResult(
        coef=None, intercept=None, loss=result.loss, state=state,
        loss_history=[float(np.mean(losses))
                      for losses in zip(*(t.result.loss_history for t in trainers))],
        epoch_seconds=[sum(seconds)
                       for seconds in zip(*(t.result.epoch_seconds for t in trainers))],
        converged=result.converged,
    )  # fmt: skip
    merged._store_parameters()
    return merged


def _start_from(trainers, coef_init, intercept_init, dtype):
    """Set new trainers' parameters from ``coef_init`` / ``intercept_init`` (None: zeros).

    The public shapes are the rows of every trainer's parameter block
    stacked: ``(n_outputs, n_features)`` and ``(n_outputs,)``, a single
    output's also as ``(n_features,)`` and a number.
    """
    if coef_init is None and intercept_init is None:
        return
    rows = [row for trainer in trainers for row in trainer.P]
    n_outputs, n_features = len(rows), rows[0].shape[0] - 1
    shape = (n_outputs, n_features)
    coef = np.zeros(shape, dtype) if coef_init is None else check_initial(
        "coef_init", coef_init, shape, dtype)  # fmt: skip
    intercept = np.zeros(n_outputs, dtype) if intercept_init is None else check_initial(
        "intercept_init", intercept_init, (n_outputs,), dtype)  # fmt: skip
    start = 0
    for trainer in trainers:
        P = trainer.snapshot()
        P[:, :-1] = coef[start : start + P.shape[0]]
        P[:, -1] = intercept[start : start + P.shape[0]]
        trainer.restore(P)
        start += P.shape[0]


def _store_parameters(estimator, values):
    """``__init__``'s whole job, scikit-learn's rule: store every argument as given."""
    for name, value in values.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)
