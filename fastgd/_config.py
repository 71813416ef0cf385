"""The names users type and the integer codes kernels branch on, in one place.

Every backend receives its settings as two records, :class:`KernelConfig`
(what is computed) and :class:`ExecutionConfig` (how it runs). Their fields
are plain integers and floats, so a compiled kernel is specialised once per
dtype and data layout, never once per hyperparameter value.
"""

from typing import NamedTuple

# Order matters: the position of a name is the code the kernels branch on.
LOSSES = (
    "squared_error",
    "huber",
    "epsilon_insensitive",
    "log_loss",
    "multinomial",
    "hinge",
    "modified_huber",
    "squared_hinge",
    "perceptron",
    "squared_epsilon_insensitive",
)
OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
PENALTIES = (None, "l2", "l1", "elasticnet")
SCHEDULES = ("constant", "invscaling", "exponential", "step", "adaptive", "optimal")
# "data": a batch's gradient is shared over the threads, the same result for
# any thread count; "hogwild": threads update the parameters without locks.
PARALLEL_MODES = ("data", "hogwild")
# How a sparse X's batches update the weights (``fit(sparse_update=...)``):
# "lazy" touches only the columns the batch has entries in (O(nnz) per
# update), "dense" is the dense update itself (O(n_features) per update).
SPARSE_UPDATES = ("lazy", "dense")

REGRESSION_LOSSES = (
    "squared_error",
    "huber",
    "epsilon_insensitive",
    "squared_epsilon_insensitive",
)
CLASSIFICATION_LOSSES = tuple(name for name in LOSSES if name not in REGRESSION_LOSSES)
# Losses with a probabilistic reading, hence a ``predict_proba``
# (``modified_huber``'s is scikit-learn's: (clip(score, -1, 1) + 1) / 2).
PROBABILISTIC_LOSSES = ("log_loss", "multinomial", "modified_huber")

(
    LOSS_SQUARED_ERROR,
    LOSS_HUBER,
    LOSS_EPSILON_INSENSITIVE,
    LOSS_LOG,
    LOSS_MULTINOMIAL,
    LOSS_HINGE,
    LOSS_MODIFIED_HUBER,
    LOSS_SQUARED_HINGE,
    LOSS_PERCEPTRON,
    LOSS_SQUARED_EPSILON_INSENSITIVE,
) = range(len(LOSSES))
(
    OPT_SGD,
    OPT_MOMENTUM,
    OPT_NESTEROV,
    OPT_ADAGRAD,
    OPT_RMSPROP,
    OPT_ADAM,
    OPT_ADAMW,
) = range(len(OPTIMIZERS))
SPARSE_LAZY, SPARSE_DENSE = range(len(SPARSE_UPDATES))
# How the L1 part of the penalty is applied (``l1_method``): the proximal
# soft-threshold of each update, or the cumulative penalty of Tsuruoka et
# al. (2009), scikit-learn's.
L1_METHODS = ("proximal", "cumulative")
# The order an epoch visits its rows in, as the backends see it: the data's
# order, a fresh permutation of the rows, or whole batches in a random order
# (``fit(shuffle=False / True / "batches")``). A CPU backend picks its
# prefetching from it.
ROW_ORDERS = ("sequential", "shuffled", "batches")
ORDER_SEQUENTIAL, ORDER_SHUFFLED, ORDER_BATCHES = range(len(ROW_ORDERS))
# What the optimizer state ``state`` (shape ``(N_STATE_SLOTS, K, d + 1)``)
# holds in each slot: the optimizer's two moments (momentum's velocity, or
# Adagrad's and RMSprop's squared-gradient sum, in the first; Adam's two),
# the running average of the parameters (``average``), and the cumulative
# L1 penalty each weight has received (``l1_method='cumulative'``), whose
# intercept column, which no penalty touches, holds the total penalty so far.
STATE_SLOTS = ("moment1", "moment2", "average", "l1_applied")
SLOT_MOMENT1, SLOT_MOMENT2, SLOT_AVERAGE, SLOT_L1_APPLIED = range(len(STATE_SLOTS))
N_STATE_SLOTS = len(STATE_SLOTS)


def slots_in_use(cfg):
    """The slots of the optimizer state that ``cfg``'s updates write; the others stay 0.

    A driver that moves optimizer states between machines (the Dask
    average) moves these alone. Returns a tuple of slot indices.
    """
    slots = ()
    if cfg.optimizer != OPT_SGD:
        slots += (SLOT_MOMENT1,)
    if cfg.optimizer in (OPT_ADAM, OPT_ADAMW):
        slots += (SLOT_MOMENT2,)
    if cfg.average_start:
        slots += (SLOT_AVERAGE,)
    if cfg.l1_cumulative:
        slots += (SLOT_L1_APPLIED,)
    return slots


class KernelConfig(NamedTuple):
    """What an epoch computes: everything a kernel's arithmetic needs besides the arrays.

    The penalty arrives already split into its two parts, so kernels never
    look at ``penalty`` or ``l1_ratio``: ``l2`` is the coefficient of the
    smooth part ``l2 · ½‖w‖²`` (added to the gradient; plain SGD shrinks
    ``w *= max(0, 1 − eta·l2)`` instead) and ``l1`` that of
    ``l1 · ‖w‖₁`` (applied as a proximal soft-threshold after each update).
    ``power_t`` and ``t_offset`` are the schedule's per-update decay
    (``lr / (t + t_offset)**power_t``; ``power_t`` 0 unless
    ``schedule='invscaling'`` or ``'optimal'``, ``t_offset`` 0 unless
    ``'optimal'``, see ``fastgd._schedule``). ``intercept_drift`` is a
    constant added to the intercept's gradient in every update: the
    coefficient ``c`` of an objective term ``c · b`` (the one-class SVM's
    ``ν·b``, ``fastgd.MiniBatchOneClassSVM``), 0 for every other model.
    ``average_start`` is the update number ``t`` (1-based, counting
    updates, not rows) from which the running average of the parameters (state slot ``average``) is kept,
    0 for no averaging; ``l1_cumulative`` (0/1) takes ``l1`` as Tsuruoka et
    al.'s cumulative penalty instead of the soft-threshold (state slot
    ``l1_applied``). How the epoch runs is :class:`ExecutionConfig`. Built by
    ``fastgd._settings.kernel_records`` from the settings table, which
    tests that these fields are its kernel rows.
    """

    loss: int
    optimizer: int
    batch_size: int
    drop_last: int
    fit_intercept: int
    l2: float
    l1: float
    epsilon: float
    power_t: float
    t_offset: float
    momentum: float
    beta1: float
    beta2: float
    eps: float
    rho: float
    weight_decay: float
    # Defaults: a model pickled before these fields existed loads as
    # training without them.
    intercept_drift: float = 0.0
    average_start: int = 0
    l1_cumulative: int = 0


class ExecutionConfig(NamedTuple):
    """How an epoch runs, as opposed to what it computes (:class:`KernelConfig`).

    A backend reads the fields that apply to it and ignores the others (the
    NumPy reference runs one thread whatever ``n_threads`` says).
    ``n_threads`` is the threads a large batch's gradient is shared over (any
    count gives the same result); ``hogwild`` (0/1) asks for lock-free
    threads (which change the result); ``sparse_update`` (a code of
    ``SPARSE_UPDATES``) is read by the CSR kernels only; ``row_order`` (a
    code of ``ROW_ORDERS``) tells a CPU backend how the rows will be read, so
    that it can prefetch the ones at random addresses.
    """

    n_threads: int = 1
    hogwild: int = 0
    sparse_update: int = SPARSE_LAZY
    row_order: int = ORDER_SEQUENTIAL


def penalty_split(penalty, alpha, l1_ratio):
    """Return ``(l2, l1)`` coefficients of scikit-learn's SGD penalty convention.

    R(w) = ½‖w‖² for l2, ‖w‖₁ for l1 and
    ``l1_ratio·‖w‖₁ + (1 − l1_ratio)·½‖w‖²`` for elasticnet; the objective is
    the mean loss plus ``alpha · R(w)``.
    """
    if penalty is None:
        return 0.0, 0.0
    if penalty == "l2":
        return float(alpha), 0.0
    if penalty == "l1":
        return 0.0, float(alpha)
    return float(alpha) * (1.0 - l1_ratio), float(alpha) * l1_ratio
