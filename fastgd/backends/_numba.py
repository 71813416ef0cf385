"""Numba backend: the whole epoch runs in one compiled call.

The epoch kernel is composed of tiny named pieces (a value and a derivative
per loss, a step per optimizer, the soft-threshold of L1) so its loop body
reads like the NumPy reference in ``_reference.py``, which is its
specification. Settings arrive as two records of plain numbers, the
``KernelConfig`` (what is computed) and the ``_cpu.CpuExecution`` (how it
runs): the kernel is compiled once per dtype and layout, not per
hyperparameter. The backend contract in front of these kernels is
``_numba_backend.py``.

Arithmetic runs in float64 whatever the storage dtype; float32 data and
parameters are read and written as float32, which is what makes float32
faster (half the memory traffic) without losing the accumulation accuracy.
"""

import contextlib
import math
import sys
import warnings

import numpy as np
from llvmlite import ir
import numba
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from .._config import (
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

# fastmath without "nnan"/"ninf": with those, LLVM may assume no NaN or inf and
# fold away the finiteness checks a divergence guard relies on (numba #6217).
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

# The largest double: ``abs(x) <= DBL_MAX`` is false exactly for inf and NaN.
DBL_MAX = sys.float_info.max

# Rows announced ahead of use in a shuffled epoch, in two stages: from memory
# into L2 PREFETCH_DISTANCE rows ahead (enough to cover memory latency with a
# few rows' arithmetic; 16 measured no better on a 2-core EPYC), then from L2
# into L1 PREFETCH_L1_DISTANCE rows ahead (float64 epochs 10-20% faster than
# with the first stage alone; float32 rows, half as long, gain little).
PREFETCH_DISTANCE = 8
PREFETCH_L1_DISTANCE = 3


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


def _prefetch(locality, doc):
    """An intrinsic ``prefetch(X, i)`` that starts loading ``X[i]`` into the caches ``locality`` names.

    ``X[i]`` is a row of a 2-D array or an element of a 1-D one; ``locality``
    is LLVM's: 3 = every level down to L1, 2 = L2 and below (x86 prefetcht1).
    The two made here are ``prefetch_to_l1`` and ``prefetch_to_l2``; the
    Cython kernel has the same two, over a row's address and byte count.
    """

    def prefetch(typingctx, X, i):
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
            llvm_prefetch = builder.module.declare_intrinsic(
                "llvm.prefetch", fnty=ir.FunctionType(
                    ir.VoidType(),
                    [ir.IntType(8).as_pointer(), ir.IntType(32), ir.IntType(32), ir.IntType(32)],
                ),
            )  # fmt: skip
            flags = [ir.Constant(ir.IntType(32), value) for value in (0, locality, 1)]
            if array_type.ndim == 1:
                # An element: naturally aligned, it never straddles two lines,
                # so one prefetch (the row loop below made two, and a loop
                # around them, for each of a CSR row's weights).
                builder.call(llvm_prefetch, [bytes_ptr] + flags)
                return context.get_dummy_value()
            # One prefetch per 64 bytes of the row, and one at its last byte:
            # rows need not start on a cache line (NumPy aligns data to 16
            # bytes), and the line of a row's tail would be a demand miss.
            with cgutils.for_range_slice(
                builder, zero, row_bytes, context.get_constant(types.intp, 64), intp=row_bytes.type
            ) as (offset, _):
                builder.call(llvm_prefetch, [builder.gep(bytes_ptr, [offset])] + flags)
            last = builder.sub(row_bytes, context.get_constant(types.intp, 1))
            builder.call(llvm_prefetch, [builder.gep(bytes_ptr, [last])] + flags)
            return context.get_dummy_value()

        return sig, codegen

    prefetch.__doc__ = doc
    return intrinsic(prefetch)


prefetch_to_l1 = _prefetch(3, """Start loading ``X[i]`` into every cache level, L1 included.

For what is read soon after it arrives: the few lines a CSR row's update
needs next (its indptr entry, entries and the weights they index), and a
dense row a few steps before its turn.
""")
# A dense row of a shuffled epoch goes to L2 first: eight rows ahead are ~70
# lines in flight, more than L1's miss buffers hold, while L2 takes them all
# and the trip from L2 to L1 is short. Shuffled epochs measured 10-40% faster
# this way than with L1 prefetches alone (batch sizes 8 to 4096, 2-core
# EPYC). The CSR kernels' small pieces were slower this way, and keep
# ``prefetch_to_l1``.
prefetch_to_l2 = _prefetch(2, """Start loading ``X[i]`` into L2 (x86 ``prefetcht1``), not L1.

A shuffled epoch reads rows at random addresses; the arithmetic of one row
is too short for the out-of-order core to reach the next row's loads on its
own, so the epoch loop announces rows a few steps ahead.
""")


@_jit(inline="always")
def prefetch_dense_row(X, y, order, r):
    """Prefetch the rows (of X and y) the epoch reads PREFETCH_DISTANCE and PREFETCH_L1_DISTANCE steps after ``r``.

    The first into L2, the second, which the first brought there, on into L1.
    """
    if r + PREFETCH_DISTANCE < order.shape[0]:
        ahead = order[r + PREFETCH_DISTANCE]
        prefetch_to_l2(X, ahead)
        prefetch_to_l2(y, ahead)
    if r + PREFETCH_L1_DISTANCE < order.shape[0]:
        near = order[r + PREFETCH_L1_DISTANCE]
        prefetch_to_l1(X, near)
        prefetch_to_l1(y, near)


@_jit(inline="always")
def is_finite(x):
    """Whether ``x`` is neither infinite nor NaN, as a comparison no FASTMATH flag folds.

    Not ``math.isfinite``, which Numba computes as ``x - x`` being ordered:
    "reassoc" with "nsz" cancels that to 0 when ``x`` is a sum, so that
    ``is_finite(a + b)`` is always true and a diverged loss would pass.
    """
    return abs(x) <= DBL_MAX


@_jit(inline="always")
def finite_probe(x):
    """0.0 for a finite ``x``, NaN for an infinite or NaN one.

    Summed over the values an update writes, the sum is 0.0 exactly when all
    are finite (the reference's ``all_finite``), and the update loop stays
    one vectorisable reduction (a compare and a select, no branch). Not
    ``x * 0.0`` or ``x - x``: GCC folds both to 0 under the Cython build's
    -fno-signed-zeros and -fassociative-math; a comparison it cannot fold
    without -ffinite-math-only, nor LLVM without "nnan" and "ninf".
    """
    return 0.0 if is_finite(x) else math.nan


@_jit(inline="always")
def not_finite(x):
    """1.0 for an infinite or NaN ``x``, 0.0 for a finite one.

    The loops that probe every value they write sum this count and make it
    a probe once, at the end (``count_probe``): a sum of ``finite_probe``'s
    0.0-or-NaN selects did not vectorise, and cost a batch-size-1 SGD row on
    d = 64 more than its score and update together (bench/cycles.py: 366 ->
    112 cycles per row in a loop of the two alone).
    """
    return 0.0 if is_finite(x) else 1.0


@_jit(inline="always")
def count_probe(count):
    """The ``finite_probe`` of a ``not_finite`` count: 0.0 for none, NaN otherwise."""
    return 0.0 if count == 0.0 else math.nan


# --- losses: value and derivative with respect to the prediction p ----------
# Plain @_jit, not inline="always": LLVM inlines these small functions
# anyway, while Numba's own inlining copied each one into every place
# loss_and_derivative is (six of them in the float32 kernel) and typed it
# again there, which was half of a first fit's compilation (float64 19 s ->
# 10 s, float32 49 s -> 25 s; docs/performance-notes.md).


@_jit
def squared_error_loss(p, y):
    r = p - y
    return 0.5 * r * r


@_jit
def squared_error_dloss(p, y):
    return p - y


@_jit
def huber_loss(p, y, epsilon):
    r = abs(p - y)
    if r <= epsilon:
        return 0.5 * r * r
    return epsilon * r - 0.5 * epsilon * epsilon


@_jit
def huber_dloss(p, y, epsilon):
    r = p - y
    if abs(r) <= epsilon:
        return r
    return epsilon if r > 0.0 else -epsilon


@_jit
def epsilon_insensitive_loss(p, y, epsilon):
    return max(abs(p - y) - epsilon, 0.0)


@_jit
def epsilon_insensitive_dloss(p, y, epsilon):
    r = p - y
    if abs(r) <= epsilon:
        return 0.0
    return 1.0 if r > 0.0 else -1.0


@_jit
def log_loss_and_derivative(p, y):
    """log(1 + exp(-s·p)) with s = 2y − 1, and sigmoid(p) − y, from one exp.

    ``e = exp(-|p|)`` never overflows; both the loss and the sigmoid are
    written with it, so a row costs one exp and one log1p (tanh and a second
    exp cost as much again).
    """
    e = math.exp(-abs(p))
    margin = -(2.0 * y - 1.0) * p
    loss = max(margin, 0.0) + math.log1p(e)
    sigmoid = 1.0 / (1.0 + e) if p >= 0.0 else e / (1.0 + e)
    return loss, sigmoid - y


@_jit
def hinge_loss(p, y):
    return max(1.0 - (2.0 * y - 1.0) * p, 0.0)


@_jit
def hinge_dloss(p, y):
    s = 2.0 * y - 1.0
    return -s if s * p <= 1.0 else 0.0


@_jit
def modified_huber_loss(p, y):
    z = (2.0 * y - 1.0) * p
    if z >= 1.0:
        return 0.0
    if z >= -1.0:
        return (1.0 - z) * (1.0 - z)
    return -4.0 * z


@_jit
def modified_huber_dloss(p, y):
    s = 2.0 * y - 1.0
    z = s * p
    if z >= 1.0:
        return 0.0
    if z >= -1.0:
        return -2.0 * (1.0 - z) * s
    return -4.0 * s


@_jit
def squared_hinge_loss(p, y):
    r = 1.0 - (2.0 * y - 1.0) * p
    if r > 0.0:
        return r * r
    return 0.0


@_jit
def squared_hinge_dloss(p, y):
    s = 2.0 * y - 1.0
    r = 1.0 - s * p
    if r > 0.0:
        return -2.0 * s * r
    return 0.0


@_jit
def perceptron_loss(p, y):
    z = (2.0 * y - 1.0) * p
    if z < 0.0:
        return -z
    return 0.0


@_jit
def perceptron_dloss(p, y):
    s = 2.0 * y - 1.0
    return -s if s * p <= 0.0 else 0.0


@_jit
def squared_epsilon_insensitive_loss(p, y, epsilon):
    r = abs(y - p) - epsilon
    if r > 0.0:
        return r * r
    return 0.0


@_jit
def squared_epsilon_insensitive_dloss(p, y, epsilon):
    r = y - p
    if r > epsilon:
        return -2.0 * (r - epsilon)
    if r < -epsilon:
        return 2.0 * (-r - epsilon)
    return 0.0


@_jit(inline="always")
def multinomial_loss_dloss(z, code, g):
    """Softmax cross-entropy of scores ``z`` for class ``code``; ``g`` := dL/dz.

    NaN where a score is not finite (see ``loss_and_derivative``).
    """
    top = z[0]
    probe = not_finite(z[0])
    for k in range(1, z.shape[0]):
        top = max(top, z[k])
        probe += not_finite(z[k])
    total = 0.0
    for k in range(z.shape[0]):
        g[k] = math.exp(z[k] - top)
        total += g[k]
    for k in range(z.shape[0]):
        g[k] /= total
    g[code] -= 1.0
    return math.log(total) + top - z[code] + count_probe(probe)


@_jit(inline="always")
def loss_and_derivative(loss, p, y, epsilon):
    """Loss of one single-output row with prediction ``p``, and dL/dp.

    Scalars in and out: the epoch loop keeps both in registers, which an
    array of one score per output would not allow (it measured 1.5x slower).
    """
    if loss == LOSS_HUBER:
        value, slope = huber_loss(p, y, epsilon), huber_dloss(p, y, epsilon)
    elif loss == LOSS_EPSILON_INSENSITIVE:
        value, slope = epsilon_insensitive_loss(p, y, epsilon), epsilon_insensitive_dloss(p, y, epsilon)
    elif loss == LOSS_LOG:
        value, slope = log_loss_and_derivative(p, y)
    elif loss == LOSS_HINGE:
        value, slope = hinge_loss(p, y), hinge_dloss(p, y)
    elif loss == LOSS_MODIFIED_HUBER:
        value, slope = modified_huber_loss(p, y), modified_huber_dloss(p, y)
    elif loss == LOSS_SQUARED_HINGE:
        value, slope = squared_hinge_loss(p, y), squared_hinge_dloss(p, y)
    elif loss == LOSS_PERCEPTRON:
        value, slope = perceptron_loss(p, y), perceptron_dloss(p, y)
    elif loss == LOSS_SQUARED_EPSILON_INSENSITIVE:
        value, slope = (
            squared_epsilon_insensitive_loss(p, y, epsilon),
            squared_epsilon_insensitive_dloss(p, y, epsilon),
        )
    else:
        value, slope = squared_error_loss(p, y), squared_error_dloss(p, y)
    # A score that is not finite is divergence whatever the loss makes of
    # it: the hinge and log losses of an infinite score are finite (0), and
    # their gradient 0, which would stop learning without a word.
    return value + finite_probe(p), slope


def weigh(sample_weight, i, x):
    """``x`` (a row's loss or derivative) times row ``i``'s weight; ``x`` itself without weights.

    ``sample_weight`` is None or a float64 array indexed like y. Picked by
    its type when the kernel is compiled (see the overload): the unweighted
    kernels keep their arithmetic and their speed, with no test per row.
    """


@overload(weigh, inline="always")
def _weigh(sample_weight, i, x):
    # An overload rather than `if sample_weight is None` in a jitted body:
    # Numba prunes that branch in a function whose own argument is None,
    # not inside an @overload's implementation (rows_four_at_a_time).
    if isinstance(sample_weight, types.NoneType):
        return lambda sample_weight, i, x: x
    return lambda sample_weight, i, x: x * sample_weight[i]


@_jit(inline="always")
def is_regression(loss):
    """Whether ``loss`` (a code) is a regression loss, whose targets are real values."""
    return (loss == LOSS_SQUARED_ERROR or loss == LOSS_HUBER or loss == LOSS_EPSILON_INSENSITIVE
            or loss == LOSS_SQUARED_EPSILON_INSENSITIVE)  # fmt: skip


@_jit(inline="always")
def output_target(y, i, k, K, loss):
    """The target of output ``k`` (of ``K`` independent ones) for row ``i``.

    A multi-output regression's y is the (n, K) targets raveled in C order;
    a one-vs-rest classifier's y holds the class codes, and output ``k``'s
    binary target is whether row ``i`` is of class ``k``.
    """
    if is_regression(loss):
        return y[i * K + k]
    return 1.0 if y[i] == k else 0.0


@_jit(inline="always")
def outputs_loss_dloss(cfg, z, y, i, g, sample_weight):
    """Weighed loss of row ``i`` with scores ``z`` over K > 1 outputs; writes its dL/dz into ``g``.

    Multinomial is the softmax of the K scores, weighed by the row's weight.
    Any other loss makes K independent outputs, each with that loss of its
    own target (:func:`output_target`) and its own weight
    (``sample_weight[i*K + k]``: the weights of independent outputs are
    indexed like a multi-output y, so that one-vs-rest's class weights can
    differ by output): each output's derivative is its own loss's, so every
    output trains as a single-output fit would, and the loss returned is the
    mean over the outputs (that of K separate fits averaged).
    """
    K = z.shape[0]
    total = 0.0
    if cfg.loss == LOSS_MULTINOMIAL:
        total = weigh(sample_weight, i, multinomial_loss_dloss(z, int(y[i]), g))
        for k in range(K):
            g[k] = weigh(sample_weight, i, g[k])
        return total
    for k in range(K):
        value, slope = loss_and_derivative(cfg.loss, z[k], output_target(y, i, k, K, cfg.loss),
                                           cfg.epsilon)  # fmt: skip
        total += weigh(sample_weight, i * K + k, value)
        g[k] = weigh(sample_weight, i * K + k, slope)
    return total / K


# --- one row: prediction and gradient accumulation ---------------------------


@_jit(inline="always")
def row_score(X, i, p):
    """One output's score of row ``X[i]``: ``p[:d]·X[i] + p[d]``.

    Each product in float64 (``np.float64``: Numba's ``float`` keeps a
    float32): a float32 product of float32 data and weights overflows at
    3.4e38, where the reference's float64 does not.
    """
    d = X.shape[1]
    acc = 0.0
    for j in range(d):
        acc += np.float64(X[i, j]) * p[j]
    return acc + p[d]


@_jit(inline="always")
def add_row(G, X, i, scale):
    """``G[:d] += scale·X[i]`` and ``G[d] += scale``."""
    d = X.shape[1]
    for j in range(d):
        G[j] += X[i, j] * scale
    G[d] += scale


@_jit(inline="always")
def add_four_rows(G, X, i0, i1, i2, i3, a0, a1, a2, a3):
    """``G[:d] += a0·X[i0] + a1·X[i1] + a2·X[i2] + a3·X[i3]``, and the four a's to ``G[d]``.

    One load and store of G for four rows instead of one per row.
    """
    d = X.shape[1]
    for j in range(d):
        G[j] += X[i0, j] * a0 + X[i1, j] * a1 + X[i2, j] * a2 + X[i3, j] * a3
    G[d] += a0 + a1 + a2 + a3


# --- optimizers: in-place update of parameters p from gradient g -----------
# Each loop is one formula over contiguous arrays, so it vectorises; s1 and s2
# are the optimizer's moments, t the 1-based update number.


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
    """Step the first ``n`` entries of ``p`` with a momentum or adaptive optimizer.

    Plain SGD is ``sgd_step``, which folds the penalty into the same loop.
    """
    opt = cfg.optimizer
    if opt == OPT_MOMENTUM:
        momentum_update(p, g, s1, eta, cfg.momentum, n)
    elif opt == OPT_NESTEROV:
        nesterov_update(p, g, s1, eta, cfg.momentum, n)
    elif opt == OPT_ADAGRAD:
        adagrad_update(p, g, s1, eta, cfg.eps, n)
    elif opt == OPT_RMSPROP:
        rmsprop_update(p, g, s1, eta, cfg.rho, cfg.eps, n)
    else:
        adam_update(p, g, s1, s2, eta, t, cfg.beta1, cfg.beta2, cfg.eps, n)


@_jit(inline="always")
def learning_rate(lr, t, power_t, t_offset):
    """Rate of update number ``t`` (1-based): ``lr / (t + t_offset)**power_t``."""
    if power_t != 0.0:
        return lr / (t + t_offset) ** power_t
    return lr


@_jit(inline="always")
def soft_threshold(w, threshold):
    """Proximal step of ``threshold · |w|``: shrink towards 0, land on exactly 0.

    A NaN ``w`` stays NaN, as in the reference, so the divergence check
    after the update sees it: a plain 0.0 would hide it (and so would
    ``0.0 * w``, which GCC folds to 0 under -fno-signed-zeros).
    """
    if w > threshold:
        return w - threshold
    if w < -threshold:
        return w + threshold
    return 0.0 if is_finite(w) else w


@_jit(inline="always")
def moments_probe(p, s1, s2, n):
    """The ``finite_probe`` of the first ``n`` parameters and both moments (from their ``not_finite`` count)."""
    probe = 0.0
    for j in range(n):
        probe += not_finite(p[j]) + not_finite(s1[j]) + not_finite(s2[j])
    return count_probe(probe)


@_jit(inline="always")
def sgd_step(p, g, scale, intercept_gradient, cfg, eta):
    """Plain SGD on one output: ``p[:d] = decay·p[:d] − eta·scale·g[:d]``, then L1's threshold.

    ``decay = max(0, 1 − eta·l2)`` is the L2 shrink (scikit-learn's
    ``_plain_sgd``): the gradient step of L2 while ``eta·l2 < 1``, and
    exactly 0 beyond, where the gradient step would overshoot and diverge.
    ``g`` is the batch's mean gradient (``scale`` 1) or, at batch size 1,
    the row itself (``scale`` = dL/dp): one loop either way, the penalty
    folded in. The intercept takes ``intercept_gradient`` plus
    ``cfg.intercept_drift``, unpenalised. Returns the ``finite_probe`` sum of the values written.
    """
    d = p.shape[0] - 1
    # The cumulative L1 penalty is finish_update's, after the step.
    decay, shrink = max(0.0, 1.0 - eta * cfg.l2), 0.0 if cfg.l1_cumulative else eta * cfg.l1
    probe = 0.0
    if shrink > 0.0:
        for j in range(d):
            p[j] = soft_threshold(decay * p[j] - eta * (scale * g[j]), shrink)
            probe += not_finite(p[j])
    else:
        for j in range(d):
            p[j] = decay * p[j] - eta * (scale * g[j])
            probe += not_finite(p[j])
    if cfg.fit_intercept:
        p[d] -= eta * (intercept_gradient + cfg.intercept_drift)
        probe += not_finite(p[d])
    return count_probe(probe)


@_jit
def update_output(p, g, s1, s2, cfg, eta, t):
    """One optimizer step on one output's parameters (weights, then intercept).

    ``g`` holds the batch's mean gradient and gains the L2 term in place.
    AdamW's decay and the L1 soft-threshold act on the weights only, never on
    the intercept. Returns the ``finite_probe`` sum of the parameters and
    moments after the step: a moment overflowed to inf makes the step 0,
    which only the moment shows.
    """
    d = p.shape[0] - 1
    if cfg.optimizer == OPT_SGD:
        return sgd_step(p, g, 1.0, g[d], cfg, eta)
    l2 = cfg.l2
    if l2 != 0.0:
        for j in range(d):
            g[j] += l2 * p[j]
    if cfg.optimizer == OPT_ADAMW:
        decay = 1.0 - eta * cfg.weight_decay
        for j in range(d):
            p[j] *= decay
    g[d] += cfg.intercept_drift
    n_params = d + 1 if cfg.fit_intercept else d
    optimizer_update(cfg, p, g, s1, s2, eta, t, n_params)
    if cfg.l1 > 0.0 and not cfg.l1_cumulative:
        shrink = eta * cfg.l1
        for j in range(d):
            p[j] = soft_threshold(p[j], shrink)
    return moments_probe(p, s1, s2, d + 1)


@_jit(inline="always")
def apply_update(P, G, state, cfg, eta, t):
    """One optimizer step on every parameter from the batch's mean gradient G.

    Plain SGD is stepped here, inline: through the call of ``update_output``
    it cost 25% at batch size 8. The other optimizers' step is long enough
    to be a function of its own, compiled once. Returns the sum of the
    outputs' ``finite_probe`` sums: 0.0 exactly when every parameter and
    moment is finite after the update.
    """
    probe = 0.0
    if cfg.optimizer == OPT_SGD:
        for k in range(P.shape[0]):
            probe += sgd_step(P[k], G[k], 1.0, G[k, G.shape[1] - 1], cfg, eta)
    else:
        for k in range(P.shape[0]):
            probe += update_output(P[k], G[k], state[0, k], state[1, k], cfg, eta, t)
    if has_finish(cfg):
        probe += finish_update(P, state, cfg, eta, t)
    return probe


# --- the end of an update: the cumulative L1 penalty and the running average ---
# (``_reference.finish_update``). Off, they cost one test per update
# (``has_finish``), outside every loop.


@_jit(inline="always")
def has_finish(cfg):
    """Whether updates end with ``finish_update`` (cumulative L1, or averaging)."""
    return (cfg.l1_cumulative != 0 and cfg.l1 > 0.0) or cfg.average_start > 0


@_jit(inline="always")
def cumulative_l1_weight(p, q, j, total, scale):
    """scikit-learn's ``l1penalty`` on the weight ``scale · p[j]``, ``q[j]`` its penalty so far.

    A positive weight becomes ``max(0, w − (u + q))``, a negative one
    ``min(0, w + (u − q))`` (``u`` = ``total``), a zero or NaN one stays;
    ``q[j]`` gains the change. ``scale`` is the lazy sparse update's weight
    scale (1 elsewhere). Returns the ``finite_probe`` of ``q[j]``.
    """
    w = scale * p[j]
    if w > 0.0:
        clipped = max(0.0, w - (total + q[j]))
    elif w < 0.0:
        clipped = min(0.0, w + (total - q[j]))
    else:
        clipped = w
    p[j] = clipped / scale
    q[j] += clipped - w
    return finite_probe(q[j])


@_jit(inline="always")
def add_l1_total(state, cfg, eta, k):
    """Add update's penalty ``eta · l1`` to output ``k``'s total ``u`` (the intercept column of ``l1_applied``); return it."""
    d = state.shape[2] - 1
    total = state[SLOT_L1_APPLIED, k, d] + eta * cfg.l1
    state[SLOT_L1_APPLIED, k, d] = total
    return total


@_jit(inline="always")
def average_update(P, state, cfg, t, scale):
    """Fold update ``t``'s parameters (weights ``scale · P``) into the running average, from ``cfg.average_start`` on.

    ``average += (w − average) / n``, ``n = t − average_start + 1``, for
    every weight and intercept (the reference's ``average_parameters``).
    Returns the ``finite_probe`` sum of the averages written.
    """
    start = cfg.average_start
    if start <= 0 or t < start:
        return 0.0
    n = t - start + 1
    d = P.shape[1] - 1
    probe = 0.0
    for k in range(P.shape[0]):
        a = state[SLOT_AVERAGE, k]
        for j in range(d):
            a[j] += (scale * P[k, j] - a[j]) / n
            probe += not_finite(a[j])
        a[d] += (P[k, d] - a[d]) / n
        probe += not_finite(a[d])
    return count_probe(probe)


@_jit
def finish_update(P, state, cfg, eta, t):
    """The end of a dense update: the cumulative L1 penalty of every weight, then the average.

    Returns the ``finite_probe`` sum of the values written.
    """
    probe = 0.0
    d = P.shape[1] - 1
    if cfg.l1_cumulative and cfg.l1 > 0.0:
        for k in range(P.shape[0]):
            total = add_l1_total(state, cfg, eta, k)
            q = state[SLOT_L1_APPLIED, k]
            for j in range(d):
                probe += cumulative_l1_weight(P[k], q, j, total, 1.0)
    return probe + average_update(P, state, cfg, t, 1.0)


# --- the epoch ---------------------------------------------------------------

# Rows per partial gradient of a batch larger than this: the unit of work the
# threads share out, and of the summation, which adds the partial gradients
# in chunk order whatever the thread count. Results are therefore identical
# for any n_threads (bit for bit), and one chunk (8 to 512 KB of X at d = 64
# to 64 x 1000) keeps a thread busy far longer than the cost of starting it.
CHUNK_ROWS = 1024
# Rows from which a float32 single-output pass over rows takes them four at a
# time (``add_four_rows``). Float32 rows are widened to float64 on the way,
# which leaves that pass short of arithmetic rather than of memory: four rows
# per pass over G measured 6-15% faster at batch size 256 and about 25% at
# 4096. Float64 rows gained nothing (their kernel leaves the step out), and
# below 32 rows the four-row step was slower.
ROW_BLOCK_MIN = 32
# Partial gradients held at once: the summation waits for every chunk of a
# wave, so a wave must hold several chunks per thread, and its buffer
# (WAVE_CHUNKS x K x (d + 1) floats) stays small.
WAVE_CHUNKS = 64


def rows_four_at_a_time(X, y, order, start, stop, p, G, cfg, execution, inv_m, sample_weight):
    """The first rows of ``order[start:stop]`` four at a time, for float32 X: (loss sum, next row).

    Single-output ``rows_gradient``'s opening loop; G is already zero. For
    float64 X, or fewer than ROW_BLOCK_MIN rows, it does nothing and returns
    ``(0.0, start)``. Picked by X's type when the kernel is compiled (see the
    overload), so the float64 kernel does not contain it.
    """


def _rows_four_at_a_time_float32(X, y, order, start, stop, p, G, cfg, execution, inv_m,
                                 sample_weight):  # fmt: skip
    loss, epsilon = cfg.loss, cfg.epsilon
    total = 0.0
    r = start
    while stop - start >= ROW_BLOCK_MIN and r + 4 <= stop:
        if execution.prefetch:
            for b in range(4):
                prefetch_dense_row(X, y, order, r + b)
        i0, i1, i2, i3 = order[r], order[r + 1], order[r + 2], order[r + 3]
        v0, s0 = loss_and_derivative(loss, row_score(X, i0, p), y[i0], epsilon)
        v1, s1 = loss_and_derivative(loss, row_score(X, i1, p), y[i1], epsilon)
        v2, s2 = loss_and_derivative(loss, row_score(X, i2, p), y[i2], epsilon)
        v3, s3 = loss_and_derivative(loss, row_score(X, i3, p), y[i3], epsilon)
        total += (weigh(sample_weight, i0, v0) + weigh(sample_weight, i1, v1)
                  + weigh(sample_weight, i2, v2) + weigh(sample_weight, i3, v3))  # fmt: skip
        add_four_rows(G, X, i0, i1, i2, i3, weigh(sample_weight, i0, s0) * inv_m,
                      weigh(sample_weight, i1, s1) * inv_m, weigh(sample_weight, i2, s2) * inv_m,
                      weigh(sample_weight, i3, s3) * inv_m)  # fmt: skip
        r += 4
    return total, r


@overload(rows_four_at_a_time, inline="always")
def _rows_four_at_a_time(X, y, order, start, stop, p, G, cfg, execution, inv_m, sample_weight):
    if X.dtype == types.float32:
        return _rows_four_at_a_time_float32
    return lambda X, y, order, start, stop, p, G, cfg, execution, inv_m, sample_weight: (0.0, start)


@_jit
def rows_gradient(X, y, order, start, stop, P, G, cfg, execution, inv_m, z, g, sample_weight):
    """Sum of the losses of rows ``order[start:stop]``; G := inv_m · Σ their gradients.

    Each row's loss and derivative are weighed by ``sample_weight`` (None:
    unweighted, see ``weigh``). ``z`` and ``g`` are scratch of one float per output. A shuffled epoch
    (``execution.prefetch``) announces the rows it will read a few steps ahead.
    """
    G[...] = 0.0
    total = 0.0
    if P.shape[0] == 1:
        p, Gp = P[0], G[0]
        loss, epsilon = cfg.loss, cfg.epsilon
        total, r = rows_four_at_a_time(X, y, order, start, stop, p, Gp, cfg, execution, inv_m,
                                       sample_weight)  # fmt: skip
        for r in range(r, stop):
            if execution.prefetch:
                prefetch_dense_row(X, y, order, r)
            i = order[r]
            value, slope = loss_and_derivative(loss, row_score(X, i, p), y[i], epsilon)
            total += weigh(sample_weight, i, value)
            add_row(Gp, X, i, weigh(sample_weight, i, slope) * inv_m)
        return total
    for r in range(start, stop):
        if execution.prefetch:
            prefetch_dense_row(X, y, order, r)
        i = order[r]
        for k in range(P.shape[0]):
            z[k] = row_score(X, i, P[k])
        total += outputs_loss_dloss(cfg, z, y, i, g, sample_weight)
        for k in range(P.shape[0]):
            add_row(G[k], X, i, g[k] * inv_m)
    return total


@_jit(inline="always")
def add_chunks(G, parts, losses, wave, wave_chunks):
    """Add a wave's partial gradients into G in chunk order; return their loss sum."""
    total = 0.0
    for c in range(wave_chunks):
        total += losses[c]
        # Element by element, not ``G[...] = parts[0]``: an array assignment
        # compiles Numba's shape-mismatch message, string formatting and all
        # (3 s of the first compilation).
        first = wave == 0 and c == 0
        for k in range(G.shape[0]):
            for j in range(G.shape[1]):
                G[k, j] = parts[c, k, j] if first else G[k, j] + parts[c, k, j]
    return total


@_jit(parallel=True)
def threaded_chunks(X, y, order, start, stop, wave, wave_chunks, P, parts, losses, cfg, execution,
                    inv_m, sample_weight):  # fmt: skip
    """One wave of chunks' partial gradients on the threads (Numba's count, set by the caller)."""
    for c in prange(wave_chunks):
        first = start + (wave + c) * CHUNK_ROWS
        z, g = np.empty(P.shape[0]), np.empty(P.shape[0])
        losses[c] = rows_gradient(X, y, order, first, min(first + CHUNK_ROWS, stop), P,
                                  parts[c], cfg, execution, inv_m, z, g, sample_weight)  # fmt: skip


@_jit(inline="always")
def chunked_gradient(X, y, order, start, stop, P, G, cfg, execution, inv_m, z, g, parts, losses,
                     threads, sample_weight):  # fmt: skip
    """``rows_gradient`` of a batch of more than CHUNK_ROWS rows, chunk by chunk.

    Each chunk of CHUNK_ROWS rows is summed into a partial gradient of its
    own (``parts``, a wave of them at a time), and the partials are added in
    chunk order, so the result does not depend on the thread count. With
    ``threads`` None the chunks run in a plain loop: a parallel region costs
    ~10 µs per batch, for nothing; and Numba then compiles no parallel code
    (the branch is pruned for a None argument), which saves seconds of the
    first compilation.
    """
    n_chunks = (stop - start + CHUNK_ROWS - 1) // CHUNK_ROWS
    total = 0.0
    for wave in range(0, n_chunks, parts.shape[0]):
        wave_chunks = min(parts.shape[0], n_chunks - wave)
        if threads is None:
            for c in range(wave_chunks):
                first = start + (wave + c) * CHUNK_ROWS
                losses[c] = rows_gradient(X, y, order, first, min(first + CHUNK_ROWS, stop), P,
                                          parts[c], cfg, execution, inv_m, z, g,
                                          sample_weight)  # fmt: skip
        else:
            threaded_chunks(X, y, order, start, stop, wave, wave_chunks, P, parts, losses,
                            cfg, execution, inv_m, sample_weight)  # fmt: skip
        total += add_chunks(G, parts, losses, wave, wave_chunks)
    return total


@_jit(inline="always")
def sgd_row_step(X, i, y_i, p, cfg, lr, t, sample_weight):
    """Batch size 1 with plain SGD, fused: score, loss and update in two passes over the row.

    The same arithmetic as ``add_row`` + ``sgd_step``, without the
    gradient buffer in between: at batch size 1 that buffer's writing and
    reading cost as much as the row itself. Returns the loss, made NaN where
    the update diverged (``sgd_step``'s probe added).
    """
    value, slope = loss_and_derivative(cfg.loss, row_score(X, i, p), y_i, cfg.epsilon)
    value = weigh(sample_weight, i, value)
    slope = weigh(sample_weight, i, slope)
    return value + sgd_step(p, X[i], slope, slope, cfg, learning_rate(lr, t, cfg.power_t, cfg.t_offset))


@_jit(inline="always")
def run_batches(X, y, order, P, state, cfg, execution, lr, t0, first, last, stride, G, z, g, parts,
                losses, threads, sample_weight):  # fmt: skip
    """Batches ``first..last-1`` of the epoch: (sum of their mean losses, updates made).

    Update number ``t`` advances by ``stride`` per update (1, or the thread
    count of hogwild, whose threads share the count). Stops after the update
    of a batch that diverged (the reference's definition: its loss, or a
    parameter or moment after its update, not finite) and returns a loss
    that is not finite instead. A batch of more than CHUNK_ROWS rows is ``chunked_gradient``'s, with the
    wave buffers ``parts`` and ``losses`` and the ``threads``; an empty
    ``parts`` means: never split (hogwild).
    """
    n_rows = order.shape[0]
    batch_size = cfg.batch_size
    fused = P.shape[0] == 1 and cfg.optimizer == OPT_SGD
    total = 0.0
    t = t0
    for batch in range(first, last):
        start = batch * batch_size
        stop = min(start + batch_size, n_rows)
        if stop - start == 1 and fused:
            if execution.prefetch:
                prefetch_dense_row(X, y, order, start)
            i = order[start]
            t += stride
            value = sgd_row_step(X, i, y[i], P[0], cfg, lr, t, sample_weight)
            if has_finish(cfg):
                value += finish_update(P, state, cfg, learning_rate(lr, t, cfg.power_t, cfg.t_offset), t)
            if not is_finite(value):
                return value, (t - t0) // stride
            total += value
            continue
        # Each row's derivative is divided by m before it is summed, so G is the
        # mean gradient without another pass over the parameters.
        inv_m = 1.0 / (stop - start)
        if stop - start <= CHUNK_ROWS or parts.shape[0] == 0:
            # One pass over the batch: the common case, tested here rather
            # than inside chunked_gradient (20% faster at batch size 8).
            batch_loss = rows_gradient(X, y, order, start, stop, P, G, cfg, execution, inv_m, z, g,
                                       sample_weight)  # fmt: skip
        else:
            batch_loss = chunked_gradient(X, y, order, start, stop, P, G, cfg, execution, inv_m, z,
                                          g, parts, losses, threads, sample_weight)  # fmt: skip
        t += stride
        probe = apply_update(P, G, state, cfg, learning_rate(lr, t, cfg.power_t, cfg.t_offset), t)
        if not (is_finite(batch_loss) and is_finite(probe)):
            # Diverged: the engine, which reads the batch from the update
            # count, raises and restores the epoch's start.
            return batch_loss + probe, (t - t0) // stride
        total += batch_loss * inv_m
    return total, (t - t0) // stride


@_jit(inline="always")
def batch_count(n_rows, cfg):
    n_batches = n_rows // cfg.batch_size
    if n_rows % cfg.batch_size and not cfg.drop_last:
        n_batches += 1
    return n_batches


@_jit
def epoch_kernel(X, y, order, P, state, cfg, execution, lr, t0, threads, sample_weight):
    """The compiled epoch of :func:`run_epoch`."""
    n_batches = batch_count(order.shape[0], cfg)
    # float64 whatever the dtype: a float32 sum of a batch's rows would not
    # cancel to exactly 0, and adaptive optimizers turn ~1e-9 into a full step.
    G = np.empty(P.shape)
    z, g = np.empty(P.shape[0]), np.empty(P.shape[0])
    n_chunks = (cfg.batch_size + CHUNK_ROWS - 1) // CHUNK_ROWS
    parts = np.empty((min(n_chunks, WAVE_CHUNKS) if n_chunks > 1 else 0,) + P.shape)
    losses = np.empty(parts.shape[0])
    total, n_updates = run_batches(
        X, y, order, P, state, cfg, execution, lr, t0, 0, n_batches, 1, G, z, g, parts, losses,
        threads, sample_weight,
    )  # fmt: skip
    if not is_finite(total):
        return total, n_updates
    return total / n_batches, n_updates


@_jit(parallel=True)
def hogwild_kernel(X, y, order, P, state, cfg, execution, lr, t0, sample_weight):
    """The compiled epoch of :func:`run_epoch_hogwild`.

    Hogwild (Niu et al., 2011): each thread runs its own contiguous share of
    the epoch's batches and writes its updates straight into ``P`` and
    ``state`` while the others read them. Fast for small batches, where a
    data-parallel gradient has too little work per batch to share, and not
    deterministic: the interleaving of the threads' reads and writes changes
    from run to run. Update numbers (invscaling, Adam's bias correction) are
    counted per thread, scaled by the thread count.
    """
    n_batches = batch_count(order.shape[0], cfg)
    n_workers = max(1, min(execution.n_threads, n_batches))
    losses = np.zeros(n_workers)
    updates = np.zeros(n_workers, dtype=np.int64)
    for w in prange(n_workers):
        G = np.empty(P.shape)
        z, g = np.empty(P.shape[0]), np.empty(P.shape[0])
        no_parts = np.empty((0,) + P.shape)
        losses[w], updates[w] = run_batches(
            X, y, order, P, state, cfg, execution, lr, t0 + w,
            n_batches * w // n_workers, n_batches * (w + 1) // n_workers,
            n_workers, G, z, g, no_parts, np.empty(0), None, sample_weight,
        )  # fmt: skip
    total = losses.sum()
    if not is_finite(total):
        return total, updates.sum()
    return total / n_batches, updates.sum()


def run_epoch(X, y, order, P, state, cfg, execution, lr, t0, sample_weight=None):
    """One epoch of mini-batch gradient descent over a dense X; see ``_reference.run_epoch``.

    ``execution`` is a ``_cpu.CpuExecution``; ``sample_weight`` None or the
    rows' float64 weights. Batches of more than
    CHUNK_ROWS rows have their gradient computed by ``execution.n_threads``
    threads, with the same result for any count.
    """
    if execution.n_threads == 1:
        return epoch_kernel(X, y, order, P, state, cfg, execution, lr, t0, None, sample_weight)
    with numba_threads(execution.n_threads):
        return epoch_kernel(X, y, order, P, state, cfg, execution, lr, t0, execution.n_threads,
                            sample_weight)  # fmt: skip


def run_epoch_hogwild(X, y, order, P, state, cfg, execution, lr, t0, sample_weight=None):
    """One epoch on ``execution.n_threads`` lock-free threads; see ``hogwild_kernel``."""
    with numba_threads(execution.n_threads):
        return hogwild_kernel(X, y, order, P, state, cfg, execution, lr, t0, sample_weight)


@contextlib.contextmanager
def numba_threads(n_threads):
    """Numba's thread count for the calling thread, put back afterwards.

    Set from Python: a kernel that sets it itself cannot be cached.
    """
    previous = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n_threads, numba.config.NUMBA_NUM_THREADS)))
    try:
        yield
    finally:
        numba.set_num_threads(previous)


# --- the batch-level seam: one batch's gradient, one update ---------------------
# The pieces of the epoch above, callable from Python one batch at a time
# (``_numba_backend.batch_gradient`` and ``apply_update``): no arithmetic of
# their own.


@_jit
def batch_gradient(X, y, rows, P, cfg, execution, sample_weight):
    """``(loss_sum, G)`` of the batch ``rows``: the gradient ``run_batches`` computes for it.

    ``G`` (float64, the shape of P) is the mean gradient of the loss alone,
    its last column the mean dL/dz. A batch of more than CHUNK_ROWS rows
    goes chunk by chunk, as in the epoch, so the sums are the epoch's.
    """
    m = rows.shape[0]
    inv_m = 1.0 / m
    G = np.empty(P.shape)
    z, g = np.empty(P.shape[0]), np.empty(P.shape[0])
    if m <= CHUNK_ROWS:
        # np.int64(0), not 0: a literal start would compile a second copy of rows_gradient.
        return rows_gradient(X, y, rows, np.int64(0), m, P, G, cfg, execution, inv_m, z, g,
                             sample_weight), G  # fmt: skip
    n_chunks = (m + CHUNK_ROWS - 1) // CHUNK_ROWS
    parts = np.empty((min(n_chunks, WAVE_CHUNKS),) + P.shape)
    losses = np.empty(parts.shape[0])
    total = chunked_gradient(X, y, rows, 0, m, P, G, cfg, execution, inv_m, z, g, parts, losses,
                             None, sample_weight)  # fmt: skip
    return total, G


@_jit
def update_parameters(P, G, state, cfg, lr, t):
    """``apply_update`` of update ``t`` in an epoch of base rate ``lr``, as in ``run_batches``.

    Adds the L2 term to G in place, as ``apply_update`` does, and returns
    its ``finite_probe`` sum.
    """
    return apply_update(P, G, state, cfg, learning_rate(lr, t, cfg.power_t, cfg.t_offset), t)


# The CSR kernels live in their own file (``_numba_backend`` takes them from
# there, through ``_cpu.define_contract``); re-exported here.
from ._numba_sparse import batch_gradient_sparse, run_epoch_sparse  # noqa: E402, F401
