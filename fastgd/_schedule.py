"""The learning-rate schedule, computed in one place.

The rate of update ``t`` (1-based, counted over the whole fit) in epoch ``e``
(0-based) is::

    rate = epoch_learning_rate(schedule, lr, e, decay, step_size, gamma)
    rate / t**update_exponent(schedule, power_t)

The engine computes the first factor once per epoch and hands it to the
backend as the epoch's ``lr``; the exponent travels in
``KernelConfig.power_t``. The kernels only apply ``lr / t**power_t`` (a
``power_t`` of 0 is the constant rate), so a new schedule is written here,
never in a kernel.

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
EPOCH_RATE_SETTINGS = ("schedule", "lr", "decay", "step_size", "gamma")
UPDATE_EXPONENT_SETTINGS = ("schedule", "power_t")


def epoch_learning_rate(schedule, lr, epoch, decay, step_size, gamma):
    """Base learning rate of epoch ``epoch`` (0-based).

    ``exponential``: ``lr · decay**epoch``; ``step``: ``lr · gamma**(epoch //
    step_size)``. ``invscaling`` decays per update (see
    :func:`update_exponent`), ``adaptive`` on plateaus (see
    :func:`adaptive_decay`) and ``constant`` never does, so they return
    ``lr`` here.
    """
    if schedule == "exponential":
        return lr * decay**epoch
    if schedule == "step":
        return lr * gamma ** (epoch // step_size)
    return lr


def update_exponent(schedule, power_t):
    """Exponent of the per-update decay ``lr / t**power_t``: ``KernelConfig.power_t``.

    ``power_t`` for ``invscaling``, 0 (no decay within an epoch) for every
    other schedule.
    """
    return float(power_t) if schedule == "invscaling" else 0.0


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
