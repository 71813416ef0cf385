"""fastgd's own exceptions."""


class DivergenceError(FloatingPointError):
    """Training diverged: a loss, a parameter or an optimizer moment became NaN or infinite.

    Raised at once, at the batch where it happened. The parameters of the
    last completed epoch (all finite) are kept on ``result`` (and on an
    estimator), so no NaN weights are ever returned.

    Attributes
    ----------
    epoch : int
        The epoch (1-based) in which training diverged.
    batch : int
        The batch (1-based, within that epoch) whose loss was not finite, or
        whose update left a parameter or a moment of the optimizer (Adam's
        second moment overflowed to inf, say) that was not.
    result : FitResult
        The fit as of the end of the last finite epoch.
    """

    def __init__(self, epoch, batch, lr, result):
        self.epoch, self.batch, self.result = epoch, batch, result
        super().__init__(
            f"Training diverged in epoch {epoch}, batch {batch}: the loss, the "
            "parameters or the optimizer's moments became NaN or infinite "
            f"(lr={lr:g}). Try a smaller lr, "
            "standardised features, or an adaptive optimizer such as 'adam'. "
            "The parameters of the last finite epoch are kept on err.result."
        )
