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
"""

# The settings each half reads, in the order of its parameters: the settings
# table checks that its "schedule" rows are exactly these.
EPOCH_RATE_SETTINGS = ("schedule", "lr", "decay", "step_size", "gamma")
UPDATE_EXPONENT_SETTINGS = ("schedule", "power_t")


def epoch_learning_rate(schedule, lr, epoch, decay, step_size, gamma):
    """Base learning rate of epoch ``epoch`` (0-based).

    ``exponential``: ``lr · decay**epoch``; ``step``: ``lr · gamma**(epoch //
    step_size)``. ``invscaling`` decays per update (see
    :func:`update_exponent`) and ``constant`` never does, so both return
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
