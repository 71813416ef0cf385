# cython: language_level=3
"""Cython backend: the whole epoch runs in one compiled call, without the GIL.

The twin of ``_numba.py``: the same small functions in the same order with
the same names (a value and a derivative per loss, a step per optimizer, the
soft-threshold of L1), composed by one epoch loop. Put the two files side by
side and every function here has its Numba counterpart there; the NumPy
reference in ``_reference.py`` is the specification of both. The backend
contract in front of these kernels is ``_cython_backend.py``.

One source covers float32 and float64 data (the fused type ``floating``) and
int32 and int64 row orders (``index_t``). As in the Numba kernels, arrays are
read and written in their storage dtype while scalars and accumulators are
double, and every expression keeps the Numba code's operation order, so the
two backends agree to rounding.

Settings arrive as the ``KernelConfig`` and ``_cpu.CpuExecution`` named
tuples and are copied once per call into C structs of the same fields,
before the GIL is released.
Compiled by ``setup.py`` with bounds checking and wraparound off and with
OpenMP where the compiler has it (without, ``prange`` loops run serially);
``FASTGD_CYTHON_DEBUG=1`` at build time turns both checks on.

Functions that read a row picked by ``order`` are declared ``except -1``
(those returning an int) or ``except? -1`` (those returning a double): in the
debug build an out-of-range row raises IndexError from there, and in the
release build (no checks) that costs a compare per batch or chunk.
"""

from cython.parallel cimport prange
from libc.float cimport DBL_MAX
from libc.math cimport NAN, exp, fabs, log, log1p, pow, sqrt
from libc.stdint cimport int32_t, int64_t

import numpy as np

from .. import _config
from . import _cpu

ctypedef fused floating:
    float
    double

# What sgd_step reads its gradient from: the float64 batch gradient G, or
# at batch size 1 the row of X itself (float32 or float64).
ctypedef fused gradient_t:
    float
    double

ctypedef fused index_t:
    int32_t
    int64_t

# The integer codes of ``_config`` (C needs them at compile time). They are
# written twice, so the module checks them against ``_config`` at import.
cpdef enum:
    LOSS_SQUARED_ERROR = 0
    LOSS_HUBER = 1
    LOSS_EPSILON_INSENSITIVE = 2
    LOSS_LOG = 3
    LOSS_MULTINOMIAL = 4
    LOSS_HINGE = 5
    LOSS_MODIFIED_HUBER = 6
    LOSS_SQUARED_HINGE = 7
    LOSS_PERCEPTRON = 8
    LOSS_SQUARED_EPSILON_INSENSITIVE = 9
    OPT_SGD = 0
    OPT_MOMENTUM = 1
    OPT_NESTEROV = 2
    OPT_ADAGRAD = 3
    OPT_RMSPROP = 4
    OPT_ADAM = 5
    OPT_ADAMW = 6
    SLOT_AVERAGE = 2
    SLOT_L1_APPLIED = 3

# Rows announced ahead of use in a shuffled epoch, into L2 and then into L1;
# the values of ``_numba.PREFETCH_DISTANCE`` and ``_numba.PREFETCH_L1_DISTANCE``
# (the tests hold them together).
cpdef enum:
    PREFETCH_DISTANCE = 8
    PREFETCH_L1_DISTANCE = 3

# Rows per partial gradient of a large batch, partials held at once, and the
# rows from which float32 rows go four at a time: the values of
# ``_numba.CHUNK_ROWS``, ``_numba.WAVE_CHUNKS`` and ``_numba.ROW_BLOCK_MIN``
# (see there why).
cpdef enum:
    CHUNK_ROWS = 1024
    WAVE_CHUNKS = 64
    ROW_BLOCK_MIN = 32

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    /* One cache line, read access (0), into every cache level (3) or L2 and
       below (2): what each llvm.prefetch of _numba.prefetch_to_l1 and
       _numba.prefetch_to_l2 asks for */
    #define FASTGD_PREFETCH_LINE_TO_L1(address) __builtin_prefetch((address), 0, 3)
    #define FASTGD_PREFETCH_LINE_TO_L2(address) __builtin_prefetch((address), 0, 2)
    #else
    #define FASTGD_PREFETCH_LINE_TO_L1(address) ((void)(address))
    #define FASTGD_PREFETCH_LINE_TO_L2(address) ((void)(address))
    #endif
    /* setup.py defines it to 1 for the debug build (bounds checks on) */
    #ifndef FASTGD_CYTHON_DEBUG
    #define FASTGD_CYTHON_DEBUG 0
    #endif
    """
    void prefetch_line_to_l1 "FASTGD_PREFETCH_LINE_TO_L1"(const void *address) noexcept nogil
    void prefetch_line_to_l2 "FASTGD_PREFETCH_LINE_TO_L2"(const void *address) noexcept nogil
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
    double t_offset
    double momentum
    double beta1
    double beta2
    double eps
    double rho
    double weight_decay
    double intercept_drift
    long long average_start
    int l1_cumulative


cdef struct CpuExecution:
    # Field for field the ``_cpu.CpuExecution`` named tuple (checked at import):
    # how the epoch runs, where KernelConfig is what it computes.
    int n_threads
    int hogwild
    int sparse_update
    int prefetch


cdef inline void prefetch_lines(const void *row, Py_ssize_t row_bytes, bint to_l2) noexcept nogil:
    """Prefetch every 64th byte of the ``row_bytes`` bytes at ``row``, and the last, into L2 or L1.

    What ``_numba._prefetch`` generates, for ``prefetch_to_l1`` and
    ``prefetch_to_l2`` below. ``to_l2`` is a constant at both calls, so the
    branch folds away (__builtin_prefetch wants its locality a constant
    expression, hence the flag rather than a locality argument).
    """
    cdef const char *start = <const char *>row
    cdef Py_ssize_t offset
    # One prefetch per 64 bytes of the row, and one at its last byte: rows
    # need not start on a cache line (NumPy aligns data to 16 bytes), and the
    # line holding a row's tail would otherwise be a demand miss.
    for offset in range(0, row_bytes, 64):
        if to_l2:
            prefetch_line_to_l2(start + offset)
        else:
            prefetch_line_to_l1(start + offset)
    if to_l2:
        prefetch_line_to_l2(start + row_bytes - 1)
    else:
        prefetch_line_to_l1(start + row_bytes - 1)


cdef inline void prefetch_to_l1(const void *row, Py_ssize_t row_bytes) noexcept nogil:
    """Start loading the ``row_bytes`` bytes at ``row`` into every cache level, L1 included.

    ``_numba.prefetch_to_l1`` of a row: for what is read soon after it
    arrives, a dense row a few steps before its turn.
    """
    prefetch_lines(row, row_bytes, False)


cdef inline void prefetch_to_l2(const void *row, Py_ssize_t row_bytes) noexcept nogil:
    """Start loading the ``row_bytes`` bytes at ``row`` into L2 (x86 ``prefetcht1``), not L1.

    ``_numba.prefetch_to_l2`` of a row. A shuffled epoch reads rows at random
    addresses; the arithmetic of one row is too short for the out-of-order
    core to reach the next row's loads on its own, so the epoch loop
    announces rows a few steps ahead (see ``_numba.prefetch_to_l2`` why to
    L2 first).
    """
    prefetch_lines(row, row_bytes, True)


cdef inline int prefetch_dense_row(const floating[:, ::1] X, const floating[::1] y, const index_t[::1] order, Py_ssize_t r) except -1 nogil:
    """Prefetch the rows (of X and y) the epoch reads PREFETCH_DISTANCE and PREFETCH_L1_DISTANCE steps after ``r``.

    The first into L2, the second, which the first brought there, on into L1.

    ``except -1``: in the debug build, an out-of-range row raises IndexError here.
    """
    cdef Py_ssize_t ahead, near
    if r + PREFETCH_DISTANCE < order.shape[0]:
        ahead = order[r + PREFETCH_DISTANCE]
        prefetch_to_l2(&X[ahead, 0], X.strides[0])
        prefetch_to_l2(&y[ahead], y.strides[0])
    if r + PREFETCH_L1_DISTANCE < order.shape[0]:
        near = order[r + PREFETCH_L1_DISTANCE]
        prefetch_to_l1(&X[near, 0], X.strides[0])
        prefetch_to_l1(&y[near], y.strides[0])
    return 0


cdef inline bint is_finite(double x) noexcept nogil:
    """Whether ``x`` is neither infinite nor NaN (see ``_numba.is_finite``).

    The same comparison as the Numba kernel, where libc's ``isfinite`` would
    do as well: the build leaves out -ffinite-math-only.
    """
    return fabs(x) <= DBL_MAX


cdef inline double finite_probe(double x) noexcept nogil:
    """0.0 for a finite ``x``, NaN for an infinite or NaN one (see ``_numba.finite_probe``)."""
    return 0.0 if is_finite(x) else NAN


cdef inline double not_finite(double x) noexcept nogil:
    """1.0 for an infinite or NaN ``x``, 0.0 for a finite one (see ``_numba.not_finite``)."""
    return 0.0 if is_finite(x) else 1.0


cdef inline double count_probe(double count) noexcept nogil:
    """The ``finite_probe`` of a ``not_finite`` count: 0.0 for none, NaN otherwise."""
    return 0.0 if count == 0.0 else NAN


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


cdef inline double log_loss_and_derivative(double p, double y, double *dloss) noexcept nogil:
    """log(1 + exp(-s·p)) with s = 2y − 1; ``dloss`` := sigmoid(p) − y, from one exp.

    ``e = exp(-|p|)`` never overflows; both the loss and the sigmoid are
    written with it, so a row costs one exp and one log1p (tanh and a second
    exp cost as much again).
    """
    cdef double e = exp(-fabs(p))
    cdef double margin = -(2.0 * y - 1.0) * p
    cdef double loss = (0.0 if 0.0 > margin else margin) + log1p(e)
    cdef double sigmoid = 1.0 / (1.0 + e) if p >= 0.0 else e / (1.0 + e)
    dloss[0] = sigmoid - y
    return loss


cdef inline double hinge_loss(double p, double y) noexcept nogil:
    cdef double r = 1.0 - (2.0 * y - 1.0) * p
    return 0.0 if r < 0.0 else r


cdef inline double hinge_dloss(double p, double y) noexcept nogil:
    cdef double s = 2.0 * y - 1.0
    return -s if s * p <= 1.0 else 0.0


cdef inline double modified_huber_loss(double p, double y) noexcept nogil:
    cdef double z = (2.0 * y - 1.0) * p
    if z >= 1.0:
        return 0.0
    if z >= -1.0:
        return (1.0 - z) * (1.0 - z)
    return -4.0 * z


cdef inline double modified_huber_dloss(double p, double y) noexcept nogil:
    cdef double s = 2.0 * y - 1.0
    cdef double z = s * p
    if z >= 1.0:
        return 0.0
    if z >= -1.0:
        return -2.0 * (1.0 - z) * s
    return -4.0 * s


cdef inline double squared_hinge_loss(double p, double y) noexcept nogil:
    cdef double r = 1.0 - (2.0 * y - 1.0) * p
    if r > 0.0:
        return r * r
    return 0.0


cdef inline double squared_hinge_dloss(double p, double y) noexcept nogil:
    cdef double s = 2.0 * y - 1.0
    cdef double r = 1.0 - s * p
    if r > 0.0:
        return -2.0 * s * r
    return 0.0


cdef inline double perceptron_loss(double p, double y) noexcept nogil:
    cdef double z = (2.0 * y - 1.0) * p
    if z < 0.0:
        return -z
    return 0.0


cdef inline double perceptron_dloss(double p, double y) noexcept nogil:
    cdef double s = 2.0 * y - 1.0
    return -s if s * p <= 0.0 else 0.0


cdef inline double squared_epsilon_insensitive_loss(double p, double y, double epsilon) noexcept nogil:
    cdef double r = fabs(y - p) - epsilon
    if r > 0.0:
        return r * r
    return 0.0


cdef inline double squared_epsilon_insensitive_dloss(double p, double y, double epsilon) noexcept nogil:
    cdef double r = y - p
    if r > epsilon:
        return -2.0 * (r - epsilon)
    if r < -epsilon:
        return 2.0 * (-r - epsilon)
    return 0.0


cdef inline double multinomial_loss_dloss(double[::1] z, Py_ssize_t code, double[::1] g) noexcept nogil:
    """Softmax cross-entropy of scores ``z`` for class ``code``; ``g`` := dL/dz.

    NaN where a score is not finite (see ``loss_and_derivative``).
    """
    cdef Py_ssize_t k
    cdef double top = z[0]
    cdef double total
    cdef double probe = not_finite(z[0])
    for k in range(1, z.shape[0]):
        top = z[k] if z[k] > top else top
        probe += not_finite(z[k])
    total = 0.0
    for k in range(z.shape[0]):
        g[k] = exp(z[k] - top)
        total += g[k]
    for k in range(z.shape[0]):
        g[k] /= total
    g[code] -= 1.0
    return log(total) + top - z[code] + count_probe(probe)


cdef inline double loss_and_derivative(int loss, double p, double y, double epsilon, double *dloss) noexcept nogil:
    """Loss of one single-output row with prediction ``p``; ``dloss`` := dL/dp.

    Scalars in and out (the derivative through a pointer to a local): the
    epoch loop keeps both in registers, which an array of one score per
    output would not allow (it measured 1.5x slower in the Numba kernel).
    """
    cdef double value
    if loss == LOSS_HUBER:
        dloss[0] = huber_dloss(p, y, epsilon)
        value = huber_loss(p, y, epsilon)
    elif loss == LOSS_EPSILON_INSENSITIVE:
        dloss[0] = epsilon_insensitive_dloss(p, y, epsilon)
        value = epsilon_insensitive_loss(p, y, epsilon)
    elif loss == LOSS_LOG:
        value = log_loss_and_derivative(p, y, dloss)
    elif loss == LOSS_HINGE:
        dloss[0] = hinge_dloss(p, y)
        value = hinge_loss(p, y)
    elif loss == LOSS_MODIFIED_HUBER:
        dloss[0] = modified_huber_dloss(p, y)
        value = modified_huber_loss(p, y)
    elif loss == LOSS_SQUARED_HINGE:
        dloss[0] = squared_hinge_dloss(p, y)
        value = squared_hinge_loss(p, y)
    elif loss == LOSS_PERCEPTRON:
        dloss[0] = perceptron_dloss(p, y)
        value = perceptron_loss(p, y)
    elif loss == LOSS_SQUARED_EPSILON_INSENSITIVE:
        dloss[0] = squared_epsilon_insensitive_dloss(p, y, epsilon)
        value = squared_epsilon_insensitive_loss(p, y, epsilon)
    else:
        dloss[0] = squared_error_dloss(p, y)
        value = squared_error_loss(p, y)
    # A score that is not finite is divergence whatever the loss makes of
    # it: the hinge and log losses of an infinite score are finite (0), and
    # their gradient 0, which would stop learning without a word.
    return value + finite_probe(p)


cdef inline double weigh(const double *sample_weight, Py_ssize_t i, double x) noexcept nogil:
    """``x`` (a row's loss or derivative) times row ``i``'s weight; ``x`` itself without weights.

    ``sample_weight`` is NULL (unweighted: one predictable branch per row,
    the arithmetic unchanged) or the rows' float64 weights, indexed like y.
    """
    if sample_weight == NULL:
        return x
    return x * sample_weight[i]


cdef inline bint is_regression(int loss) noexcept nogil:
    """Whether ``loss`` (a code) is a regression loss, whose targets are real values."""
    return (loss == LOSS_SQUARED_ERROR or loss == LOSS_HUBER or loss == LOSS_EPSILON_INSENSITIVE
            or loss == LOSS_SQUARED_EPSILON_INSENSITIVE)


cdef inline double output_target(const floating[::1] y, Py_ssize_t i, Py_ssize_t k, Py_ssize_t K, int loss) noexcept nogil:
    """The target of output ``k`` (of ``K`` independent ones) for row ``i``.

    A multi-output regression's y is the (n, K) targets raveled in C order;
    a one-vs-rest classifier's y holds the class codes, and output ``k``'s
    binary target is whether row ``i`` is of class ``k``.
    """
    if is_regression(loss):
        return y[i * K + k]
    return 1.0 if y[i] == k else 0.0


cdef inline double outputs_loss_dloss(const KernelConfig *cfg, double[::1] z, const floating[::1] y, Py_ssize_t i, double[::1] g, const double *sample_weight) noexcept nogil:
    """Weighed loss of row ``i`` with scores ``z`` over K > 1 outputs; writes its dL/dz into ``g``.

    Multinomial is the softmax of the K scores, weighed by the row's weight;
    any other loss makes K independent outputs, each with that loss of its
    own target and its own weight ``sample_weight[i*K + k]``, the loss
    returned being their mean (see the Numba twin).
    """
    cdef Py_ssize_t K = z.shape[0]
    cdef double total = 0.0
    cdef Py_ssize_t k
    cdef double value, slope
    if cfg.loss == LOSS_MULTINOMIAL:
        total = weigh(sample_weight, i, multinomial_loss_dloss(z, <Py_ssize_t>y[i], g))
        for k in range(K):
            g[k] = weigh(sample_weight, i, g[k])
        return total
    for k in range(K):
        value = loss_and_derivative(cfg.loss, z[k], output_target(y, i, k, K, cfg.loss),
                                    cfg.epsilon, &slope)
        total += weigh(sample_weight, i * K + k, value)
        g[k] = weigh(sample_weight, i * K + k, slope)
    return total / K


# --- one row: prediction and gradient accumulation ---------------------------
# ``p`` and ``G`` are one output's row of P and of the gradient, as pointers
# (see the optimizers below for why).


cdef inline double row_score(const floating[:, ::1] X, Py_ssize_t i, const floating *p) noexcept nogil:
    """One output's score of row ``X[i]``: ``p[:d]·X[i] + p[d]``."""
    cdef Py_ssize_t d = X.shape[1]
    cdef Py_ssize_t j
    cdef double acc = 0.0
    for j in range(d):
        acc += <double>X[i, j] * p[j]
    return acc + p[d]


cdef inline void add_row(double *G, const floating[:, ::1] X, Py_ssize_t i, double scale) noexcept nogil:
    """``G[:d] += scale·X[i]`` and ``G[d] += scale``."""
    cdef Py_ssize_t d = X.shape[1]
    cdef Py_ssize_t j
    for j in range(d):
        G[j] += X[i, j] * scale
    G[d] += scale


cdef inline void add_four_rows(double *G, const floating[:, ::1] X, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t i2, Py_ssize_t i3, double a0, double a1, double a2, double a3) noexcept nogil:
    """``G[:d] += a0·X[i0] + a1·X[i1] + a2·X[i2] + a3·X[i3]``, and the four a's to ``G[d]``."""
    cdef Py_ssize_t d = X.shape[1]
    cdef Py_ssize_t j
    for j in range(d):
        G[j] += X[i0, j] * a0 + X[i1, j] * a1 + X[i2, j] * a2 + X[i3, j] * a3
    G[d] += a0 + a1 + a2 + a3


# --- optimizers: in-place update of parameters p from gradient g -----------
# Each loop is one formula over contiguous arrays, so it vectorises; s1 and s2
# are the optimizer's moments, t the 1-based update number. They take the
# rows of P, G and state as pointers: slicing a memoryview without the GIL
# costs atomic reference counting, once per output and batch.


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
    """Step the first ``n`` entries of ``p`` with a momentum or adaptive optimizer.

    Plain SGD is ``sgd_step``, which folds the penalty into the same loop.
    """
    cdef int opt = cfg.optimizer
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


cdef inline double learning_rate(double lr, long long t, double power_t, double t_offset) noexcept nogil:
    """Rate of update number ``t`` (1-based): ``lr / (t + t_offset)**power_t``."""
    if power_t != 0.0:
        return lr / pow(<double>t + t_offset, power_t)
    return lr


cdef inline double soft_threshold(double w, double threshold) noexcept nogil:
    """Proximal step of ``threshold · |w|``: shrink towards 0, land on exactly 0.

    A NaN ``w`` stays NaN, so the divergence check sees it (see ``_numba.soft_threshold``).
    """
    if w > threshold:
        return w - threshold
    if w < -threshold:
        return w + threshold
    return 0.0 if is_finite(w) else w


cdef inline double moments_probe(const floating *p, const floating *s1, const floating *s2, Py_ssize_t n) noexcept nogil:
    """The ``finite_probe`` of the first ``n`` parameters and both moments (from their ``not_finite`` count)."""
    cdef Py_ssize_t j
    cdef double probe = 0.0
    for j in range(n):
        probe += not_finite(p[j]) + not_finite(s1[j]) + not_finite(s2[j])
    return count_probe(probe)


cdef inline double sgd_step(floating *p, const gradient_t *g, double scale, double intercept_gradient, Py_ssize_t d, const KernelConfig *cfg, double eta) noexcept nogil:
    """Plain SGD on one output: ``p[:d] = decay·p[:d] − eta·scale·g[:d]``, then L1's threshold.

    ``decay = max(0, 1 − eta·l2)`` is the L2 shrink; see ``_numba.sgd_step``.
    ``g`` is the batch's mean gradient (``scale`` 1) or, at batch size 1,
    the row itself (``scale`` = dL/dp): one loop either way, the penalty
    folded in. The intercept ``p[d]`` takes ``intercept_gradient`` plus
    ``cfg.intercept_drift``, unpenalised.
    Returns the ``finite_probe`` sum of the values written.
    """
    cdef Py_ssize_t j
    cdef double decay = max(0.0, 1.0 - eta * cfg.l2)
    # The cumulative L1 penalty is finish_update's, after the step.
    cdef double shrink = 0.0 if cfg.l1_cumulative else eta * cfg.l1
    cdef double probe = 0.0
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


cdef inline double update_output(floating *p, double *g, floating *s1, floating *s2, Py_ssize_t n, const KernelConfig *cfg, double eta, long long t) noexcept nogil:
    """One optimizer step on one output's ``n`` parameters (weights, then intercept).

    ``g`` holds the batch's mean gradient and gains the L2 term in place.
    AdamW's decay and the L1 soft-threshold act on the weights only, never on
    the intercept. Returns the ``finite_probe`` sum of the parameters and
    moments after the step.
    """
    cdef Py_ssize_t d = n - 1
    cdef double l2 = cfg.l2
    cdef double decay, shrink
    cdef Py_ssize_t j, n_params
    if cfg.optimizer == OPT_SGD:
        return sgd_step(p, g, 1.0, g[d], d, cfg, eta)
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


cdef inline double apply_update(floating[:, ::1] P, double[:, ::1] G, floating[:, :, ::1] state, const KernelConfig *cfg, double eta, long long t) noexcept nogil:
    """One optimizer step on every parameter from the batch's mean gradient G.

    Plain SGD is stepped here directly, as in Numba (where going through
    ``update_output`` cost 25% at batch size 8). Returns the sum of the
    outputs' ``finite_probe`` sums.
    """
    cdef Py_ssize_t k
    cdef Py_ssize_t n = P.shape[1]
    cdef double probe = 0.0
    if cfg.optimizer == OPT_SGD:
        for k in range(P.shape[0]):
            probe += sgd_step(&P[k, 0], &G[k, 0], 1.0, G[k, n - 1], n - 1, cfg, eta)
    else:
        for k in range(P.shape[0]):
            probe += update_output(&P[k, 0], &G[k, 0], &state[0, k, 0], &state[1, k, 0], n, cfg, eta, t)
    if has_finish(cfg):
        probe += finish_update(P, state, cfg, eta, t)
    return probe


# --- the end of an update: the cumulative L1 penalty and the running average ---
# (see ``_numba.finish_update``).


cdef inline bint has_finish(const KernelConfig *cfg) noexcept nogil:
    """Whether updates end with ``finish_update`` (cumulative L1, or averaging)."""
    return (cfg.l1_cumulative != 0 and cfg.l1 > 0.0) or cfg.average_start > 0


cdef inline double cumulative_l1_weight(floating *p, floating *q, Py_ssize_t j, double total, double scale) noexcept nogil:
    """scikit-learn's ``l1penalty`` on the weight ``scale · p[j]``; see ``_numba.cumulative_l1_weight``."""
    cdef double clipped
    cdef double w = scale * p[j]
    if w > 0.0:
        clipped = max(0.0, w - (total + q[j]))
    elif w < 0.0:
        clipped = min(0.0, w + (total - q[j]))
    else:
        clipped = w
    p[j] = clipped / scale
    q[j] += clipped - w
    return finite_probe(q[j])


cdef inline double add_l1_total(floating[:, :, ::1] state, const KernelConfig *cfg, double eta, Py_ssize_t k) noexcept nogil:
    """Add the update's penalty ``eta · l1`` to output ``k``'s total ``u``; return it."""
    cdef Py_ssize_t d = state.shape[2] - 1
    cdef double total = state[SLOT_L1_APPLIED, k, d] + eta * cfg.l1
    state[SLOT_L1_APPLIED, k, d] = total
    return total


cdef inline double average_update(floating[:, ::1] P, floating[:, :, ::1] state, const KernelConfig *cfg, long long t, double scale) noexcept nogil:
    """Fold update ``t``'s parameters (weights ``scale · P``) into the running average; see ``_numba.average_update``."""
    cdef Py_ssize_t k, j
    cdef floating *a
    cdef long long start = cfg.average_start
    if start <= 0 or t < start:
        return 0.0
    cdef double n = <double>(t - start + 1)
    cdef Py_ssize_t d = P.shape[1] - 1
    cdef double probe = 0.0
    for k in range(P.shape[0]):
        a = &state[SLOT_AVERAGE, k, 0]
        for j in range(d):
            a[j] += (scale * P[k, j] - a[j]) / n
            probe += not_finite(a[j])
        a[d] += (P[k, d] - a[d]) / n
        probe += not_finite(a[d])
    return count_probe(probe)


cdef double finish_update(floating[:, ::1] P, floating[:, :, ::1] state, const KernelConfig *cfg, double eta, long long t) noexcept nogil:
    """The end of a dense update: the cumulative L1 penalty of every weight, then the average."""
    cdef Py_ssize_t k, j
    cdef double total
    cdef floating *q
    cdef double probe = 0.0
    cdef Py_ssize_t d = P.shape[1] - 1
    if cfg.l1_cumulative and cfg.l1 > 0.0:
        for k in range(P.shape[0]):
            total = add_l1_total(state, cfg, eta, k)
            q = &state[SLOT_L1_APPLIED, k, 0]
            for j in range(d):
                probe += cumulative_l1_weight(&P[k, 0], q, j, total, 1.0)
    return probe + average_update(P, state, cfg, t, 1.0)


# --- the epoch ---------------------------------------------------------------
# Batches of more than CHUNK_ROWS rows are cut into chunks whose partial
# gradients are added in chunk order, whatever the thread count: results are
# identical for any n_threads, bit for bit (see ``_numba.CHUNK_ROWS``).
# Where Numba allocates a thread's z and g in the parallel loop, these
# kernels take a preallocated ``scratch`` of shape (len(parts), 2, K): one
# z and g per chunk of a wave (at most WAVE_CHUNKS).


cdef double rows_gradient(const floating[:, ::1] X, const floating[::1] y, const index_t[::1] order, Py_ssize_t start, Py_ssize_t stop, floating[:, ::1] P, double[:, ::1] G, const KernelConfig *cfg, const CpuExecution *execution, double inv_m, double[::1] z, double[::1] g, const double *sample_weight) except? -1 nogil:
    """Sum of the losses of rows ``order[start:stop]``; G := inv_m · Σ their gradients.

    Each row's loss and derivative are weighed by ``sample_weight`` (NULL:
    unweighted, see ``weigh``).
    ``z`` and ``g`` are scratch of one float per output. A shuffled epoch
    (``execution.prefetch``) announces the rows it will read a few steps ahead.
    Not inline: the threads and the one-thread loop of ``chunked_gradient``
    run the same machine code, which keeps their sums identical.
    """
    cdef Py_ssize_t n = G.shape[1]
    cdef Py_ssize_t K = P.shape[0]
    cdef Py_ssize_t r, i, j, k
    cdef int loss = cfg.loss
    cdef double epsilon = cfg.epsilon
    cdef double total = 0.0
    cdef double value, slope, y_i
    cdef double v0, v1, v2, v3, s0, s1, s2, s3
    cdef Py_ssize_t i0, i1, i2, i3, b
    cdef const floating *p
    cdef double *Gp
    for k in range(K):
        for j in range(n):
            G[k, j] = 0.0
    if K == 1:
        p, Gp = &P[0, 0], &G[0, 0]
        r = start
        # Compiled into the float32 kernel only (Cython fuses types so).
        if floating is float:
            while stop - start >= ROW_BLOCK_MIN and r + 4 <= stop:
                if execution.prefetch:
                    for b in range(4):
                        prefetch_dense_row(X, y, order, r + b)
                i0 = order[r]
                i1 = order[r + 1]
                i2 = order[r + 2]
                i3 = order[r + 3]
                # Each y before its row, as below.
                y_i = y[i0]
                v0 = loss_and_derivative(loss, row_score(X, i0, p), y_i, epsilon, &s0)
                y_i = y[i1]
                v1 = loss_and_derivative(loss, row_score(X, i1, p), y_i, epsilon, &s1)
                y_i = y[i2]
                v2 = loss_and_derivative(loss, row_score(X, i2, p), y_i, epsilon, &s2)
                y_i = y[i3]
                v3 = loss_and_derivative(loss, row_score(X, i3, p), y_i, epsilon, &s3)
                total += (weigh(sample_weight, i0, v0) + weigh(sample_weight, i1, v1)
                          + weigh(sample_weight, i2, v2) + weigh(sample_weight, i3, v3))
                add_four_rows(Gp, X, i0, i1, i2, i3, weigh(sample_weight, i0, s0) * inv_m,
                              weigh(sample_weight, i1, s1) * inv_m, weigh(sample_weight, i2, s2) * inv_m,
                              weigh(sample_weight, i3, s3) * inv_m)
                r += 4
        while r < stop:
            if execution.prefetch:
                prefetch_dense_row(X, y, order, r)
            i = order[r]
            # y[i] first: the debug build's bounds check of the row is here,
            # where it can raise (row_score cannot).
            y_i = y[i]
            value = loss_and_derivative(loss, row_score(X, i, p), y_i, epsilon, &slope)
            total += weigh(sample_weight, i, value)
            add_row(Gp, X, i, weigh(sample_weight, i, slope) * inv_m)
            r += 1
        return total
    for r in range(start, stop):
        if execution.prefetch:
            prefetch_dense_row(X, y, order, r)
        i = order[r]
        y_i = y[i]
        for k in range(K):
            z[k] = row_score(X, i, &P[k, 0])
        total += outputs_loss_dloss(cfg, z, y, i, g, sample_weight)
        for k in range(K):
            add_row(&G[k, 0], X, i, g[k] * inv_m)
    return total


cdef inline double add_chunks(double[:, ::1] G, double[:, :, ::1] parts, double[::1] losses, Py_ssize_t wave, Py_ssize_t wave_chunks) noexcept nogil:
    """Add a wave's partial gradients into G in chunk order; return their loss sum."""
    cdef Py_ssize_t c, k, j
    cdef double total = 0.0
    for c in range(wave_chunks):
        total += losses[c]
        if wave == 0 and c == 0:
            for k in range(G.shape[0]):
                for j in range(G.shape[1]):
                    G[k, j] = parts[0, k, j]
        else:
            for k in range(G.shape[0]):
                for j in range(G.shape[1]):
                    G[k, j] += parts[c, k, j]
    return total


cdef int threaded_chunks(const floating[:, ::1] X, const floating[::1] y, const index_t[::1] order, Py_ssize_t start, Py_ssize_t stop, Py_ssize_t wave, Py_ssize_t wave_chunks, floating[:, ::1] P, double[:, :, ::1] parts, double[::1] losses, const KernelConfig *cfg, const CpuExecution *execution, double inv_m, int threads, double[:, :, ::1] scratch, const double *sample_weight) except -1 nogil:
    """One wave of chunks' partial gradients on ``threads`` OpenMP threads.

    ``scratch[c]`` holds chunk c's own z and g, so threads never share them.
    """
    cdef Py_ssize_t c, first, last
    for c in prange(wave_chunks, num_threads=threads, schedule="static"):
        first = start + (wave + c) * CHUNK_ROWS
        last = first + CHUNK_ROWS if first + CHUNK_ROWS < stop else stop
        losses[c] = rows_gradient(X, y, order, first, last, P, parts[c], cfg, execution, inv_m, scratch[c, 0], scratch[c, 1], sample_weight)
    return 0


cdef inline double chunked_gradient(const floating[:, ::1] X, const floating[::1] y, const index_t[::1] order, Py_ssize_t start, Py_ssize_t stop, floating[:, ::1] P, double[:, ::1] G, const KernelConfig *cfg, const CpuExecution *execution, double inv_m, double[::1] z, double[::1] g, double[:, :, ::1] parts, double[::1] losses, int threads, double[:, :, ::1] scratch, const double *sample_weight) except? -1 nogil:
    """``rows_gradient`` of a batch of more than CHUNK_ROWS rows, chunk by chunk.

    Each chunk of CHUNK_ROWS rows is summed into a partial gradient of its
    own (``parts``, a wave of them at a time), and the partials are added in
    chunk order, so the result does not depend on the thread count. With
    ``threads`` 1 (Numba's None) the chunks run in a plain loop: a parallel
    region costs ~10 µs per batch, for nothing. ``scratch`` is the threads'
    z and g, per chunk.
    """
    cdef Py_ssize_t n_chunks = (stop - start + CHUNK_ROWS - 1) // CHUNK_ROWS
    cdef Py_ssize_t n_parts = parts.shape[0]
    cdef Py_ssize_t wave = 0
    cdef Py_ssize_t wave_chunks, c, first, last
    cdef double total = 0.0
    # range(0, n_chunks, n_parts): Cython needs a step of known sign for a C loop.
    while wave < n_chunks:
        wave_chunks = n_parts if n_parts < n_chunks - wave else n_chunks - wave
        if threads > 1:
            threaded_chunks(X, y, order, start, stop, wave, wave_chunks, P, parts, losses, cfg, execution, inv_m, threads, scratch, sample_weight)
        else:
            for c in range(wave_chunks):
                first = start + (wave + c) * CHUNK_ROWS
                last = first + CHUNK_ROWS if first + CHUNK_ROWS < stop else stop
                losses[c] = rows_gradient(X, y, order, first, last, P, parts[c], cfg, execution, inv_m, z, g, sample_weight)
        total += add_chunks(G, parts, losses, wave, wave_chunks)
        wave += n_parts
    return total


cdef inline double sgd_row_step(const floating[:, ::1] X, Py_ssize_t i, double y_i, floating *p, const KernelConfig *cfg, double lr, long long t, const double *sample_weight) noexcept nogil:
    """Batch size 1 with plain SGD, fused: score, loss and update in two passes over the row.

    The same arithmetic as ``add_row`` + ``sgd_step``, without the
    gradient buffer in between: at batch size 1 that buffer's writing and
    reading cost as much as the row itself. Returns the loss, made NaN where
    the update diverged (``sgd_step``'s probe added).
    """
    cdef double slope
    cdef double value = loss_and_derivative(cfg.loss, row_score(X, i, p), y_i, cfg.epsilon, &slope)
    value = weigh(sample_weight, i, value)
    slope = weigh(sample_weight, i, slope)
    return value + sgd_step(p, &X[i, 0], slope, slope, X.shape[1], cfg, learning_rate(lr, t, cfg.power_t, cfg.t_offset))


cdef double run_batches(const floating[:, ::1] X, const floating[::1] y, const index_t[::1] order, floating[:, ::1] P, floating[:, :, ::1] state, const KernelConfig *cfg, const CpuExecution *execution, double lr, long long t0, Py_ssize_t first, Py_ssize_t last, Py_ssize_t stride, double[:, ::1] G, double[::1] z, double[::1] g, double[:, :, ::1] parts, double[::1] losses, int threads, double[:, :, ::1] scratch, long long *n_updates, const double *sample_weight) except? -1 nogil:
    """Batches ``first..last-1`` of the epoch: the sum of their mean losses.

    The updates made go to ``n_updates``. Update number ``t`` advances by
    ``stride`` per update (1, or the thread count of hogwild, whose threads
    share the count). Stops after the update of a batch that diverged (its
    loss, or a parameter or moment after its update, not finite) and returns
    a loss that is not finite instead. A batch of more than CHUNK_ROWS
    rows is ``chunked_gradient``'s, with ``parts``, ``losses``, ``threads``
    and ``scratch``; an empty ``parts`` means: never split (hogwild).
    """
    cdef Py_ssize_t n_rows = order.shape[0]
    cdef Py_ssize_t batch_size = cfg.batch_size
    cdef bint fused = P.shape[0] == 1 and cfg.optimizer == OPT_SGD
    cdef double total = 0.0
    cdef long long t = t0
    cdef Py_ssize_t batch, start, stop, i
    cdef double value, batch_loss, inv_m, probe
    for batch in range(first, last):
        start = batch * batch_size
        stop = start + batch_size if start + batch_size < n_rows else n_rows
        if stop - start == 1 and fused:
            if execution.prefetch:
                prefetch_dense_row(X, y, order, start)
            i = order[start]
            t += stride
            value = sgd_row_step(X, i, y[i], &P[0, 0], cfg, lr, t, sample_weight)
            if has_finish(cfg):
                value += finish_update(P, state, cfg, learning_rate(lr, t, cfg.power_t, cfg.t_offset), t)
            if not is_finite(value):
                n_updates[0] = (t - t0) // stride
                return value
            total += value
            continue
        # Each row's derivative is divided by m before it is summed, so G is the
        # mean gradient without another pass over the parameters.
        inv_m = 1.0 / (stop - start)
        if stop - start <= CHUNK_ROWS or parts.shape[0] == 0:
            # One pass over the batch (see _numba.run_batches).
            batch_loss = rows_gradient(X, y, order, start, stop, P, G, cfg, execution, inv_m, z, g, sample_weight)
        else:
            batch_loss = chunked_gradient(X, y, order, start, stop, P, G, cfg, execution, inv_m, z, g, parts, losses, threads, scratch, sample_weight)
        t += stride
        probe = apply_update(P, G, state, cfg, learning_rate(lr, t, cfg.power_t, cfg.t_offset), t)
        if not (is_finite(batch_loss) and is_finite(probe)):
            # Diverged: the engine, which reads the batch from the update
            # count, raises and restores the epoch's start.
            n_updates[0] = (t - t0) // stride
            return batch_loss + probe
        total += batch_loss * inv_m
    n_updates[0] = (t - t0) // stride
    return total


cdef inline Py_ssize_t batch_count(Py_ssize_t n_rows, const KernelConfig *cfg) noexcept nogil:
    cdef Py_ssize_t n_batches = n_rows // cfg.batch_size
    if n_rows % cfg.batch_size and not cfg.drop_last:
        n_batches += 1
    return n_batches


def run_epoch(
    const floating[:, ::1] X,
    const floating[::1] y,
    const index_t[::1] order,
    floating[:, ::1] P,
    floating[:, :, ::1] state,
    cfg,
    execution,
    double lr,
    long long t0,
    const double[::1] sample_weight=None,
):
    """One epoch of mini-batch gradient descent over a dense X; see ``_reference.run_epoch``.

    ``execution`` is a ``_cpu.CpuExecution``. Batches of more than
    CHUNK_ROWS rows have their gradient computed by ``execution.n_threads``
    threads, with the same result for any count. X, y and
    order may be read-only (a ``np.memmap(mode="r")`` works); P and state are
    updated in place. The GIL is released for the whole epoch.
    """
    # Everything that touches Python happens here, once per epoch: the
    # settings become a C struct and the scratch arrays are allocated.
    cdef KernelConfig config = cfg._asdict()
    cdef CpuExecution cpu = execution._asdict()
    cdef Py_ssize_t n_batches = batch_count(order.shape[0], &config)
    cdef Py_ssize_t K = P.shape[0]
    # float64 whatever the dtype: a float32 sum of a batch's rows would not
    # cancel to exactly 0, and adaptive optimizers turn ~1e-9 into a full step.
    cdef double[:, ::1] G = np.empty((K, P.shape[1]))
    cdef double[::1] z = np.empty(K)
    cdef double[::1] g = np.empty(K)
    cdef Py_ssize_t n_chunks = (config.batch_size + CHUNK_ROWS - 1) // CHUNK_ROWS
    cdef Py_ssize_t n_parts = (n_chunks if n_chunks < WAVE_CHUNKS else WAVE_CHUNKS) if n_chunks > 1 else 0
    cdef double[:, :, ::1] parts = np.empty((n_parts, K, P.shape[1]))
    cdef double[::1] losses = np.empty(n_parts)
    cdef double[:, :, ::1] scratch = np.empty((n_parts, 2, K))
    cdef double total
    cdef long long n_updates = 0
    cdef const double *weights = NULL if sample_weight is None else &sample_weight[0]
    with nogil:
        total = run_batches(X, y, order, P, state, &config, &cpu, lr, t0, 0, n_batches, 1, G, z, g, parts, losses, cpu.n_threads, scratch, &n_updates, weights)
    if not is_finite(total):
        return total, n_updates
    return total / n_batches, n_updates


def run_epoch_hogwild(
    const floating[:, ::1] X,
    const floating[::1] y,
    const index_t[::1] order,
    floating[:, ::1] P,
    floating[:, :, ::1] state,
    cfg,
    execution,
    double lr,
    long long t0,
    const double[::1] sample_weight=None,
):
    """One epoch on ``execution.n_threads`` lock-free threads; see ``_numba.hogwild_kernel``.

    Hogwild (Niu et al., 2011): each thread runs its own contiguous share of
    the epoch's batches and writes its updates straight into ``P`` and
    ``state`` while the others read them. Not deterministic: the interleaving
    of the threads' reads and writes changes from run to run. Update numbers
    (invscaling, Adam's bias correction) are counted per thread, scaled by
    the thread count.
    """
    cdef KernelConfig config = cfg._asdict()
    cdef CpuExecution cpu = execution._asdict()
    cdef Py_ssize_t n_batches = batch_count(order.shape[0], &config)
    cdef Py_ssize_t n_workers = cpu.n_threads if cpu.n_threads < n_batches else n_batches
    if n_workers < 1:
        n_workers = 1
    cdef Py_ssize_t K = P.shape[0]
    # Each worker's own G, z and g; no chunking (empty parts).
    cdef double[:, :, ::1] G = np.empty((n_workers, K, P.shape[1]))
    cdef double[:, :, ::1] zg = np.empty((n_workers, 2, K))
    cdef double[:, :, ::1] no_parts = np.empty((0, K, P.shape[1]))
    cdef double[::1] no_losses = np.empty(0)
    cdef double[:, :, ::1] no_scratch = np.empty((0, 2, K))
    cdef double[::1] losses = np.zeros(n_workers)
    cdef long long[::1] updates = np.zeros(n_workers, dtype=np.int64)
    cdef Py_ssize_t w
    cdef double total = 0.0
    cdef long long n_updates = 0
    cdef const double *weights = NULL if sample_weight is None else &sample_weight[0]
    with nogil:
        for w in prange(n_workers, num_threads=n_workers, schedule="static"):
            losses[w] = run_batches(
                X, y, order, P, state, &config, &cpu, lr, t0 + w,
                n_batches * w // n_workers, n_batches * (w + 1) // n_workers, n_workers,
                G[w], zg[w, 0], zg[w, 1], no_parts, no_losses, 1, no_scratch, &updates[w], weights,
            )
    for w in range(n_workers):
        total += losses[w]
        n_updates += updates[w]
    if not is_finite(total):
        return total, n_updates
    return total / n_batches, n_updates


# --- the batch-level seam: one batch's gradient, one update ---------------------
# The pieces of the epoch above, callable from Python one batch at a time
# (``_cython_backend.batch_gradient`` and ``apply_update``): no arithmetic of
# their own.


def batch_gradient(
    const floating[:, ::1] X,
    const floating[::1] y,
    const index_t[::1] rows,
    floating[:, ::1] P,
    cfg,
    execution,
    const double[::1] sample_weight=None,
):
    """``(loss_sum, G)`` of the batch ``rows``: the gradient ``run_batches`` computes for it.

    ``G`` (float64, the shape of P) is the mean gradient of the loss alone,
    its last column the mean dL/dz. A batch of more than CHUNK_ROWS rows
    goes chunk by chunk, as in the epoch, so the sums are the epoch's.
    """
    cdef KernelConfig config = cfg._asdict()
    cdef CpuExecution cpu = execution._asdict()
    cdef Py_ssize_t m = rows.shape[0]
    cdef Py_ssize_t K = P.shape[0]
    cdef double inv_m = 1.0 / m
    G_array = np.empty((K, P.shape[1]))
    cdef double[:, ::1] G = G_array
    cdef double[::1] z = np.empty(K)
    cdef double[::1] g = np.empty(K)
    cdef Py_ssize_t n_chunks = (m + CHUNK_ROWS - 1) // CHUNK_ROWS
    cdef Py_ssize_t n_parts = (n_chunks if n_chunks < WAVE_CHUNKS else WAVE_CHUNKS) if n_chunks > 1 else 0
    cdef double[:, :, ::1] parts = np.empty((n_parts, K, P.shape[1]))
    cdef double[::1] losses = np.empty(n_parts)
    cdef double[:, :, ::1] scratch = np.empty((n_parts, 2, K))
    cdef double total
    cdef const double *weights = NULL if sample_weight is None else &sample_weight[0]
    with nogil:
        if m <= CHUNK_ROWS:
            total = rows_gradient(X, y, rows, 0, m, P, G, &config, &cpu, inv_m, z, g, weights)
        else:
            total = chunked_gradient(X, y, rows, 0, m, P, G, &config, &cpu, inv_m, z, g, parts, losses, 1, scratch, weights)
    return total, G_array


def update_parameters(
    floating[:, ::1] P,
    double[:, ::1] G,
    floating[:, :, ::1] state,
    cfg,
    double lr,
    long long t,
):
    """``apply_update`` of update ``t`` in an epoch of base rate ``lr``, as in ``run_batches``.

    Adds the L2 term to G in place, as ``apply_update`` does, and returns
    its ``finite_probe`` sum.
    """
    cdef KernelConfig config = cfg._asdict()
    cdef double probe
    with nogil:
        probe = apply_update(P, G, state, &config, learning_rate(lr, t, config.power_t, config.t_offset), t)
    return probe


# --- import-time guards --------------------------------------------------------
# The C copies of the codes and of the settings record must match ``_config``;
# a build from an older ``_config`` is refused rather than left to mis-branch.

_C_CODES = {
    "LOSS_SQUARED_ERROR": LOSS_SQUARED_ERROR,
    "LOSS_HUBER": LOSS_HUBER,
    "LOSS_EPSILON_INSENSITIVE": LOSS_EPSILON_INSENSITIVE,
    "LOSS_LOG": LOSS_LOG,
    "LOSS_MULTINOMIAL": LOSS_MULTINOMIAL,
    "LOSS_HINGE": LOSS_HINGE,
    "LOSS_MODIFIED_HUBER": LOSS_MODIFIED_HUBER,
    "LOSS_SQUARED_HINGE": LOSS_SQUARED_HINGE,
    "LOSS_PERCEPTRON": LOSS_PERCEPTRON,
    "LOSS_SQUARED_EPSILON_INSENSITIVE": LOSS_SQUARED_EPSILON_INSENSITIVE,
    "OPT_SGD": OPT_SGD,
    "OPT_MOMENTUM": OPT_MOMENTUM,
    "OPT_NESTEROV": OPT_NESTEROV,
    "OPT_ADAGRAD": OPT_ADAGRAD,
    "OPT_RMSPROP": OPT_RMSPROP,
    "OPT_ADAM": OPT_ADAM,
    "OPT_ADAMW": OPT_ADAMW,
    "SLOT_AVERAGE": SLOT_AVERAGE,
    "SLOT_L1_APPLIED": SLOT_L1_APPLIED,
}


def _struct_fields():
    """Field names of the C ``KernelConfig``, in declaration order."""
    cdef KernelConfig probe
    probe.loss = probe.optimizer = probe.drop_last = probe.fit_intercept = 0
    probe.batch_size = 0
    probe.l2 = probe.l1 = probe.epsilon = probe.power_t = probe.t_offset = probe.momentum = 0.0
    probe.beta1 = probe.beta2 = probe.eps = probe.rho = probe.weight_decay = 0.0
    probe.intercept_drift = 0.0
    probe.average_start = probe.l1_cumulative = 0
    return tuple(<dict>probe)


def _execution_fields():
    """Field names of the C ``CpuExecution``, in declaration order."""
    cdef CpuExecution probe
    probe.n_threads = probe.hogwild = probe.sparse_update = probe.prefetch = 0
    return tuple(<dict>probe)


if (
    any(getattr(_config, name) != code for name, code in _C_CODES.items())
    or _struct_fields() != _config.KernelConfig._fields
    or _execution_fields() != _cpu.CpuExecution._fields
):
    raise ImportError(
        "fastgd.backends._cython_kernels was compiled against other settings codes "
        "than fastgd._config; rebuild it: `python -m pip install .` "
        "(or `python -m pip install -e .` in a checkout)"
    )


# --- CSR data: one epoch over a sparse X -----------------------------------------
# The twin of ``_numba_sparse.py``, function for function (see its docstring
# for the four update modes); its specification is ``_reference_sparse.py``.
# Built from the pieces above: loss_and_derivative, outputs_loss_dloss,
# update_output, apply_update, learning_rate. The CSR index arrays have a fused type of their own, since
# scipy's int32 or int64 need not match the row order's.

ctypedef fused sparse_index_t:
    int32_t
    int64_t

cpdef enum:
    SPARSE_DENSE = 1
    UPDATE_DENSE = 0
    UPDATE_SCALED = 1
    UPDATE_CUMULATIVE = 2
    UPDATE_TOUCHED = 3

# The same bound as ``_numba_sparse.MIN_SCALE`` (the tests hold the two together).
cdef double MIN_SCALE = 1e-9
SPARSE_MIN_SCALE = MIN_SCALE


cdef inline int update_mode(const KernelConfig *cfg, const CpuExecution *execution) noexcept nogil:
    """Which of the four update modes an epoch with settings ``cfg`` runs."""
    if execution.sparse_update == SPARSE_DENSE:
        return UPDATE_DENSE
    if cfg.optimizer == OPT_SGD:
        return UPDATE_SCALED if cfg.l1 == 0.0 or cfg.l1_cumulative else UPDATE_CUMULATIVE
    return UPDATE_TOUCHED


cdef inline double loss_dloss(const KernelConfig *cfg, double[::1] z, const floating[::1] y, Py_ssize_t i, double[::1] g, const double *sample_weight) noexcept nogil:
    """Weighed loss of row ``i`` with scores ``z`` (targets from ``y``); writes its dL/dz into ``g``."""
    cdef double dz
    if z.shape[0] > 1:
        return outputs_loss_dloss(cfg, z, y, i, g, sample_weight)
    cdef double loss = loss_and_derivative(cfg.loss, z[0], y[i], cfg.epsilon, &dz)
    g[0] = weigh(sample_weight, i, dz)
    return weigh(sample_weight, i, loss)


cdef inline Py_ssize_t prefetch_ahead(const floating[::1] data, const sparse_index_t[::1] indices, const sparse_index_t[::1] indptr, const floating[::1] y, const index_t[::1] order, floating[:, ::1] P, Py_ssize_t r, Py_ssize_t n_rows) noexcept nogil:
    """Announce the pieces of the rows ``order[r + 2D]``, ``order[r + D]``, ``order[r + D/2]``.

    A row's indptr entry, then its entries, then the weights they index: each
    stage finds the line the stage before fetched (see ``_numba_sparse``).
    One ``prefetch_line_to_l1`` per element, where Numba's ``prefetch_to_l1``
    of an element asks for its first and last byte: an element never
    straddles two lines.
    Returns ``order[r]``: a function without a result that only reads
    memory is "pure" to GCC, which then drops its calls, prefetches and all.
    """
    cdef Py_ssize_t i, e, lo, hi, k, j
    if r + 2 * PREFETCH_DISTANCE < n_rows:
        prefetch_line_to_l1(&indptr[order[r + 2 * PREFETCH_DISTANCE]])
    if r + PREFETCH_DISTANCE < n_rows:
        i = order[r + PREFETCH_DISTANCE]
        prefetch_line_to_l1(&y[i])
        lo = indptr[i]
        hi = indptr[i + 1]
        if hi > lo:
            for e in range(lo, hi, 8):
                prefetch_line_to_l1(&data[e])
                prefetch_line_to_l1(&indices[e])
            prefetch_line_to_l1(&data[hi - 1])
            prefetch_line_to_l1(&indices[hi - 1])
    if r + PREFETCH_DISTANCE // 2 < n_rows:
        i = order[r + PREFETCH_DISTANCE // 2]
        for e in range(indptr[i], indptr[i + 1]):
            j = indices[e]
            for k in range(P.shape[0]):
                prefetch_line_to_l1(&P[k, j])
    return order[r]


cdef inline void predict_row_sparse(const floating[::1] data, const sparse_index_t[::1] indices, Py_ssize_t lo, Py_ssize_t hi, floating[:, ::1] P, double scale, double[::1] z) noexcept nogil:
    """z := scale · (W·x) + b for the row stored at ``data[lo:hi]``, ``indices[lo:hi]``."""
    cdef Py_ssize_t d = P.shape[1] - 1
    cdef Py_ssize_t k, e
    cdef double acc
    for k in range(P.shape[0]):
        acc = 0.0
        for e in range(lo, hi):
            acc += <double>data[e] * P[k, indices[e]]
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


cdef inline Py_ssize_t track_columns(const sparse_index_t[::1] indices, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t[::1] touched, Py_ssize_t n_touched, unsigned char[::1] seen) noexcept nogil:
    """Append the row's columns not seen yet in the batch to ``touched``; returns the new n_touched."""
    cdef Py_ssize_t e, j
    for e in range(lo, hi):
        j = indices[e]
        if not seen[j]:
            seen[j] = 1
            touched[n_touched] = j
            n_touched += 1
    return n_touched


cdef double cumulative_l1_lazy(floating[:, ::1] P, floating[:, :, ::1] state, const KernelConfig *cfg, double eta, Py_ssize_t[::1] touched, Py_ssize_t n_touched, double scale) noexcept nogil:
    """The cumulative L1 penalty of the batch's columns (weights ``scale · P``); see ``_numba_sparse.cumulative_l1_lazy``."""
    cdef Py_ssize_t k, c
    cdef double total
    cdef floating *q
    cdef double probe = 0.0
    for k in range(P.shape[0]):
        total = add_l1_total(state, cfg, eta, k)
        q = &state[SLOT_L1_APPLIED, k, 0]
        for c in range(n_touched):
            probe += cumulative_l1_weight(&P[k, 0], q, touched[c], total, scale)
    return probe


cdef double average_lazy(floating[:, ::1] P, floating[:, :, ::1] state, const KernelConfig *cfg, long long t, double scale) noexcept nogil:
    """``average_update`` of the true weights ``scale · P``: O(n_features), once averaging has started."""
    return average_update(P, state, cfg, t, scale)


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
    """SGD with L2 on W = scale · V: shrink ``scale``, step the batch's columns; returns scale.

    NaN where the update diverged; see ``_numba_sparse.scaled_update``.
    """
    cdef Py_ssize_t K = P.shape[0]
    cdef Py_ssize_t d = P.shape[1] - 1
    cdef Py_ssize_t k, j, r, e, i
    cdef double step, gk, gb
    cdef double shrink = max(0.0, 1.0 - eta * cfg.l2)
    scale *= shrink
    cdef double probe = not_finite(scale)
    if fabs(scale) < MIN_SCALE:
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


cdef inline double touched_update(floating[:, ::1] P, double[:, ::1] G, floating[:, :, ::1] state, const KernelConfig *cfg, double eta, long long t, Py_ssize_t[::1] touched, Py_ssize_t n_touched, unsigned char[::1] seen, floating[::1] pbuf, double[::1] gbuf, floating[::1] s1buf, floating[::1] s2buf) noexcept nogil:
    """The dense update (``update_output``) of the batch's columns and the intercept only.

    Returns ``update_output``'s probe sum.
    """
    cdef Py_ssize_t d = P.shape[1] - 1
    cdef Py_ssize_t n = n_touched
    cdef Py_ssize_t k, q, j
    cdef double probe = 0.0
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
        probe += update_output(&pbuf[0], &gbuf[0], &s1buf[0], &s2buf[0], n + 1, cfg, eta, t)
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
    return probe


cdef inline double dense_update(floating[:, ::1] P, double[:, ::1] G, floating[:, :, ::1] state, const KernelConfig *cfg, double eta, long long t) noexcept nogil:
    """The dense update of every parameter, returning its probe sum; G (which it changes) is zeroed after."""
    cdef Py_ssize_t k, j
    cdef double probe = apply_update(P, G, state, cfg, eta, t)
    for k in range(G.shape[0]):
        for j in range(G.shape[1]):
            G[k, j] = 0.0
    return probe


def run_epoch_sparse(
    const floating[::1] data,
    const sparse_index_t[::1] indices,
    const sparse_index_t[::1] indptr,
    const floating[::1] y,
    const index_t[::1] order,
    floating[:, ::1] P,
    floating[:, :, ::1] state,
    cfg,
    execution,
    double lr,
    long long t0,
    const double[::1] sample_weight=None,
):
    """One epoch over the CSR rows ``order``; see ``_reference_sparse.run_epoch_sparse``.

    ``execution`` is a ``_cpu.CpuExecution``: its ``sparse_update`` picks the
    update mode (the CSR epoch always prefetches, and runs on one thread);
    ``sample_weight`` is None or the rows' float64 weights (``weigh``).

    The CSR arrays, y and order may be read-only; P and state are updated in
    place, and hold the true parameters on return. The GIL is released for
    the whole epoch.
    """
    cdef KernelConfig config = cfg._asdict()
    cdef CpuExecution cpu = execution._asdict()
    cdef Py_ssize_t n_rows = order.shape[0]
    cdef Py_ssize_t batch_size = config.batch_size
    cdef Py_ssize_t n_batches = batch_count(n_rows, &config)
    cdef Py_ssize_t K = P.shape[0]
    cdef Py_ssize_t d = P.shape[1] - 1
    cdef int mode = update_mode(&config, &cpu)
    cdef bint scaled = mode == UPDATE_SCALED
    cdef bint cumulative = mode == UPDATE_CUMULATIVE
    # l1_method='cumulative' in a lazy mode: its penalty acts on the batch's columns.
    cdef bint l1_lazy = mode != UPDATE_DENSE and config.l1_cumulative != 0 and config.l1 > 0.0
    cdef bint averaging = mode != UPDATE_DENSE and config.average_start > 0
    cdef bint stepped_densely
    cdef bint track = cumulative or mode == UPDATE_TOUCHED or (scaled and l1_lazy)
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
    cdef double eta, inv_m, probe
    cdef bint diverged = False
    cdef const double *weights = NULL if sample_weight is None else &sample_weight[0]
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
                batch_loss += loss_dloss(&config, z, y, i, g, weights)
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
            eta = learning_rate(lr, t, config.power_t, config.t_offset)
            probe = 0.0
            stepped_densely = False  # dense_update averages by itself
            if scaled:
                scale = scaled_update(
                    data, indices, indptr, order, start, stop, gs, P, &config, eta, scale
                )
                probe = finite_probe(scale)
                if l1_lazy:
                    probe += cumulative_l1_lazy(P, state, &config, eta, touched, n_touched, scale)
                    for q in range(n_touched):
                        seen[touched[q]] = 0
            elif mode == UPDATE_DENSE:
                probe = dense_update(P, G, state, &config, eta, t)
            elif cumulative and 1.0 - eta * config.l2 <= 0.0:
                catch_up_all(P, S, C, last_S, last_C)
                S = 1.0
                C = 0.0
                for q in range(n_touched):
                    seen[touched[q]] = 0
                probe = dense_update(P, G, state, &config, eta, t)
                stepped_densely = True
            else:
                if cumulative:
                    S *= 1.0 - eta * config.l2
                    C += eta * config.l1 / S
                probe = touched_update(
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
                elif l1_lazy:
                    probe += cumulative_l1_lazy(P, state, &config, eta, touched, n_touched, 1.0)
            if averaging and t >= config.average_start and not stepped_densely:
                if cumulative:
                    # The average needs every true weight: catch them all up.
                    catch_up_all(P, S, C, last_S, last_C)
                    S = 1.0
                    C = 0.0
                probe += average_lazy(P, state, &config, t, scale)
            if not (is_finite(batch_loss) and is_finite(probe)):
                batch_loss += probe
                diverged = True
                break
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


def batch_gradient_sparse(
    const floating[::1] data,
    const sparse_index_t[::1] indices,
    const sparse_index_t[::1] indptr,
    const floating[::1] y,
    const index_t[::1] rows,
    floating[:, ::1] P,
    cfg,
    const double[::1] sample_weight=None,
):
    """``(loss_sum, G)`` of the CSR rows ``rows``: the gradient of the dense update mode.

    The row loop of ``run_epoch_sparse`` with ``UPDATE_DENSE`` (true weights,
    no column tracking), from the same pieces. ``G`` (float64, the shape of
    P) is the mean gradient of the loss alone, its last column the mean dL/dz.
    """
    cdef KernelConfig config = cfg._asdict()
    cdef Py_ssize_t K = P.shape[0]
    G_array = np.zeros((K, P.shape[1]))
    cdef double[:, ::1] G = G_array
    cdef double[::1] z = np.empty(K)
    cdef double[::1] g = np.empty(K)
    cdef Py_ssize_t[::1] no_touched = np.empty(0, dtype=np.intp)
    cdef unsigned char[::1] no_seen = np.zeros(0, dtype=np.uint8)
    cdef double inv_m = 1.0 / rows.shape[0]
    cdef double total = 0.0
    cdef Py_ssize_t r, i, k, lo, hi
    cdef const double *weights = NULL if sample_weight is None else &sample_weight[0]
    with nogil:
        for r in range(rows.shape[0]):
            i = rows[r]
            lo = indptr[i]
            hi = indptr[i + 1]
            predict_row_sparse(data, indices, lo, hi, P, 1.0, z)
            total += loss_dloss(&config, z, y, i, g, weights)
            for k in range(K):
                g[k] *= inv_m
            accumulate_row_sparse(data, indices, lo, hi, g, G, no_touched, 0, no_seen, False)
    return total, G_array


if OPT_SGD != _config.OPT_SGD or SPARSE_DENSE != _config.SPARSE_DENSE:
    raise ImportError(
        "fastgd.backends._cython_kernels was compiled against other settings codes "
        "than fastgd._config; rebuild it: `python -m pip install .` "
        "(or `python -m pip install -e .` in a checkout)"
    )
