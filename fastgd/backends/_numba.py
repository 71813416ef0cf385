"""Numba backend: the whole epoch runs in one compiled call.

The epoch kernel is composed of tiny named pieces (a value and a derivative
per loss, a step per optimizer, the soft-threshold of L1) so its loop body
reads like the NumPy reference in ``_reference.py``, which is its
specification. Settings arrive as one ``KernelConfig`` record of plain numbers:
the kernel is compiled once per dtype and layout, not per hyperparameter.

Arithmetic runs in float64 whatever the storage dtype; float32 data and
parameters are read and written as float32, which is what makes float32
faster (half the memory traffic) without losing the accumulation accuracy.
"""

import math
import warnings

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import (
    LOSS_EPSILON_INSENSITIVE,
    LOSS_HINGE,
    LOSS_HUBER,
    LOSS_LOG,
    LOSS_MULTINOMIAL,
    OPT_ADAGRAD,
    OPT_ADAM,
    OPT_ADAMW,
    OPT_MOMENTUM,
    OPT_NESTEROV,
    OPT_RMSPROP,
)

# fastmath without "nnan"/"ninf": with those, LLVM may assume no NaN or inf and
# fold away the finiteness checks a divergence guard relies on (numba #6217).
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

# Rows announced ahead of use in a shuffled epoch: enough to cover memory
# latency with a few rows' arithmetic, few enough that the CPU's miss buffers
# do not overflow (measured: 2 to 8 perform alike on a 2-core EPYC).
PREFETCH_DISTANCE = 8


def _jit(func=None, **options):
    """``njit`` with the on-disk cache, or without it where it cannot be written."""
    if func is None:
        return lambda f: _jit(f, **options)
    try:
        return njit(cache=True, fastmath=FASTMATH, nogil=True, **options)(func)
    except RuntimeError as exc:  # "no locator available": read-only install
        warnings.warn(
            f"fastgd: Numba cannot cache compiled kernels ({exc}); "
            "each new process compiles them again.",
            RuntimeWarning,
            stacklevel=2,
        )
        return njit(cache=False, fastmath=FASTMATH, nogil=True, **options)(func)


@intrinsic
def prefetch_row(typingctx, X, i):
    """Ask the CPU to start loading ``X[i]`` (a row, or an element of a 1-D array).

    A shuffled epoch reads rows at random addresses; the arithmetic of one row
    is too short for the out-of-order core to reach the next row's loads on
    its own, so the epoch loop announces rows a few steps ahead.
    """
    sig = types.void(X, i)

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        array = context.make_array(array_type)(context, builder, args[0])
        row = context.cast(builder, args[1], signature.args[1], types.intp)
        zero = context.get_constant(types.intp, 0)
        row_start = cgutils.get_item_pointer2(
            context, builder, array.data,
            cgutils.unpack_tuple(builder, array.shape),
            cgutils.unpack_tuple(builder, array.strides),
            array_type.layout, [row] + [zero] * (array_type.ndim - 1),
        )  # fmt: skip
        bytes_ptr = builder.bitcast(row_start, ir.IntType(8).as_pointer())
        row_bytes = builder.extract_value(array.strides, 0)
        prefetch = builder.module.declare_intrinsic(
            "llvm.prefetch", fnty=ir.FunctionType(
                ir.VoidType(),
                [ir.IntType(8).as_pointer(), ir.IntType(32), ir.IntType(32), ir.IntType(32)],
            ),
        )  # fmt: skip
        flags = [ir.Constant(ir.IntType(32), value) for value in (0, 3, 1)]
        # One prefetch per 64 bytes of the row, and one at its last byte: rows
        # need not start on a cache line (NumPy aligns data to 16 bytes), and
        # the line holding a row's tail would otherwise be a demand miss.
        with cgutils.for_range_slice(
            builder, zero, row_bytes, context.get_constant(types.intp, 64), intp=row_bytes.type
        ) as (offset, _):
            builder.call(prefetch, [builder.gep(bytes_ptr, [offset])] + flags)
        last = builder.sub(row_bytes, context.get_constant(types.intp, 1))
        builder.call(prefetch, [builder.gep(bytes_ptr, [last])] + flags)
        return context.get_dummy_value()

    return sig, codegen


# --- losses: value and derivative with respect to the prediction p ----------


@_jit(inline="always")
def squared_error_loss(p, y):
    r = p - y
    return 0.5 * r * r


@_jit(inline="always")
def squared_error_dloss(p, y):
    return p - y


@_jit(inline="always")
def huber_loss(p, y, epsilon):
    r = abs(p - y)
    if r <= epsilon:
        return 0.5 * r * r
    return epsilon * r - 0.5 * epsilon * epsilon


@_jit(inline="always")
def huber_dloss(p, y, epsilon):
    r = p - y
    if abs(r) <= epsilon:
        return r
    return epsilon if r > 0.0 else -epsilon


@_jit(inline="always")
def epsilon_insensitive_loss(p, y, epsilon):
    return max(abs(p - y) - epsilon, 0.0)


@_jit(inline="always")
def epsilon_insensitive_dloss(p, y, epsilon):
    r = p - y
    if abs(r) <= epsilon:
        return 0.0
    return 1.0 if r > 0.0 else -1.0


@_jit(inline="always")
def log_loss(p, y):
    # log(1 + exp(-s·p)), s = ±1, without overflow for large |p|.
    m = -(2.0 * y - 1.0) * p
    return max(m, 0.0) + math.log1p(math.exp(-abs(m)))


@_jit(inline="always")
def log_dloss(p, y):
    return 0.5 * (1.0 + math.tanh(0.5 * p)) - y


@_jit(inline="always")
def hinge_loss(p, y):
    return max(1.0 - (2.0 * y - 1.0) * p, 0.0)


@_jit(inline="always")
def hinge_dloss(p, y):
    s = 2.0 * y - 1.0
    return -s if s * p < 1.0 else 0.0


@_jit(inline="always")
def multinomial_loss_dloss(z, code, g):
    """Softmax cross-entropy of scores ``z`` for class ``code``; ``g`` := dL/dz."""
    top = z[0]
    for k in range(1, z.shape[0]):
        top = max(top, z[k])
    total = 0.0
    for k in range(z.shape[0]):
        g[k] = math.exp(z[k] - top)
        total += g[k]
    for k in range(z.shape[0]):
        g[k] /= total
    g[code] -= 1.0
    return math.log(total) + top - z[code]


@_jit(inline="always")
def loss_dloss(cfg, z, y, g):
    """Loss of one row with scores ``z`` and target ``y``; writes dL/dz into ``g``."""
    loss = cfg.loss
    if loss == LOSS_MULTINOMIAL:
        return multinomial_loss_dloss(z, int(y), g)
    p = z[0]
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


@_jit(inline="always")
def predict_row(X, i, P, z):
    """z := W·X[i] + b."""
    d = X.shape[1]
    for k in range(P.shape[0]):
        acc = 0.0
        for j in range(d):
            acc += X[i, j] * P[k, j]
        z[k] = acc + P[k, d]


@_jit(inline="always")
def accumulate_row(X, i, g, G, first):
    """G[:, :d] += g ⊗ X[i] and G[:, d] += g; the batch's first row overwrites G.

    Overwriting instead of zeroing G before each batch saves a pass over the
    parameters per update, which is most of the cost at batch size 1.
    """
    d = X.shape[1]
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
# are the optimizer's moments, t the 1-based update number.


@_jit(inline="always")
def sgd_update(p, g, eta, n):
    for j in range(n):
        p[j] -= eta * g[j]


@_jit(inline="always")
def momentum_update(p, g, v, eta, momentum, n):
    for j in range(n):
        v[j] = momentum * v[j] + g[j]
        p[j] -= eta * v[j]


@_jit(inline="always")
def nesterov_update(p, g, v, eta, momentum, n):
    for j in range(n):
        v[j] = momentum * v[j] + g[j]
        p[j] -= eta * (g[j] + momentum * v[j])


@_jit(inline="always")
def adagrad_update(p, g, s, eta, eps, n):
    for j in range(n):
        s[j] += g[j] * g[j]
        p[j] -= eta * g[j] / (math.sqrt(s[j]) + eps)


@_jit(inline="always")
def rmsprop_update(p, g, s, eta, rho, eps, n):
    for j in range(n):
        s[j] = rho * s[j] + (1.0 - rho) * g[j] * g[j]
        p[j] -= eta * g[j] / (math.sqrt(s[j]) + eps)


@_jit(inline="always")
def adam_update(p, g, m, v, eta, t, beta1, beta2, eps, n):
    bias1 = 1.0 - beta1**t
    bias2 = 1.0 - beta2**t
    for j in range(n):
        m[j] = beta1 * m[j] + (1.0 - beta1) * g[j]
        v[j] = beta2 * v[j] + (1.0 - beta2) * g[j] * g[j]
        p[j] -= eta * (m[j] / bias1) / (math.sqrt(v[j] / bias2) + eps)


@_jit(inline="always")
def optimizer_update(cfg, p, g, s1, s2, eta, t, n):
    """Step the first ``n`` entries of ``p`` with the configured optimizer."""
    opt = cfg.optimizer
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


@_jit(inline="always")
def learning_rate(lr, t, power_t):
    """Rate of update number ``t`` (1-based): ``lr / t**power_t`` (invscaling)."""
    if power_t != 0.0:
        return lr / t**power_t
    return lr


@_jit(inline="always")
def soft_threshold(w, threshold):
    """Proximal step of ``threshold · |w|``: shrink towards 0, land on exactly 0."""
    if w > threshold:
        return w - threshold
    if w < -threshold:
        return w + threshold
    return 0.0


@_jit(inline="always")
def update_output(p, g, s1, s2, cfg, eta, t):
    """One optimizer step on one output's parameters (weights, then intercept).

    ``g`` holds the batch's mean gradient and gains the L2 term in place.
    AdamW's decay and the L1 soft-threshold act on the weights only, never on
    the intercept.
    """
    d = p.shape[0] - 1
    l2 = cfg.l2
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


@_jit(inline="always")
def apply_update(P, G, state, cfg, eta, t):
    """One optimizer step on every parameter from the batch's mean gradient G."""
    # K = 1 spelled out: LLVM vectorises the update far better without the loop.
    if P.shape[0] == 1:
        update_output(P[0], G[0], state[0, 0], state[1, 0], cfg, eta, t)
        return
    for k in range(P.shape[0]):
        update_output(P[k], G[k], state[0, k], state[1, k], cfg, eta, t)


# --- the epoch ---------------------------------------------------------------


@_jit
def run_epoch(X, y, order, P, state, cfg, lr, t0):
    """One epoch of mini-batch gradient descent; see ``_reference.run_epoch``."""
    n_rows = order.shape[0]
    batch_size = cfg.batch_size
    n_batches = n_rows // batch_size
    if n_rows % batch_size and not cfg.drop_last:
        n_batches += 1
    K = P.shape[0]
    # float64 whatever the dtype: a float32 sum of a batch's rows would not
    # cancel to exactly 0, and adaptive optimizers turn ~1e-9 into a full step.
    G = np.empty(P.shape)
    z = np.empty(K)
    g = np.empty(K)
    total = 0.0
    t = t0
    for batch in range(n_batches):
        start = batch * batch_size
        stop = min(start + batch_size, n_rows)
        # Each row's derivative is divided by m before it is summed, so G is the
        # mean gradient without another pass over the parameters.
        inv_m = 1.0 / (stop - start)
        batch_loss = 0.0
        for r in range(start, stop):
            if r + PREFETCH_DISTANCE < n_rows:
                ahead = order[r + PREFETCH_DISTANCE]
                prefetch_row(X, ahead)
                prefetch_row(y, ahead)
            i = order[r]
            predict_row(X, i, P, z)
            batch_loss += loss_dloss(cfg, z, y[i], g)
            for k in range(K):
                g[k] *= inv_m
            accumulate_row(X, i, g, G, r == start)
        if not math.isfinite(batch_loss):
            # Diverged: leave this batch's update out and let the engine,
            # which reads the batch from the update count, raise.
            return batch_loss, t - t0
        t += 1
        eta = learning_rate(lr, t, cfg.power_t)
        apply_update(P, G, state, cfg, eta, t)
        total += batch_loss * inv_m
    return total / n_batches, t - t0


# The CSR twin of run_epoch lives in its own file; the backend exposes both.
from ._numba_sparse import run_epoch_sparse  # noqa: E402, F401
