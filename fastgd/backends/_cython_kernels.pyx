# cython: language_level=3
"""Cython backend: the whole epoch runs in one compiled call, without the GIL.

The twin of ``_numba.py``: the same small functions in the same order with
the same names (a value and a derivative per loss, a step per optimizer, the
soft-threshold of L1), composed by one epoch loop. Put the two files side by
side and every function here has its Numba counterpart there; the NumPy
reference in ``_reference.py`` is the specification of both.

One source covers float32 and float64 data (the fused type ``floating``) and
int32 and int64 row orders (``index_t``). As in the Numba kernels, arrays are
read and written in their storage dtype while scalars and accumulators are
double, and every expression keeps the Numba code's operation order, so the
two backends agree to rounding.

Settings arrive as the ``KernelConfig`` named tuple and are copied once per
call into a C struct of the same fields, before the GIL is released.
Compiled by ``setup.py`` with bounds checking and wraparound off;
``FASTGD_CYTHON_DEBUG=1`` at build time turns both on.
"""

from libc.math cimport exp, fabs, isfinite, log, log1p, pow, sqrt, tanh
from libc.stdint cimport int32_t, int64_t

import numpy as np

from .. import _config

ctypedef fused floating:
    float
    double

ctypedef fused index_t:
    int32_t
    int64_t

# The integer codes of ``_config`` (C needs them at compile time). They are
# written twice, so the module checks them against ``_config`` at import.
cpdef enum:
    LOSS_HUBER = 1
    LOSS_EPSILON_INSENSITIVE = 2
    LOSS_LOG = 3
    LOSS_MULTINOMIAL = 4
    LOSS_HINGE = 5
    OPT_MOMENTUM = 1
    OPT_NESTEROV = 2
    OPT_ADAGRAD = 3
    OPT_RMSPROP = 4
    OPT_ADAM = 5
    OPT_ADAMW = 6

# Rows announced ahead of use in a shuffled epoch; the same value as
# ``_numba.PREFETCH_DISTANCE`` (the tests hold the two together).
cpdef enum:
    PREFETCH_DISTANCE = 8

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    /* read access (0), keep in every cache level (3): what the Numba kernel asks LLVM for */
    #define FASTGD_PREFETCH(address) __builtin_prefetch((address), 0, 3)
    #else
    #define FASTGD_PREFETCH(address) ((void)(address))
    #endif
    /* setup.py defines it to 1 for the debug build (bounds checks on) */
    #ifndef FASTGD_CYTHON_DEBUG
    #define FASTGD_CYTHON_DEBUG 0
    #endif
    """
    void prefetch "FASTGD_PREFETCH"(const void *address) noexcept nogil
    const int FASTGD_CYTHON_DEBUG

# True in a build made with FASTGD_CYTHON_DEBUG=1 (bounds checking and
# wraparound on, no optimisation): what the tests of that build check first.
DEBUG_BUILD = bool(FASTGD_CYTHON_DEBUG)


cdef struct KernelConfig:
    # Field for field the ``_config.KernelConfig`` named tuple (checked at import).
    int loss
    int optimizer
    Py_ssize_t batch_size
    int drop_last
    int fit_intercept
    double l2
    double l1
    double epsilon
    double power_t
    double momentum
    double beta1
    double beta2
    double eps
    double rho
    double weight_decay
    int sparse_update


cdef inline void prefetch_row(const void *row, Py_ssize_t row_bytes) noexcept nogil:
    """Ask the CPU to start loading the ``row_bytes`` bytes at ``row``.

    A shuffled epoch reads rows at random addresses; the arithmetic of one row
    is too short for the out-of-order core to reach the next row's loads on
    its own, so the epoch loop announces rows a few steps ahead.
    """
    cdef const char *start = <const char *>row
    cdef Py_ssize_t offset
    # One prefetch per 64 bytes of the row, and one at its last byte: rows
    # need not start on a cache line (NumPy aligns data to 16 bytes), and the
    # line holding a row's tail would otherwise be a demand miss.
    for offset in range(0, row_bytes, 64):
        prefetch(start + offset)
    prefetch(start + row_bytes - 1)


# --- losses: value and derivative with respect to the prediction p ----------
# Numba's ``max(x, 0.0)`` is Python's max, ``0.0 if 0.0 > x else x``; it is
# written out so, which keeps a NaN loss NaN as in the Numba kernel.


cdef inline double squared_error_loss(double p, double y) noexcept nogil:
    cdef double r = p - y
    return 0.5 * r * r


cdef inline double squared_error_dloss(double p, double y) noexcept nogil:
    return p - y


cdef inline double huber_loss(double p, double y, double epsilon) noexcept nogil:
    cdef double r = fabs(p - y)
    if r <= epsilon:
        return 0.5 * r * r
    return epsilon * r - 0.5 * epsilon * epsilon


cdef inline double huber_dloss(double p, double y, double epsilon) noexcept nogil:
    cdef double r = p - y
    if fabs(r) <= epsilon:
        return r
    return epsilon if r > 0.0 else -epsilon


cdef inline double epsilon_insensitive_loss(double p, double y, double epsilon) noexcept nogil:
    cdef double r = fabs(p - y) - epsilon
    return 0.0 if r < 0.0 else r


cdef inline double epsilon_insensitive_dloss(double p, double y, double epsilon) noexcept nogil:
    cdef double r = p - y
    if fabs(r) <= epsilon:
        return 0.0
    return 1.0 if r > 0.0 else -1.0


cdef inline double log_loss(double p, double y) noexcept nogil:
    # log(1 + exp(-s·p)), s = ±1, without overflow for large |p|.
    cdef double m = -(2.0 * y - 1.0) * p
    return (0.0 if m < 0.0 else m) + log1p(exp(-fabs(m)))


cdef inline double log_dloss(double p, double y) noexcept nogil:
    return 0.5 * (1.0 + tanh(0.5 * p)) - y


cdef inline double hinge_loss(double p, double y) noexcept nogil:
    cdef double r = 1.0 - (2.0 * y - 1.0) * p
    return 0.0 if r < 0.0 else r


cdef inline double hinge_dloss(double p, double y) noexcept nogil:
    cdef double s = 2.0 * y - 1.0
    return -s if s * p < 1.0 else 0.0


cdef inline double multinomial_loss_dloss(double[::1] z, Py_ssize_t code, double[::1] g) noexcept nogil:
    """Softmax cross-entropy of scores ``z`` for class ``code``; ``g`` := dL/dz."""
    cdef Py_ssize_t k
    cdef double top = z[0]
    cdef double total = 0.0
    for k in range(1, z.shape[0]):
        top = z[k] if z[k] > top else top
    for k in range(z.shape[0]):
        g[k] = exp(z[k] - top)
        total += g[k]
    for k in range(z.shape[0]):
        g[k] /= total
    g[code] -= 1.0
    return log(total) + top - z[code]


cdef inline double loss_dloss(const KernelConfig *cfg, double[::1] z, double y, double[::1] g) noexcept nogil:
    """Loss of one row with scores ``z`` and target ``y``; writes dL/dz into ``g``."""
    cdef int loss = cfg.loss
    if loss == LOSS_MULTINOMIAL:
        return multinomial_loss_dloss(z, <Py_ssize_t>y, g)
    cdef double p = z[0]
    if loss == LOSS_HUBER:
        g[0] = huber_dloss(p, y, cfg.epsilon)
        return huber_loss(p, y, cfg.epsilon)
    if loss == LOSS_EPSILON_INSENSITIVE:
        g[0] = epsilon_insensitive_dloss(p, y, cfg.epsilon)
        return epsilon_insensitive_loss(p, y, cfg.epsilon)
    if loss == LOSS_LOG:
        g[0] = log_dloss(p, y)
        return log_loss(p, y)
    if loss == LOSS_HINGE:
        g[0] = hinge_dloss(p, y)
        return hinge_loss(p, y)
    g[0] = squared_error_dloss(p, y)
    return squared_error_loss(p, y)


# --- one row: prediction and gradient accumulation ---------------------------


cdef inline void predict_row(const floating[:, ::1] X, Py_ssize_t i, floating[:, ::1] P, double[::1] z) noexcept nogil:
    """z := W·X[i] + b."""
    cdef Py_ssize_t d = X.shape[1]
    cdef Py_ssize_t k, j
    cdef double acc
    for k in range(P.shape[0]):
        acc = 0.0
        for j in range(d):
            acc += X[i, j] * P[k, j]
        z[k] = acc + P[k, d]


cdef inline void accumulate_row(const floating[:, ::1] X, Py_ssize_t i, double[::1] g, double[:, ::1] G, bint first) noexcept nogil:
    """G[:, :d] += g ⊗ X[i] and G[:, d] += g; the batch's first row overwrites G.

    Overwriting instead of zeroing G before each batch saves a pass over the
    parameters per update, which is most of the cost at batch size 1.
    """
    cdef Py_ssize_t d = X.shape[1]
    cdef Py_ssize_t k, j
    cdef double gk
    for k in range(G.shape[0]):
        gk = g[k]
        if first:
            for j in range(d):
                G[k, j] = X[i, j] * gk
            G[k, d] = gk
        else:
            for j in range(d):
                G[k, j] += X[i, j] * gk
            G[k, d] += gk


# --- optimizers: in-place update of parameters p from gradient g -----------
# Each loop is one formula over contiguous arrays, so it vectorises; s1 and s2
# are the optimizer's moments, t the 1-based update number. They take the
# rows of P, G and state as pointers: slicing a memoryview without the GIL
# costs atomic reference counting, once per output and batch.


cdef inline void sgd_update(floating *p, const double *g, double eta, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        p[j] -= eta * g[j]


cdef inline void momentum_update(floating *p, const double *g, floating *v, double eta, double momentum, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        v[j] = momentum * v[j] + g[j]
        p[j] -= eta * v[j]


cdef inline void nesterov_update(floating *p, const double *g, floating *v, double eta, double momentum, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        v[j] = momentum * v[j] + g[j]
        p[j] -= eta * (g[j] + momentum * v[j])


cdef inline void adagrad_update(floating *p, const double *g, floating *s, double eta, double eps, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        s[j] += g[j] * g[j]
        p[j] -= eta * g[j] / (sqrt(s[j]) + eps)


cdef inline void rmsprop_update(floating *p, const double *g, floating *s, double eta, double rho, double eps, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        s[j] = rho * s[j] + (1.0 - rho) * g[j] * g[j]
        p[j] -= eta * g[j] / (sqrt(s[j]) + eps)


cdef inline void adam_update(floating *p, const double *g, floating *m, floating *v, double eta, long long t, double beta1, double beta2, double eps, Py_ssize_t n) noexcept nogil:
    # pow() where Numba multiplies by repeated squaring: the two differ by a
    # few ulps of beta**t, far below the 1e-12 the backends promise.
    cdef double bias1 = 1.0 - pow(beta1, <double>t)
    cdef double bias2 = 1.0 - pow(beta2, <double>t)
    cdef Py_ssize_t j
    for j in range(n):
        m[j] = beta1 * m[j] + (1.0 - beta1) * g[j]
        v[j] = beta2 * v[j] + (1.0 - beta2) * g[j] * g[j]
        p[j] -= eta * (m[j] / bias1) / (sqrt(v[j] / bias2) + eps)


cdef inline void optimizer_update(const KernelConfig *cfg, floating *p, const double *g, floating *s1, floating *s2, double eta, long long t, Py_ssize_t n) noexcept nogil:
    """Step the first ``n`` entries of ``p`` with the configured optimizer."""
    cdef int opt = cfg.optimizer
    if opt == OPT_MOMENTUM:
        momentum_update(p, g, s1, eta, cfg.momentum, n)
    elif opt == OPT_NESTEROV:
        nesterov_update(p, g, s1, eta, cfg.momentum, n)
    elif opt == OPT_ADAGRAD:
        adagrad_update(p, g, s1, eta, cfg.eps, n)
    elif opt == OPT_RMSPROP:
        rmsprop_update(p, g, s1, eta, cfg.rho, cfg.eps, n)
    elif opt == OPT_ADAM or opt == OPT_ADAMW:
        adam_update(p, g, s1, s2, eta, t, cfg.beta1, cfg.beta2, cfg.eps, n)
    else:
        sgd_update(p, g, eta, n)


cdef inline double learning_rate(double lr, long long t, double power_t) noexcept nogil:
    """Rate of update number ``t`` (1-based): ``lr / t**power_t`` (invscaling)."""
    if power_t != 0.0:
        return lr / pow(<double>t, power_t)
    return lr


cdef inline double soft_threshold(double w, double threshold) noexcept nogil:
    """Proximal step of ``threshold · |w|``: shrink towards 0, land on exactly 0."""
    if w > threshold:
        return w - threshold
    if w < -threshold:
        return w + threshold
    return 0.0


cdef inline void update_output(floating *p, double *g, floating *s1, floating *s2, Py_ssize_t n, const KernelConfig *cfg, double eta, long long t) noexcept nogil:
    """One optimizer step on one output's ``n`` parameters (weights, then intercept).

    ``g`` holds the batch's mean gradient and gains the L2 term in place.
    AdamW's decay and the L1 soft-threshold act on the weights only, never on
    the intercept.
    """
    cdef Py_ssize_t d = n - 1
    cdef double l2 = cfg.l2
    cdef double decay, shrink
    cdef Py_ssize_t j, n_params
    if l2 != 0.0:
        for j in range(d):
            g[j] += l2 * p[j]
    if cfg.optimizer == OPT_ADAMW:
        decay = 1.0 - eta * cfg.weight_decay
        for j in range(d):
            p[j] *= decay
    n_params = d + 1 if cfg.fit_intercept else d
    optimizer_update(cfg, p, g, s1, s2, eta, t, n_params)
    if cfg.l1 > 0.0:
        shrink = eta * cfg.l1
        for j in range(d):
            p[j] = soft_threshold(p[j], shrink)


cdef inline void apply_update(floating[:, ::1] P, double[:, ::1] G, floating[:, :, ::1] state, const KernelConfig *cfg, double eta, long long t) noexcept nogil:
    """One optimizer step on every parameter from the batch's mean gradient G."""
    cdef Py_ssize_t k
    cdef Py_ssize_t n = P.shape[1]
    if P.shape[0] == 1:
        update_output(&P[0, 0], &G[0, 0], &state[0, 0, 0], &state[1, 0, 0], n, cfg, eta, t)
        return
    for k in range(P.shape[0]):
        update_output(&P[k, 0], &G[k, 0], &state[0, k, 0], &state[1, k, 0], n, cfg, eta, t)


# --- the epoch ---------------------------------------------------------------


def run_epoch(
    const floating[:, ::1] X,
    const floating[::1] y,
    const index_t[::1] order,
    floating[:, ::1] P,
    floating[:, :, ::1] state,
    cfg,
    double lr,
    long long t0,
):
    """One epoch of mini-batch gradient descent; see ``_reference.run_epoch``.

    X, y and order may be read-only (a ``np.memmap(mode="r")`` works); P and
    state are updated in place. The GIL is released for the whole epoch.
    """
    # Everything that touches Python happens here, once per epoch: the
    # settings become a C struct and the scratch arrays are allocated.
    cdef KernelConfig config = cfg._asdict()
    cdef Py_ssize_t n_rows = order.shape[0]
    cdef Py_ssize_t batch_size = config.batch_size
    cdef Py_ssize_t n_batches = n_rows // batch_size
    if n_rows % batch_size and not config.drop_last:
        n_batches += 1
    cdef Py_ssize_t K = P.shape[0]
    # float64 whatever the dtype: a float32 sum of a batch's rows would not
    # cancel to exactly 0, and adaptive optimizers turn ~1e-9 into a full step.
    cdef double[:, ::1] G = np.empty((K, P.shape[1]))
    cdef double[::1] z = np.empty(K)
    cdef double[::1] g = np.empty(K)
    cdef double total = 0.0
    cdef long long t = t0
    cdef Py_ssize_t batch, start, stop, r, i, k, ahead
    cdef double batch_loss, eta, inv_m
    cdef bint diverged = False
    with nogil:
        for batch in range(n_batches):
            start = batch * batch_size
            stop = start + batch_size if start + batch_size < n_rows else n_rows
            # Each row's derivative is divided by m before it is summed, so G is
            # the mean gradient without another pass over the parameters.
            inv_m = 1.0 / (stop - start)
            batch_loss = 0.0
            for r in range(start, stop):
                if r + PREFETCH_DISTANCE < n_rows:
                    ahead = order[r + PREFETCH_DISTANCE]
                    prefetch_row(&X[ahead, 0], X.strides[0])
                    prefetch_row(&y[ahead], y.strides[0])
                i = order[r]
                predict_row(X, i, P, z)
                batch_loss += loss_dloss(&config, z, y[i], g)
                for k in range(K):
                    g[k] *= inv_m
                accumulate_row(X, i, g, G, r == start)
            if not isfinite(batch_loss):
                # Diverged: leave this batch's update out and let the engine,
                # which reads the batch from the update count, raise.
                diverged = True
                break
            t += 1
            eta = learning_rate(lr, t, config.power_t)
            apply_update(P, G, state, &config, eta, t)
            total += batch_loss * inv_m
    if diverged:
        return batch_loss, t - t0
    return total / n_batches, t - t0


# --- import-time guards --------------------------------------------------------
# The C copies of the codes and of the settings record must match ``_config``;
# a build from an older ``_config`` is refused rather than left to mis-branch.

_C_CODES = {
    "LOSS_HUBER": LOSS_HUBER,
    "LOSS_EPSILON_INSENSITIVE": LOSS_EPSILON_INSENSITIVE,
    "LOSS_LOG": LOSS_LOG,
    "LOSS_MULTINOMIAL": LOSS_MULTINOMIAL,
    "LOSS_HINGE": LOSS_HINGE,
    "OPT_MOMENTUM": OPT_MOMENTUM,
    "OPT_NESTEROV": OPT_NESTEROV,
    "OPT_ADAGRAD": OPT_ADAGRAD,
    "OPT_RMSPROP": OPT_RMSPROP,
    "OPT_ADAM": OPT_ADAM,
    "OPT_ADAMW": OPT_ADAMW,
}


def _struct_fields():
    """Field names of the C ``KernelConfig``, in declaration order."""
    cdef KernelConfig probe
    probe.loss = probe.optimizer = probe.drop_last = probe.fit_intercept = 0
    probe.batch_size = 0
    probe.l2 = probe.l1 = probe.epsilon = probe.power_t = probe.momentum = 0.0
    probe.beta1 = probe.beta2 = probe.eps = probe.rho = probe.weight_decay = 0.0
    probe.sparse_update = 0
    return tuple(<dict>probe)


if (
    any(getattr(_config, name) != code for name, code in _C_CODES.items())
    or _struct_fields() != _config.KernelConfig._fields
):
    raise ImportError(
        "fastgd.backends._cython_kernels was compiled against other settings codes "
        "than fastgd._config; rebuild it: `python -m pip install .` "
        "(or `python -m pip install -e .` in a checkout)"
    )


# --- CSR data: one epoch over a sparse X -----------------------------------------
# The twin of ``_numba_sparse.py``, function for function (see its docstring
# for the four update modes); its specification is ``_reference_sparse.py``.
# Built from the pieces above: loss_dloss, update_output, apply_update,
# learning_rate. The CSR index arrays have a fused type of their own, since
# scipy's int32 or int64 need not match the row order's.

ctypedef fused sparse_index_t:
    int32_t
    int64_t

cpdef enum:
    OPT_SGD = 0
    SPARSE_DENSE = 1
    UPDATE_DENSE = 0
    UPDATE_SCALED = 1
    UPDATE_CUMULATIVE = 2
    UPDATE_TOUCHED = 3

# The same bound as ``_numba_sparse.MIN_SCALE`` (the tests hold the two together).
cdef double MIN_SCALE = 1e-9
SPARSE_MIN_SCALE = MIN_SCALE


cdef inline int update_mode(const KernelConfig *cfg) noexcept nogil:
    """Which of the four update modes an epoch with settings ``cfg`` runs."""
    if cfg.sparse_update == SPARSE_DENSE:
        return UPDATE_DENSE
    if cfg.optimizer == OPT_SGD:
        return UPDATE_SCALED if cfg.l1 == 0.0 else UPDATE_CUMULATIVE
    return UPDATE_TOUCHED


cdef inline Py_ssize_t prefetch_ahead(const floating[::1] data, const sparse_index_t[::1] indices, const sparse_index_t[::1] indptr, const floating[::1] y, const index_t[::1] order, floating[:, ::1] P, Py_ssize_t r, Py_ssize_t n_rows) noexcept nogil:
    """Announce the pieces of the rows ``order[r + 2D]``, ``order[r + D]``, ``order[r + D/2]``.

    A row's indptr entry, then its entries, then the weights they index: each
    stage finds the line the stage before fetched (see ``_numba_sparse``).
    Returns ``order[r]``: a function without a result that only reads
    memory is "pure" to GCC, which then drops its calls, prefetches and all.
    """
    cdef Py_ssize_t i, e, lo, hi, k, j
    if r + 2 * PREFETCH_DISTANCE < n_rows:
        prefetch(&indptr[order[r + 2 * PREFETCH_DISTANCE]])
    if r + PREFETCH_DISTANCE < n_rows:
        i = order[r + PREFETCH_DISTANCE]
        prefetch(&y[i])
        lo = indptr[i]
        hi = indptr[i + 1]
        if hi > lo:
            for e in range(lo, hi, 8):
                prefetch(&data[e])
                prefetch(&indices[e])
            prefetch(&data[hi - 1])
            prefetch(&indices[hi - 1])
    if r + PREFETCH_DISTANCE // 2 < n_rows:
        i = order[r + PREFETCH_DISTANCE // 2]
        for e in range(indptr[i], indptr[i + 1]):
            j = indices[e]
            for k in range(P.shape[0]):
                prefetch(&P[k, j])
    return order[r]


cdef inline void predict_row_sparse(const floating[::1] data, const sparse_index_t[::1] indices, Py_ssize_t lo, Py_ssize_t hi, floating[:, ::1] P, double scale, double[::1] z) noexcept nogil:
    """z := scale · (W·x) + b for the row stored at ``data[lo:hi]``, ``indices[lo:hi]``."""
    cdef Py_ssize_t d = P.shape[1] - 1
    cdef Py_ssize_t k, e
    cdef double acc
    for k in range(P.shape[0]):
        acc = 0.0
        for e in range(lo, hi):
            acc += data[e] * P[k, indices[e]]
        z[k] = scale * acc + P[k, d]


cdef inline Py_ssize_t accumulate_row_sparse(const floating[::1] data, const sparse_index_t[::1] indices, Py_ssize_t lo, Py_ssize_t hi, double[::1] g, double[:, ::1] G, Py_ssize_t[::1] touched, Py_ssize_t n_touched, unsigned char[::1] seen, bint track) noexcept nogil:
    """G[:, j] += g · x_j over the row's entries, G[:, d] += g; returns the new n_touched.

    With ``track``, each column seen for the first time in the batch is
    appended to ``touched`` and marked in ``seen``.
    """
    cdef Py_ssize_t d = G.shape[1] - 1
    cdef Py_ssize_t e, j, k
    cdef double x
    for e in range(lo, hi):
        j = indices[e]
        x = data[e]
        for k in range(G.shape[0]):
            G[k, j] += x * g[k]
        if track and not seen[j]:
            seen[j] = 1
            touched[n_touched] = j
            n_touched += 1
    for k in range(G.shape[0]):
        G[k, d] += g[k]
    return n_touched


cdef inline void catch_up(floating[:, ::1] P, Py_ssize_t j, double S, double C, double[::1] last_S, double[::1] last_C) noexcept nogil:
    """Bring column ``j`` of every output through the steps it missed since it was last read."""
    cdef double ratio, shift, w
    cdef Py_ssize_t k
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


cdef inline void catch_up_all(floating[:, ::1] P, double S, double C, double[::1] last_S, double[::1] last_C) noexcept nogil:
    """Bring every column up to date and restart the cumulative sums at (1, 0)."""
    cdef Py_ssize_t j
    for j in range(P.shape[1] - 1):
        catch_up(P, j, S, C, last_S, last_C)
        last_S[j] = 1.0
        last_C[j] = 0.0


cdef inline double scaled_update(const floating[::1] data, const sparse_index_t[::1] indices, const sparse_index_t[::1] indptr, const index_t[::1] order, Py_ssize_t start, Py_ssize_t stop, double[:, ::1] gs, floating[:, ::1] P, const KernelConfig *cfg, double eta, double scale) noexcept nogil:
    """SGD with L2 on W = scale · V: shrink ``scale``, step the batch's columns; returns scale."""
    cdef Py_ssize_t K = P.shape[0]
    cdef Py_ssize_t d = P.shape[1] - 1
    cdef Py_ssize_t k, j, r, e, i
    cdef double step, gk, gb
    scale *= 1.0 - eta * cfg.l2
    if fabs(scale) < MIN_SCALE:
        for k in range(K):
            for j in range(d):
                P[k, j] *= scale
        scale = 1.0
    step = eta / scale
    for r in range(start, stop):
        i = order[r]
        for k in range(K):
            gk = step * gs[r - start, k]
            for e in range(indptr[i], indptr[i + 1]):
                P[k, indices[e]] -= gk * data[e]
    if cfg.fit_intercept:
        for k in range(K):
            gb = 0.0
            for r in range(stop - start):
                gb += gs[r, k]
            P[k, d] -= eta * gb
    return scale


cdef inline void touched_update(floating[:, ::1] P, double[:, ::1] G, floating[:, :, ::1] state, const KernelConfig *cfg, double eta, long long t, Py_ssize_t[::1] touched, Py_ssize_t n_touched, unsigned char[::1] seen, floating[::1] pbuf, double[::1] gbuf, floating[::1] s1buf, floating[::1] s2buf) noexcept nogil:
    """The dense update (``update_output``) of the batch's columns and the intercept only."""
    cdef Py_ssize_t d = P.shape[1] - 1
    cdef Py_ssize_t n = n_touched
    cdef Py_ssize_t k, q, j
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
        update_output(&pbuf[0], &gbuf[0], &s1buf[0], &s2buf[0], n + 1, cfg, eta, t)
        for q in range(n):
            j = touched[q]
            P[k, j] = pbuf[q]
            state[0, k, j] = s1buf[q]
            state[1, k, j] = s2buf[q]
        P[k, d] = pbuf[n]
        state[0, k, d] = s1buf[n]
        state[1, k, d] = s2buf[n]
    for q in range(n):
        seen[touched[q]] = 0


cdef inline void dense_update(floating[:, ::1] P, double[:, ::1] G, floating[:, :, ::1] state, const KernelConfig *cfg, double eta, long long t) noexcept nogil:
    """The dense update of every parameter; G (which it changes) is zeroed after."""
    cdef Py_ssize_t k, j
    apply_update(P, G, state, cfg, eta, t)
    for k in range(G.shape[0]):
        for j in range(G.shape[1]):
            G[k, j] = 0.0


def run_epoch_sparse(
    const floating[::1] data,
    const sparse_index_t[::1] indices,
    const sparse_index_t[::1] indptr,
    const floating[::1] y,
    const index_t[::1] order,
    floating[:, ::1] P,
    floating[:, :, ::1] state,
    cfg,
    double lr,
    long long t0,
):
    """One epoch over the CSR rows ``order``; see ``_reference_sparse.run_epoch_sparse``.

    The CSR arrays, y and order may be read-only; P and state are updated in
    place, and hold the true parameters on return. The GIL is released for
    the whole epoch.
    """
    cdef KernelConfig config = cfg._asdict()
    cdef Py_ssize_t n_rows = order.shape[0]
    cdef Py_ssize_t batch_size = config.batch_size
    cdef Py_ssize_t n_batches = n_rows // batch_size
    if n_rows % batch_size and not config.drop_last:
        n_batches += 1
    cdef Py_ssize_t K = P.shape[0]
    cdef Py_ssize_t d = P.shape[1] - 1
    cdef int mode = update_mode(&config)
    cdef bint scaled = mode == UPDATE_SCALED
    cdef bint cumulative = mode == UPDATE_CUMULATIVE
    cdef bint track = cumulative or mode == UPDATE_TOUCHED
    # Scratch, once per epoch and only what the mode uses; float64 whatever
    # the dtype, as in the dense kernel.
    cdef Py_ssize_t n_track = d if track else 0
    storage = np.float32 if floating is float else np.float64
    cdef double[:, ::1] G = np.zeros((K, 1 if scaled else d + 1))
    cdef double[:, ::1] gs = np.empty((batch_size if scaled else 1, K))
    cdef Py_ssize_t[::1] touched = np.empty(n_track, dtype=np.intp)
    cdef unsigned char[::1] seen = np.zeros(n_track, dtype=np.uint8)
    cdef floating[::1] pbuf = np.empty(n_track + 1, dtype=storage)
    cdef floating[::1] s1buf = np.empty(n_track + 1, dtype=storage)
    cdef floating[::1] s2buf = np.empty(n_track + 1, dtype=storage)
    cdef double[::1] gbuf = np.empty(n_track + 1)
    cdef double[::1] last_S = np.ones(d if cumulative else 0)
    cdef double[::1] last_C = np.zeros(d if cumulative else 0)
    cdef double[::1] z = np.empty(K)
    cdef double[::1] g = np.empty(K)
    cdef double scale = 1.0  # UPDATE_SCALED: the weights are scale · P[:, :d]
    cdef double S = 1.0  # UPDATE_CUMULATIVE: Π a_u and Σ c_u / S_u since the last restart
    cdef double C = 0.0
    cdef double total = 0.0
    cdef long long t = t0
    cdef Py_ssize_t batch, start, stop, r, i, k, e, q, lo, hi, n_touched
    cdef double batch_loss = 0.0
    cdef double eta, inv_m
    cdef bint diverged = False
    with nogil:
        for batch in range(n_batches):
            start = batch * batch_size
            stop = start + batch_size if start + batch_size < n_rows else n_rows
            inv_m = 1.0 / (stop - start)
            batch_loss = 0.0
            n_touched = 0
            for r in range(start, stop):
                i = prefetch_ahead(data, indices, indptr, y, order, P, r, n_rows)
                lo = indptr[i]
                hi = indptr[i + 1]
                if cumulative:
                    for e in range(lo, hi):
                        catch_up(P, indices[e], S, C, last_S, last_C)
                predict_row_sparse(data, indices, lo, hi, P, scale, z)
                batch_loss += loss_dloss(&config, z, y[i], g)
                for k in range(K):
                    g[k] *= inv_m
                if scaled:
                    for k in range(K):
                        gs[r - start, k] = g[k]
                else:
                    n_touched = accumulate_row_sparse(
                        data, indices, lo, hi, g, G, touched, n_touched, seen, track
                    )
            if not isfinite(batch_loss):
                diverged = True
                break
            t += 1
            eta = learning_rate(lr, t, config.power_t)
            if scaled:
                scale = scaled_update(
                    data, indices, indptr, order, start, stop, gs, P, &config, eta, scale
                )
            elif mode == UPDATE_DENSE:
                dense_update(P, G, state, &config, eta, t)
            elif cumulative and 1.0 - eta * config.l2 <= 0.0:
                catch_up_all(P, S, C, last_S, last_C)
                S = 1.0
                C = 0.0
                for q in range(n_touched):
                    seen[touched[q]] = 0
                dense_update(P, G, state, &config, eta, t)
            else:
                if cumulative:
                    S *= 1.0 - eta * config.l2
                    C += eta * config.l1 / S
                touched_update(
                    P, G, state, &config, eta, t, touched, n_touched, seen,
                    pbuf, gbuf, s1buf, s2buf,
                )
                if cumulative:
                    for q in range(n_touched):
                        last_S[touched[q]] = S
                        last_C[touched[q]] = C
                    if S < MIN_SCALE:
                        catch_up_all(P, S, C, last_S, last_C)
                        S = 1.0
                        C = 0.0
            total += batch_loss * inv_m
        # The parameters in P are the true ones whenever the kernel returns.
        if scaled and scale != 1.0:
            for k in range(K):
                for e in range(d):
                    P[k, e] *= scale
        if cumulative:
            catch_up_all(P, S, C, last_S, last_C)
    if diverged:
        return batch_loss, t - t0
    return total / n_batches, t - t0


if OPT_SGD != _config.OPT_SGD or SPARSE_DENSE != _config.SPARSE_DENSE:
    raise ImportError(
        "fastgd.backends._cython_kernels was compiled against other settings codes "
        "than fastgd._config; rebuild it: `python -m pip install .` "
        "(or `python -m pip install -e .` in a checkout)"
    )
