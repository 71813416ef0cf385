"""Progress display over epochs: a tqdm bar, or one plain line per epoch.

Nothing here is imported or built unless ``verbose > 0``: with progress off,
the epoch loop sees ``progress=None`` and pays one ``is None`` test per epoch.
"""

import sys
import time


def make_progress(verbose, epochs, n_rows, description):
    """Return a progress display for ``epochs`` epochs, or None when ``verbose`` is 0.

    Parameters
    ----------
    verbose : int
        0: nothing; 1 or more: a tqdm bar on stderr with the running loss,
        the watched validation score and rows/s (a plain line per epoch where
        tqdm is not installed), then a line saying why training stopped.
    epochs : int
        Length of the bar.
    n_rows : int
        Rows visited per epoch, for the rows/s figure.
    description : str
        Shown at the left of the bar (the estimator's name).
    """
    if not verbose:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return EpochLines(epochs, n_rows, description)
    return TqdmProgress(tqdm, epochs, n_rows, description)


class TqdmProgress:
    """A tqdm bar over epochs, its postfix showing the last loss and rows/s."""

    def __init__(self, tqdm, epochs, n_rows, description):
        self.bar = tqdm(total=epochs, desc=description, unit="epoch", file=sys.stderr)
        self.n_rows = n_rows
        self._last = time.perf_counter()

    def update(self, loss, watched=None):
        now = time.perf_counter()
        rate = self.n_rows / max(now - self._last, 1e-12)
        self._last = now
        self.bar.set_postfix_str(f"loss={loss:.5g}{_watched(watched)}, {rate:.3g} rows/s",
                                 refresh=False)  # fmt: skip
        self.bar.update(1)

    def close(self, reason=None):
        self.bar.close()
        if reason is not None:
            print(f"{self.bar.desc}: {reason}", file=sys.stderr, flush=True)


class EpochLines:
    """The fallback without tqdm: ``description: epoch i/n, loss ..., rows/s ...``."""

    def __init__(self, epochs, n_rows, description):
        self.epochs = epochs
        self.n_rows = n_rows
        self.description = description
        self.epoch = 0
        self._last = time.perf_counter()

    def update(self, loss, watched=None):
        now = time.perf_counter()
        rate = self.n_rows / max(now - self._last, 1e-12)
        self._last = now
        self.epoch += 1
        print(
            f"{self.description}: epoch {self.epoch}/{self.epochs}, loss {loss:.5g}"
            f"{_watched(watched)}, {rate:.3g} rows/s",
            file=sys.stderr,
            flush=True,
        )

    def close(self, reason=None):
        if reason is not None:
            print(f"{self.description}: {reason}", file=sys.stderr, flush=True)


def _watched(watched):
    """``, name=score`` of the monitor's ``(name, score)``, or nothing."""
    return "" if watched is None else f", {watched[0]}={watched[1]:.5g}"
