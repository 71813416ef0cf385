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
    batch : int or None
        The batch (1-based, within that epoch) whose loss was not finite, or
        whose update left a parameter or a moment of the optimizer (Adam's
        second moment overflowed to inf, say) that was not; None when the
        epoch stayed finite but its loss or parameters grew past the bound
        (``growth``).
    growth : str or None
        What grew past the bound of a finite divergence: the epoch's mean
        loss, or its largest parameter, against the first epoch's.
    result : FitResult
        The fit as of the end of the last finite epoch.
    """

    def __init__(self, epoch, batch, lr, result, growth=None):
        self.epoch, self.batch, self.result, self.growth = epoch, batch, result, growth
        self.lr = lr
        if growth is None:
            what = (f"in epoch {epoch}, batch {batch}: the loss, the parameters or the "
                    "optimizer's moments became NaN or infinite")  # fmt: skip
        else:
            what = f"in epoch {epoch}: {growth}"
        super().__init__(
            f"Training diverged {what} (lr={lr:g}). Try a smaller lr, "
            "standardised features, or an adaptive optimizer such as 'adam'. "
            "The parameters of the last finite epoch are kept on err.result."
        )

    def __reduce__(self):
        # Rebuilt from its own arguments, not from the message: a Dask task
        # that diverges sends it back to the driver pickled.
        return type(self), (self.epoch, self.batch, self.lr, self.result, self.growth)
