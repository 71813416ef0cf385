"""The learning-rate schedule, computed in one place.

The rate of update ``t`` (1-based, counted over the whole fit) in epoch ``e``
(0-based) is::

    rate = epoch_learning_rate(schedule, lr, e, decay, step_size, gamma, alpha)
    rate / (t + update_offset(schedule, alpha, loss, epsilon))**update_exponent(schedule, power_t)

The engine computes the first factor once per epoch and hands it to the
backend as the epoch's ``lr``; the exponent and the offset travel in
``KernelConfig.power_t`` and ``KernelConfig.t_offset``. The kernels only
apply ``lr / (t + t_offset)**power_t`` (a ``power_t`` of 0 is the constant
rate), so a new schedule is written here, never in a kernel.

``optimal`` is scikit-learn's ``learning_rate='optimal'``:
``1 / (alpha · (optimal_init + t − 1))``, that is a base rate ``1 / alpha``,
``power_t`` 1 and ``t_offset`` ``optimal_init − 1``, with Bottou's
``optimal_init`` (:func:`optimal_init`). ``lr`` is not read.

``adaptive`` (scikit-learn's) is the one schedule that reads the fit's
history: the epoch loop divides the rate by :data:`ADAPTIVE_DIVISOR` when
the stopping rule sees no improvement (:func:`adaptive_decay`), and the
factor so far rides in ``TrainState.lr_factor``, so a resumed fit keeps it.
"""

# scikit-learn's adaptive schedule: the rate is divided by 5 on a plateau,
# and training stops on a plateau once the rate is at or below 1e-6.
ADAPTIVE_DIVISOR = 5.0
ADAPTIVE_MIN_RATE = 1e-6

# The settings each half reads, in the order of its parameters: the settings
# table checks that its "schedule" rows are exactly these.
EPOCH_RATE_SETTINGS = ("schedule", "lr", "decay", "step_size", "gamma", "alpha")
UPDATE_EXPONENT_SETTINGS = ("schedule", "power_t")
UPDATE_OFFSET_SETTINGS = ("schedule", "alpha", "loss", "epsilon")
# Settings the schedule reads that are rows of another consumer (the
# kernel's arithmetic): ``optimal`` scales its rate by the penalty's alpha,
# and takes its first rate from the loss.
SHARED_SETTINGS = ("alpha", "loss", "epsilon")


def epoch_learning_rate(schedule, lr, epoch, decay, step_size, gamma, alpha=0.0001):
    """Base learning rate of epoch ``epoch`` (0-based).

    ``exponential``: ``lr · decay**epoch``; ``step``: ``lr · gamma**(epoch //
    step_size)``; ``optimal``: ``1 / alpha`` (``lr`` unused; the decay is per
    update, see :func:`update_offset`). ``invscaling`` decays per update (see
    :func:`update_exponent`), ``adaptive`` on plateaus (see
    :func:`adaptive_decay`) and ``constant`` never does, so they return
    ``lr`` here.
    """
    if schedule == "optimal":
        return 1.0 / alpha
    if schedule == "exponential":
        return lr * decay**epoch
    if schedule == "step":
        return lr * gamma ** (epoch // step_size)
    return lr


def update_exponent(schedule, power_t):
    """Exponent of the per-update decay ``lr / (t + t_offset)**power_t``: ``KernelConfig.power_t``.

    ``power_t`` for ``invscaling``, 1 for ``optimal``, 0 (no decay within an
    epoch) for every other schedule.
    """
    if schedule == "optimal":
        return 1.0
    return float(power_t) if schedule == "invscaling" else 0.0


def check_optimal_alpha(schedule, alpha):
    """Refuse ``schedule='optimal'`` with ``alpha`` <= 0, whose rate ``1 / alpha`` is not finite."""
    if schedule == "optimal" and not alpha > 0.0:
        raise ValueError(
            f"schedule='optimal' needs alpha > 0: its rate is 1 / (alpha · (t + t0)), "
            f"with alpha the rate's scale even where penalty=None; got alpha={alpha!r}."
        )


def optimal_init(alpha, loss, epsilon):
    """Bottou's ``optimal_init`` of scikit-learn's ``optimal`` schedule, for ``alpha`` > 0.

    ``typw = sqrt(1 / sqrt(alpha))``; the first rate is ``eta0 = typw /
    max(1, dloss(y=1, z=-typw))``, with ``dloss`` the loss's derivative with
    respect to the prediction at the positive target (class code 1, or 1.0
    for regression; for ``multinomial``, class 1 of two at scores
    ``(0, -typw)``, its binary ``log_loss``), from the reference's
    ``LOSS_FUNCTIONS``; and ``optimal_init = 1 / (eta0 · alpha)``, so that
    the first update's rate is ``eta0``.
    """
    from types import SimpleNamespace

    import numpy as np

    from ._config import LOSS_MULTINOMIAL, LOSSES
    from .backends._reference import LOSS_FUNCTIONS

    typw = np.sqrt(1.0 / np.sqrt(alpha))
    code = LOSSES.index(loss)
    Z = np.array([[0.0, -typw]]) if code == LOSS_MULTINOMIAL else np.array([[-typw]])
    _, dZ = LOSS_FUNCTIONS[code](Z, np.array([1.0]), SimpleNamespace(epsilon=float(epsilon)))
    dloss = float(dZ[0, -1])
    initial_eta0 = typw / max(1.0, dloss)
    return float(1.0 / (initial_eta0 * alpha))


def update_offset(schedule, alpha, loss, epsilon):
    """Offset of the update count in ``lr / (t + t_offset)**power_t``: ``KernelConfig.t_offset``.

    ``optimal_init − 1`` for ``optimal`` (:func:`optimal_init`; raises a
    ValueError where ``alpha`` is not > 0), 0 for every other schedule.
    """
    if schedule != "optimal":
        return 0.0
    check_optimal_alpha(schedule, alpha)
    return optimal_init(alpha, loss, epsilon) - 1.0


def adaptive_decay(state, rate):
    """On a plateau of an ``adaptive`` fit whose epoch rate is ``rate``: decay, or stop.

    Divides ``state.lr_factor`` by :data:`ADAPTIVE_DIVISOR` and returns True
    (training goes on at the smaller rate) while ``rate`` is above
    :data:`ADAPTIVE_MIN_RATE`; returns False (stop) once it is not.
    """
    if rate > ADAPTIVE_MIN_RATE:
        state.lr_factor /= ADAPTIVE_DIVISOR
        return True
    return False
