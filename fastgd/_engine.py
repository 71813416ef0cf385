"""The engine: validation, the epoch loop, stopping and callbacks.

Python runs once per epoch. Each epoch draws the row order from the engine's
seeded NumPy generator (so every backend sees the same batches) and makes one
backend call that runs all of the epoch's batches in compiled code.
"""

import signal
import sys
import threading
import time
from typing import NamedTuple

import numpy as np

from ._config import KernelConfig
from ._errors import DivergenceError
from ._result import FitResult
from ._schedule import EPOCH_RATE_SETTINGS, epoch_learning_rate
from ._settings import FIT, check_settings, document_settings, kernel_records, settings_from
from ._validation import check_X, check_y, is_sparse
from .backends import get_backend


# Largest batch of shuffle='batches' whose rows are prefetched (see Trainer._epoch).
PREFETCH_MAX_BATCH = 64


# TEMPORARY until h14-backends lands: today's kernels read one combined record,
# KernelConfig's fields followed by these execution fields (the layout the
# Cython struct is checked against at import). The kernels will take
# (KernelConfig, ExecutionConfig) instead; then this record, the function
# below and its callers' wrapping go.
_LegacyKernelConfig = NamedTuple("_LegacyKernelConfig", [
    *KernelConfig.__annotations__.items(),
    ("n_threads", int), ("prefetch", int), ("hogwild", int), ("sparse_update", int),
])  # fmt: skip


def _legacy_kernel_config(cfg, run):
    """TEMPORARY until h14-backends lands: ``cfg`` and ``run`` as today's kernels' record.

    ``prefetch`` is 1, today's default: ``Trainer._epoch`` sets it per epoch.
    """
    return _LegacyKernelConfig(*cfg, n_threads=run.n_threads, prefetch=1,
                               hogwild=run.hogwild, sparse_update=run.sparse_update)  # fmt: skip


def row_order_dtype(n_samples):
    """int32 indices where they fit: half the memory traffic of int64."""
    return np.int32 if n_samples < 2**31 else np.int64


def shuffled_batches(order, rows, batch_size, rng):
    """Fill ``order`` with the rows' contiguous batches in a random batch order.

    ``rows`` is None for ``0..n-1``. Only whole batches move: a last, partial
    batch stays last, so the kernel's cut of ``order`` into ``batch_size``
    pieces still falls on batch boundaries. Nothing n-sized is allocated.
    """
    n_whole = order.shape[0] // batch_size
    whole = order[: n_whole * batch_size].reshape(n_whole, batch_size)
    picks = rng.permutation(n_whole)
    if rows is None:
        np.add((picks * batch_size)[:, None], np.arange(batch_size), out=whole,
               casting="unsafe")  # fmt: skip
        order[n_whole * batch_size :] = np.arange(n_whole * batch_size, order.shape[0])
    else:
        np.take(rows[: n_whole * batch_size].reshape(n_whole, batch_size), picks,
                axis=0, out=whole)  # fmt: skip
        order[n_whole * batch_size :] = rows[n_whole * batch_size :]


@document_settings(FIT)
def fit(
    X,
    y,
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
        - bool, complex, object and string X are refused (TypeError).

        ``allow_copy=False`` raises instead of making any of these copies.

        A ``scipy.sparse`` X (matrix or array) is trained on without ever
        being densified, at a cost per row proportional to its stored
        entries: CSR of float32 or float64 with int32 or int64 indices is
        used as it is (unsorted indices and duplicate entries allowed:
        duplicates count as their sum); CSC, COO and the other formats, and
        integer data, are converted once to a float CSR copy (which
        ``allow_copy=False`` refuses). See ``sparse_update``.
    y : array-like of shape (n_samples,)
        Targets, never modified: real values for the regression losses;
        class codes (integers, integral floats, or bools) 0/1 for
        ``log_loss`` and ``hinge``, 0..K-1 for ``multinomial``. Without
        ``n_classes`` y must hold at least two classes. y is converted to
        X's dtype (a copy of n values when its dtype differs).
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
        When a batch's loss or the parameters become NaN or infinite: at once,
        naming the epoch and the batch. ``err.result`` holds the fit of the
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
    y, n_outputs = check_y(y, X.shape[0], loss, X.dtype, settings["n_classes"],
                           allow_copy=allow_copy)  # fmt: skip
    trainer = Trainer(
        _legacy_kernel_config(cfg, run), X.shape[1], n_outputs, X.dtype, loss=loss,
        backend=settings["backend"], random_state=settings["random_state"],
        **{name: settings[name] for name in EPOCH_RATE_SETTINGS},
    )  # fmt: skip
    tol = settings["tol"]
    result = trainer.result
    try:
        result.converged = run_epochs(
            lambda: trainer.epoch(X, y, shuffle=settings["shuffle"]),
            settings["epochs"],
            plateau=None if tol is None else Plateau(tol, settings["n_iter_no_change"]),
            callback=settings["callback"],
            parameters=lambda: (result.coef.copy(), np.copy(result.intercept)),
        )
    except KeyboardInterrupt as exc:
        exc.result = result
        add_note(exc, f"fastgd.fit was interrupted after {result.n_epochs} completed "
                      "epoch(s); their fit is on exc.result.")  # fmt: skip
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

    def update(self, value):
        """Record one epoch's ``value``; return True when training should stop."""
        if value > self.best - self.tol:
            self._no_improvement += 1
        else:
            self._no_improvement = 0
        self.best = min(self.best, value)
        return self._no_improvement >= self.n_iter_no_change


def run_epochs(step, epochs, *, plateau=None, monitor=None, callback=None,
               parameters=None, progress=None, first_epoch=1):  # fmt: skip
    """The epoch loop shared by ``fastgd.fit`` and the estimators.

    After each ``step()`` (one epoch; returns its training loss), in this
    order: the progress display, the user's callback, a pending Ctrl-C (see
    :class:`InterruptAtEpochEnd`), the stopping rule. Everything optional is
    skipped by one ``is None`` test per epoch, so a loop without them costs
    nothing beyond the epochs themselves.

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
        ``monitor(loss) -> float``: the value the plateau watches (default:
        the training loss itself).
    callback : callable or None
        ``callback(epoch, loss, coef, intercept)``; True stops training.
    parameters : callable or None
        ``parameters() -> (coef, intercept)``: copies handed to ``callback``.
    progress : object or None
        With ``update(loss)`` called after every epoch and ``close()`` at the
        end (see ``fastgd._progress``).
    first_epoch : int, default=1
        Number given to the callback for the first epoch of this loop (an
        estimator that continues training counts on from its earlier epochs).

    Returns
    -------
    bool
        True when the plateau rule stopped training, False otherwise.

    Raises
    ------
    KeyboardInterrupt
        After the epoch in progress (and its callback) on a first Ctrl-C, at
        once on a second.
    """
    try:
        with InterruptAtEpochEnd() as interrupt:
            for epoch in range(first_epoch, first_epoch + epochs):
                loss = step()
                if progress is not None:
                    progress.update(loss)
                stop = callback is not None and callback(epoch, loss, *parameters())
                interrupt.check()
                if stop:
                    return False
                if plateau is not None and plateau.update(
                    loss if monitor is None else monitor(loss)
                ):
                    return True
            return False
    finally:
        if progress is not None:
            progress.close()


class Trainer:
    """One model's parameters, optimizer state and counters, advanced an epoch at a time.

    ``fastgd.fit`` runs a fresh Trainer for ``epochs`` epochs; an estimator's
    ``partial_fit`` keeps one and calls :meth:`epoch` with each new chunk of
    (validated) data, so both share one code path and give the same numbers.

    Parameters
    ----------
    cfg : KernelConfig
        From ``check_fit_settings``.
    n_features, n_outputs : int
    dtype : numpy dtype
        float32 or float64: the dtype of X, parameters and optimizer state.
    loss, backend, lr, schedule, decay, step_size, gamma :
        As in :func:`fastgd.fit` (already validated).
    random_state : int, Generator or None
        Seeds the generator that draws every epoch's row order.
    """

    def __init__(self, cfg, n_features, n_outputs, dtype, *, loss, backend,
                 random_state, lr, schedule, decay=0.9, step_size=10, gamma=0.1):  # fmt: skip
        self.reconfigure(cfg, backend=backend, lr=lr, schedule=schedule, decay=decay,
                         step_size=step_size, gamma=gamma)  # fmt: skip
        self.P = np.zeros((n_outputs, n_features + 1), dtype=dtype)
        self.state = np.zeros((2, n_outputs, n_features + 1), dtype=dtype)
        self.rng = np.random.default_rng(random_state)
        self.result = FitResult(coef=None, intercept=None, loss=loss)
        self._store_parameters()
        self._order = None
        self._order_moved = False
        self._rows = None

    def reconfigure(self, cfg, *, backend, lr, schedule, decay=0.9, step_size=10,
                    gamma=0.1):  # fmt: skip
        """Take new settings, keeping parameters, optimizer state, counters and RNG.

        An estimator calls this when it continues training (``warm_start``,
        ``partial_fit``) after its hyperparameters were changed with
        ``set_params``; the loss and the number of outputs cannot change.
        """
        kernels = get_backend(backend)
        if cfg.hogwild and not hasattr(kernels, "run_epoch_hogwild"):
            raise ValueError(
                f"parallel='hogwild' needs a compiled backend ('numba' or 'cython'); "
                f"got backend={backend!r}, which runs one thread."
            )
        self.cfg = cfg
        self.backend = backend
        self.kernels = kernels
        self.schedule = (schedule, lr, decay, step_size, gamma)

    def snapshot(self):
        """A copy of the parameter block, for :meth:`restore`."""
        return self.P.copy()

    def restore(self, P):
        """Put back parameters taken by :meth:`snapshot` (e.g. the best epoch's)."""
        self.P[...] = P
        self._store_parameters()

    def checkpoint(self):
        """Everything an epoch changes but the row order, for :meth:`rollback`.

        Parameters and optimizer state (copies; small: K × (n_features + 1)
        each) and the result's counters and histories (their lengths).
        """
        result = self.result
        return (
            self.P.copy(),
            self.state.copy(),
            result.n_epochs,
            result.n_updates,
            len(result.loss_history),
            len(result.epoch_seconds),
        )

    def rollback(self, checkpoint):
        """Return to a :meth:`checkpoint`: the model as after its last epoch then.

        The one way an unfinished epoch is undone, whether it diverged or was
        interrupted. The row-order generator is not rewound: training resumed
        after a rollback is valid but visits rows in other orders than an
        uninterrupted run would.
        """
        P, state, n_epochs, n_updates, n_losses, n_seconds = checkpoint
        self.P[...], self.state[...] = P, state
        result = self.result
        result.n_epochs, result.n_updates = n_epochs, n_updates
        del result.loss_history[n_losses:], result.epoch_seconds[n_seconds:]
        self._store_parameters()

    def epoch(self, X, y, *, shuffle=True, rows=None):
        """Run one epoch over validated ``X``, ``y``; return its mean loss.

        All or nothing: if the epoch diverges (DivergenceError) or is
        interrupted (KeyboardInterrupt, or any other exception), the model is
        rolled back to where it was before it, so parameters, state and
        history always belong to the last completed epoch.

        ``rows`` (an index array) restricts the epoch to those rows of X and
        y, without copying them: an estimator's ``early_stopping`` trains on
        all rows but its held-out ones this way.
        """
        checkpoint = self.checkpoint()
        try:
            return self._epoch(X, y, shuffle, rows)
        except BaseException:
            self.rollback(checkpoint)
            raise

    def _epoch(self, X, y, shuffle, rows):
        """The epoch itself, without the rollback that :meth:`epoch` adds."""
        n_samples = X.shape[0] if rows is None else rows.shape[0]
        if (
            self._order is None
            or self._order.shape[0] != n_samples
            or rows is not self._rows
        ):
            dtype = row_order_dtype(X.shape[0])
            self._order = (
                np.arange(n_samples, dtype=dtype) if rows is None else rows.astype(dtype)
            )
            self._rows = rows
        elif shuffle is False and self._order_moved:
            self._order[:] = np.arange(n_samples) if rows is None else rows
        # Only a mode switch needs the data's order back: False epochs after
        # False epochs reuse it as it is, with no n-sized write per epoch.
        self._order_moved = shuffle is not False
        batch_size = min(self.cfg.batch_size, n_samples)
        # Rows at random addresses are prefetched: every row of a shuffled
        # epoch, and small batches of 'batches' (larger ones stream, where
        # prefetching measured up to 10% slower).
        prefetch = shuffle is True or (shuffle == "batches" and batch_size <= PREFETCH_MAX_BATCH)
        cfg = self.cfg._replace(batch_size=batch_size, prefetch=int(prefetch))
        if shuffle == "batches":
            shuffled_batches(self._order, rows, cfg.batch_size, self.rng)
        elif shuffle:
            self.rng.shuffle(self._order)
        schedule, lr, decay, step_size, gamma = self.schedule
        epoch_lr = epoch_learning_rate(
            schedule, lr, self.result.n_epochs, decay, step_size, gamma
        )
        result = self.result
        started = time.perf_counter()
        if is_sparse(X):
            # The one place where the data layout picks the kernel. The CSR
            # kernels run on one thread (n_threads and parallel do not apply).
            epoch_loss, n_updates = self.kernels.run_epoch_sparse(
                X.data, X.indices, X.indptr, y, self._order, self.P, self.state, cfg,
                epoch_lr, result.n_updates,
            )  # fmt: skip
        else:
            run_epoch = (
                self.kernels.run_epoch_hogwild if cfg.hogwild else self.kernels.run_epoch
            )
            epoch_loss, n_updates = run_epoch(
                X, y, self._order, self.P, self.state, cfg, epoch_lr, result.n_updates
            )
        if not (np.isfinite(epoch_loss) and np.isfinite(self.P).all()):
            # A non-finite loss stopped the kernel before that batch's update;
            # otherwise only the last update went wrong. err.result is rolled
            # back to the last finite epoch by epoch() before anyone sees it.
            batch = int(n_updates) + (0 if np.isfinite(epoch_loss) else 1)
            raise DivergenceError(result.n_epochs + 1, batch, epoch_lr, result)
        result.epoch_seconds.append(time.perf_counter() - started)
        result.loss_history.append(float(epoch_loss))
        result.n_updates += int(n_updates)
        result.n_epochs += 1
        self._store_parameters()
        return float(epoch_loss)

    def __getstate__(self):
        # A module cannot be pickled: keep the backend's name and look it up
        # again on load. The row order is n_samples long, so it stays out of
        # the pickle (a loaded Trainer starts its next order afresh).
        state = self.__dict__.copy()
        del state["kernels"]
        state["_order"] = state["_rows"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.kernels = get_backend(self.backend)

    def _store_parameters(self):
        """Copy the parameter block into the result's public shapes."""
        P, result = self.P, self.result
        if P.shape[0] == 1:
            result.coef = P[0, :-1].copy()
            result.intercept = float(P[0, -1])
        else:
            result.coef = P[:, :-1].copy()
            result.intercept = P[:, -1].copy()
