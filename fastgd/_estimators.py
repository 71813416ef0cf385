"""scikit-learn estimators on top of the engine.

``MiniBatchRegressor`` and ``MiniBatchClassifier`` keep one engine ``Trainer``
per model (one per class for a one-vs-rest classifier: every loss but
``log_loss`` with more than two classes): ``fit`` runs its
epochs through it, ``partial_fit`` runs one more epoch, so both give the same
numbers. This module imports scikit-learn; ``fastgd/__init__`` loads it only
when one of the two classes is first used, so ``import fastgd`` does not need
scikit-learn.
"""

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
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
    REGRESSOR,
    check_settings,
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
    shown,
)

# The batch size is settled per call: partial_fit's chunks differ in size and
# the Trainer clips every epoch's batch to the rows it is given, so the config
# carries the requested size ("all rows" for None) rather than one chunk's.
_ALL_ROWS = np.iinfo(np.int64).max

_COMMON_ATTRIBUTES = """\
    n_iter_ : int
        Epochs run since the model last started from zero (a ``fit`` without
        ``warm_start``, or the first ``partial_fit``): later ``partial_fit``
        calls and ``warm_start`` fits count on.
    t_ : int
        Parameter updates made (one per batch), counted like ``n_iter_``
        (per model, for a one-vs-rest classifier). Unlike scikit-learn's SGD
        estimators, whose ``t_`` counts samples seen plus one, fastgd counts
        updates: the clock of ``invscaling``.
    loss_curve_ : list of float
        Mean training loss of every epoch (without the penalty), as in
        :attr:`fastgd.FitResult.loss_history`; averaged over the models of a
        one-vs-rest classifier.
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
    ``_score_rows`` (the early-stopping score).
    """

    _entry = None
    _numeric_y = True

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
        return check_settings(
            self._entry, {name: getattr(self, name) for name in setting_names(self._entry)}
        )

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
        ready for the kernels, one engine target array per trainer and its
        row weights (None: unweighted; ``_trainer_weights``), y itself
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
        X, y = validate_data(
            shadow, X, y, reset=not continuing, dtype=FLOAT_DTYPES, order="C",
            accept_sparse="csr", ensure_all_finite=False, y_numeric=self._numeric_y,
        )  # fmt: skip
        X = check_X(X, dtype=self._trainers[0].P.dtype if continuing else None,
                    columns=columns)  # fmt: skip
        codes = shadow._encode_y(y, classes, first=not continuing)
        loss, n_outputs, one_vs_rest = shadow._engine_setup()
        # log_loss with more than two classes is the engine's multinomial.
        cfg = cfg._replace(loss=LOSSES.index(loss))
        if continuing and loss != self._engine_loss:
            raise ValueError(
                f"loss={self.loss!r} cannot continue a model trained with "
                f"{self._engine_loss!r}; fit with warm_start=False to start again."
            )
        # The model's class count: a chunk of y (partial_fit, one-vs-rest
        # targets) need not show every class.
        n_classes = n_outputs if loss == "multinomial" else (
            2 if loss in CLASSIFICATION_LOSSES else None)
        if one_vs_rest:
            targets = [(codes == k).astype(X.dtype) for k in range(n_outputs)]
        else:
            targets = [codes]
        targets = [check_y(t, X.shape[0], loss, X.dtype, n_classes)[0] for t in targets]
        sample_weight = check_sample_weight(sample_weight, X.shape[0])
        weights = shadow._trainer_weights(codes, sample_weight, len(targets), one_vs_rest, settings)
        trainers = None
        if not continuing:
            trainers = [
                Trainer(
                    cfg, X.shape[1], 1 if one_vs_rest else n_outputs, X.dtype,
                    loss=loss, random_state=self.random_state, run=run, **self._schedule(settings),
                )  # fmt: skip
                for _ in range(n_outputs if one_vs_rest else 1)
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

    def _epoch(self, X, targets, weights, shuffle, rows=None):
        """One epoch of every trainer, all or none, like :meth:`Trainer.epoch`.

        A one-vs-rest model whose k-th trainer diverges or is interrupted
        rolls back the trainers before it too, so all stay at the same epoch.
        """
        trainers = self._trainers
        if len(trainers) == 1:
            return trainers[0].epoch(X, targets[0], shuffle=shuffle, rows=rows,
                                     sample_weight=weights[0])  # fmt: skip
        checkpoints = [trainer.checkpoint() for trainer in trainers]
        try:
            losses = [
                trainer.epoch(X, target, shuffle=shuffle, rows=rows, sample_weight=weight)
                for trainer, target, weight in zip(trainers, targets, weights)
            ]
        except BaseException:
            for trainer, checkpoint in zip(trainers, checkpoints):
                trainer.rollback(checkpoint)
            raise
        return sum(losses) / len(losses)

    def _current_parameters(self):
        """Copies of the trainers' parameters in ``coef_``/``intercept_`` shapes."""
        results = [trainer.result for trainer in self._trainers]
        if len(results) == 1:
            coef, intercept = results[0].coef, np.asarray(results[0].intercept)
        else:
            coef = np.vstack([result.coef for result in results])
            intercept = np.array([result.intercept for result in results])
        return self._public_parameters(coef, intercept.astype(coef.dtype))

    def _predictor(self, coef, intercept):
        """A :class:`FitResult` over public-shaped parameters: fastgd's own prediction."""
        if coef.ndim == 1 or coef.shape[0] == 1:
            coef, intercept = coef.reshape(-1), intercept[0]
        return FitResult(coef=coef, intercept=intercept, loss=self._engine_loss)

    def _publish(self):
        """Set the fitted attributes from the trainers."""
        first = self._trainers[0].result
        self.coef_, self.intercept_ = self._current_parameters()
        self.n_iter_ = first.n_epochs
        self.t_ = first.n_updates
        histories = [trainer.result.loss_history for trainer in self._trainers]
        self.loss_curve_ = [sum(losses) / len(losses) for losses in zip(*histories)]

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
                    best["P"] = [trainer.snapshot() for trainer in trainers]
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
                for trainer, P in zip(trainers, best["P"]):
                    trainer.restore(P)
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

    def _decision(self, X, method):
        check_is_fitted(self)
        X = validate_data(
            self, X, reset=False, dtype=FLOAT_DTYPES, order="C", accept_sparse="csr",
            ensure_all_finite=False,
        )  # fmt: skip
        return getattr(self._predictor(self.coef_, self.intercept_), method)(X)


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
    coef_ : ndarray of shape (n_features,)
    intercept_ : ndarray of shape (1,)
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
        sample_weight : array-like of shape (n_samples,) or float, default=None
            Weights of the rows (None: all 1); see :func:`fastgd.fit`. With
            ``early_stopping`` the held-out rows' weights weigh their score.
        coef_init : array-like of shape (n_features,), default=None
            Initial weights (zeros when None). Given, this or
            ``intercept_init`` starts a new fit from them, also with
            ``warm_start``.
        intercept_init : float or array-like of shape (1,), default=None
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
        y : array-like of shape (n_samples,)
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
        ndarray of shape (n_samples,)
        """
        return self._decision(X, "predict")

    # --- hooks of the base class ----------------------------------------------------

    def _encode_y(self, y, classes, first):
        return y

    def _engine_setup(self):
        return self.loss, 1, False

    def _trainer_weights(self, codes, sample_weight, n_trainers, one_vs_rest, settings):
        return [sample_weight]

    def _public_parameters(self, coef, intercept):
        return coef.copy(), intercept.reshape(1).copy()

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

    def _engine_setup(self):
        n_classes = len(self.classes_)
        if n_classes == 2:
            return self.loss, 1, False
        if self.loss == "log_loss":
            return "multinomial", n_classes, False
        return self.loss, n_classes, True

    def _trainer_weights(self, codes, sample_weight, n_trainers, one_vs_rest, settings):
        """Each trainer's row weights: ``sample_weight`` times the rows' class weights.

        Without ``class_weight`` every trainer gets ``sample_weight`` (None
        stays None: the unweighted kernels). Otherwise scikit-learn's rule:
        a row of class k weighs ``class_weight[k]`` in the binary and the
        multinomial model, and problem k of one-vs-rest weighs its positive
        rows ``class_weight[k]`` and the rest 1 (:func:`one_vs_rest_weights`).
        """
        per_class = class_weights(settings["class_weight"], self.classes_, codes)
        if per_class is None:
            return [sample_weight] * n_trainers
        if one_vs_rest:
            weights = [one_vs_rest_weights(per_class, codes, k) for k in range(n_trainers)]
        else:
            weights = [per_class[codes]]
        return weights if sample_weight is None else [w * sample_weight for w in weights]

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
