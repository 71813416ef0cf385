"""The engine: validation, the epoch loop, stopping and callbacks.

Python runs once per epoch. :func:`advance` takes a model's
:class:`~fastgd._state.TrainState` one epoch on: it derives the epoch's row
order from the state's seed and epoch number with NumPy (so every backend sees
the same batches, and a resumed fit the same as an uninterrupted one) and makes
one backend call that runs all of the epoch's batches in compiled code.
"""

import signal
import sys
import threading
import time
from typing import NamedTuple

import numpy as np

from ._config import SLOT_AVERAGE, ExecutionConfig
from ._errors import DivergenceError
from ._result import FitResult
from ._schedule import EPOCH_RATE_SETTINGS, adaptive_decay, epoch_learning_rate
from ._settings import (
    FIT,
    ROWS,
    check_settings,
    document_settings,
    kernel_records,
    row_order,
    settings_from,
)
from ._state import RowOrder, TrainState
# Where the bench and the tests have always imported them from.
from ._state import row_order_dtype, shuffled_batches  # noqa: F401
from ._validation import check_sample_weight, check_X, check_y, is_multi_output, output_weights
from .backends import get_backend


@document_settings(FIT)
def fit(
    X,
    y,
    sample_weight=None,
    *,
    loss="squared_error",
    optimizer="sgd",
    lr=0.01,
    schedule="constant",
    batch_size=32,
    epochs=10,
    penalty=None,
    alpha=0.0001,
    l1_ratio=0.15,
    l1_method="proximal",
    fit_intercept=True,
    shuffle=True,
    drop_last=False,
    tol=None,
    n_iter_no_change=5,
    random_state=None,
    backend="numba",
    callback=None,
    allow_copy=True,
    n_classes=None,
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
    """Fit a linear model by mini-batch gradient descent.

    One engine covers batch GD (``batch_size=None``), stochastic GD
    (``batch_size=1``) and everything between. The objective is the mean loss
    over the rows plus ``alpha · R(w)`` (scikit-learn's SGD convention); the
    intercept is not penalised.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Training data, never modified. The conversion rule, applied once
        before training:

        - a C-contiguous float32 or float64 array is used as it is, without
          a copy (read-only arrays and ``np.memmap`` included), and a float32
          X trains in float32;
        - a float32 or float64 array in another layout (Fortran order, a
          strided view) is copied once to C order, keeping its dtype;
        - integer X (and float16 or longdouble) is converted to a float64
          copy;
        - bool, complex, object and string X are refused (TypeError);
        - a pandas DataFrame converts as its array does, column by column:
          nullable numeric columns (``Int64``, ``Float64``, ...) make it a
          float64 copy, ``pd.NA`` refused as NaN is; a column of any other
          non-numeric dtype is refused naming it (TypeError).

        ``allow_copy=False`` raises instead of making any of these copies.

        A ``scipy.sparse`` X (matrix or array) is trained on without ever
        being densified, at a cost per row proportional to its stored
        entries: CSR of float32 or float64 with int32 or int64 indices is
        used as it is (unsorted indices and duplicate entries allowed:
        duplicates count as their sum); CSC, COO and the other formats, and
        integer data, are converted once to a float CSR copy (which
        ``allow_copy=False`` refuses). See ``sparse_update``.
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Targets, never modified: real values for the regression losses;
        class codes (integers, integral floats, or bools) 0/1 for
        ``log_loss``, ``hinge``, ``modified_huber``, ``squared_hinge`` and
        ``perceptron``, 0..K-1 for ``multinomial``. Without
        ``n_classes`` y must hold at least two classes. y is converted to
        X's dtype (a copy of n values when its dtype differs).

        A 2-D y of a regression loss is a multi-output regression: its
        ``n_outputs`` columns are fitted in one pass over X per epoch, each
        as its own single-output fit would be (the outputs are independent),
        and ``coef`` has shape (n_outputs, n_features), ``intercept``
        (n_outputs,), even for one column (as scikit-learn's
        ``LinearRegression``). A two-class loss but ``log_loss`` with
        ``n_classes=K > 2`` is one-vs-rest over class codes 0..K-1: K
        binary outputs, also in one pass. The loss of K independent outputs
        (``loss_history``, ``tol``) is the mean of the outputs' losses.
    sample_weight : array-like of shape (n_samples,) or float, default=None
        Weights of the rows (None: all 1; a number: that weight for every
        row). Each row's loss and gradient are multiplied by its weight, and
        a batch's gradient is the mean over its m rows of the weighted row
        gradients (so at ``batch_size=1`` every update is scaled by its
        row's weight, as in scikit-learn's SGD); a row of weight 0
        contributes nothing to the loss or the gradient. Real, finite and
        non-negative, not all 0 (``_validation.check_sample_weight``); the
        loss history is the weighted mean loss.
    {settings}

    Returns
    -------
    FitResult
        ``coef``, ``intercept``, ``loss_history``, ``n_epochs``,
        ``n_updates``, ``converged``, ``epoch_seconds``, ``predict(X)`` and,
        for ``log_loss`` and ``multinomial``, ``predict_proba(X)``.

    Raises
    ------
    ValueError, TypeError
        For any input or setting that cannot be fitted, before any training;
        the message names the argument, the value received and what is
        allowed.
    DivergenceError
        When a batch's loss, a parameter or an optimizer moment becomes NaN
        or infinite: at once, naming the epoch and the batch. Also when an
        epoch stays finite but its mean loss grows past 1e10 times the first
        epoch's, or its largest absolute parameter past 1e10 times
        max(1, the first epoch's): naming the epoch. ``err.result`` holds the fit of the
        last completed (finite) epoch; no NaN parameters are ever returned.
    KeyboardInterrupt
        On Ctrl-C, re-raised so that a script stops as it should, with the
        fit of the last completed epoch as ``exc.result`` (parameters,
        ``loss_history``, ``n_epochs``). The first Ctrl-C lets the epoch in
        progress finish (a compiled epoch cannot be stopped midway) and the
        callback run, then stops; a second Ctrl-C stops at once and drops
        the unfinished epoch. Where SIGINT has a handler of the user's own,
        or outside the main thread, fastgd leaves signals alone: a
        KeyboardInterrupt stops at once, still keeping the completed epochs.
    TypeError
        When ``callback`` returns anything but True, False or None (NumPy
        bools included): after that epoch, naming the callback, the epoch and
        the type returned, with the completed epochs' fit as ``exc.result``.

    Examples
    --------
    >>> import numpy as np, fastgd
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(1000, 3))
    >>> y = X @ np.array([1.0, -2.0, 0.5]) + 3.0
    >>> result = fastgd.fit(X, y, lr=0.05, epochs=20, random_state=0)
    >>> np.round(result.coef, 2), round(result.intercept, 2)
    (array([ 1. , -2. ,  0.5]), 3.0)
    """
    settings = check_settings(FIT, settings_from(locals(), FIT))
    allow_copy = settings["allow_copy"]
    X = check_X(X, allow_copy=allow_copy)
    cfg, run = kernel_records(settings, n_samples=X.shape[0])
    loss = settings["loss"]
    multi_output = is_multi_output(y, loss)
    y, n_outputs = check_y(y, X.shape[0], loss, X.dtype, settings["n_classes"],
                           allow_copy=allow_copy)  # fmt: skip
    sample_weight = output_weights(check_sample_weight(sample_weight, X.shape[0]), n_outputs, loss)
    trainer = Trainer.from_settings(settings, cfg, run, X.shape[1], n_outputs, X.dtype,
                                    multi_output=multi_output)  # fmt: skip
    return train(
        trainer,
        lambda: trainer.epoch(X, y, shuffle=settings["shuffle"], sample_weight=sample_weight),
        settings,
        "fastgd.fit",
    )


def train(trainer, step, settings, name):
    """Run ``trainer``'s epochs (``step()``, all or nothing) as ``settings`` say; return its result.

    ``fastgd.fit`` and the Dask driver share this: the ``epochs``, ``tol``
    and ``callback`` settings through :func:`run_epochs`, ``converged``, and
    a KeyboardInterrupt or callback error that keeps the completed epochs'
    fit as ``exc.result`` (``name`` is the function the note names).
    """
    tol = settings["tol"]
    result = trainer.result
    try:
        result.converged = STOPPED_BY_TOL == run_epochs(
            step,
            settings["epochs"],
            plateau=None if tol is None else Plateau(tol, settings["n_iter_no_change"]),
            callback=settings["callback"],
            parameters=lambda: (result.coef.copy(), np.copy(result.intercept)),
            on_plateau=trainer.on_plateau,
        )
    except (KeyboardInterrupt, CallbackReturnError) as exc:
        exc.result = result
        how = "was interrupted" if isinstance(exc, KeyboardInterrupt) else "stopped"
        add_note(exc, f"{name} {how} after {result.n_epochs} completed epoch(s); "
                      "their fit is on exc.result.")  # fmt: skip
        raise
    return result


def add_note(exc, note):
    """``exc.add_note(note)`` where Python has it (3.11+): shown under the traceback."""
    if hasattr(exc, "add_note"):
        exc.add_note(note)


class InterruptAtEpochEnd:
    """Turn the first Ctrl-C during training into a stop at the end of the epoch.

    A compiled epoch cannot be interrupted: SIGINT is seen only once the
    kernel returns, and a KeyboardInterrupt raised there would throw away the
    epoch just computed. While training, the first SIGINT therefore only sets
    ``pending`` (and says so on stderr); the epoch loop calls :meth:`check`
    once the epoch is complete and recorded, which raises KeyboardInterrupt.
    A second SIGINT raises at once (the unfinished epoch is rolled back by
    :meth:`Trainer.epoch`). On exit the previous handler is put back, and an
    interrupt still pending is raised.

    The handler is installed only in the main thread and only over Python's
    default SIGINT handler, so a handler of the user's own is left alone;
    otherwise this does nothing and an interrupt stops at once.
    """

    def __enter__(self):
        self.pending = False
        self._previous = None
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.pending:
            raise KeyboardInterrupt
        self.pending = True
        print(
            "\nfastgd: interrupted; training stops at the end of this epoch "
            "(press Ctrl-C again to stop at once, dropping it).",
            file=sys.stderr,
            flush=True,
        )

    def check(self):
        """Raise KeyboardInterrupt if a SIGINT arrived since training started."""
        if self.pending:
            raise KeyboardInterrupt

    def __exit__(self, exc_type, exc, traceback):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        if exc_type is None:
            self.check()
        return False


class Plateau:
    """scikit-learn's ``n_iter_no_change`` rule on a value where lower is better.

    An epoch counts as "no improvement" when its value is not below the best
    value so far by at least ``tol``; ``n_iter_no_change`` such epochs in a row
    stop training. ``fastgd.fit`` watches the training loss; an estimator with
    ``early_stopping`` watches minus its validation score.

    Attributes
    ----------
    best : float
        The lowest value seen.
    """

    def __init__(self, tol, n_iter_no_change):
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.best = np.inf
        self._no_improvement = 0

    def restart(self):
        """Count epochs without improvement from zero again (the best is kept)."""
        self._no_improvement = 0

    def update(self, value):
        """Record one epoch's ``value``; return True when training should stop."""
        if value > self.best - self.tol:
            self._no_improvement += 1
        else:
            self._no_improvement = 0
        self.best = min(self.best, value)
        return self._no_improvement >= self.n_iter_no_change


# Why :func:`run_epochs` ended: the stopping rule was met, the callback
# asked, or every epoch ran.
STOPPED_BY_TOL, STOPPED_BY_CALLBACK, RAN_ALL_EPOCHS = "tol", "callback", "epochs"


def run_epochs(step, epochs, *, plateau=None, monitor=None, callback=None,
               parameters=None, progress=None, first_epoch=1, on_plateau=None):  # fmt: skip
    """The epoch loop shared by ``fastgd.fit`` and the estimators.

    After each ``step()`` (one epoch; returns its training loss), in this
    order: the watched value (``monitor``), the progress display, the
    user's callback, a pending Ctrl-C (see :class:`InterruptAtEpochEnd`),
    the stopping rule. Everything optional is skipped by one ``is None``
    test per epoch, so a loop without them costs nothing beyond the epochs
    themselves.

    ``step`` must be all-or-nothing (as :meth:`Trainer.epoch` is): whatever
    it raises (DivergenceError, KeyboardInterrupt), the model is left as
    after the last completed epoch, which is what the caller then keeps.

    Parameters
    ----------
    step : callable
        ``step() -> float``: run one epoch, return its mean training loss.
    epochs : int
        Most epochs to run.
    plateau : Plateau or None
        The stopping rule; None never stops early.
    monitor : callable or None
        ``monitor(loss) -> (name, score)``: the value the plateau watches is
        ``-score`` (default: the training loss itself); the progress display
        shows ``name=score``.
    callback : callable or None
        ``callback(epoch, loss, coef, intercept)``; True stops training.
    parameters : callable or None
        ``parameters() -> (coef, intercept)``: copies handed to ``callback``.
    progress : object or None
        With ``update(loss, watched)`` called after every epoch (``watched``
        the monitor's ``(name, score)`` or None) and ``close(reason)`` at the
        end, ``reason`` a sentence saying why training stopped, or None when
        it stopped on an exception (see ``fastgd._progress``).
    first_epoch : int, default=1
        Number given to the callback for the first epoch of this loop (an
        estimator that continues training counts on from its earlier epochs).
    on_plateau : callable or None
        ``on_plateau() -> bool``, called when the plateau rule would stop:
        True goes on (the plateau counts from zero again; ``adaptive``
        divided the rate), False stops.

    Returns
    -------
    str
        Why training ended: :data:`STOPPED_BY_TOL` (the plateau rule),
        :data:`STOPPED_BY_CALLBACK` or :data:`RAN_ALL_EPOCHS`.

    Raises
    ------
    KeyboardInterrupt
        After the epoch in progress (and its callback) on a first Ctrl-C, at
        once on a second.
    CallbackReturnError
        A TypeError, when ``callback`` returns anything but True, False,
        None (or a NumPy bool); the epoch it saw is kept.
    """
    ended = None
    try:
        with InterruptAtEpochEnd() as interrupt:
            for epoch in range(first_epoch, first_epoch + epochs):
                loss = step()
                watched = None if monitor is None else monitor(loss)
                if progress is not None:
                    progress.update(loss, watched)
                stop = callback is not None and _callback_stops(
                    callback, epoch, callback(epoch, loss, *parameters())
                )
                interrupt.check()
                if stop:
                    ended = STOPPED_BY_CALLBACK
                    return ended
                if plateau is not None and plateau.update(
                    loss if watched is None else -watched[1]
                ):
                    if on_plateau is not None and on_plateau():
                        plateau.restart()
                        continue
                    ended = STOPPED_BY_TOL
                    return ended
            ended = RAN_ALL_EPOCHS
            return ended
    finally:
        if progress is not None:
            progress.close(None if ended is None else _stop_reason(ended, plateau, monitor))


def _stop_reason(ended, plateau, monitor):
    """The sentence the progress display ends with."""
    if ended == STOPPED_BY_CALLBACK:
        return "stopped: the callback returned True"
    watched = "training loss" if monitor is None else "validation score"
    if ended == STOPPED_BY_TOL:
        return (f"stopped: the {watched} did not improve by tol={plateau.tol:g} for "
                f"{plateau.n_iter_no_change} epochs in a row")  # fmt: skip
    if plateau is None:
        return "ran every epoch (tol=None: no stopping rule)"
    return f"ran every epoch without meeting tol={plateau.tol:g} on the {watched}"


class CallbackReturnError(TypeError):
    """A callback returned something other than True, False or None.

    Raised by :func:`run_epochs` after the epoch the callback saw, which is
    kept (``fastgd.fit`` attaches its fit as ``exc.result``).
    """


def _callback_stops(callback, epoch, answer):
    """Whether the callback's ``answer`` stops training: True/False/None only."""
    if answer is None:
        return False
    if isinstance(answer, (bool, np.bool_)):
        return bool(answer)
    name = getattr(callback, "__qualname__", None) or repr(callback)
    raise CallbackReturnError(
        f"callback {name} returned {type(answer).__module__}.{type(answer).__qualname__} "
        f"after epoch {epoch}; it must return True (stop), False or None (go on)."
    )


# How far an epoch's mean loss, or its largest absolute parameter, may grow
# past the first epoch's before the fit counts as diverged while still
# finite (an lr a little too large grows the loss geometrically, to 1e49
# and beyond, long before it overflows). The parameters are measured
# against max(1, the first epoch's), since a first epoch at a tiny rate
# moves them very little. Generous on purpose: a real fit never grows its
# loss ten orders of magnitude, nor its weights from O(1) to 1e10, except on
# features scaled by 1e-10, which then need scaling anyway.
GROWTH_BOUND = 1e10
# A first loss at or below this is rounding, not a measure: the hinge losses
# of a one-class SVM start at 0 (every margin exactly 1), and its first
# epochs can leave 1e-17 where exact arithmetic leaves 0.
LOSS_NOISE = 1e-12


def growth_past_bound(state, loss):
    """What grew past :data:`GROWTH_BOUND` in an epoch of ``loss`` (a message), or None.

    The first epoch of a state records its loss and parameter scale instead.
    A first loss of 0 measures nothing (the perceptron's, of one batch at
    P = 0, whose scores are all 0), nor one at rounding level
    (:data:`LOSS_NOISE`): the loss is then measured against the first
    epoch's above it, the parameters still against the first's.
    """
    scale = float(np.abs(state.P).max(initial=0.0))
    if not np.isfinite(state.first_loss):
        state.first_loss, state.first_scale = loss, scale
        return None
    if state.first_loss <= LOSS_NOISE:
        state.first_loss = loss
    elif loss > GROWTH_BOUND * state.first_loss:
        return (f"the mean loss grew to {loss:.3g}, more than {GROWTH_BOUND:g} times the "
                f"first epoch's {state.first_loss:.3g}")  # fmt: skip
    if scale > GROWTH_BOUND * max(state.first_scale, 1.0):
        return (f"the largest parameter grew to {scale:.3g}, more than {GROWTH_BOUND:g} "
                f"times max(1, the first epoch's {state.first_scale:.3g})")  # fmt: skip
    return None


def end_epoch(state, loss, lr, n_updates):
    """Close an epoch of mean loss ``loss`` on ``state``: its checks, then its counters.

    Every driver of epochs ends them here (:func:`advance`, the Dask
    driver's strategies). A ``loss`` that is not finite, or growth past
    :data:`GROWTH_BOUND` (:func:`growth_past_bound`), raises DivergenceError
    naming the epoch (and, for a non-finite loss, the ``n_updates`` made up
    to the diverging one); otherwise ``state`` counts the epoch and its
    ``n_updates`` updates.
    """
    if not np.isfinite(loss):
        raise DivergenceError(state.n_epochs + 1, n_updates, lr, None)
    growth = growth_past_bound(state, loss)
    if growth is not None:
        raise DivergenceError(state.n_epochs + 1, None, lr, None, growth=growth)
    state.n_updates += n_updates
    state.n_epochs += 1


class Epoch(NamedTuple):
    """What :func:`advance` reports of the epoch it ran.

    ``loss`` is the epoch's mean training loss; ``seconds`` the wall time of
    its backend call alone (drawing the row order is not counted).
    """

    loss: float
    seconds: float


def advance(state, X, y, kernels, cfg, run, *, shuffle, lr_schedule, rows=None,
            rows_are_order=False, orders=None, sample_weight=None):  # fmt: skip
    """Advance ``state`` by one epoch over validated ``X``, ``y``: the one way to train.

    ``fastgd.fit`` and the estimators (through :class:`Trainer`) call this
    once per epoch, and so may any other driver: it reads nothing but its
    arguments. The epoch's row order and learning rate come from the state
    (its seed and ``n_epochs``), so the same state and data give the same
    epoch wherever and whenever it runs.

    All or nothing: if the epoch diverges (DivergenceError) or is interrupted
    (KeyboardInterrupt, or any other exception), ``state`` is put back as it
    was before it; since the row order depends only on the state, the epoch
    run again visits the same rows.

    Parameters
    ----------
    state : TrainState
        Updated in place: parameters, optimizer state, ``n_epochs`` (+1) and
        ``n_updates``.
    X : ndarray of shape (n_samples, n_features) or scipy.sparse CSR
        Validated (``check_X``), of the state's dtype.
    y : ndarray of shape (n_samples,)
        Validated engine targets (``check_y``).
    kernels : module
        The backend (``fastgd.backends.get_backend``).
    cfg : KernelConfig
        What is computed; its ``batch_size`` is clipped to the epoch's rows.
    run : ExecutionConfig
        How it runs; its ``row_order`` is set here from ``shuffle``.
    shuffle : {True, False, 'batches'}
        The epoch's row-order mode (see :func:`fastgd.fit`).
    lr_schedule : callable
        ``lr_schedule(epoch) -> float``: the base learning rate of epoch
        ``epoch`` (0-based); the backend receives it times the state's
        ``lr_factor`` (``schedule='adaptive'``).
    rows : ndarray of int or None, default=None
        Train on these rows of X and y only (in this order, before any
        shuffling), without copying them.
    rows_are_order : bool, default=False
        True: ``rows`` is the epoch's row order itself, drawn by the caller
        (a driver's slice of a block's shuffled order), visited as given;
        ``shuffle`` then only tells the backend how the rows lie (a shuffled
        order is prefetched).
    orders : RowOrder or None, default=None
        A buffer for the row order to reuse from epoch to epoch (a driver
        running many epochs keeps one; None allocates one for this epoch).
    sample_weight : ndarray of shape (n_samples,) or (n_samples * K,), or None, default=None
        Validated row weights (``check_sample_weight``: float64, C order),
        laid out by ``output_weights`` (per row and output for K independent
        outputs), held-out rows included; None trains unweighted.

    Returns
    -------
    Epoch
        ``(loss, seconds)``.

    Raises
    ------
    DivergenceError
        When a batch's loss, a parameter or an optimizer moment becomes NaN
        or infinite, or when the epoch's loss or largest parameter grows past
        :data:`GROWTH_BOUND` times the first epoch's; its ``result`` is None
        (a caller holding a FitResult sets it).
    """
    saved = state.copy()
    try:
        n_rows = X.shape[0] if rows is None else rows.shape[0]
        cfg = cfg._replace(batch_size=min(cfg.batch_size, n_rows))
        run = run._replace(row_order=row_order(shuffle))
        if rows_are_order:
            order = rows
        else:
            order = (RowOrder() if orders is None else orders).draw(
                state.seed, state.n_epochs, shuffle, cfg.batch_size, X.shape[0], rows
            )
        epoch_lr = lr_schedule(state.n_epochs) * state.lr_factor
        P, optimizer_state, t0 = state.P, state.optimizer_state, state.n_updates
        started = time.perf_counter()
        # Dense or CSR X alike: the backend picks its kernel by the layout
        # (and decides what the row order means to it: the CPU backends
        # prefetch rows at random addresses).
        epoch_loss, n_updates = kernels.run_epoch(
            X, y, order, P, optimizer_state, cfg, epoch_lr, t0, run, sample_weight
        )
        seconds = time.perf_counter() - started
        # The kernel stopped after a diverging batch's update, which
        # n_updates counts (``_reference.run_epoch``).
        end_epoch(state, float(epoch_loss), epoch_lr, int(n_updates))
        return Epoch(float(epoch_loss), seconds)
    except BaseException:
        state.restore(saved)
        raise


class Trainer:
    """A :class:`TrainState` with what fit and the estimators keep beside it.

    The settings (kernel and execution records, learning-rate schedule), the
    backend, the :class:`FitResult` that records every epoch, and the reused
    row-order buffer. ``fastgd.fit`` runs a fresh Trainer for ``epochs``
    epochs; an estimator's ``partial_fit`` keeps one and calls :meth:`epoch`
    with each new chunk of (validated) data, so both share one code path,
    :func:`advance`, and give the same numbers.

    Parameters
    ----------
    cfg : KernelConfig
        From ``check_fit_settings``.
    n_features, n_outputs : int
    dtype : numpy dtype
        float32 or float64: the dtype of X, parameters and optimizer state.
    loss, backend, lr, schedule, decay, step_size, gamma, alpha :
        As in :func:`fastgd.fit` (already validated).
    random_state : int, Generator or None
        Gives the seed of every epoch's row order (see ``TrainState``).
    run : ExecutionConfig or None
        How epochs run (from ``check_fit_settings``); None is one thread,
        ``ExecutionConfig()``.
    state : TrainState or None
        Continue from this state (e.g. one loaded from a pickle) instead of
        starting from zero; ``random_state`` is then not used.
    multi_output : bool
        Keep the result's parameters 2-D (``coef`` of shape (n_outputs,
        n_features)) even for one output: a regression fitted to a 2-D y.

    Attributes
    ----------
    train_state : TrainState
    result : FitResult
        Its ``state`` is ``train_state``.
    P, state :
        ``train_state.P`` and ``train_state.optimizer_state``.
    """

    # A Trainer pickled before multi-output regression had no such attribute.
    multi_output = False

    @classmethod
    def from_settings(cls, settings, cfg, run, n_features, n_outputs, dtype, *,
                      multi_output=False):  # fmt: skip
        """A fresh Trainer of ``fit``'s checked ``settings`` and their records."""
        return cls(
            cfg, n_features, n_outputs, dtype, loss=settings["loss"],
            backend=settings["backend"], random_state=settings["random_state"], run=run,
            multi_output=multi_output,
            **{name: settings[name] for name in EPOCH_RATE_SETTINGS},
        )  # fmt: skip

    def __init__(self, cfg, n_features, n_outputs, dtype, *, loss, backend,
                 random_state, lr, schedule, decay=0.9, step_size=10, gamma=0.1,
                 alpha=0.0001, run=None, state=None, multi_output=False):  # fmt: skip
        self.multi_output = bool(multi_output)
        self.reconfigure(cfg, backend=backend, lr=lr, schedule=schedule, decay=decay,
                         step_size=step_size, gamma=gamma, alpha=alpha, run=run)  # fmt: skip
        if state is None:
            state = TrainState.zeros(n_features, n_outputs, dtype, random_state)
        self.train_state = state
        self.result = FitResult(coef=None, intercept=None, loss=loss, state=state)
        self._orders = RowOrder()
        self._store_parameters()

    @property
    def P(self):
        return self.train_state.P

    @property
    def state(self):
        return self.train_state.optimizer_state

    @property
    def _order(self):
        """The last epoch's row order (the reused buffer)."""
        return self._orders.buffer

    @property
    def kernels(self):
        """The backend's module, looked up on first use.

        :meth:`reconfigure` looks it up when training starts or continues; a
        Trainer loaded from a pickle looks it up only when it trains again, so
        a model trained on a compiled backend loads and predicts where that
        backend is not installed (``get_backend`` then says how to get it).
        """
        kernels = self.__dict__.get("_kernels")
        if kernels is None:
            kernels = self._kernels = get_backend(self.backend)
        return kernels

    def reconfigure(self, cfg, *, backend, lr, schedule, decay=0.9, step_size=10,
                    gamma=0.1, alpha=0.0001, run=None):  # fmt: skip
        """Take new settings, keeping the training state.

        An estimator calls this when it continues training (``warm_start``,
        ``partial_fit``) after its hyperparameters were changed with
        ``set_params``; the loss and the number of outputs cannot change.
        """
        kernels = get_backend(backend)
        if run is None:
            run = ExecutionConfig()
        if run.hogwild and "hogwild" not in kernels.CAPABILITIES:
            raise ValueError(
                f"parallel='hogwild' needs a compiled backend ('numba' or 'cython'); "
                f"got backend={backend!r}, which runs one thread."
            )
        self.cfg = cfg
        self.run = run
        self.backend = backend
        self._kernels = kernels
        self.schedule = (schedule, lr, decay, step_size, gamma, alpha)

    def learning_rate(self, epoch):
        """The base learning rate of epoch ``epoch`` (0-based) under this schedule."""
        schedule, lr, decay, step_size, gamma, alpha = self.schedule
        return epoch_learning_rate(schedule, lr, epoch, decay, step_size, gamma, alpha)

    def on_plateau(self):
        """What ``schedule='adaptive'`` does where the stopping rule would stop.

        Divides the rate by 5 and goes on (True) while the current epoch
        rate is above 1e-6; False (stop) otherwise, and for every other
        schedule.
        """
        schedule = self.schedule[0]
        if schedule != "adaptive":
            return False
        state = self.train_state
        rate = self.learning_rate(state.n_epochs) * state.lr_factor
        return adaptive_decay(state, rate)

    def snapshot(self, average=False):
        """A copy of the parameter block, for :meth:`restore`.

        With ``average``, the pair of it and a copy of the running average
        (averaged SGD), which ``restore(*pair)`` puts back together: the
        parameters the model showed then.
        """
        if average:
            return self.P.copy(), self.state[SLOT_AVERAGE].copy()
        return self.P.copy()

    def restore(self, P, average=None):
        """Put back parameters taken by :meth:`snapshot` (e.g. the best epoch's)."""
        self.P[...] = P
        if average is not None:
            self.state[SLOT_AVERAGE] = average
        self._store_parameters()

    def checkpoint(self):
        """Everything an epoch changes, for :meth:`rollback`.

        A copy of the training state (small: no array in it is n_samples
        long) and the lengths of the result's histories.
        """
        result = self.result
        return self.train_state.copy(), len(result.loss_history), len(result.epoch_seconds)

    def rollback(self, checkpoint):
        """Return to a :meth:`checkpoint`: the model as after its last epoch then.

        The one way an unfinished epoch is undone, whether it diverged or was
        interrupted. Epoch ``e``'s row order depends only on the state's seed
        and ``e``, so training resumed after a rollback visits the rows an
        uninterrupted run would.
        """
        state, n_losses, n_seconds = checkpoint
        self.train_state.restore(state)
        result = self.result
        del result.loss_history[n_losses:], result.epoch_seconds[n_seconds:]
        self._store_parameters()

    def epoch(self, X, y, *, shuffle=True, rows=None, sample_weight=None):
        """Run one epoch over validated ``X``, ``y`` (:func:`advance`); return its mean loss.

        All or nothing, the result's histories included: if the epoch
        diverges (DivergenceError) or is interrupted (KeyboardInterrupt, or
        any other exception), the model is rolled back to where it was
        before it, so parameters, state and history always belong to the
        last completed epoch (which a DivergenceError's ``result`` holds).

        ``rows`` (an index array) restricts the epoch to those rows of X and
        y, without copying them: an estimator's ``early_stopping`` trains on
        all rows but its held-out ones this way. ``sample_weight`` (validated,
        indexed like y, or None) weighs the rows (:func:`advance`).
        """
        return self.record(lambda: advance(
            self.train_state, X, y, self.kernels, self.cfg, self.run,
            shuffle=shuffle, lr_schedule=self.learning_rate, rows=rows,
            orders=self._orders, sample_weight=sample_weight,
        ))  # fmt: skip

    def record(self, step):
        """Run ``step() -> Epoch``, which advances :attr:`train_state` one epoch, all or nothing.

        The epoch's loss and seconds join the result's histories; if ``step``
        raises, the model (histories included) is rolled back to where it was
        before it, and a DivergenceError gets the result of the last completed
        epoch. :meth:`epoch` is :func:`advance` through this; a driver that
        advances the state its own way (``fastgd.dask``) passes its epoch here.
        """
        checkpoint = self.checkpoint()
        result = self.result
        try:
            loss, seconds = step()
            result.epoch_seconds.append(seconds)
            result.loss_history.append(loss)
            self._store_parameters()
        except BaseException as exc:
            self.rollback(checkpoint)
            if isinstance(exc, DivergenceError) and exc.result is None:
                exc.result = result
            raise
        return loss

    def __getstate__(self):
        # A module cannot be pickled: keep the backend's name; ``kernels``
        # looks it up again when the loaded Trainer next trains (never on
        # load: predicting needs no backend). The row-order buffer is
        # n_samples long and rebuilt from the state's seed every epoch, so it
        # stays out of the pickle.
        state = self.__dict__.copy()
        state.pop("_kernels", None)
        del state["_orders"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._orders = RowOrder()
        if len(self.schedule) < len(EPOCH_RATE_SETTINGS):
            # Pickled before the schedule read alpha (only 'optimal' does,
            # which such a model cannot have used): the default completes it.
            self.schedule = (*self.schedule, ROWS["alpha"].default)

    def published(self):
        """The parameters the model shows: the running average once averaging has started.

        ``average`` (averaged SGD): from update ``cfg.average_start`` on, the
        state's ``average`` slot, as scikit-learn's ``coef_``; before that,
        and without averaging, the iterate ``P``, which training continues from.
        """
        start = self.cfg.average_start
        if start > 0 and self.train_state.n_updates >= start:
            return self.state[SLOT_AVERAGE]
        return self.P

    def _store_parameters(self):
        """Copy the parameter block and the counters into the result."""
        P, result, train_state = self.published(), self.result, self.train_state
        result.n_epochs, result.n_updates = train_state.n_epochs, train_state.n_updates
        if P.shape[0] == 1 and not self.multi_output:
            result.coef = P[0, :-1].copy()
            result.intercept = float(P[0, -1])
        else:
            result.coef = P[:, :-1].copy()
            result.intercept = P[:, -1].copy()
