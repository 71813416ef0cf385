"""The NumPy reference backend: the executable specification of an epoch.

Boring on purpose: one batch at a time, vectorised over the batch's rows, one
small function per loss and per optimizer, written next to the textbook
formulas (``J = 1/2m Σ (h(x) − y)²``, ``θ := θ − α∇J``). Every compiled backend
is tested against this file.

Shapes: ``P`` holds one row per output, the weights in columns ``0..d-1``
and the intercept in column ``d`` (shape ``(K, d + 1)``: each output's
weights are contiguous, which is what lets the compiled kernels vectorise);
``state`` holds the optimizer's moment arrays and the other per-parameter
memory of the updates (shape ``(N_STATE_SLOTS, K, d + 1)``, see
``_config.STATE_SLOTS``).
"""

import numpy as np

from .._config import (
    LOSSES,
    REGRESSION_LOSSES,
    ExecutionConfig,
    LOSS_EPSILON_INSENSITIVE,
    LOSS_HINGE,
    LOSS_HUBER,
    LOSS_LOG,
    LOSS_MODIFIED_HUBER,
    LOSS_MULTINOMIAL,
    LOSS_PERCEPTRON,
    LOSS_SQUARED_EPSILON_INSENSITIVE,
    LOSS_SQUARED_ERROR,
    LOSS_SQUARED_HINGE,
    OPT_ADAGRAD,
    OPT_ADAM,
    OPT_ADAMW,
    OPT_MOMENTUM,
    OPT_NESTEROV,
    OPT_RMSPROP,
    OPT_SGD,
    SLOT_AVERAGE,
    SLOT_L1_APPLIED,
)
from . import dispatch_layout

CAPABILITIES = frozenset({"dense", "csr", "float32", "float64"})
# The specification: every other backend is measured against it.
TOLERANCE = {"float64": 0.0, "float32": 0.0}

# --- losses: per-row value and derivative with respect to the prediction ----


def squared_error(Z, y, cfg):
    r = Z[:, 0] - y
    return 0.5 * r * r, r[:, None]


def huber(Z, y, cfg):
    r = Z[:, 0] - y
    eps = cfg.epsilon
    small = np.abs(r) <= eps
    loss = np.where(small, 0.5 * r * r, eps * np.abs(r) - 0.5 * eps * eps)
    dz = np.where(small, r, eps * np.sign(r))
    return loss, dz[:, None]


def epsilon_insensitive(Z, y, cfg):
    r = Z[:, 0] - y
    outside = np.abs(r) > cfg.epsilon
    loss = np.maximum(np.abs(r) - cfg.epsilon, 0.0)
    return loss, np.where(outside, np.sign(r), 0.0)[:, None]


def log_loss(Z, y, cfg):
    z = Z[:, 0]
    # log(1 + exp(-s·z)) with s = ±1, written so exp never overflows.
    loss = np.logaddexp(0.0, -(2.0 * y - 1.0) * z)
    sigmoid = 0.5 * (1.0 + np.tanh(0.5 * z))
    return loss, (sigmoid - y)[:, None]


def multinomial(Z, y, cfg):
    codes = y.astype(np.intp)
    shifted = Z - Z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1))
    rows = np.arange(len(codes))
    loss = log_norm - shifted[rows, codes]
    dz = np.exp(shifted - log_norm[:, None])
    dz[rows, codes] -= 1.0
    return loss, dz


def hinge(Z, y, cfg):
    # scikit-learn's Hinge: a margin of exactly 1 updates (the one-class
    # SVM starts there, at w = 0 and b = 1).
    s = 2.0 * y - 1.0
    margin = s * Z[:, 0]
    loss = np.maximum(1.0 - margin, 0.0)
    return loss, np.where(margin <= 1.0, -s, 0.0)[:, None]


def modified_huber(Z, y, cfg):
    # scikit-learn's ModifiedHuber, of the margin z = s·p.
    s = 2.0 * y - 1.0
    z = s * Z[:, 0]
    quadratic = z >= -1.0
    loss = np.where(z >= 1.0, 0.0, np.where(quadratic, (1.0 - z) ** 2, -4.0 * z))
    dz = np.where(z >= 1.0, 0.0, np.where(quadratic, -2.0 * (1.0 - z) * s, -4.0 * s))
    return loss, dz[:, None]


def squared_hinge(Z, y, cfg):
    s = 2.0 * y - 1.0
    r = 1.0 - s * Z[:, 0]
    outside = r > 0.0
    return np.where(outside, r * r, 0.0), np.where(outside, -2.0 * s * r, 0.0)[:, None]


def perceptron(Z, y, cfg):
    # The hinge of threshold 0; a margin of exactly 0 (as at P = 0) updates.
    s = 2.0 * y - 1.0
    z = s * Z[:, 0]
    return np.maximum(-z, 0.0), np.where(z <= 0.0, -s, 0.0)[:, None]


def squared_epsilon_insensitive(Z, y, cfg):
    r = y - Z[:, 0]
    eps = cfg.epsilon
    excess = np.abs(r) - eps
    loss = np.where(excess > 0.0, excess * excess, 0.0)
    dz = np.where(r > eps, -2.0 * (r - eps), np.where(r < -eps, 2.0 * (-r - eps), 0.0))
    return loss, dz[:, None]


LOSS_FUNCTIONS = {
    LOSS_SQUARED_ERROR: squared_error,
    LOSS_HUBER: huber,
    LOSS_EPSILON_INSENSITIVE: epsilon_insensitive,
    LOSS_LOG: log_loss,
    LOSS_MULTINOMIAL: multinomial,
    LOSS_HINGE: hinge,
    LOSS_MODIFIED_HUBER: modified_huber,
    LOSS_SQUARED_HINGE: squared_hinge,
    LOSS_PERCEPTRON: perceptron,
    LOSS_SQUARED_EPSILON_INSENSITIVE: squared_epsilon_insensitive,
}


REGRESSION_CODES = frozenset(LOSSES.index(name) for name in REGRESSION_LOSSES)


def batch_targets(y, rows, n_outputs, loss):
    """The targets of the rows ``rows``: shape (m,), or (m, K) for K independent outputs.

    One output, or multinomial's K scores, read one target per row (a real
    value, or a class code). K > 1 outputs with any other loss are K
    independent single-output problems: a multi-output regression's y is
    its (n, K) targets raveled in C order (output ``k`` of row ``i`` is
    ``y[i·K + k]``); a one-vs-rest classifier's y holds the class codes,
    and output ``k``'s binary target is ``1`` where the row is of class ``k``.
    """
    if n_outputs == 1 or loss == LOSS_MULTINOMIAL:
        return y[rows]
    if loss in REGRESSION_CODES:
        return y.reshape(-1, n_outputs)[rows]
    return (y[rows][:, None] == np.arange(n_outputs)).astype(y.dtype)


def losses(Z, y, cfg, w=None):
    """Per-row loss and ``dL/dZ`` of the scores ``Z`` (one row per sample, one column per output).

    ``y`` is :func:`batch_targets`'s and ``w`` :func:`batch_weights`'s
    (None: unweighted): each loss and derivative is multiplied by its
    weight. With K > 1 independent outputs (every loss but multinomial),
    each output's derivative is its own loss's (and each output has a
    weight of its own) and a row's loss is the mean over the outputs: K
    separate fits' losses averaged.

    The loss of a row with a score that is not finite is NaN: a score that
    overflowed is divergence whatever the loss makes of it (the hinge and
    log losses of an infinite score are finite, 0, and their gradient 0,
    which would stop learning without a word), and whatever its weight.
    """
    if y.ndim == 2:
        parts = [LOSS_FUNCTIONS[cfg.loss](Z[:, k : k + 1], y[:, k], cfg) for k in range(Z.shape[1])]
        values = np.column_stack([part[0] for part in parts])
        dZ = np.hstack([part[1] for part in parts])
        if w is not None:
            values, dZ = w * values, w * dZ
        loss = values.sum(axis=1) / Z.shape[1]
    else:
        loss, dZ = LOSS_FUNCTIONS[cfg.loss](Z, y, cfg)
        if w is not None:
            loss, dZ = w * loss, w[:, None] * dZ
    return np.where(np.isfinite(Z).all(axis=1), loss, np.nan), dZ


def batch_weights(sample_weight, rows, n_outputs, loss):
    """The weights of the rows ``rows``, laid out as :func:`batch_targets` lays out the targets.

    None without weights; shape (m,) for one output or multinomial's K
    scores; (m, K) for K independent outputs, whose weights are indexed like
    a multi-output y (output ``k`` of row ``i`` is ``sample_weight[i·K + k]``),
    so that one-vs-rest's class weights can differ by output.
    """
    if sample_weight is None:
        return None
    if n_outputs == 1 or loss == LOSS_MULTINOMIAL:
        return sample_weight[rows]
    return sample_weight.reshape(-1, n_outputs)[rows]


# --- optimizers: in-place update of parameters p and moments s (slots 0 and 1) --


def sgd(p, g, s, eta, t, cfg):
    p -= eta * g


def momentum(p, g, s, eta, t, cfg):
    s[0] = cfg.momentum * s[0] + g
    p -= eta * s[0]


def nesterov(p, g, s, eta, t, cfg):
    s[0] = cfg.momentum * s[0] + g
    p -= eta * (g + cfg.momentum * s[0])


def adagrad(p, g, s, eta, t, cfg):
    s[0] += g * g
    p -= eta * g / (np.sqrt(s[0]) + cfg.eps)


def rmsprop(p, g, s, eta, t, cfg):
    s[0] = cfg.rho * s[0] + (1.0 - cfg.rho) * g * g
    p -= eta * g / (np.sqrt(s[0]) + cfg.eps)


def adam(p, g, s, eta, t, cfg):
    s[0] = cfg.beta1 * s[0] + (1.0 - cfg.beta1) * g
    s[1] = cfg.beta2 * s[1] + (1.0 - cfg.beta2) * g * g
    m_hat = s[0] / (1.0 - cfg.beta1**t)
    v_hat = s[1] / (1.0 - cfg.beta2**t)
    p -= eta * m_hat / (np.sqrt(v_hat) + cfg.eps)


OPTIMIZER_STEPS = {
    OPT_SGD: sgd,
    OPT_MOMENTUM: momentum,
    OPT_NESTEROV: nesterov,
    OPT_ADAGRAD: adagrad,
    OPT_RMSPROP: rmsprop,
    OPT_ADAM: adam,
    # AdamW is Adam plus a decoupled weight decay, applied in run_epoch.
    OPT_ADAMW: adam,
}


def learning_rate(lr, t, power_t, t_offset):
    """Rate of update number ``t`` (1-based): ``lr / (t + t_offset)**power_t``.

    ``invscaling`` has ``t_offset`` 0; ``optimal`` has ``power_t`` 1 (see
    ``fastgd._schedule``).

    In IEEE double arithmetic, as the compiled kernels compute it: where
    ``t**power_t`` is beyond the float range it is inf and the rate 0 (Python's
    own ``int ** float`` would raise OverflowError instead).
    """
    if power_t == 0.0:
        return lr
    with np.errstate(over="ignore"):
        return float(lr / (np.float64(t) + t_offset) ** power_t)


def soft_threshold(w, threshold):
    """Proximal step of ``threshold · ‖w‖₁``: shrink towards 0, land on exactly 0.

    A NaN weight stays NaN (``np.sign`` and ``np.maximum`` keep it), so the
    divergence check after the update sees it.
    """
    return np.sign(w) * np.maximum(np.abs(w) - threshold, 0.0)


def cumulative_l1(W, applied, total, columns):
    """Tsuruoka et al.'s cumulative L1 penalty (scikit-learn's ``l1penalty``) on ``W[:, columns]``.

    ``total`` is ``u``, the penalty every weight would have received so far
    (``Σ eta_t · l1``); ``applied`` (the state's ``l1_applied`` weights,
    shape of W) holds ``q_j``, the signed change the penalty has made to
    ``w_j``. A positive weight becomes ``max(0, w − (u + q))``, a negative
    one ``min(0, w + (u − q))``; a zero (or NaN) weight is left as it is;
    ``q`` gains the change. ``columns`` None is every column.
    """
    cols = slice(None) if columns is None else columns
    w, q = W[:, cols], applied[:, cols]
    clipped = np.where(w > 0.0, np.maximum(0.0, w - (total + q)),
                       np.where(w < 0.0, np.minimum(0.0, w + (total - q)), w))  # fmt: skip
    applied[:, cols] = q + (clipped - w)
    W[:, cols] = clipped


def average_parameters(P, average, t, start):
    """Fold update ``t``'s parameters ``P`` into the running ``average`` (Polyak–Ruppert).

    From update ``start`` on (``start`` 0: never): ``average += (P − average) / n``
    with ``n = t − start + 1`` the number of iterates averaged, scikit-learn's
    ``average_intercept`` formula, for every weight and intercept.
    """
    if start > 0 and t >= start:
        average += (P - average) / (t - start + 1)


def finish_update(work, moments, cfg, eta, t, columns=None):
    """The end of every update, after the optimizer step: cumulative L1, then the average.

    ``work`` and ``moments`` are the float64 parameters and state of
    :func:`apply_update`. The cumulative penalty (``cfg.l1_cumulative``)
    acts on the weight columns ``columns`` (None: all; a lazy sparse
    update passes the batch's), and its total ``u`` lives in the intercept
    column of the ``l1_applied`` slot. Nothing here runs unless asked for.
    """
    if cfg.l1_cumulative and cfg.l1 > 0.0:
        applied = moments[SLOT_L1_APPLIED]
        applied[:, -1] += eta * cfg.l1
        cumulative_l1(work[:, :-1], applied[:, :-1], applied[:, -1:], columns)
    average_parameters(work, moments[SLOT_AVERAGE], t, cfg.average_start)


def batch_bounds(n_rows, batch_size, drop_last):
    """Start and stop of every batch of an epoch over ``n_rows`` rows."""
    starts = range(0, n_rows, batch_size)
    bounds = [(start, min(start + batch_size, n_rows)) for start in starts]
    if drop_last and bounds and bounds[-1][1] - bounds[-1][0] < batch_size:
        bounds.pop()
    return bounds


def batch_gradient(X, y, rows, P, cfg, sample_weight=None):
    """Sum of the (weighted) losses of the rows ``rows`` and their mean gradient, penalty excluded.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), or a scipy CSR matrix
    y : ndarray of shape (n_samples,), or (n_samples · K,) for a K-output regression
        (see :func:`batch_targets`)
    rows : ndarray of shape (m,), integer row indices of the batch
    P : ndarray of shape (K, n_features + 1)
    cfg : KernelConfig
    sample_weight : ndarray of shape (n_samples,), float64, or None
        Row ``i``'s loss and gradient are multiplied by ``sample_weight[i]``
        (None: every weight 1). The mean stays over the m rows: ``1/m Σ w_i ∂L_i``.

    Returns
    -------
    loss_sum : float
        ``Σ w_i L(z_i, y_i)`` over the batch's rows.
    G : ndarray of shape (K, n_features + 1), float64
        ``1/m Σ w_i ∂L_i/∂P``: the weights' columns, then the intercept column,
        which holds the mean ``∂L/∂z`` whether or not the intercept is fitted
        (:func:`apply_update` decides what is stepped).
    """
    # Arithmetic in float64 whatever the storage dtype, as in the kernels:
    # float32 data and parameters are only read and written as float32.
    Xb = X[rows].astype(np.float64)
    yb = batch_targets(y, rows, P.shape[0], cfg.loss).astype(np.float64)
    W, b = P[:, :-1].T, P[:, -1]
    loss, dZ = losses(Xb @ W + b, yb, cfg, batch_weights(sample_weight, rows, P.shape[0], cfg.loss))
    m = len(rows)
    G = np.empty(P.shape)
    G[:, :-1] = (Xb.T @ dZ / m).T
    G[:, -1] = dZ.sum(axis=0) / m
    return float(loss.sum()), G


def apply_update(P, G, state, cfg, lr, t, columns=None):
    """Update number ``t`` (1-based) of an epoch of base rate ``lr``, in place.

    The L2 term joins the gradient ``G`` (from :func:`batch_gradient`), then
    AdamW's decoupled decay, the optimizer's step and L1's soft-threshold,
    at the update's rate (``lr / t**power_t`` for invscaling). Plain SGD
    takes L2 as a shrink of the weights instead, ``W *= max(0, 1 − eta·l2)``
    before the step (scikit-learn's ``_plain_sgd``): the same step while
    ``eta·l2 < 1``, and weights set to 0 rather than overshooting (and
    diverging) beyond. The intercept is stepped only with ``fit_intercept``
    and never penalised; its gradient gains ``cfg.intercept_drift``. ``G``
    itself is left as it is. With
    ``l1_method='cumulative'`` the L1 part is :func:`cumulative_l1` instead
    of the soft-threshold, on the weight columns ``columns`` (None: all);
    with ``average`` the running average is then updated
    (:func:`finish_update`).

    Parameters
    ----------
    P : ndarray of shape (K, n_features + 1), updated in place
    G : ndarray of shape (K, n_features + 1)
    state : ndarray of shape (N_STATE_SLOTS, K, n_features + 1), updated in place
    cfg : KernelConfig
    lr : float
    t : int

    Returns
    -------
    finite : bool
        Whether every parameter and optimizer moment is finite after the
        update (:func:`all_finite`): False is divergence, even where the
        step itself hides it (a moment overflowed to inf makes Adam's step
        0, and the parameters stay finite).
    """
    # float64 working copies, stored back at the end, as the kernels compute
    # in float64 whatever the storage dtype (NumPy would compute a float32
    # array's step in float32).
    work, moments = P.astype(np.float64), state.astype(np.float64)
    W = work[:, :-1]
    grad = np.array(G, dtype=np.float64)  # a copy: the caller's G stays as it is
    grad[:, -1] += cfg.intercept_drift
    n_params = P.shape[1] if cfg.fit_intercept else P.shape[1] - 1
    eta = learning_rate(lr, t, cfg.power_t, cfg.t_offset)
    if cfg.optimizer == OPT_SGD:
        W *= max(0.0, 1.0 - eta * cfg.l2)
    else:
        grad[:, :-1] += cfg.l2 * W
    if cfg.optimizer == OPT_ADAMW:
        W *= 1.0 - eta * cfg.weight_decay
    step = OPTIMIZER_STEPS[cfg.optimizer]
    step(work[:, :n_params], grad[:, :n_params], moments[:, :, :n_params], eta, t, cfg)
    if cfg.l1 > 0.0 and not cfg.l1_cumulative:
        W[:] = soft_threshold(W, eta * cfg.l1)
    finish_update(work, moments, cfg, eta, t, columns)
    P[...], state[...] = work, moments
    return all_finite(P, state)


def batch_columns(X, rows):
    """The columns with a stored entry (an explicit 0 counts) in the CSR rows ``rows`` of X."""
    return np.unique(X[rows].indices)


def all_finite(*arrays):
    """Whether every value of ``arrays`` is finite: the definition of a diverged update."""
    return all(bool(np.isfinite(a).all()) for a in arrays)


def diverged_loss(batch_loss, finite):
    """The loss an epoch that diverged at a batch returns: not finite, whatever made it so.

    ``batch_loss`` where it is not finite itself, NaN where only the update
    (``finite`` False) diverged.
    """
    return batch_loss if finite else batch_loss + np.nan


def run_batches(X, y, order, P, state, cfg, lr, t0, sample_weight=None, lazy_columns=False):
    """The epoch of :func:`run_epoch`, for a dense X or a scipy CSR one alike.

    Its definition: :func:`batch_gradient` and :func:`apply_update` over the
    epoch's batches, one after the other. ``lazy_columns`` (a CSR X's lazy
    update) restricts the cumulative L1 penalty to the columns with a
    stored entry in the batch, as scikit-learn does on sparse input.
    """
    batch_losses = []
    t = t0
    for start, stop in batch_bounds(len(order), cfg.batch_size, cfg.drop_last):
        loss_sum, G = batch_gradient(X, y, order[start:stop], P, cfg, sample_weight)
        batch_loss = loss_sum / (stop - start)
        t += 1
        columns = batch_columns(X, order[start:stop]) if lazy_columns else None
        finite = apply_update(P, G, state, cfg, lr, t, columns)
        if not (finite and np.isfinite(batch_loss)):
            return diverged_loss(batch_loss, finite), t - t0  # the engine raises
        batch_losses.append(batch_loss)
    return float(np.mean(batch_losses)), t - t0


@dispatch_layout("run_epoch_sparse")
def run_epoch(X, y, order, P, state, cfg, lr, t0, run=ExecutionConfig(), sample_weight=None):
    """Run one epoch of mini-batch gradient descent over the rows ``X[order]``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), or a scipy CSR matrix
        (which goes to ``run_epoch_sparse``)
    y : ndarray of shape (n_samples,), same dtype as X (class codes for the
        classification losses); a regression with K > 1 outputs has its
        (n_samples, K) targets raveled in C order (:func:`batch_targets`)
    order : ndarray of shape (n_rows,), integer row indices visited in order
    P : ndarray of shape (K, n_features + 1), updated in place
    state : ndarray of shape (N_STATE_SLOTS, K, n_features + 1), updated in place
    cfg : KernelConfig
    lr : float, base learning rate of this epoch
    t0 : int, number of updates made before this epoch
    run : ExecutionConfig
        How the epoch runs. The reference runs one thread whatever it says,
        and reads only ``sparse_update`` (of a CSR X).
    sample_weight : ndarray of shape (n_samples,), float64, or None
        Per-row weights, indexed like y (:func:`batch_gradient`); None is
        the unweighted epoch.

    Returns
    -------
    mean_loss : float
        Mean over the epoch's batches of the batch's mean (weighted) loss
        ``Σ w_i L_i / m``, each measured
        with the parameters the batch saw (before its update).
    n_updates : int

    A batch diverges when its mean loss is not finite, or when its update
    leaves a parameter or an optimizer moment that is not finite
    (:func:`apply_update`). The epoch then stops after that batch's update
    and returns a loss that is not finite, with ``n_updates`` counting that
    update: the diverging batch is update number ``t0 + n_updates``. P and
    state are left as that update made them (the engine restores the
    epoch's start).
    """
    return run_batches(X, y, order, P, state, cfg, lr, t0, sample_weight)


# The CSR twin of run_epoch lives in its own file; the backend exposes both.
from ._reference_sparse import run_epoch_sparse  # noqa: E402, F401
