"""The NumPy reference for CSR data: the specification of the sparse kernels.

``run_epoch_sparse`` takes the three arrays of a CSR matrix and follows the
contract of :func:`fastgd.backends._reference.run_epoch`. Two forms:

- the dense update (``sparse_update="dense"``, and ``"lazy"`` with
  ``optimizer="sgd"``, whose lazy form is exact): the dense reference's
  loop of ``batch_gradient`` and ``apply_update`` itself, run on the scipy
  matrix, whose batch products ``X[rows] @ W`` are sparse;
- the lazy form of the other optimizers (:func:`run_epoch_touched`): each
  batch steps only the columns that have a stored entry in it, and the
  intercept.
"""

import numpy as np

from .._config import OPT_ADAMW, OPT_SGD, SPARSE_DENSE, ExecutionConfig
from ._reference import (
    OPTIMIZER_STEPS,
    all_finite,
    batch_bounds,
    batch_targets,
    batch_weights,
    diverged_loss,
    finish_update,
    learning_rate,
    losses,
    run_batches,
    soft_threshold,
)


def as_csr(data, indices, indptr, n_features):
    """The scipy CSR matrix of the three arrays (scipy is imported here, not earlier)."""
    from scipy.sparse import csr_array

    return csr_array((data, indices, indptr), shape=(indptr.shape[0] - 1, n_features))


def run_epoch_sparse(data, indices, indptr, y, order, P, state, cfg, lr, t0,
                     run=ExecutionConfig(), sample_weight=None):  # fmt: skip
    """One epoch over the rows ``order`` of the CSR matrix ``(data, indices, indptr)``.

    The arguments after the three CSR arrays, the results and the in-place
    updates are those of :func:`fastgd.backends._reference.run_epoch`; of
    ``run``, only ``sparse_update`` is read.
    """
    X = as_csr(data, indices, indptr, P.shape[1] - 1)
    if run.sparse_update == SPARSE_DENSE or cfg.optimizer == OPT_SGD:
        # Lazy SGD is the dense update rearranged (a scale factor, a
        # closed-form catch-up): its specification is the dense update, but
        # for the cumulative L1 penalty, which a lazy update applies to the
        # batch's columns only (scikit-learn's rule on sparse input).
        lazy = run.sparse_update != SPARSE_DENSE
        return run_batches(X, y, order, P, state, cfg, lr, t0, sample_weight, lazy_columns=lazy)
    return run_epoch_touched(X, y, order, P, state, cfg, lr, t0, sample_weight)


def run_epoch_touched(X, y, order, P, state, cfg, lr, t0, sample_weight=None):
    """The lazy form of the adaptive and momentum optimizers, on a scipy CSR ``X``.

    Each batch's update is the dense update of ``run_epoch`` restricted to
    the columns with a stored entry in the batch (``J``) and the intercept:
    the L2 gradient term, AdamW's decay, the optimizer step and the L1
    soft-threshold act on those columns only; every other weight and its
    optimizer state stay as they are (so the divergence check of the dense
    update, on every parameter and moment, need only read these columns).
    The cumulative L1 penalty acts on the same columns; the running average
    takes every parameter (:func:`finish_update`).
    """
    d = P.shape[1] - 1
    W, b = P[:, :-1].T, P[:, -1]
    bounds = batch_bounds(len(order), cfg.batch_size, cfg.drop_last)
    step = OPTIMIZER_STEPS[cfg.optimizer]
    batch_losses = []
    t = t0
    for start, stop in bounds:
        rows = order[start:stop]
        Xb = X[rows].astype(np.float64)
        yb = batch_targets(y, rows, P.shape[0], cfg.loss).astype(np.float64)
        loss, dZ = losses(Xb @ W + b, yb, cfg,
                          batch_weights(sample_weight, rows, P.shape[0], cfg.loss))  # fmt: skip
        batch_loss = loss.mean()

        m = stop - start
        J = np.unique(Xb.indices)
        grad = (Xb.T @ dZ / m).T[:, J] + cfg.l2 * P[:, J]
        if cfg.fit_intercept:
            J = np.append(J, d)
            grad = np.column_stack([grad, dZ.sum(axis=0) / m + cfg.intercept_drift])
        weights = J < d

        t += 1
        eta = learning_rate(lr, t, cfg.power_t, cfg.t_offset)
        # float64 copies (fancy indexing copies anyway), as in apply_update.
        p, s = P[:, J].astype(np.float64), state[:, :, J].astype(np.float64)
        if cfg.optimizer == OPT_ADAMW:
            p[:, weights] *= 1.0 - eta * cfg.weight_decay
        step(p, grad, s, eta, t, cfg)
        if cfg.l1 > 0.0 and not cfg.l1_cumulative:
            p[:, weights] = soft_threshold(p[:, weights], eta * cfg.l1)
        P[:, J], state[:, :, J] = p, s
        work, moments = P.astype(np.float64), state.astype(np.float64)
        finish_update(work, moments, cfg, eta, t, J[weights])
        P[...], state[...] = work, moments
        finite = all_finite(P[:, J], state)
        if not (finite and np.isfinite(batch_loss)):
            return float(diverged_loss(batch_loss, finite)), t - t0
        batch_losses.append(batch_loss)
    return float(np.mean(batch_losses)), t - t0
