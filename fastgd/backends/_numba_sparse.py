"""Numba backend for CSR data: one epoch over a sparse X in one compiled call.

The twin of ``run_epoch`` in ``_numba.py`` for the three arrays of a CSR
matrix (``data``, ``indices``, ``indptr``), built from the same pieces (the
losses, ``update_output``, ``apply_update``, ``learning_rate``) imported
from there. Its specification is ``_reference_sparse.py``.

A batch is read in O(its stored entries). How it updates the weights is one
of four modes, picked once per epoch (:func:`update_mode`):

- ``UPDATE_DENSE`` (``sparse_update="dense"``): the batch's gradient in a
  dense scratch and the dense update of every weight, O(n_features) a batch;
- ``UPDATE_SCALED`` (lazy SGD without L1, or with ``l1_method='cumulative'``,
  whose penalty then acts on the batch's columns, O(their count)): the weights are ``scale · V``,
  so the L2 shrink of every weight is one multiplication of ``scale`` and
  the gradient step touches the batch's columns only (scikit-learn's
  ``WeightVector``); exact;
- ``UPDATE_CUMULATIVE`` (lazy SGD with L1 or elastic-net): a column is
  brought up to date when it is next read, by the closed form of the
  shrink-and-soft-threshold steps it missed (:func:`catch_up`); exact;
- ``UPDATE_TOUCHED`` (lazy, every other optimizer): the dense update
  restricted to the batch's columns and the intercept.

``average`` (averaged SGD) in a lazy mode adds an O(n_features) pass per
update once averaging has started (:func:`average_lazy`): the running
average takes every weight, so it cannot be lazy (scikit-learn's
``WeightVector`` averages lazily; that is left for later).

Whatever the mode, ``P`` holds the true parameters whenever the kernel
returns (the scale and the pending catch-ups are folded in), so the engine's
checkpoints, callbacks and pickles see what they see with dense data.

Divergence is the dense update's (``_reference.run_epoch``): each update
probes every value it writes (``finite_probe``). The weights a lazy mode
leaves for later can only shrink (plain SGD's L2 shrink is
``max(0, 1 − η·l2)``, in [0, 1]; at 0 ``scaled_update`` folds the scale in
and the cumulative mode steps densely), so none of them overflows unseen.
"""

import numpy as np

from .._config import OPT_SGD, SLOT_L1_APPLIED, SPARSE_DENSE
from ._numba import (
    _jit,
    add_l1_total,
    apply_update,
    average_update,
    batch_count,
    count_probe,
    cumulative_l1_weight,
    finite_probe,
    is_finite,
    learning_rate,
    loss_and_derivative,
    not_finite,
    outputs_loss_dloss,
    prefetch_to_l1,
    update_output,
    weigh,
)

UPDATE_DENSE, UPDATE_SCALED, UPDATE_CUMULATIVE, UPDATE_TOUCHED = range(4)

# A scale (or cumulative shrink) below this is folded into the weights and
# restarted at 1, an O(n_features) pass, before the division by it loses
# precision or overflows (scikit-learn's WeightVector uses the same bound).
MIN_SCALE = 1e-9

# A shuffled epoch reads each row's three pieces at random addresses, each
# behind the one before: its indptr entry, then its entries (data and
# indices), then the weights those index. The epoch loop announces them in
# three stages, 2·D, D and D/2 rows ahead, so each load finds the previous
# stage's line in cache (measured on a 2-core EPYC: D = 8 as in the dense kernel).
PREFETCH_DISTANCE = 8


@_jit(inline="always")
def update_mode(cfg, execution):
    """Which of the four update modes an epoch with settings ``cfg`` runs."""
    if execution.sparse_update == SPARSE_DENSE:
        return UPDATE_DENSE
    if cfg.optimizer == OPT_SGD:
        return UPDATE_SCALED if cfg.l1 == 0.0 or cfg.l1_cumulative else UPDATE_CUMULATIVE
    return UPDATE_TOUCHED


# --- one row: prefetch, prediction, loss and gradient accumulation ------------


@_jit(inline="always")
def loss_dloss(cfg, z, y, i, g, sample_weight):
    """Weighed loss of row ``i`` with scores ``z`` (targets from ``y``); writes its dL/dz into ``g``."""
    if z.shape[0] > 1:
        return outputs_loss_dloss(cfg, z, y, i, g, sample_weight)
    loss, dz = loss_and_derivative(cfg.loss, z[0], y[i], cfg.epsilon)
    g[0] = weigh(sample_weight, i, dz)
    return weigh(sample_weight, i, loss)


@_jit(inline="always")
def prefetch_ahead(data, indices, indptr, y, order, P, r, n_rows):
    """Announce the pieces of the rows ``order[r + 2D]``, ``order[r + D]``, ``order[r + D/2]``."""
    far = r + 2 * PREFETCH_DISTANCE
    if far < n_rows:
        prefetch_to_l1(indptr, order[far])
    mid = r + PREFETCH_DISTANCE
    if mid < n_rows:
        i = order[mid]
        prefetch_to_l1(y, i)
        lo = indptr[i]
        hi = indptr[i + 1]
        if hi > lo:
            for e in range(lo, hi, 8):
                prefetch_to_l1(data, e)
                prefetch_to_l1(indices, e)
            prefetch_to_l1(data, hi - 1)
            prefetch_to_l1(indices, hi - 1)
    near = r + PREFETCH_DISTANCE // 2
    if near < n_rows:
        i = order[near]
        for e in range(indptr[i], indptr[i + 1]):
            j = indices[e]
            for k in range(P.shape[0]):
                prefetch_to_l1(P[k], j)


@_jit(inline="always")
def predict_row_sparse(data, indices, lo, hi, P, scale, z):
    """z := scale · (W·x) + b for the row stored at ``data[lo:hi]``, ``indices[lo:hi]``."""
    d = P.shape[1] - 1
    for k in range(P.shape[0]):
        acc = 0.0
        for e in range(lo, hi):
            acc += np.float64(data[e]) * P[k, indices[e]]
        z[k] = scale * acc + P[k, d]


@_jit(inline="always")
def accumulate_row_sparse(data, indices, lo, hi, g, G, touched, n_touched, seen, track):
    """G[:, j] += g · x_j over the row's entries, G[:, d] += g; returns the new n_touched.

    With ``track``, each column seen for the first time in the batch is
    appended to ``touched`` and marked in ``seen``.
    """
    d = G.shape[1] - 1
    for e in range(lo, hi):
        j = indices[e]
        x = data[e]
        for k in range(G.shape[0]):
            G[k, j] += x * g[k]
        if track and not seen[j]:
            seen[j] = True
            touched[n_touched] = j
            n_touched += 1
    for k in range(G.shape[0]):
        G[k, d] += g[k]
    return n_touched


@_jit(inline="always")
def track_columns(indices, lo, hi, touched, n_touched, seen):
    """Append the row's columns not seen yet in the batch to ``touched``; returns the new n_touched."""
    for e in range(lo, hi):
        j = indices[e]
        if not seen[j]:
            seen[j] = True
            touched[n_touched] = j
            n_touched += 1
    return n_touched


# --- l1_method='cumulative' and average in the lazy modes --------------------


@_jit
def cumulative_l1_lazy(P, state, cfg, eta, touched, n_touched, scale):
    """The cumulative L1 penalty of the batch's columns ``touched[:n_touched]`` (weights ``scale · P``).

    The total ``u`` grows at every update; a column not in the batch gets
    its share when it next is (scikit-learn's rule on sparse input).
    Returns the ``finite_probe`` sum of the penalties written.
    """
    probe = 0.0
    for k in range(P.shape[0]):
        total = add_l1_total(state, cfg, eta, k)
        q = state[SLOT_L1_APPLIED, k]
        for c in range(n_touched):
            probe += cumulative_l1_weight(P[k], q, touched[c], total, scale)
    return probe


@_jit
def average_lazy(P, state, cfg, t, scale):
    """``average_update`` of the true weights ``scale · P``: O(n_features), once averaging has started."""
    return average_update(P, state, cfg, t, scale)


# --- UPDATE_CUMULATIVE: the closed-form catch-up of skipped L1 steps ---------
# With a_u = 1 − η_u·l2 and c_u = η_u·l1, an SGD step leaves a weight that is
# not in the batch at soft_threshold(a_u·w, c_u). While w keeps its sign, u
# steps of that compose to (S_t/S_s)·w ∓ S_t·(C_t − C_s), with S_t = Π a_u and
# C_t = Σ c_u / S_u; once it crosses 0 it stays 0. Each column remembers the
# (S, C) it was last brought to.


@_jit(inline="always")
def catch_up(P, j, S, C, last_S, last_C):
    """Bring column ``j`` of every output through the steps it missed since it was last read."""
    if last_S[j] == S and last_C[j] == C:
        return
    ratio = S / last_S[j]
    shift = S * (C - last_C[j])
    for k in range(P.shape[0]):
        w = P[k, j]
        if w > 0.0:
            w = ratio * w - shift
            P[k, j] = w if w > 0.0 else 0.0
        elif w < 0.0:
            w = ratio * w + shift
            P[k, j] = w if w < 0.0 else 0.0
    last_S[j] = S
    last_C[j] = C


@_jit
def catch_up_all(P, S, C, last_S, last_C):
    """Bring every column up to date and restart the cumulative sums at (1, 0)."""
    for j in range(P.shape[1] - 1):
        catch_up(P, j, S, C, last_S, last_C)
        last_S[j] = 1.0
        last_C[j] = 0.0


# --- the updates of one batch --------------------------------------------------
# The updates that run once per batch and hold a copy of every optimizer's
# step are compiled as functions of their own, not inlined: one call per
# batch costs nothing measurable, and the epoch kernel compiles in about
# half the time.


@_jit(inline="always")
def scaled_update(data, indices, indptr, order, start, stop, gs, P, cfg, eta, scale):
    """SGD with L2 on W = scale · V: shrink ``scale``, step the batch's columns; returns scale.

    ``gs[r]`` holds row ``start + r``'s derivative (already divided by m);
    the step ``V_j −= η/scale · g·x_j`` is linear, so a second pass over
    the batch's entries applies it row by row, with no scratch of n_features.
    The scale returned is NaN where the update diverged (a value it wrote,
    or the scale, not finite). The shrink is ``max(0, 1 − η·l2)``, as in
    ``sgd_step``: in [0, 1], so an untouched weight only ever shrinks. A
    scale below ``MIN_SCALE`` is folded into the weights (probed as they
    are written) and restarted at 1; a shrink of exactly 0 (η·l2 ≥ 1) thus
    zeroes V and leaves scale 1, never scale 0 over a stale V.
    """
    K = P.shape[0]
    d = P.shape[1] - 1
    shrink = max(0.0, 1.0 - eta * cfg.l2)
    scale *= shrink
    probe = not_finite(scale)
    if abs(scale) < MIN_SCALE:
        for k in range(K):
            for j in range(d):
                P[k, j] *= scale
                probe += not_finite(P[k, j])
        scale = 1.0
    step = eta / scale
    for r in range(start, stop):
        i = order[r]
        for k in range(K):
            gk = step * gs[r - start, k]
            for e in range(indptr[i], indptr[i + 1]):
                P[k, indices[e]] -= gk * data[e]
                probe += not_finite(P[k, indices[e]])
    if cfg.fit_intercept:
        for k in range(K):
            gb = 0.0
            for r in range(stop - start):
                gb += gs[r, k]
            P[k, d] -= eta * (gb + cfg.intercept_drift)
            probe += not_finite(P[k, d])
    return scale + count_probe(probe)


@_jit
def touched_update(P, G, state, cfg, eta, t, touched, n_touched, seen, pbuf, gbuf, s1buf, s2buf):
    """The dense update (``update_output``) of the batch's columns and the intercept only.

    Gathers them into contiguous buffers (intercept last), steps those as
    one output's parameters, scatters them back, and leaves G and ``seen``
    zeroed for the next batch. Returns ``update_output``'s probe sum: the
    other columns are unchanged, hence finite.
    """
    d = P.shape[1] - 1
    n = n_touched
    probe = 0.0
    for k in range(P.shape[0]):
        for q in range(n):
            j = touched[q]
            pbuf[q] = P[k, j]
            gbuf[q] = G[k, j]
            s1buf[q] = state[0, k, j]
            s2buf[q] = state[1, k, j]
            G[k, j] = 0.0
        pbuf[n] = P[k, d]
        gbuf[n] = G[k, d]
        s1buf[n] = state[0, k, d]
        s2buf[n] = state[1, k, d]
        G[k, d] = 0.0
        probe += update_output(pbuf[: n + 1], gbuf[: n + 1], s1buf[: n + 1], s2buf[: n + 1], cfg,
                               eta, t)  # fmt: skip
        for q in range(n):
            j = touched[q]
            P[k, j] = pbuf[q]
            state[0, k, j] = s1buf[q]
            state[1, k, j] = s2buf[q]
        P[k, d] = pbuf[n]
        state[0, k, d] = s1buf[n]
        state[1, k, d] = s2buf[n]
    for q in range(n):
        seen[touched[q]] = False
    return probe


@_jit
def dense_update(P, G, state, cfg, eta, t):
    """The dense update of every parameter, returning its probe sum; G (which it changes) is zeroed after."""
    probe = apply_update(P, G, state, cfg, eta, t)
    for k in range(G.shape[0]):
        for j in range(G.shape[1]):
            G[k, j] = 0.0
    return probe


# --- the epoch ---------------------------------------------------------------


@_jit
def run_epoch_sparse(data, indices, indptr, y, order, P, state, cfg, execution, lr, t0,
                     sample_weight):  # fmt: skip
    """One epoch over the CSR rows ``order``; see ``_reference_sparse.run_epoch_sparse``.

    ``execution`` is a ``_cpu.CpuExecution``: its ``sparse_update`` picks the
    update mode (the CSR epoch always prefetches, and runs on one thread);
    ``sample_weight`` is None or the rows' float64 weights (``weigh``).
    """
    n_rows = order.shape[0]
    batch_size = cfg.batch_size
    n_batches = batch_count(n_rows, cfg)
    K = P.shape[0]
    d = P.shape[1] - 1
    mode = update_mode(cfg, execution)
    scaled = mode == UPDATE_SCALED
    cumulative = mode == UPDATE_CUMULATIVE
    # l1_method='cumulative' in a lazy mode: its penalty acts on the batch's columns.
    l1_lazy = mode != UPDATE_DENSE and cfg.l1_cumulative != 0 and cfg.l1 > 0.0
    averaging = mode != UPDATE_DENSE and cfg.average_start > 0
    track = cumulative or mode == UPDATE_TOUCHED or (scaled and l1_lazy)
    # Scratch, once per epoch and only what the mode uses (np.zeros of a
    # large size is calloc: pages never touched cost nothing). float64
    # whatever the dtype, as in the dense kernel.
    G = np.zeros((K, 1 if scaled else d + 1))
    gs = np.empty((batch_size if scaled else 1, K))
    n_track = d if track else 0
    touched = np.empty(n_track, dtype=np.int64)
    seen = np.zeros(n_track, dtype=np.bool_)
    pbuf = np.empty_like(P[0, : n_track + 1])
    s1buf = np.empty_like(pbuf)
    s2buf = np.empty_like(pbuf)
    gbuf = np.empty(n_track + 1)
    last_S = np.ones(d if cumulative else 0)
    last_C = np.zeros(d if cumulative else 0)
    z = np.empty(K)
    g = np.empty(K)
    scale = 1.0  # UPDATE_SCALED: the weights are scale · P[:, :d]
    S = 1.0  # UPDATE_CUMULATIVE: Π a_u and Σ c_u / S_u since the last restart
    C = 0.0
    total = 0.0
    t = t0
    diverged = False
    batch_loss = 0.0
    for batch in range(n_batches):
        start = batch * batch_size
        stop = min(start + batch_size, n_rows)
        inv_m = 1.0 / (stop - start)
        batch_loss = 0.0
        n_touched = np.int64(0)  # not a literal 0: one compiled copy of the callees
        for r in range(start, stop):
            prefetch_ahead(data, indices, indptr, y, order, P, r, n_rows)
            i = order[r]
            lo = indptr[i]
            hi = indptr[i + 1]
            if cumulative:
                for e in range(lo, hi):
                    catch_up(P, indices[e], S, C, last_S, last_C)
            predict_row_sparse(data, indices, lo, hi, P, scale, z)
            batch_loss += loss_dloss(cfg, z, y, i, g, sample_weight)
            for k in range(K):
                g[k] *= inv_m
            if scaled:
                for k in range(K):
                    gs[r - start, k] = g[k]
                if track:
                    n_touched = track_columns(indices, lo, hi, touched, n_touched, seen)
            else:
                n_touched = accumulate_row_sparse(
                    data, indices, lo, hi, g, G, touched, n_touched, seen, track
                )
        t += 1
        eta = learning_rate(lr, t, cfg.power_t, cfg.t_offset)
        probe = 0.0
        stepped_densely = False  # dense_update averages by itself
        if scaled:
            scale = scaled_update(
                data, indices, indptr, order, start, stop, gs, P, cfg, eta, scale
            )
            probe = finite_probe(scale)
            if l1_lazy:
                probe += cumulative_l1_lazy(P, state, cfg, eta, touched, n_touched, scale)
                for q in range(n_touched):
                    seen[touched[q]] = False
        elif mode == UPDATE_DENSE:
            probe = dense_update(P, G, state, cfg, eta, t)
        elif cumulative and 1.0 - eta * cfg.l2 <= 0.0:
            # A shrink of 0 (η·l2 >= 1 zeroes every weight) cannot be divided
            # out of S: bring every column up to date and take this one step
            # densely.
            catch_up_all(P, S, C, last_S, last_C)
            S, C = 1.0, 0.0
            for q in range(n_touched):
                seen[touched[q]] = False
            probe = dense_update(P, G, state, cfg, eta, t)
            stepped_densely = True
        else:
            if cumulative:
                S *= 1.0 - eta * cfg.l2
                C += eta * cfg.l1 / S
            probe = touched_update(
                P, G, state, cfg, eta, t, touched, n_touched, seen, pbuf, gbuf, s1buf, s2buf
            )
            if cumulative:
                for q in range(n_touched):
                    last_S[touched[q]] = S
                    last_C[touched[q]] = C
                if S < MIN_SCALE:
                    catch_up_all(P, S, C, last_S, last_C)
                    S, C = 1.0, 0.0
            elif l1_lazy:
                probe += cumulative_l1_lazy(P, state, cfg, eta, touched, n_touched, 1.0)
        if averaging and t >= cfg.average_start and not stepped_densely:
            if cumulative:
                # The average needs every true weight: catch them all up.
                catch_up_all(P, S, C, last_S, last_C)
                S, C = 1.0, 0.0
            probe += average_lazy(P, state, cfg, t, scale)
        if not (is_finite(batch_loss) and is_finite(probe)):
            # Diverged (the reference's definition); P is made true below.
            batch_loss += probe
            diverged = True
            break
        total += batch_loss * inv_m
    # The parameters in P are the true ones whenever the kernel returns.
    if scaled and scale != 1.0:
        for k in range(K):
            for j in range(d):
                P[k, j] *= scale
    if cumulative:
        catch_up_all(P, S, C, last_S, last_C)
    if diverged:
        return batch_loss, t - t0
    return total / n_batches, t - t0


# --- the batch-level seam: one batch's gradient ---------------------------------


@_jit
def batch_gradient_sparse(data, indices, indptr, y, rows, P, cfg, sample_weight):
    """``(loss_sum, G)`` of the CSR rows ``rows``: the gradient of the dense update mode.

    The row loop of ``run_epoch_sparse`` with ``UPDATE_DENSE`` (true weights,
    no column tracking), from the same pieces. ``G`` (float64, the shape of
    P) is the mean gradient of the loss alone, its last column the mean dL/dz.
    """
    K = P.shape[0]
    G = np.zeros(P.shape)
    z = np.empty(K)
    g = np.empty(K)
    no_touched = np.empty(0, dtype=np.int64)
    no_seen = np.zeros(0, dtype=np.bool_)
    inv_m = 1.0 / rows.shape[0]
    total = 0.0
    for r in range(rows.shape[0]):
        i = rows[r]
        lo = indptr[i]
        hi = indptr[i + 1]
        predict_row_sparse(data, indices, lo, hi, P, 1.0, z)
        total += loss_dloss(cfg, z, y, i, g, sample_weight)
        for k in range(K):
            g[k] *= inv_m
        accumulate_row_sparse(data, indices, lo, hi, g, G, no_touched, 0, no_seen, False)
    return total, G
